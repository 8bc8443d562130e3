#include "config.h"

#include <glib.h>
#include <glib/gstdio.h>
#include <gtest/gtest.h>

#include <string>
#include <vector>

using namespace xdn::manager;

namespace {

bool
load (const std::vector<std::string> &args, ManagerConfig *c, std::string *error)
{
  std::vector<gchar *> owned;
  owned.push_back (g_strdup ("xdn-manager"));
  for (const auto &a : args)
    owned.push_back (g_strdup (a.c_str ()));
  std::vector<gchar *> argv = owned;  /* the parser rearranges this copy */
  argv.push_back (nullptr);
  int argc = static_cast<int> (owned.size ());
  char **p = argv.data ();
  bool ok = loadManagerConfig (&argc, &p, c, error);
  for (gchar *s : owned)
    g_free (s);
  return ok;
}

class KeyFile {
public:
  explicit KeyFile (const std::string &text)
  {
    gint fd = g_file_open_tmp ("xdn-manager-XXXXXX.conf", &path_, nullptr);
    EXPECT_GE (fd, 0);
    close (fd);
    g_file_set_contents (path_, text.c_str (), -1, nullptr);
  }
  ~KeyFile ()
  {
    g_remove (path_);
    g_free (path_);
  }
  std::string path () const { return path_; }

private:
  gchar *path_ = nullptr;
};

}  // namespace

TEST (ManagerConfig, DefaultsMatchTheDocumentation)
{
  ManagerConfig c;
  std::string error;
  ASSERT_TRUE (load ({}, &c, &error)) << error;
  EXPECT_EQ (c.httpPort, 8090);
  EXPECT_EQ (c.httpAddress, "0.0.0.0");
  EXPECT_EQ (c.db, "sqlite:xdn-manager.db");
  EXPECT_EQ (c.clusterToken, "");
  EXPECT_EQ (c.heartbeatIntervalMs, 1000);
  EXPECT_EQ (c.originFanout, 4);
  EXPECT_EQ (c.maxBodyBytes, 65536);
}

TEST (ManagerConfig, FlagsAreRead)
{
  ManagerConfig c;
  std::string error;
  ASSERT_TRUE (load ({"--http-port", "9100", "--http-address", "127.0.0.1",
      "--db", "postgresql://u@localhost/xdn", "--cluster-token", "s3cret",
      "--heartbeat-interval-ms", "250", "--origin-fanout", "8", "--log-level", "debug"}, &c, &error)) << error;
  EXPECT_EQ (c.httpPort, 9100);
  EXPECT_EQ (c.httpAddress, "127.0.0.1");
  EXPECT_EQ (c.db, "postgresql://u@localhost/xdn");
  EXPECT_EQ (c.clusterToken, "s3cret");
  EXPECT_EQ (c.heartbeatIntervalMs, 250);
  EXPECT_EQ (c.originFanout, 8);
  EXPECT_EQ (c.logLevel, "debug");
}

TEST (ManagerConfig, KeyFileOverridesDefaultsAndFlagsOverrideTheKeyFile)
{
  KeyFile kf ("[http]\nport=9200\n[store]\ndb=sqlite:/tmp/x.db\ntimeout-ms=500\n"
      "[cluster]\ntoken=abc\nheartbeat-interval-ms=500\n"
      "[placement]\norigin-fanout=2\nrelay-fanout=5\nviewer-capacity=50\n[unknown]\nkey=1\n");
  ManagerConfig c;
  std::string error;
  ASSERT_TRUE (load ({"--config", kf.path (), "--http-port", "9300"}, &c, &error)) << error;
  EXPECT_EQ (c.httpPort, 9300);
  EXPECT_EQ (c.db, "sqlite:/tmp/x.db");
  EXPECT_EQ (c.storeTimeoutMs, 500);
  EXPECT_EQ (c.clusterToken, "abc");
  EXPECT_EQ (c.heartbeatIntervalMs, 500);
  EXPECT_EQ (c.originFanout, 2);
  EXPECT_EQ (c.relayFanout, 5);
  EXPECT_EQ (c.viewerCapacity, 50);
}

TEST (ManagerConfig, BadValuesAreRefusedWithAReason)
{
  struct Case {
    std::vector<std::string> args;
    const char *expect;
  } cases[] = {
    {{"--http-port", "70000"}, "http port"},
    {{"--http-port", "-1"}, "http port"},
    {{"--heartbeat-interval-ms", "10"}, "heartbeat interval"},
    {{"--origin-fanout", "0"}, "fan-out"},
    {{"--db", "mysql://x"}, "db must be"},
    {{"--db", "sqlite:"}, "file path"},
    {{"--cluster-token", "has space"}, "token"},
    {{"--http-port", "abc"}, ""},
    {{"--no-such-flag"}, ""},
    {{"stray"}, "unexpected argument"},
    {{"--config", "/nonexistent/xdn.conf"}, "cannot read config file"},
  };
  for (const auto &tc : cases) {
    ManagerConfig c;
    std::string error;
    EXPECT_FALSE (load (tc.args, &c, &error)) << tc.args[0];
    EXPECT_NE (error.find (tc.expect), std::string::npos) << error;
  }
}

TEST (ManagerConfig, KeyFileWithANonNumberIsRefused)
{
  KeyFile kf ("[cluster]\nheartbeat-interval-ms=fast\n");
  ManagerConfig c;
  std::string error;
  EXPECT_FALSE (load ({"--config", kf.path ()}, &c, &error));
  EXPECT_NE (error.find ("heartbeat-interval-ms"), std::string::npos) << error;
}
