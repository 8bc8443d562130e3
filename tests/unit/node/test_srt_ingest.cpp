/* SrtIngestServer against real SRT publishers on 127.0.0.1: ffmpeg,
 * srt-live-transmit and a libsrt caller inside the test (for exact
 * rejection codes, garbage and idle publishers). The sink the server feeds
 * is a test bin whose request pads each end in an appsink, so the tests
 * count RTP packets per encoding. Every wait is bounded; every process a
 * test starts is killed when the test ends. */
#include "srt-ingest.h"

#include <gst/app/gstappsink.h>
#include <gst/gst.h>
#include <gtest/gtest.h>
#include <srt/access_control.h>
#include <srt/srt.h>

#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <fstream>
#include <map>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

using namespace std::chrono_literals;
using xdn::SrtIngestServer;
using xdn::SrtIngestSettings;

namespace {

/* What the server and the sinks report, for the tests to wait on. */
struct Observed {
  std::mutex lock;  /* protects everything below */
  std::condition_variable cond;
  std::map<std::string, std::map<std::string, int>> packets;  /* stream -> encoding -> count */
  std::vector<std::string> started;
  std::vector<std::pair<std::string, std::string>> ended;     /* stream, reason */
  std::vector<std::pair<int, std::string>> requests;          /* handed-over socket, stream */

  template <typename Pred> bool waitFor (std::chrono::milliseconds timeout, Pred pred)
  {
    std::unique_lock<std::mutex> guard (lock);
    return cond.wait_for (guard, timeout, [&] { return pred (); });
  }
  int count (const std::string &stream, const std::string &encoding)
  {
    auto s = packets.find (stream);
    if (s == packets.end ())
      return 0;
    auto e = s->second.find (encoding);
    return e == s->second.end () ? 0 : e->second;
  }
  int endedCount (const std::string &stream)
  {
    int n = 0;
    for (auto &e : ended)
      n += e.first == stream;
    return n;
  }
};

}  // namespace

/* A bin with request pads sink_%u, each ending in an appsink that counts
 * the RTP packets by encoding-name. */
struct XdnTestRtpSink {
  GstBin parent;
  Observed *observed;
  char *stream;
};
struct XdnTestRtpSinkClass {
  GstBinClass parent_class;
};

G_DEFINE_TYPE (XdnTestRtpSink, xdn_test_rtp_sink, GST_TYPE_BIN)

static GstStaticPadTemplate test_sink_template = GST_STATIC_PAD_TEMPLATE ("sink_%u",
    GST_PAD_SINK, GST_PAD_REQUEST, GST_STATIC_CAPS ("application/x-rtp"));

static GstFlowReturn
test_rtp_sink_new_sample (GstAppSink *appsink, gpointer data)
{
  auto *self = static_cast<XdnTestRtpSink *> (data);
  GstSample *sample = gst_app_sink_pull_sample (appsink);
  if (!sample)
    return GST_FLOW_EOS;
  const GstStructure *s = gst_caps_get_structure (gst_sample_get_caps (sample), 0);
  const char *enc = gst_structure_get_string (s, "encoding-name");
  {
    std::lock_guard<std::mutex> guard (self->observed->lock);
    self->observed->packets[self->stream][enc ? enc : "?"]++;
  }
  self->observed->cond.notify_all ();
  gst_sample_unref (sample);
  return GST_FLOW_OK;
}

static GstPad *
test_rtp_sink_request_new_pad (GstElement *element, GstPadTemplate *templ,
    const gchar *name, const GstCaps *)
{
  GstElement *appsink = gst_element_factory_make ("appsink", nullptr);
  g_object_set (appsink, "sync", FALSE, "async", FALSE, nullptr);
  GstAppSinkCallbacks callbacks = {};
  callbacks.new_sample = test_rtp_sink_new_sample;
  gst_app_sink_set_callbacks (GST_APP_SINK (appsink), &callbacks, element, nullptr);
  gst_bin_add (GST_BIN (element), appsink);
  GstPad *target = gst_element_get_static_pad (appsink, "sink");
  gchar *padName = name ? g_strdup (name)
      : g_strdup_printf ("sink_%u", element->numsinkpads);
  GstPad *ghost = gst_ghost_pad_new_from_template (padName, target, templ);
  g_free (padName);
  gst_object_unref (target);
  gst_pad_set_active (ghost, TRUE);
  gst_element_add_pad (element, ghost);
  gst_element_sync_state_with_parent (appsink);
  return ghost;
}

static void
test_rtp_sink_release_pad (GstElement *element, GstPad *pad)
{
  GstPad *target = gst_ghost_pad_get_target (GST_GHOST_PAD (pad));
  GstElement *appsink = target ? gst_pad_get_parent_element (target) : nullptr;
  gst_element_remove_pad (element, pad);
  if (appsink) {
    gst_element_set_state (appsink, GST_STATE_NULL);
    gst_bin_remove (GST_BIN (element), appsink);
    gst_object_unref (appsink);
  }
  if (target)
    gst_object_unref (target);
}

static void
xdn_test_rtp_sink_finalize (GObject *object)
{
  g_free (reinterpret_cast<XdnTestRtpSink *> (object)->stream);
  G_OBJECT_CLASS (xdn_test_rtp_sink_parent_class)->finalize (object);
}

static void
xdn_test_rtp_sink_class_init (XdnTestRtpSinkClass *klass)
{
  GstElementClass *element_class = GST_ELEMENT_CLASS (klass);
  G_OBJECT_CLASS (klass)->finalize = xdn_test_rtp_sink_finalize;
  gst_element_class_add_static_pad_template (element_class, &test_sink_template);
  element_class->request_new_pad = test_rtp_sink_request_new_pad;
  element_class->release_pad = test_rtp_sink_release_pad;
  gst_element_class_set_static_metadata (element_class, "Test RTP sink", "Sink",
      "Counts RTP packets per encoding", "OpenXDN");
}

static void
xdn_test_rtp_sink_init (XdnTestRtpSink *)
{
}

namespace {

class GstEnvironment : public ::testing::Environment {
public:
  void SetUp () override { gst_init (nullptr, nullptr); }
};
const auto *kGstEnvironment = ::testing::AddGlobalTestEnvironment (new GstEnvironment);

bool
haveProgram (const char *name)
{
  std::string cmd = std::string ("command -v ") + name + " >/dev/null 2>&1";
  return std::system (cmd.c_str ()) == 0;
}

/* A child process in its own process group, killed (group and all) when
 * the handle goes away. Output goes to a log file for failure messages. */
class Child {
public:
  Child (const std::string &shellCommand, const std::string &logPath) : log_ (logPath)
  {
    pid_ = fork ();
    if (pid_ == 0) {
      setpgid (0, 0);
      int fd = open (logPath.c_str (), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      if (fd >= 0) {
        dup2 (fd, 1);
        dup2 (fd, 2);
        close (fd);
      }
      int devnull = open ("/dev/null", O_RDONLY);
      if (devnull >= 0)
        dup2 (devnull, 0);
      execl ("/bin/sh", "sh", "-c", shellCommand.c_str (), (char *) nullptr);
      _exit (127);
    }
    setpgid (pid_, pid_);
  }
  ~Child () { kill (); }

  /* Exit status, or -1 if still running after @timeout. */
  int wait (std::chrono::milliseconds timeout)
  {
    if (status_ >= 0)
      return status_;
    auto deadline = std::chrono::steady_clock::now () + timeout;
    while (true) {
      int st = 0;
      if (waitpid (pid_, &st, WNOHANG) == pid_) {
        status_ = WIFEXITED (st) ? WEXITSTATUS (st) : 128 + WTERMSIG (st);
        return status_;
      }
      if (std::chrono::steady_clock::now () > deadline)
        return -1;
      std::this_thread::sleep_for (20ms);
    }
  }
  void kill ()
  {
    if (pid_ > 0 && status_ < 0) {
      ::kill (-pid_, SIGKILL);
      int st;
      waitpid (pid_, &st, 0);
      status_ = 137;
    }
  }
  std::string output () const
  {
    std::ifstream f (log_);
    std::string text ((std::istreambuf_iterator<char> (f)), std::istreambuf_iterator<char> ());
    return text.size () > 3000 ? text.substr (text.size () - 3000) : text;
  }

private:
  pid_t pid_ = -1;
  int status_ = -1;
  std::string log_;
};

/* An SRT caller made with libsrt, for exact rejection codes and for
 * sending what no real encoder sends. */
class Caller {
public:
  ~Caller () { close (); }
  /* Returns 0 when connected, else the rejection reason. */
  int connect (int port, const std::string &streamId, const std::string &passphrase = "")
  {
    sock_ = srt_create_socket ();
    const int timeoutMs = 3000;
    srt_setsockflag (sock_, SRTO_CONNTIMEO, &timeoutMs, sizeof timeoutMs);
    srt_setsockflag (sock_, SRTO_STREAMID, streamId.data (), (int) streamId.size ());
    if (!passphrase.empty ())
      srt_setsockflag (sock_, SRTO_PASSPHRASE, passphrase.data (), (int) passphrase.size ());
    struct sockaddr_in sa = {};
    sa.sin_family = AF_INET;
    sa.sin_port = htons (port);
    inet_pton (AF_INET, "127.0.0.1", &sa.sin_addr);
    if (srt_connect (sock_, reinterpret_cast<struct sockaddr *> (&sa), sizeof sa) == SRT_ERROR) {
      int reason = srt_getrejectreason (sock_);
      close ();
      return reason == 0 ? -1 : reason;
    }
    return 0;
  }
  /* As connect(), but retries for a while on 1409: the name of an ended
   * publisher is free only once onEnded has returned. */
  int connectWhenFree (int port, const std::string &streamId, const std::string &passphrase = "")
  {
    int r = connect (port, streamId, passphrase);
    for (int i = 0; i < 40 && r == SRT_REJX_CONFLICT; i++) {
      std::this_thread::sleep_for (50ms);
      r = connect (port, streamId, passphrase);
    }
    return r;
  }
  bool send (const char *data, size_t len)
  {
    for (size_t off = 0; off < len; off += 1316) {
      int n = (int) std::min<size_t> (1316, len - off);
      if (srt_sendmsg (sock_, data + off, n, -1, 1) == SRT_ERROR)
        return false;
    }
    return true;
  }
  /* Sends @bytes as 1316-byte messages at about @bytesPerSecond. */
  bool sendPaced (const std::string &bytes, size_t bytesPerSecond)
  {
    const size_t chunk = 1316 * 10;
    const auto step = std::chrono::microseconds (chunk * 1000000 / bytesPerSecond);
    auto next = std::chrono::steady_clock::now ();
    for (size_t off = 0; off < bytes.size (); off += chunk) {
      if (!send (bytes.data () + off, std::min (chunk, bytes.size () - off)))
        return false;
      next += step;
      std::this_thread::sleep_until (next);
    }
    return true;
  }
  void close ()
  {
    if (sock_ != SRT_INVALID_SOCK)
      srt_close (sock_);
    sock_ = SRT_INVALID_SOCK;
  }

private:
  SRTSOCKET sock_ = SRT_INVALID_SOCK;
};

std::string
readFile (const std::string &path)
{
  std::ifstream f (path, std::ios::binary);
  return std::string ((std::istreambuf_iterator<char> (f)), std::istreambuf_iterator<char> ());
}

/* Threads of this process other than libsrt's own (the test's callers
 * each bring a multiplexer with its threads, released lazily by libsrt's
 * garbage collector). */
std::map<std::string, int>
threadNames ()
{
  std::map<std::string, int> names;
  if (DIR *d = opendir ("/proc/self/task")) {
    while (struct dirent *e = readdir (d)) {
      if (e->d_name[0] == '.')
        continue;
      std::ifstream comm (std::string ("/proc/self/task/") + e->d_name + "/comm");
      std::string name;
      std::getline (comm, name);
      if (name.rfind ("SRT:", 0) != 0)
        names[name]++;
    }
    closedir (d);
  }
  return names;
}

int
countThreads ()
{
  int n = 0;
  for (auto &[name, count] : threadNames ())
    n += count;
  return n;
}

std::string
describeThreads ()
{
  std::string out;
  for (auto &[name, count] : threadNames ())
    out += name + " x" + std::to_string (count) + ", ";
  return out;
}

/* Open files other than sockets (for the same reason). */
int
countFiles ()
{
  int n = 0;
  if (DIR *d = opendir ("/proc/self/fd")) {
    while (struct dirent *e = readdir (d)) {
      if (e->d_name[0] == '.')
        continue;
      char target[256] = "";
      ssize_t len = readlink ((std::string ("/proc/self/fd/") + e->d_name).c_str (),
          target, sizeof target - 1);
      n += len > 0 && std::string (target, len).rfind ("socket:", 0) != 0;
    }
    closedir (d);
  }
  return n;
}

}  // namespace

class SrtIngest : public ::testing::Test {
protected:
  static void SetUpTestSuite ()
  {
    srt_startup ();
    char tmpl[] = "/tmp/xdn-srt-ingest-XXXXXX";
    tmpDir_ = mkdtemp (tmpl);
    /* A 3 s H.264 + AAC transport stream for the callers that send a file. */
    if (haveProgram ("ffmpeg")) {
      tsFile_ = tmpDir_ + "/av.ts";
      std::string cmd = "ffmpeg -nostdin -loglevel error -y -f lavfi -i testsrc2=size=320x180:rate=30 "
          "-f lavfi -i sine=frequency=440:sample_rate=48000 -c:v libx264 -tune zerolatency "
          "-g 30 -c:a aac -t 3 -f mpegts " + tsFile_ + " >" + tmpDir_ + "/make-ts.log 2>&1";
      if (std::system (cmd.c_str ()) != 0)
        tsFile_.clear ();
    }
  }
  static void TearDownTestSuite ()
  {
    std::string cmd = "rm -rf " + tmpDir_;
    std::system (cmd.c_str ());
    srt_cleanup ();
  }

  void TearDown () override
  {
    server_.reset ();  /* before observed_ goes away */
  }

  SrtIngestServer::Callbacks callbacks ()
  {
    SrtIngestServer::Callbacks cb;
    cb.admit = [] (const std::string &stream, const std::string &token) -> xdn::SrtAdmission {
      if (stream == "live/forbidden" || token == "bad-token")
        return "token refused";
      if (stream == "live/whip")
        return xdn::SrtAdmission::conflict ("published over WHIP");
      return "";
    };
    cb.makeSink = [this] (const std::string &stream) -> GstElement * {
      auto *sink = static_cast<XdnTestRtpSink *> (g_object_new (xdn_test_rtp_sink_get_type (), nullptr));
      sink->observed = &observed_;
      sink->stream = g_strdup (stream.c_str ());
      return GST_ELEMENT (sink);
    };
    cb.onStarted = [this] (const std::string &stream, const std::string &) {
      std::lock_guard<std::mutex> guard (observed_.lock);
      observed_.started.push_back (stream);
      observed_.cond.notify_all ();
    };
    cb.onEnded = [this] (const std::string &stream, const std::string &reason) {
      std::lock_guard<std::mutex> guard (observed_.lock);
      observed_.ended.emplace_back (stream, reason);
      observed_.cond.notify_all ();
    };
    return cb;
  }

  /* Callbacks of a node that serves m=request: live/here is served,
   * anything else is unknown (1404), token "bad" is refused (1401). */
  SrtIngestServer::Callbacks requestCallbacks ()
  {
    SrtIngestServer::Callbacks cb = callbacks ();
    cb.admitRequest = [] (const std::string &stream, const std::string &token,
        const std::string &) -> xdn::SrtAdmission {
      if (token == "bad")
        return xdn::SrtAdmission::refuse (SRT_REJX_UNAUTHORIZED, "wrong relay token");
      if (stream != "live/here")
        return xdn::SrtAdmission::refuse (SRT_REJX_NOTFOUND, "not here");
      return "";
    };
    cb.onRequest = [this] (int socket, const std::string &stream, const std::string &) {
      std::lock_guard<std::mutex> guard (observed_.lock);
      observed_.requests.emplace_back (socket, stream);
      observed_.cond.notify_all ();
    };
    return cb;
  }

  void startServer (SrtIngestSettings settings = {}, bool serveRequests = false)
  {
    settings.address = "127.0.0.1";
    settings.port = 0;
    server_ = std::make_unique<SrtIngestServer> (settings,
        serveRequests ? requestCallbacks () : callbacks ());
    std::string error;
    ASSERT_TRUE (server_->start (&error)) << error;
    port_ = server_->port ();
    ASSERT_GT (port_, 0);
  }

  std::string srtUrl (const std::string &streamId, const std::string &extra = "")
  {
    return "srt://127.0.0.1:" + std::to_string (port_) + "?streamid=" + streamId + extra;
  }

  bool waitPackets (const std::string &stream, int h264, int opus, std::chrono::milliseconds timeout)
  {
    return observed_.waitFor (timeout, [&] {
      return observed_.count (stream, "H264") >= h264 && observed_.count (stream, "OPUS") >= opus;
    });
  }
  bool waitEnded (const std::string &stream, int times, std::chrono::milliseconds timeout)
  {
    return observed_.waitFor (timeout, [&] { return observed_.endedCount (stream) >= times; });
  }
  std::string endReason (const std::string &stream)
  {
    std::lock_guard<std::mutex> guard (observed_.lock);
    for (auto &e : observed_.ended)
      if (e.first == stream)
        return e.second;
    return "";
  }
  std::string ffmpegPublish (const std::string &streamId, int seconds)
  {
    return "ffmpeg -nostdin -loglevel warning -re -f lavfi -i testsrc2=size=320x180:rate=30 "
        "-f lavfi -i sine=frequency=440:sample_rate=48000 -c:v libx264 -preset ultrafast "
        "-tune zerolatency -g 30 -c:a aac -t " + std::to_string (seconds) +
        " -f mpegts '" + srtUrl (streamId, "&latency=120000") + "'";
  }

  Observed observed_;
  std::unique_ptr<SrtIngestServer> server_;
  int port_ = 0;
  static std::string tmpDir_;
  static std::string tsFile_;
};

std::string SrtIngest::tmpDir_;
std::string SrtIngest::tsFile_;

TEST_F (SrtIngest, FfmpegPublishesH264AndOpus)
{
  if (!haveProgram ("ffmpeg"))
    GTEST_SKIP () << "ffmpeg not installed";
  startServer ();
  Child ffmpeg (ffmpegPublish ("#!::r=live/test,m=publish", 4), tmpDir_ + "/ffmpeg-publish.log");

  ASSERT_TRUE (waitPackets ("live/test", 30, 20, 15s)) << ffmpeg.output ();
  {
    std::lock_guard<std::mutex> guard (observed_.lock);
    ASSERT_EQ (observed_.started.size (), 1u);
    EXPECT_EQ (observed_.started[0], "live/test");
  }
  auto stats = server_->stats ();
  ASSERT_EQ (stats.publishers.size (), 1u);
  EXPECT_EQ (stats.publishers[0].stream, "live/test");
  EXPECT_GT (stats.publishers[0].bytesReceived, 0u);

  EXPECT_EQ (ffmpeg.wait (15s), 0) << ffmpeg.output ();
  ASSERT_TRUE (waitEnded ("live/test", 1, 8s));
  EXPECT_TRUE (server_->stats ().publishers.empty ());
  EXPECT_GT (server_->stats ().bytesReceived, 0u);
}

TEST_F (SrtIngest, OpusInTsIsPassedThrough)
{
  if (!haveProgram ("ffmpeg"))
    GTEST_SKIP () << "ffmpeg not installed";
  startServer ();
  Child ffmpeg ("ffmpeg -nostdin -loglevel warning -re -f lavfi -i testsrc2=size=320x180:rate=30 "
      "-f lavfi -i sine=frequency=440:sample_rate=48000 -c:v libx264 -preset ultrafast "
      "-tune zerolatency -g 30 -c:a libopus -t 3 -f mpegts '" +
      srtUrl ("#!::r=live/opus,m=publish", "&latency=120000") + "'", tmpDir_ + "/ffmpeg-opus.log");
  EXPECT_TRUE (waitPackets ("live/opus", 30, 20, 15s)) << ffmpeg.output ();
  EXPECT_EQ (ffmpeg.wait (15s), 0) << ffmpeg.output ();
  EXPECT_TRUE (waitEnded ("live/opus", 1, 8s));
}

TEST_F (SrtIngest, StreamWithoutUsableTrackIsEnded)
{
  if (!haveProgram ("ffmpeg"))
    GTEST_SKIP () << "ffmpeg not installed";
  SrtIngestSettings settings;
  settings.trackTimeoutMs = 1500;
  startServer (settings);
  /* MPEG-1 video and MP2 audio: demuxed, neither is served. */
  Child ffmpeg ("ffmpeg -nostdin -loglevel warning -re -f lavfi -i testsrc2=size=320x180:rate=30 "
      "-f lavfi -i sine=frequency=440:sample_rate=48000 -c:v mpeg1video -c:a mp2 -t 10 -f mpegts '" +
      srtUrl ("#!::r=live/mp2,m=publish") + "'", tmpDir_ + "/ffmpeg-mp2.log");
  ASSERT_TRUE (waitEnded ("live/mp2", 1, 10s)) << ffmpeg.output ();
  EXPECT_NE (endReason ("live/mp2").find ("track"), std::string::npos) << endReason ("live/mp2");
  std::lock_guard<std::mutex> guard (observed_.lock);
  EXPECT_TRUE (observed_.packets["live/mp2"].empty ());
}

TEST_F (SrtIngest, SrtLiveTransmitPublishesTsFile)
{
  if (!haveProgram ("srt-live-transmit") || tsFile_.empty ())
    GTEST_SKIP () << "srt-live-transmit or ffmpeg not installed";
  startServer ();
  /* srt-live-transmit reads stdin only as a pipe and does not exit at its
   * end: feed the file paced by ffmpeg and let -t end it. */
  Child slt ("ffmpeg -nostdin -loglevel error -re -i " + tsFile_ + " -c copy -f mpegts - | "
      "srt-live-transmit -a:no -c:1316 -t:6 file://con '" +
      srtUrl ("#!::r=live/slt,m=publish") + "'", tmpDir_ + "/slt.log");

  EXPECT_TRUE (waitPackets ("live/slt", 30, 20, 15s)) << slt.output ();
  EXPECT_NE (slt.wait (15s), -1) << slt.output ();
  EXPECT_TRUE (waitEnded ("live/slt", 1, 10s));
}

TEST_F (SrtIngest, PlainStreamIdPublishesToThatName)
{
  if (tsFile_.empty ())
    GTEST_SKIP () << "ffmpeg not installed";
  startServer ();
  Caller caller;
  ASSERT_EQ (caller.connect (port_, "live/plain"), 0);
  std::string ts = readFile (tsFile_);
  ASSERT_TRUE (caller.sendPaced (ts, ts.size ()));  /* about 1 s */
  EXPECT_TRUE (waitPackets ("live/plain", 10, 10, 10s));
  caller.close ();
  EXPECT_TRUE (waitEnded ("live/plain", 1, 8s));
}

TEST_F (SrtIngest, RefusesBadStreamIdsWithTheirCodes)
{
  startServer ();
  Caller c;
  EXPECT_EQ (c.connect (port_, "#!::r=../x,m=publish"), SRT_REJX_BAD_REQUEST);
  EXPECT_EQ (c.connect (port_, "#!::m=publish"), SRT_REJX_BAD_REQUEST);
  EXPECT_EQ (c.connect (port_, ""), SRT_REJX_BAD_REQUEST);
  EXPECT_EQ (c.connect (port_, "#!::r=live/x,m=request"), SRT_REJX_BAD_MODE);
  EXPECT_EQ (c.connect (port_, "#!::r=live/x"), SRT_REJX_BAD_MODE);
  EXPECT_EQ (c.connect (port_, "#!::r=live/x,m=publish,t=file"), SRT_REJX_NOTSUP_MEDIA);
  EXPECT_EQ (c.connect (port_, "#!::r=live/forbidden,m=publish"), SRT_REJX_FORBIDDEN);
  EXPECT_EQ (c.connect (port_, "#!::r=live/x,m=publish,s=bad-token"), SRT_REJX_FORBIDDEN);
  EXPECT_EQ (c.connect (port_, "#!::r=live/whip,m=publish"), SRT_REJX_CONFLICT);

  auto stats = server_->stats ();
  EXPECT_EQ (stats.refused.badRequest, 3u);
  EXPECT_EQ (stats.refused.badMode, 2u);
  EXPECT_EQ (stats.refused.badType, 1u);
  EXPECT_EQ (stats.refused.forbidden, 2u);
  EXPECT_EQ (stats.refused.conflict, 1u);
  EXPECT_EQ (stats.publishersAccepted, 0u);
  std::lock_guard<std::mutex> guard (observed_.lock);
  EXPECT_TRUE (observed_.started.empty ());
  EXPECT_TRUE (observed_.ended.empty ());
}

TEST_F (SrtIngest, FfmpegWithBadStreamIdFails)
{
  if (!haveProgram ("ffmpeg"))
    GTEST_SKIP () << "ffmpeg not installed";
  startServer ();
  Child ffmpeg (ffmpegPublish ("#!::r=../x,m=publish", 2), tmpDir_ + "/ffmpeg-bad.log");
  int status = ffmpeg.wait (15s);
  EXPECT_NE (status, -1) << "ffmpeg still running";
  EXPECT_NE (status, 0) << ffmpeg.output ();
  EXPECT_EQ (server_->stats ().refused.badRequest, 1u);
}

TEST_F (SrtIngest, SecondPublisherOfALiveStreamIsRefused)
{
  if (!haveProgram ("ffmpeg"))
    GTEST_SKIP () << "ffmpeg not installed";
  startServer ();
  Child first (ffmpegPublish ("#!::r=live/dup,m=publish", 30), tmpDir_ + "/ffmpeg-first.log");
  ASSERT_TRUE (waitPackets ("live/dup", 10, 1, 15s)) << first.output ();

  Caller caller;
  EXPECT_EQ (caller.connect (port_, "#!::r=live/dup,m=publish"), SRT_REJX_CONFLICT);
  Child second (ffmpegPublish ("#!::r=live/dup,m=publish", 2), tmpDir_ + "/ffmpeg-second.log");
  int status = second.wait (15s);
  EXPECT_NE (status, -1) << "second ffmpeg still running";
  EXPECT_NE (status, 0) << second.output ();
  EXPECT_EQ (server_->stats ().refused.conflict, 2u);
  EXPECT_EQ (first.wait (0ms), -1) << "the first publisher must keep running";

  first.kill ();  /* vanishes without closing: ended by SRT's peer idle timeout */
  ASSERT_TRUE (waitEnded ("live/dup", 1, 15s));
  /* The name is free again. */
  EXPECT_EQ (caller.connectWhenFree (port_, "#!::r=live/dup,m=publish"), 0);
}

TEST_F (SrtIngest, GarbageInsteadOfTsEndsThePublisherAndTheNextOneWorks)
{
  if (tsFile_.empty ())
    GTEST_SKIP () << "ffmpeg not installed";
  SrtIngestSettings settings;
  settings.trackTimeoutMs = 1500;
  startServer (settings);

  Caller garbage;
  ASSERT_EQ (garbage.connect (port_, "#!::r=live/g,m=publish"), 0);
  std::mt19937 rng (7);
  std::string junk (1316 * 200, '\0');
  for (char &c : junk)
    c = (char) (rng () & 0xff);
  garbage.sendPaced (junk, junk.size () * 4);
  ASSERT_TRUE (waitEnded ("live/g", 1, 10s));
  EXPECT_NE (endReason ("live/g").find ("track"), std::string::npos) << endReason ("live/g");
  garbage.close ();

  Caller good;
  ASSERT_EQ (good.connectWhenFree (port_, "#!::r=live/g,m=publish"), 0);
  std::string ts = readFile (tsFile_);
  ASSERT_TRUE (good.sendPaced (ts, ts.size ()));
  EXPECT_TRUE (waitPackets ("live/g", 10, 10, 10s));
}

TEST_F (SrtIngest, IdlePublisherIsEnded)
{
  SrtIngestSettings settings;
  settings.idleTimeoutMs = 1000;
  startServer (settings);
  Caller idle;
  ASSERT_EQ (idle.connect (port_, "#!::r=live/idle,m=publish"), 0);
  ASSERT_TRUE (observed_.waitFor (5s, [&] { return observed_.started.size () == 1; }));
  auto t0 = std::chrono::steady_clock::now ();
  ASSERT_TRUE (waitEnded ("live/idle", 1, 5s));
  EXPECT_LT (std::chrono::steady_clock::now () - t0, 3s);
  EXPECT_NE (endReason ("live/idle").find ("no data"), std::string::npos) << endReason ("live/idle");
}

TEST_F (SrtIngest, ManyConnectCyclesLeakNoThreadsOrPipelines)
{
  if (tsFile_.empty ())
    GTEST_SKIP () << "ffmpeg not installed";
  startServer ();
  std::string ts = readFile (tsFile_);
  auto cycle = [&] (int i) {
    Caller c;
    if (c.connectWhenFree (port_, "#!::r=live/cycle,m=publish") != 0)
      return false;
    const uint64_t before = server_->stats ().bytesReceived;
    const size_t offset = (i % 3) * 1316 * 10;
    const size_t len = std::min<size_t> (1316 * 100, ts.size () - offset);
    c.send (ts.data () + offset, len);
    /* Close only once the data is in, as a real publisher would. */
    for (int t = 0; t < 100 && server_->stats ().bytesReceived < before + len; t++)
      std::this_thread::sleep_for (10ms);
    c.close ();
    return waitEnded ("live/cycle", i + 1, 8s);
  };
  /* Warm-up cycles, so GStreamer's and GLib's lazily created threads and
   * files are there before the baseline. */
  for (int i = 0; i < 3; i++)
    ASSERT_TRUE (cycle (i)) << "warm-up " << i;
  gst_task_cleanup_all ();
  const int threads0 = countThreads ();
  const int files0 = countFiles ();

  const int cycles = 20;
  for (int i = 3; i < 3 + cycles; i++)
    ASSERT_TRUE (cycle (i)) << "cycle " << i;
  EXPECT_TRUE (server_->stats ().publishers.empty ());
  EXPECT_EQ (server_->stats ().publishersAccepted, (uint64_t) cycles + 3);
  {
    std::lock_guard<std::mutex> guard (observed_.lock);
    EXPECT_GT (observed_.count ("live/cycle", "H264"), 0);
  }
  /* A publisher's pipeline has several threads and a bus with a file
   * descriptor: a leak per cycle would show as 20 or more. Idle threads of
   * GStreamer's task pool are joined first (no pipeline runs now). */
  gst_task_cleanup_all ();
  bool settled = false;
  for (int i = 0; i < 50 && !settled; i++) {
    settled = countThreads () <= threads0 + 4 && countFiles () <= files0 + 2;
    if (!settled)
      std::this_thread::sleep_for (100ms);
  }
  EXPECT_TRUE (settled) << "threads " << threads0 << " -> " << countThreads ()
      << ", files " << files0 << " -> " << countFiles () << ": " << describeThreads ();
}

TEST_F (SrtIngest, MaxPublishersIsEnforced)
{
  SrtIngestSettings settings;
  settings.maxPublishers = 2;
  startServer (settings);
  Caller a, b, c;
  EXPECT_EQ (a.connect (port_, "#!::r=live/a,m=publish"), 0);
  EXPECT_EQ (b.connect (port_, "#!::r=live/b,m=publish"), 0);
  EXPECT_EQ (c.connect (port_, "#!::r=live/c,m=publish"), SRT_REJX_OVERLOAD);
  EXPECT_EQ (server_->stats ().refused.overload, 1u);
}

TEST_F (SrtIngest, PassphraseIsRequired)
{
  SrtIngestSettings settings;
  settings.passphrase = "correct horse battery";
  startServer (settings);
  Caller c;
  EXPECT_NE (c.connect (port_, "#!::r=live/enc,m=publish"), 0);
  EXPECT_NE (c.connect (port_, "#!::r=live/enc,m=publish", "wrong passphrase"), 0);
  /* The failed handshakes gave the name back. */
  EXPECT_TRUE (waitEnded ("live/enc", 1, 8s));
  int r = c.connect (port_, "#!::r=live/enc,m=publish", "correct horse battery");
  for (int i = 0; i < 40 && r == SRT_REJX_CONFLICT; i++) {
    std::this_thread::sleep_for (50ms);
    r = c.connect (port_, "#!::r=live/enc,m=publish", "correct horse battery");
  }
  EXPECT_EQ (r, 0);
  EXPECT_TRUE (observed_.waitFor (5s, [&] { return observed_.started.size () == 1; }));
}

TEST_F (SrtIngest, StartRefusesBadSettingsAndBusyPorts)
{
  std::string error;
  SrtIngestSettings shortPass;
  shortPass.address = "127.0.0.1";
  shortPass.port = 0;
  shortPass.passphrase = "short";
  SrtIngestServer a (shortPass, {});
  EXPECT_FALSE (a.start (&error));
  EXPECT_NE (error.find ("passphrase"), std::string::npos) << error;

  startServer ();
  SrtIngestSettings same;
  same.address = "127.0.0.1";
  same.port = port_;
  SrtIngestServer b (same, {});
  EXPECT_FALSE (b.start (&error));
  EXPECT_NE (error.find ("in use"), std::string::npos) << error;

  SrtIngestSettings badAddress;
  badAddress.address = "not-an-address";
  SrtIngestServer c (badAddress, {});
  EXPECT_FALSE (c.start (&error));
}

TEST_F (SrtIngest, StopEndsRunningPublishers)
{
  if (tsFile_.empty ())
    GTEST_SKIP () << "ffmpeg not installed";
  startServer ();
  Caller c;
  ASSERT_EQ (c.connect (port_, "#!::r=live/stop,m=publish"), 0);
  std::string ts = readFile (tsFile_);
  c.send (ts.data (), std::min<size_t> (1316 * 100, ts.size ()));
  ASSERT_TRUE (observed_.waitFor (5s, [&] { return observed_.started.size () == 1; }));
  auto t0 = std::chrono::steady_clock::now ();
  server_->stop ();
  EXPECT_LT (std::chrono::steady_clock::now () - t0, 5s);
  std::lock_guard<std::mutex> guard (observed_.lock);
  ASSERT_EQ (observed_.ended.size (), 1u);
  EXPECT_EQ (observed_.ended[0].second, "server stopping");
}

TEST_F (SrtIngest, RequestsGetTheRelayPassphraseAndTheirSocketIsHandedOver)
{
  SrtIngestSettings settings;
  settings.passphrase = "publisher-secret";
  settings.requestPassphrase = "relay-secret-123";
  settings.requestLatencyMs = 40;
  startServer (settings, true);

  Caller node;
  ASSERT_EQ (node.connect (port_, "#!::r=live/here,m=request", "relay-secret-123"), 0);
  ASSERT_TRUE (observed_.waitFor (5s, [&] { return observed_.requests.size () == 1; }));
  int socket;
  {
    std::lock_guard<std::mutex> guard (observed_.lock);
    socket = observed_.requests[0].first;
    EXPECT_EQ (observed_.requests[0].second, "live/here");
  }
  EXPECT_EQ (srt_getsockstate (socket), SRTS_CONNECTED);
  /* The handed-over socket is the application's: it carries data to the node. */
  const char hello[] = "hello downstream";
  EXPECT_EQ (srt_sendmsg (socket, hello, sizeof hello, -1, 1), (int) sizeof hello);
  srt_close (socket);
  node.close ();

  /* The publishers' passphrase is not the relay's, and none is no good either. */
  EXPECT_NE (node.connect (port_, "#!::r=live/here,m=request", "publisher-secret"), 0);
  EXPECT_NE (node.connect (port_, "#!::r=live/here,m=request"), 0);
  /* Publishers keep theirs. */
  EXPECT_NE (node.connect (port_, "#!::r=live/pub,m=publish", "relay-secret-123"), 0);
  Caller publisher;
  EXPECT_NE (publisher.connect (port_, "#!::r=live/pub,m=publish"), 0);
  /* (the refused attempts hold the name until their handshake is known to have failed) */
  EXPECT_EQ (publisher.connectWhenFree (port_, "#!::r=live/pub,m=publish", "publisher-secret"), 0);

  EXPECT_EQ (node.connect (port_, "#!::r=live/gone,m=request", "relay-secret-123"), SRT_REJX_NOTFOUND);
  EXPECT_EQ (node.connect (port_, "#!::r=live/here,m=request,s=bad", "relay-secret-123"),
      SRT_REJX_UNAUTHORIZED);
  EXPECT_EQ (node.connect (port_, "#!::r=live/here,m=bidirectional", "relay-secret-123"),
      SRT_REJX_BAD_MODE);
  auto stats = server_->stats ();
  EXPECT_EQ (stats.requestsAccepted, 1u);
  EXPECT_EQ (stats.refused.notFound, 1u);
  EXPECT_EQ (stats.refused.unauthorized, 1u);
  EXPECT_TRUE (observed_.waitFor (5s, [&] { return observed_.started.size () == 1; }));
  EXPECT_EQ (server_->stats ().publishersAccepted, 1u);
  std::lock_guard<std::mutex> guard (observed_.lock);
  EXPECT_EQ (observed_.requests.size (), 1u);
}
