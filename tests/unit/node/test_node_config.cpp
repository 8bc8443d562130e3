/* xdn-node's settings: the cluster keys in the key file and as options, the
 * defaults resolved from the bound ports, and the refusals. */
#include "config.h"

#include <gtest/gtest.h>

#include <glib.h>
#include <glib/gstdio.h>

#include <string>
#include <vector>

using namespace xdn;

namespace {

/* Runs loadNodeConfig on "xdn-node" + @args. */
bool
load (std::vector<std::string> args, NodeConfig *config, std::string *error)
{
  args.insert (args.begin (), "xdn-node");
  std::vector<char *> argv;
  for (auto &a : args)
    argv.push_back (a.data ());
  argv.push_back (nullptr);
  int argc = static_cast<int> (args.size ());
  char **p = argv.data ();
  return loadNodeConfig (&argc, &p, config, error);
}

std::string
refusal (std::vector<std::string> args)
{
  NodeConfig c;
  std::string error;
  if (load (std::move (args), &c, &error))
    return "";
  return error.empty () ? "(refused without a message)" : error;
}

class TempFile {
public:
  explicit TempFile (const std::string &text)
  {
    gchar *name = nullptr;
    int fd = g_file_open_tmp ("xdn-node-config-XXXXXX.ini", &name, nullptr);
    path_ = name;
    g_free (name);
    close (fd);
    g_file_set_contents (path_.c_str (), text.c_str (), -1, nullptr);
  }
  ~TempFile () { g_unlink (path_.c_str ()); }
  const std::string &path () const { return path_; }

private:
  std::string path_;
};

}  // namespace

TEST (NodeConfig, DefaultsKeepTheAllInOneNode)
{
  NodeConfig c;
  std::string error;
  ASSERT_TRUE (load ({}, &c, &error)) << error;
  EXPECT_EQ (c.nodeRole, NodeRole::All);
  EXPECT_EQ (c.region, "default");
  EXPECT_TRUE (c.manager.empty ());
  EXPECT_TRUE (c.upstream.empty ());
  EXPECT_EQ (c.relayLatencyMs, 120);
  EXPECT_EQ (c.relayLingerS, 10);
  EXPECT_EQ (c.maxViewers, 500);
  EXPECT_EQ (c.maxDownstream, 0);
}

TEST (NodeConfig, EveryClusterOptionIsRead)
{
  NodeConfig c;
  std::string error;
  ASSERT_TRUE (load ({"--role", "edge", "--manager", "http://127.0.0.1:8090/",
      "--cluster-token", "s3cret", "--node-id", "edge-7", "--region", "eu-west",
      "--public-url", "https://edge7.example.com", "--public-srt", "srt://edge7.example.com:9000",
      "--relay-passphrase", "0123456789ab", "--relay-latency", "40", "--relay-linger", "3",
      "--relay-token", "relay-t", "--max-viewers", "2000", "--max-downstream", "6"},
      &c, &error)) << error;
  EXPECT_EQ (c.nodeRole, NodeRole::Edge);
  EXPECT_EQ (c.manager, "http://127.0.0.1:8090");  /* trailing '/' dropped */
  EXPECT_EQ (c.clusterToken, "s3cret");
  EXPECT_EQ (c.nodeId, "edge-7");
  EXPECT_EQ (c.region, "eu-west");
  EXPECT_EQ (c.publicUrl, "https://edge7.example.com");
  EXPECT_EQ (c.publicSrt, "srt://edge7.example.com:9000");
  EXPECT_EQ (c.relayPassphrase, "0123456789ab");
  EXPECT_EQ (c.relayLatencyMs, 40);
  EXPECT_EQ (c.relayLingerS, 3);
  EXPECT_EQ (c.relayToken, "relay-t");
  EXPECT_EQ (c.maxViewers, 2000);
  EXPECT_EQ (c.maxDownstream, 6);
}

TEST (NodeConfig, KeyFileKeysAndOptionsOverrideThem)
{
  TempFile file ("[node]\nrole=relay\nid=relay-1\nregion=us\nmax-viewers=10\nmax-downstream=8\n"
                 "[cluster]\nmanager=http://m:8090\ntoken=tok\npublic-url=http://relay-1:8080\n"
                 "public-srt=srt://relay-1:9000\nupstream=srt://origin:9000\n"
                 "[relay]\npassphrase=abcdefghijkl\nlatency=80\nlinger=20\ntoken=rt\n");
  NodeConfig c;
  std::string error;
  ASSERT_TRUE (load ({"--config", file.path (), "--region", "ap"}, &c, &error)) << error;
  EXPECT_EQ (c.nodeRole, NodeRole::Relay);
  EXPECT_EQ (c.nodeId, "relay-1");
  EXPECT_EQ (c.region, "ap");
  EXPECT_EQ (c.maxViewers, 10);
  EXPECT_EQ (c.maxDownstream, 8);
  EXPECT_EQ (c.manager, "http://m:8090");
  EXPECT_EQ (c.clusterToken, "tok");
  EXPECT_EQ (c.publicUrl, "http://relay-1:8080");
  EXPECT_EQ (c.publicSrt, "srt://relay-1:9000");
  EXPECT_EQ (c.upstream, "srt://origin:9000");
  EXPECT_EQ (c.relayPassphrase, "abcdefghijkl");
  EXPECT_EQ (c.relayLatencyMs, 80);
  EXPECT_EQ (c.relayLingerS, 20);
  EXPECT_EQ (c.relayToken, "rt");
}

TEST (NodeConfig, RefusesRolesThatDoNotExist)
{
  EXPECT_NE (refusal ({"--role", "transcoder"}).find ("not available yet"), std::string::npos);
  EXPECT_NE (refusal ({"--role", "cdn"}).find ("unknown role 'cdn'"), std::string::npos);
}

TEST (NodeConfig, EdgeAndRelayNeedSomewhereToPullFrom)
{
  EXPECT_NE (refusal ({"--role", "edge"}).find ("--manager"), std::string::npos);
  EXPECT_NE (refusal ({"--role", "relay"}).find ("--upstream"), std::string::npos);
  EXPECT_EQ (refusal ({"--role", "edge", "--upstream", "srt://127.0.0.1:9000"}), "");
  EXPECT_EQ (refusal ({"--role", "relay", "--manager", "http://127.0.0.1:8090"}), "");
  EXPECT_NE (refusal ({"--role", "origin", "--upstream", "srt://127.0.0.1:9000"})
      .find ("does not pull"), std::string::npos);
}

TEST (NodeConfig, RefusesBadClusterValues)
{
  EXPECT_NE (refusal ({"--manager", "127.0.0.1:8090"}).find ("http://"), std::string::npos);
  EXPECT_NE (refusal ({"--upstream", "udp://x:1"}).find ("srt://HOST:PORT"), std::string::npos);
  EXPECT_NE (refusal ({"--public-url", "edge:8080"}).find ("public URL"), std::string::npos);
  EXPECT_NE (refusal ({"--public-srt", "srt://edge"}).find ("public SRT"), std::string::npos);
  EXPECT_NE (refusal ({"--node-id", "edge 1"}).find ("node id"), std::string::npos);
  EXPECT_NE (refusal ({"--region", ""}).find ("region"), std::string::npos);
  EXPECT_NE (refusal ({"--relay-passphrase", "short"}).find ("10 to 79"), std::string::npos);
  EXPECT_NE (refusal ({"--relay-latency", "5"}).find ("relay latency"), std::string::npos);
  EXPECT_NE (refusal ({"--relay-linger", "4000"}).find ("relay linger"), std::string::npos);
  EXPECT_NE (refusal ({"--max-viewers", "0"}).find ("max viewers"), std::string::npos);
  EXPECT_NE (refusal ({"--max-downstream", "-5"}), "");
  EXPECT_NE (refusal ({"--relay-latency", "abc"}), "");
}

TEST (NodeConfig, RefusesABadNumberInTheKeyFile)
{
  TempFile file ("[relay]\nlinger=soon\n");
  std::string why = refusal ({"--config", file.path ()});
  EXPECT_NE (why.find ("[relay] linger"), std::string::npos) << why;
}

TEST (NodeConfig, DefaultsComeFromTheBoundPorts)
{
  NodeConfig c;
  c.ice.addresses = {"127.0.0.1"};
  resolveClusterDefaults (&c, 8081, 9001, "box.example");
  EXPECT_EQ (c.nodeId, "box.example-8081");
  EXPECT_EQ (c.publicUrl, "http://127.0.0.1:8081");
  EXPECT_EQ (c.publicSrt, "srt://127.0.0.1:9001");

  NodeConfig n;
  n.publicAddress = "203.0.113.7";
  n.nodeId = "edge-1";
  n.publicUrl = "https://edge-1.example.com/";
  resolveClusterDefaults (&n, 8080, 0, "my host!");
  EXPECT_EQ (n.nodeId, "edge-1");
  EXPECT_EQ (n.publicUrl, "https://edge-1.example.com");
  EXPECT_TRUE (n.publicSrt.empty ());  /* no SRT port */

  NodeConfig h;
  resolveClusterDefaults (&h, 8080, 9000, "my host!");
  EXPECT_EQ (h.nodeId, "my-host--8080");  /* characters an id may not hold are replaced */
}

TEST (NodeConfig, WebRtcPortsFromTheKeyFileAndTheOption)
{
  NodeConfig none;
  std::string error;
  ASSERT_TRUE (load ({}, &none, &error)) << error;
  EXPECT_EQ (none.ice.minPort, 0u);  /* default: any port */
  EXPECT_EQ (none.ice.maxPort, 0u);

  TempFile file ("[webrtc]\nports=40000-40099\n");
  NodeConfig c;
  ASSERT_TRUE (load ({"--config", file.path ()}, &c, &error)) << error;
  EXPECT_EQ (c.ice.minPort, 40000u);
  EXPECT_EQ (c.ice.maxPort, 40099u);

  NodeConfig o;
  ASSERT_TRUE (load ({"--config", file.path (), "--webrtc-ports", "50000-50000"}, &o, &error))
      << error;
  EXPECT_EQ (o.ice.minPort, 50000u);
  EXPECT_EQ (o.ice.maxPort, 50000u);
}

TEST (NodeConfig, RefusesABadWebRtcPortRange)
{
  EXPECT_NE (refusal ({"--webrtc-ports", "40000"}).find ("MIN-MAX"), std::string::npos);
  EXPECT_NE (refusal ({"--webrtc-ports", "0-100"}).find ("MIN-MAX"), std::string::npos);
  EXPECT_NE (refusal ({"--webrtc-ports", "40010-40000"}).find ("empty"), std::string::npos);
  TempFile file ("[webrtc]\nports=lots\n");
  EXPECT_NE (refusal ({"--config", file.path ()}).find ("'lots'"), std::string::npos);
}
