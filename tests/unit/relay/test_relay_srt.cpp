/* xdnrelaysink -> SRT on loopback -> xdnrelaysrc. Each test runs its own
 * pipelines on a free port; waits are bounded. Run in a private network
 * namespace (see docs/elements/relay.md, "Tests"). */
#include <gtest/gtest.h>

#include <gst/app/gstappsink.h>
#include <gst/app/gstappsrc.h>
#include <gst/gst.h>
#include <gst/video/video.h>
#include <srt/srt.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <condition_variable>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "relay-test-util.h"
#include "xdn-gref.h"
#include "xdn-relay-srt.h"
#include "xdn-relay-wire.h"

using namespace relaytest;
using xdn::GRef;
using xdn::adoptGRef;
using xdn::GUniquePtr;
namespace wire = xdn::relay::wire;

namespace {

const char *kH264Caps = "application/x-rtp, media=(string)video, clock-rate=(int)90000, "
    "encoding-name=(string)H264, payload=(int)96, packetization-mode=(string)1";
const char *kOpusCaps = "application/x-rtp, media=(string)audio, clock-rate=(int)48000, "
    "encoding-name=(string)OPUS, payload=(int)111";
const char *kDataCaps = "application/x-rtp, media=(string)application, clock-rate=(int)90000, "
    "encoding-name=(string)X-XDN-DATA, payload=(int)100";

constexpr guint kLatencyMs = 40;

std::string
uniqueStream ()
{
  const auto *info = ::testing::UnitTest::GetInstance ()->current_test_info ();
  return std::string ("test/srt-") + info->name ();
}

/* A UDP port nobody uses now (the test runs in its own namespace). */
int
freePort ()
{
  int fd = socket (AF_INET, SOCK_DGRAM, 0);
  struct sockaddr_in a = {};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl (INADDR_LOOPBACK);
  bind (fd, reinterpret_cast<struct sockaddr *> (&a), sizeof a);
  socklen_t len = sizeof a;
  getsockname (fd, reinterpret_cast<struct sockaddr *> (&a), &len);
  close (fd);
  return ntohs (a.sin_port);
}

std::string
localUri (int port)
{
  return "srt://127.0.0.1:" + std::to_string (port);
}

Bytes
payloadOf (guint16 seq, size_t size, guint8 salt)
{
  Bytes b (size);
  for (size_t i = 0; i < size; i++)
    b[i] = guint8 (i * 31 + seq * 7 + salt);
  return b;
}

Bytes
bytesOf (GstBuffer *buf)
{
  Bytes b (gst_buffer_get_size (buf));
  gst_buffer_extract (buf, 0, b.data (), b.size ());
  return b;
}

struct LinkMessage {
  std::string uri, state, reason;
  int code = 0;
};

/* What a pipeline's bus said: xdn-relay-link messages, errors, EOS. */
class BusLog {
public:
  explicit BusLog (GstElement *pipeline)
  {
    GRef<GstBus> bus = adoptGRef (gst_element_get_bus (pipeline));
    gst_bus_set_sync_handler (bus.get (), &BusLog::onMessage, this, nullptr);
  }

  std::vector<LinkMessage> links ()
  {
    std::lock_guard<std::mutex> l (lock_);
    return links_;
  }
  std::vector<std::string> errors ()
  {
    std::lock_guard<std::mutex> l (lock_);
    return errors_;
  }
  bool eos ()
  {
    std::lock_guard<std::mutex> l (lock_);
    return eos_;
  }
  /* Waits for a link message with @state after the first @after ones. */
  bool waitLink (const std::string &state, size_t after = 0, LinkMessage *out = nullptr,
      guint timeout_ms = 10000)
  {
    std::unique_lock<std::mutex> l (lock_);
    return cond_.wait_for (l, std::chrono::milliseconds (timeout_ms), [&] {
      for (size_t i = after; i < links_.size (); i++)
        if (links_[i].state == state) {
          if (out)
            *out = links_[i];
          return true;
        }
      return false;
    });
  }
  bool waitEos (guint timeout_ms = 10000)
  {
    std::unique_lock<std::mutex> l (lock_);
    return cond_.wait_for (l, std::chrono::milliseconds (timeout_ms), [&] { return eos_; });
  }

private:
  static GstBusSyncReply onMessage (GstBus *, GstMessage *msg, gpointer data)
  {
    auto *self = static_cast<BusLog *> (data);
    std::lock_guard<std::mutex> l (self->lock_);
    if (GST_MESSAGE_TYPE (msg) == GST_MESSAGE_ELEMENT &&
        gst_message_has_name (msg, "xdn-relay-link")) {
      const GstStructure *s = gst_message_get_structure (msg);
      LinkMessage m;
      m.uri = gst_structure_get_string (s, "uri");
      m.state = gst_structure_get_string (s, "state");
      m.reason = gst_structure_get_string (s, "reason");
      gst_structure_get_int (s, "reject-code", &m.code);
      self->links_.push_back (m);
    } else if (GST_MESSAGE_TYPE (msg) == GST_MESSAGE_ERROR) {
      GError *err = nullptr;
      gst_message_parse_error (msg, &err, nullptr);
      self->errors_.push_back (std::string (GST_OBJECT_NAME (GST_MESSAGE_SRC (msg))) + ": "
          + err->message);
      g_error_free (err);
    } else if (GST_MESSAGE_TYPE (msg) == GST_MESSAGE_EOS) {
      self->eos_ = true;
    }
    self->cond_.notify_all ();
    gst_message_unref (msg);  /* a sync handler that drops a message owns it */
    return GST_BUS_DROP;
  }

  std::mutex lock_;
  std::condition_variable cond_;
  std::vector<LinkMessage> links_;
  std::vector<std::string> errors_;
  bool eos_ = false;
};

/* Publisher side: one appsrc per track into an xdnrelaysink. */
class SinkSide {
public:
  SinkSide (const std::string &stream)
  {
    pipeline_ = gst_pipeline_new (nullptr);
    sink_ = gst_element_factory_make ("xdnrelaysink", nullptr);
    g_object_set (sink_, "stream", stream.c_str (), "latency", kLatencyMs,
        "keyframe-min-interval", guint64 (0), nullptr);
    gst_bin_add (GST_BIN (pipeline_), sink_);
    bus_ = std::make_unique<BusLog> (pipeline_);
  }
  ~SinkSide ()
  {
    gst_element_set_state (pipeline_, GST_STATE_NULL);
    gst_object_unref (pipeline_);
  }

  GstElement *sink () { return sink_; }
  BusLog &bus () { return *bus_; }

  void addTrack (guint id, const char *caps)
  {
    GstElement *src = gst_element_factory_make ("appsrc", nullptr);
    GRef<GstCaps> c = adoptGRef (gst_caps_from_string (caps));
    g_object_set (src, "caps", c.get (), "is-live", TRUE, "format", GST_FORMAT_TIME,
        "do-timestamp", TRUE, nullptr);
    gst_bin_add (GST_BIN (pipeline_), src);
    GUniquePtr<gchar> name (g_strdup_printf ("sink_%u", id));
    ASSERT_TRUE (gst_element_link_pads (src, "src", sink_, name.get ()));
    GRef<GstPad> pad = adoptGRef (gst_element_get_static_pad (src, "src"));
    gst_pad_add_probe (pad.get (), GST_PAD_PROBE_TYPE_EVENT_UPSTREAM, &SinkSide::onUpstream,
        &keyframeRequests_[id], nullptr);
    srcs_[id] = src;
  }

  void start () { ASSERT_NE (gst_element_set_state (pipeline_, GST_STATE_PLAYING), GST_STATE_CHANGE_FAILURE); }
  GstStateChangeReturn startResult () { return gst_element_set_state (pipeline_, GST_STATE_PLAYING); }
  void stop () { gst_element_set_state (pipeline_, GST_STATE_NULL); }

  void push (guint id, GstBuffer *buf)
  {
    ASSERT_EQ (gst_app_src_push_buffer (GST_APP_SRC (srcs_.at (id)), buf), GST_FLOW_OK);
  }
  void endOfStream (guint id) { gst_app_src_end_of_stream (GST_APP_SRC (srcs_.at (id))); }
  guint keyframeRequests (guint id) { return keyframeRequests_[id].load (); }

  GstStructure *stats ()
  {
    GstStructure *s = nullptr;
    g_object_get (sink_, "stats", &s, nullptr);
    return s;
  }
  guint subscribers ()
  {
    GstStructure *s = stats ();
    guint n = 0;
    gst_structure_get_uint (s, "subscribers", &n);
    gst_structure_free (s);
    return n;
  }
  /* The caller is connected before the listener has accepted it: packets
   * reach it only once the sink serves the connection. */
  bool waitSubscribers (guint n) { return waitUntil ([&] { return subscribers () >= n; }, 10000); }
  int port ()
  {
    GstStructure *s = stats ();
    int p = 0;
    gst_structure_get_int (s, "port", &p);
    gst_structure_free (s);
    return p;
  }

private:
  static GstPadProbeReturn onUpstream (GstPad *, GstPadProbeInfo *info, gpointer data)
  {
    if (gst_video_event_is_force_key_unit (GST_PAD_PROBE_INFO_EVENT (info)))
      (*static_cast<std::atomic<guint> *> (data))++;
    return GST_PAD_PROBE_OK;
  }

  GstElement *pipeline_;
  GstElement *sink_;
  std::map<guint, GstElement *> srcs_;
  std::map<guint, std::atomic<guint>> keyframeRequests_;
  std::unique_ptr<BusLog> bus_;
};

/* Subscriber side: xdnrelaysrc with an appsink on every pad. */
class SrcSide {
public:
  SrcSide (const std::string &stream, const std::string &uri)
  {
    pipeline_ = gst_pipeline_new (nullptr);
    src_ = gst_element_factory_make ("xdnrelaysrc", nullptr);
    g_object_set (src_, "stream", stream.c_str (), "uri", uri.c_str (), "latency", kLatencyMs,
        nullptr);
    gst_bin_add (GST_BIN (pipeline_), src_);
    g_signal_connect (src_, "pad-added", G_CALLBACK (&SrcSide::onPadAdded), this);
    g_signal_connect (src_, "pad-removed", G_CALLBACK (&SrcSide::onPadRemoved), this);
    bus_ = std::make_unique<BusLog> (pipeline_);
  }
  ~SrcSide ()
  {
    gst_element_set_state (pipeline_, GST_STATE_NULL);
    gst_object_unref (pipeline_);
    for (auto &[name, list] : buffers_)
      for (GstBuffer *b : list)
        gst_buffer_unref (b);
  }

  GstElement *src () { return src_; }
  BusLog &bus () { return *bus_; }

  void start () { ASSERT_NE (gst_element_set_state (pipeline_, GST_STATE_PLAYING), GST_STATE_CHANGE_FAILURE); }
  void stop () { gst_element_set_state (pipeline_, GST_STATE_NULL); }

  bool waitPads (size_t n, guint timeout_ms = 10000)
  {
    std::unique_lock<std::mutex> l (lock_);
    return cond_.wait_for (l, std::chrono::milliseconds (timeout_ms),
        [&] { return pads_.size () >= n; });
  }
  bool waitBuffers (const std::string &pad, size_t n, guint timeout_ms = 10000)
  {
    std::unique_lock<std::mutex> l (lock_);
    return cond_.wait_for (l, std::chrono::milliseconds (timeout_ms),
        [&] { return buffers_[pad].size () >= n; });
  }
  size_t count (const std::string &pad)
  {
    std::lock_guard<std::mutex> l (lock_);
    return buffers_[pad].size ();
  }
  /* The bytes of buffer @i of @pad, and whether it had DISCONT. */
  Bytes bytes (const std::string &pad, size_t i, bool *discont = nullptr)
  {
    std::lock_guard<std::mutex> l (lock_);
    GstBuffer *b = buffers_[pad].at (i);
    if (discont)
      *discont = GST_BUFFER_FLAG_IS_SET (b, GST_BUFFER_FLAG_DISCONT);
    return bytesOf (b);
  }
  GRef<GstCaps> caps (const std::string &pad)
  {
    std::lock_guard<std::mutex> l (lock_);
    return caps_[pad];
  }
  std::vector<std::string> padNames ()
  {
    std::lock_guard<std::mutex> l (lock_);
    std::vector<std::string> names;
    for (const auto &[name, pad] : pads_)
      names.push_back (name);
    return names;
  }
  GstPad *pad (const std::string &name)
  {
    std::lock_guard<std::mutex> l (lock_);
    return pads_.at (name);
  }
  int padsRemoved () { return padsRemoved_.load (); }
  GstElement *appsink (const std::string &pad)
  {
    std::lock_guard<std::mutex> l (lock_);
    return sinks_.at (pad);
  }
  GstStructure *stats ()
  {
    GstStructure *s = nullptr;
    g_object_get (src_, "stats", &s, nullptr);
    return s;
  }
  guint64 stat (const char *field)
  {
    GstStructure *s = stats ();
    guint64 v = 0;
    gst_structure_get_uint64 (s, field, &v);
    gst_structure_free (s);
    return v;
  }

private:
  static void onPadAdded (GstElement *, GstPad *pad, gpointer data)
  {
    auto *self = static_cast<SrcSide *> (data);
    GstElement *sink = gst_element_factory_make ("appsink", nullptr);
    g_object_set (sink, "sync", FALSE, "async", FALSE, nullptr);
    GstAppSinkCallbacks cb = {};
    cb.new_sample = &SrcSide::onSample;
    auto *ctx = new std::pair<SrcSide *, std::string> (self, GST_PAD_NAME (pad));
    gst_app_sink_set_callbacks (GST_APP_SINK (sink), &cb, ctx,
        [] (gpointer p) { delete static_cast<std::pair<SrcSide *, std::string> *> (p); });
    gst_bin_add (GST_BIN (self->pipeline_), sink);
    gst_element_sync_state_with_parent (sink);
    GRef<GstPad> sinkpad = adoptGRef (gst_element_get_static_pad (sink, "sink"));
    gst_pad_link (pad, sinkpad.get ());
    GRef<GstCaps> caps = adoptGRef (gst_pad_get_current_caps (pad));
    std::lock_guard<std::mutex> l (self->lock_);
    self->pads_[GST_PAD_NAME (pad)] = pad;
    self->sinks_[GST_PAD_NAME (pad)] = sink;
    self->caps_[GST_PAD_NAME (pad)] = caps;
    self->cond_.notify_all ();
  }
  static void onPadRemoved (GstElement *, GstPad *, gpointer data)
  {
    static_cast<SrcSide *> (data)->padsRemoved_++;
  }
  static GstFlowReturn onSample (GstAppSink *sink, gpointer data)
  {
    auto *ctx = static_cast<std::pair<SrcSide *, std::string> *> (data);
    GstSample *sample = gst_app_sink_pull_sample (sink);
    if (!sample)
      return GST_FLOW_OK;
    SrcSide *self = ctx->first;
    std::lock_guard<std::mutex> l (self->lock_);
    self->buffers_[ctx->second].push_back (gst_buffer_ref (gst_sample_get_buffer (sample)));
    if (GstCaps *caps = gst_sample_get_caps (sample))
      self->caps_[ctx->second] = GRef<GstCaps>::ref (caps);
    gst_sample_unref (sample);
    self->cond_.notify_all ();
    return GST_FLOW_OK;
  }

  GstElement *pipeline_;
  GstElement *src_;
  std::unique_ptr<BusLog> bus_;
  std::mutex lock_;
  std::condition_variable cond_;
  std::map<std::string, GstPad *> pads_;  /* borrowed: the element's pads */
  std::map<std::string, GstElement *> sinks_;
  std::map<std::string, GRef<GstCaps>> caps_;
  std::map<std::string, std::vector<GstBuffer *>> buffers_;
  std::atomic<int> padsRemoved_{0};
};

bool
capsEqual (GstCaps *a, const char *b)
{
  GRef<GstCaps> c = adoptGRef (gst_caps_from_string (b));
  return a && gst_caps_is_equal (a, c.get ());
}

void
expectNoErrors (BusLog &bus)
{
  for (const auto &e : bus.errors ())
    ADD_FAILURE () << e;
}

}  // namespace

TEST (RelaySrt, EveryTrackArrivesWithItsCapsAndIdenticalBytes)
{
  const std::string stream = uniqueStream ();
  const int port = freePort ();
  SinkSide pub (stream);
  g_object_set (pub.sink (), "uri", ("srt://127.0.0.1:" + std::to_string (port)).c_str (), nullptr);
  pub.addTrack (0, kH264Caps);
  pub.addTrack (1, kOpusCaps);
  pub.addTrack (2, kDataCaps);
  pub.start ();
  EXPECT_EQ (pub.port (), port);

  SrcSide sub (stream, localUri (port));
  sub.start ();
  ASSERT_TRUE (sub.waitPads (3)) << "pads from the stream description";
  EXPECT_TRUE (sub.bus ().waitLink ("connected"));
  auto names = sub.padNames ();
  EXPECT_EQ (names, (std::vector<std::string>{"audio_1", "track_2", "video_0"}));
  EXPECT_TRUE (capsEqual (sub.caps ("video_0").get (), kH264Caps));
  EXPECT_TRUE (capsEqual (sub.caps ("audio_1").get (), kOpusCaps));
  EXPECT_TRUE (capsEqual (sub.caps ("track_2").get (), kDataCaps));

  /* Video starts on a keyframe; every packet has its own bytes. */
  constexpr int kPackets = 60;
  std::map<std::string, std::vector<Bytes>> sent;
  for (int i = 0; i < kPackets; i++) {
    Bytes video;
    for (guint8 b : i == 0 ? h264IdrSingle () : h264Delta ())
      video.push_back (b);
    for (guint8 b : payloadOf (i, 900, 1))
      video.push_back (b);
    GstBuffer *v = rtpPacket (i, video, 96, i * 3000, true);
    GstBuffer *a = rtpPacket (i, payloadOf (i, 160, 2), 111, i * 960, false, 0x5678);
    GstBuffer *d = rtpPacket (i, payloadOf (i, 40, 3), 100, i * 3000, true, 0x9abc);
    sent["video_0"].push_back (bytesOf (v));
    sent["audio_1"].push_back (bytesOf (a));
    sent["track_2"].push_back (bytesOf (d));
    pub.push (0, v);
    pub.push (1, a);
    pub.push (2, d);
    g_usleep (2000);
  }
  for (const auto &[pad, list] : sent) {
    ASSERT_TRUE (sub.waitBuffers (pad, kPackets)) << pad << ": " << sub.count (pad);
    for (int i = 0; i < kPackets; i++)
      EXPECT_EQ (sub.bytes (pad, i), list[i]) << pad << " packet " << i;
    EXPECT_TRUE (capsEqual (sub.caps (pad).get (),
        pad == "video_0" ? kH264Caps : pad == "audio_1" ? kOpusCaps : kDataCaps));
  }
  EXPECT_EQ (sub.stat ("link-dropped"), 0u);
  EXPECT_EQ (sub.stat ("ignored"), 0u);
  GstStructure *s = pub.stats ();
  guint subscribers = 0;
  gst_structure_get_uint (s, "subscribers", &subscribers);
  EXPECT_EQ (subscribers, 1u);
  gst_structure_free (s);
  expectNoErrors (sub.bus ());
  expectNoErrors (pub.bus ());
}

TEST (RelaySrt, DescriptionIsRepeatedForALateJoiner)
{
  const std::string stream = uniqueStream ();
  const int port = freePort ();
  SinkSide pub (stream);
  g_object_set (pub.sink (), "uri", ("srt://:" + std::to_string (port)).c_str (), nullptr);
  pub.addTrack (0, kH264Caps);
  pub.addTrack (1, kOpusCaps);
  pub.start ();

  /* A bare SRT caller sees the description repeated with no packet flowing. */
  xdn::relay::ensureSrtStarted ();
  SRTSOCKET s = srt_create_socket ();
  const std::string id = xdn::relay::srtRequestStreamId (stream, "");
  srt_setsockflag (s, SRTO_STREAMID, id.c_str (), int (id.size ()));
  struct sockaddr_in a = {};
  a.sin_family = AF_INET;
  a.sin_port = htons (port);
  a.sin_addr.s_addr = htonl (INADDR_LOOPBACK);
  ASSERT_NE (srt_connect (s, reinterpret_cast<struct sockaddr *> (&a), sizeof a), SRT_ERROR)
      << srt_getlasterror_str ();
  const int timeout = 500;
  srt_setsockflag (s, SRTO_RCVTIMEO, &timeout, sizeof timeout);
  int descriptions = 0;
  xdn::relay::wire::Description last;
  const gint64 deadline = g_get_monotonic_time () + 3 * G_USEC_PER_SEC;
  while (descriptions < 3 && g_get_monotonic_time () < deadline) {
    char buf[1500];
    int n = srt_recvmsg (s, buf, sizeof buf);
    if (n <= 0)
      continue;
    wire::Message m;
    ASSERT_EQ (wire::parseMessage (reinterpret_cast<uint8_t *> (buf), n, m), wire::Error::None);
    if (m.kind != wire::Kind::Description)
      continue;
    std::string error;
    ASSERT_TRUE (wire::decodeDescription (reinterpret_cast<const char *> (m.body), m.bodySize,
        last, error)) << error;
    descriptions++;
  }
  srt_close (s);
  EXPECT_GE (descriptions, 3) << "on connect, then every second";
  EXPECT_EQ (last.stream, stream);
  ASSERT_EQ (last.tracks.size (), 2u);
  EXPECT_TRUE (capsEqual (last.tracks[0].caps.get (), kH264Caps));

  /* A relaysrc joining a stream that is flowing configures itself and
   * starts its video on a keyframe. */
  for (int i = 0; i < 30; i++)
    pub.push (0, rtpPacket (i, i % 10 == 0 ? h264IdrSingle () : h264Delta (), 96, i * 3000, true));
  SrcSide sub (stream, localUri (port));
  sub.start ();
  ASSERT_TRUE (sub.waitPads (2));
  for (int i = 30; i < 80; i++) {
    pub.push (0, rtpPacket (i, i % 10 == 0 ? h264IdrSingle () : h264Delta (), 96, i * 3000, true));
    g_usleep (2000);
  }
  ASSERT_TRUE (sub.waitBuffers ("video_0", 1));
  bool discont = false;
  Bytes first = sub.bytes ("video_0", 0, &discont);
  EXPECT_TRUE (discont);
  ASSERT_GT (first.size (), 12u);
  EXPECT_EQ (first[12], h264IdrSingle ()[0]) << "first video packet is a keyframe";
  expectNoErrors (sub.bus ());
}

TEST (RelaySrt, LargeDescriptionArrivesInFragments)
{
  const std::string stream = uniqueStream ();
  const int port = freePort ();
  SinkSide pub (stream);
  g_object_set (pub.sink (), "uri", ("srt://:" + std::to_string (port)).c_str (), nullptr);
  /* Twelve tracks with long caps: a description of several kilobytes. */
  std::vector<std::string> caps;
  for (guint i = 0; i < 12; i++) {
    caps.push_back (std::string (kOpusCaps) + ", x-note=(string)" + std::string (300, char ('a' + i)));
    pub.addTrack (i, caps.back ().c_str ());
  }
  pub.start ();
  SrcSide sub (stream, localUri (port));
  sub.start ();
  ASSERT_TRUE (sub.waitPads (12));
  for (guint i = 0; i < 12; i++)
    EXPECT_TRUE (capsEqual (sub.caps ("audio_" + std::to_string (i)).get (), caps[i].c_str ())) << i;
  EXPECT_EQ (sub.stat ("ignored"), 0u);
  expectNoErrors (sub.bus ());
}

TEST (RelaySrt, KeyframeRequestReachesTheUpstreamPad)
{
  const std::string stream = uniqueStream ();
  const int port = freePort ();
  SinkSide pub (stream);
  g_object_set (pub.sink (), "uri", ("srt://:" + std::to_string (port)).c_str (), nullptr);
  pub.addTrack (0, kH264Caps);
  pub.start ();
  SrcSide sub (stream, localUri (port));
  sub.start ();
  ASSERT_TRUE (sub.waitPads (1));
  pub.push (0, rtpPacket (0, h264IdrSingle (), 96, 0, true));
  for (int i = 1; i < 5; i++)
    pub.push (0, rtpPacket (i, h264Delta (), 96, i * 3000, true));
  ASSERT_TRUE (sub.waitBuffers ("video_0", 5));
  /* Requests made while joining are done; one more from a viewer: */
  const guint before = pub.keyframeRequests (0);
  GRef<GstPad> sinkpad = adoptGRef (gst_element_get_static_pad (sub.appsink ("video_0"), "sink"));
  ASSERT_TRUE (gst_pad_push_event (sinkpad.get (),
      gst_video_event_new_upstream_force_key_unit (GST_CLOCK_TIME_NONE, TRUE, 1)));
  EXPECT_TRUE (waitUntil ([&] { return pub.keyframeRequests (0) > before; }))
      << "force-key-unit upstream of xdnrelaysink";
  expectNoErrors (sub.bus ());
  expectNoErrors (pub.bus ());
}

TEST (RelaySrt, LinkLossReconnectsKeepingPadsAndMarksDiscont)
{
  const std::string stream = uniqueStream ();
  const int port = freePort ();
  SinkSide pub (stream);
  g_object_set (pub.sink (), "uri", ("srt://:" + std::to_string (port)).c_str (), nullptr);
  pub.addTrack (0, kH264Caps);
  pub.addTrack (1, kOpusCaps);
  pub.start ();
  SrcSide sub (stream, localUri (port));
  sub.start ();
  ASSERT_TRUE (sub.waitPads (2));
  GstPad *video = sub.pad ("video_0");
  GstPad *audio = sub.pad ("audio_1");
  guint16 seq = 0;
  auto pushSome = [&] (int n) {
    for (int i = 0; i < n; i++, seq++) {
      pub.push (0, rtpPacket (seq, i == 0 ? h264IdrSingle () : h264Delta (), 96, seq * 3000, true));
      pub.push (1, rtpPacket (seq, payloadOf (seq, 100, 9), 111, seq * 960, false, 0x5678));
      g_usleep (2000);
    }
  };
  ASSERT_TRUE (pub.waitSubscribers (1));
  pushSome (10);
  ASSERT_TRUE (sub.waitBuffers ("video_0", 10));
  ASSERT_TRUE (sub.waitBuffers ("audio_1", 10));

  /* The upstream side goes away (no EOS: not the end of the stream). */
  const size_t links_before = sub.bus ().links ().size ();
  pub.stop ();
  LinkMessage lost;
  ASSERT_TRUE (sub.bus ().waitLink ("lost", links_before, &lost));
  EXPECT_EQ (lost.uri, localUri (port));
  EXPECT_EQ (lost.code, 0);

  /* It comes back on the same port: the link is made again. */
  const size_t links_lost = sub.bus ().links ().size ();
  pub.start ();
  ASSERT_TRUE (sub.bus ().waitLink ("connected", links_lost)) << "reconnected";
  ASSERT_TRUE (pub.waitSubscribers (1));
  pushSome (10);
  ASSERT_TRUE (sub.waitBuffers ("video_0", 20));
  ASSERT_TRUE (sub.waitBuffers ("audio_1", 20));

  EXPECT_EQ (sub.padsRemoved (), 0);
  EXPECT_EQ (sub.pad ("video_0"), video) << "same pads";
  EXPECT_EQ (sub.pad ("audio_1"), audio);
  EXPECT_EQ (sub.padNames ().size (), 2u);
  bool discont = false;
  sub.bytes ("video_0", 10, &discont);
  EXPECT_TRUE (discont) << "first video buffer after the gap";
  sub.bytes ("audio_1", 10, &discont);
  EXPECT_TRUE (discont) << "first audio buffer after the gap";
  sub.bytes ("audio_1", 11, &discont);
  EXPECT_FALSE (discont);
  EXPECT_GE (sub.stat ("connects"), 2u);
  EXPECT_FALSE (sub.bus ().eos ()) << "a lost link is not the end of the stream";
  expectNoErrors (sub.bus ());
  expectNoErrors (pub.bus ());
}

TEST (RelaySrt, WrongPassphraseIsRefusedWithoutError)
{
  const std::string stream = uniqueStream ();
  const int port = freePort ();
  SinkSide pub (stream);
  g_object_set (pub.sink (), "uri", ("srt://:" + std::to_string (port)).c_str (),
      "passphrase", "correct horse battery", nullptr);
  pub.addTrack (0, kOpusCaps);
  pub.start ();
  SrcSide sub (stream, localUri (port));
  g_object_set (sub.src (), "passphrase", "wrong passphrase 1", nullptr);
  sub.start ();
  LinkMessage refused;
  ASSERT_TRUE (sub.bus ().waitLink ("refused", 0, &refused));
  EXPECT_NE (refused.code, 0);
  EXPECT_FALSE (refused.reason.empty ());
  EXPECT_EQ (sub.padNames ().size (), 0u);
  EXPECT_FALSE (sub.bus ().waitLink ("connected", 0, nullptr, 500));
  expectNoErrors (sub.bus ());
  expectNoErrors (pub.bus ());

  /* The right one gets in. */
  SrcSide good (stream, localUri (port));
  g_object_set (good.src (), "passphrase", "correct horse battery", nullptr);
  good.start ();
  EXPECT_TRUE (good.waitPads (1));
}

TEST (RelaySrt, UnknownStreamIsRefusedWith1404AndRetried)
{
  const std::string stream = uniqueStream ();
  const int port = freePort ();
  SinkSide pub (stream);
  g_object_set (pub.sink (), "uri", ("srt://:" + std::to_string (port)).c_str (), nullptr);
  pub.addTrack (0, kOpusCaps);
  pub.start ();
  SrcSide sub (stream + "-other", localUri (port));
  sub.start ();
  LinkMessage refused;
  ASSERT_TRUE (sub.bus ().waitLink ("refused", 0, &refused));
  EXPECT_EQ (refused.code, 1404);
  EXPECT_EQ (refused.uri, localUri (port));
  /* Keeps trying: 100, 200, 400 ms... */
  EXPECT_TRUE (waitUntil ([&] { return sub.bus ().links ().size () >= 3; }, 5000));
  for (const auto &m : sub.bus ().links ())
    EXPECT_EQ (m.code, 1404) << m.state << ": " << m.reason;
  EXPECT_GE (sub.stat ("connect-attempts"), 3u);
  EXPECT_EQ (sub.padNames ().size (), 0u);
  expectNoErrors (sub.bus ());
  expectNoErrors (pub.bus ());
}

TEST (RelaySrt, ServesAnAcceptedSocket)
{
  const std::string stream = uniqueStream ();
  const int port = freePort ();

  /* The node's part: a listener that accepts the downstream request. */
  xdn::relay::ensureSrtStarted ();
  SRTSOCKET listener = srt_create_socket ();
  struct sockaddr_in a = {};
  a.sin_family = AF_INET;
  a.sin_port = htons (port);
  a.sin_addr.s_addr = htonl (INADDR_LOOPBACK);
  const int latency = kLatencyMs;
  srt_setsockflag (listener, SRTO_LATENCY, &latency, sizeof latency);
  ASSERT_EQ (srt_bind (listener, reinterpret_cast<struct sockaddr *> (&a), sizeof a), 0);
  ASSERT_EQ (srt_listen (listener, 4), 0);

  SrcSide sub (stream, localUri (port));
  sub.start ();

  int eid = srt_epoll_create ();
  const int events = SRT_EPOLL_IN;
  srt_epoll_add_usock (eid, listener, &events);
  SRT_EPOLL_EVENT ev[1];
  ASSERT_EQ (srt_epoll_uwait (eid, ev, 1, 5000), 1) << "downstream connects";
  SRTSOCKET accepted = srt_accept (listener, nullptr, nullptr);
  ASSERT_NE (accepted, SRT_INVALID_SOCK);
  srt_epoll_release (eid);
  char streamid[512];
  int len = sizeof streamid;
  srt_getsockflag (accepted, SRTO_STREAMID, streamid, &len);
  EXPECT_EQ (std::string (streamid, len), "#!::r=" + stream + ",m=request");

  SinkSide pub (stream);
  g_object_set (pub.sink (), "socket", int (accepted), nullptr);
  pub.addTrack (0, kOpusCaps);
  pub.start ();
  ASSERT_TRUE (sub.waitPads (1));
  std::vector<Bytes> sent;
  for (int i = 0; i < 20; i++) {
    GstBuffer *b = rtpPacket (i, payloadOf (i, 300, 4), 111, i * 960);
    sent.push_back (bytesOf (b));
    pub.push (0, b);
  }
  ASSERT_TRUE (sub.waitBuffers ("audio_0", 20));
  for (int i = 0; i < 20; i++)
    EXPECT_EQ (sub.bytes ("audio_0", i), sent[i]);

  /* The downstream side leaves: the sink says so. */
  const size_t before = pub.bus ().links ().size ();
  sub.stop ();
  EXPECT_TRUE (pub.bus ().waitLink ("lost", before));
  expectNoErrors (pub.bus ());
  pub.stop ();
  srt_close (listener);
}

TEST (RelaySrt, StreamEndArrivesAsEos)
{
  const std::string stream = uniqueStream ();
  const int port = freePort ();
  SinkSide pub (stream);
  g_object_set (pub.sink (), "uri", ("srt://:" + std::to_string (port)).c_str (), nullptr);
  pub.addTrack (0, kOpusCaps);
  pub.addTrack (1, kDataCaps);
  pub.start ();
  SrcSide sub (stream, localUri (port));
  sub.start ();
  ASSERT_TRUE (sub.waitPads (2));
  pub.push (0, rtpPacket (0, payloadOf (0, 50, 1), 111));
  ASSERT_TRUE (sub.waitBuffers ("audio_0", 1));
  pub.endOfStream (0);
  pub.endOfStream (1);
  EXPECT_TRUE (sub.bus ().waitEos ()) << "EOS on every pad downstream";
  EXPECT_EQ (sub.stat ("connect-attempts"), 1u) << "no reconnect after the end";
  expectNoErrors (sub.bus ());
}

TEST (RelaySrt, TwoThousandPacketsNoneLost)
{
  const std::string stream = uniqueStream ();
  const int port = freePort ();
  SinkSide pub (stream);
  g_object_set (pub.sink (), "uri", ("srt://:" + std::to_string (port)).c_str (), nullptr);
  pub.addTrack (0, kOpusCaps);
  pub.start ();
  SrcSide sub (stream, localUri (port));
  sub.start ();
  ASSERT_TRUE (sub.waitPads (1));
  constexpr int kPackets = 2000;
  std::vector<Bytes> sent;
  for (int i = 0; i < kPackets; i++) {
    GstBuffer *b = rtpPacket (guint16 (i), payloadOf (i, 1000, 5), 111, i * 960);
    sent.push_back (bytesOf (b));
    pub.push (0, b);
    if (i % 8 == 7)
      g_usleep (1000);
  }
  ASSERT_TRUE (sub.waitBuffers ("audio_0", kPackets, 20000)) << sub.count ("audio_0");
  int mismatched = 0;
  for (int i = 0; i < kPackets; i++)
    mismatched += sub.bytes ("audio_0", i) != sent[i];
  EXPECT_EQ (mismatched, 0);
  EXPECT_EQ (sub.stat ("dropped"), 0u);
  EXPECT_EQ (sub.stat ("link-dropped"), 0u);
  GstStructure *s = pub.stats ();
  guint64 dropped = 1;
  gst_structure_get_uint64 (s, "dropped", &dropped);
  EXPECT_EQ (dropped, 0u);
  gst_structure_free (s);
}

TEST (RelaySrt, BadSettingsFailEarly)
{
  for (auto [prop, value] : std::vector<std::pair<const char *, const char *>> {
           {"uri", "udp://127.0.0.1:9000"}, {"uri", "srt://127.0.0.1"}, {"passphrase", "short"}}) {
    GstElement *src = gst_element_factory_make ("xdnrelaysrc", nullptr);
    g_object_set (src, "stream", "test/bad", "uri", "srt://127.0.0.1:9", nullptr);
    g_object_set (src, prop, value, nullptr);
    EXPECT_EQ (gst_element_set_state (src, GST_STATE_READY), GST_STATE_CHANGE_FAILURE)
        << prop << "=" << value;
    gst_element_set_state (src, GST_STATE_NULL);
    gst_object_unref (src);
  }
  GstElement *sink = gst_element_factory_make ("xdnrelaysink", nullptr);
  g_object_set (sink, "stream", "test/bad", "uri", "srt://:9", "socket", 5, nullptr);
  EXPECT_EQ (gst_element_set_state (sink, GST_STATE_READY), GST_STATE_CHANGE_FAILURE)
      << "uri and socket together";
  gst_element_set_state (sink, GST_STATE_NULL);
  g_object_set (sink, "socket", -1, nullptr);
  gst_object_unref (sink);
}

TEST (RelaySrt, H264PipelineDecodesOverSrt)
{
  for (const char *f : {"videotestsrc", "x264enc", "rtph264pay", "rtph264depay", "avdec_h264"}) {
    GstElementFactory *factory = gst_element_factory_find (f);
    if (!factory)
      GTEST_SKIP () << f << " not installed";
    gst_object_unref (factory);
  }
  const std::string stream = uniqueStream ();
  const int port = freePort ();
  const std::string pubDesc = "videotestsrc is-live=true ! video/x-raw,width=320,height=240,framerate=30/1 ! "
      "x264enc tune=zerolatency key-int-max=30 speed-preset=ultrafast ! "
      "rtph264pay config-interval=-1 ! xdnrelaysink stream=" + stream
      + " uri=srt://:" + std::to_string (port) + " latency=" + std::to_string (kLatencyMs);
  const std::string viewDesc = "xdnrelaysrc stream=" + stream + " uri=" + localUri (port)
      + " latency=" + std::to_string (kLatencyMs)
      + " ! rtph264depay ! avdec_h264 ! appsink name=out sync=false max-buffers=100 drop=true";
  GError *err = nullptr;
  GstElement *pub = gst_parse_launch (pubDesc.c_str (), &err);
  ASSERT_EQ (err, nullptr) << err->message;
  GstElement *view = gst_parse_launch (viewDesc.c_str (), &err);
  ASSERT_EQ (err, nullptr) << err->message;
  BusLog pubBus (pub), viewBus (view);
  ASSERT_NE (gst_element_set_state (pub, GST_STATE_PLAYING), GST_STATE_CHANGE_FAILURE);
  ASSERT_NE (gst_element_set_state (view, GST_STATE_PLAYING), GST_STATE_CHANGE_FAILURE);
  GstElement *out = gst_bin_get_by_name (GST_BIN (view), "out");
  int frames = 0;
  const gint64 deadline = g_get_monotonic_time () + 15 * G_USEC_PER_SEC;
  while (frames < 10 && g_get_monotonic_time () < deadline) {
    if (GstSample *s = gst_app_sink_try_pull_sample (GST_APP_SINK (out), 100 * GST_MSECOND)) {
      frames++;
      gst_sample_unref (s);
    }
  }
  EXPECT_GE (frames, 10) << "decoded frames within 15 s";
  expectNoErrors (pubBus);
  expectNoErrors (viewBus);
  gst_element_set_state (view, GST_STATE_NULL);
  gst_element_set_state (pub, GST_STATE_NULL);
  gst_object_unref (out);
  gst_object_unref (view);
  gst_object_unref (pub);
}

/* An edge pulls a stream into its hub: xdnrelaysrc (SRT) linked in pad-added
 * to an xdnrelaysink. The sink describes every track as soon as the stream
 * description arrives, before any video packet (which waits for a keyframe). */
TEST (RelaySrt, PeerLinkedInPadAddedGetsCapsBeforeAnyPacket)
{
  const std::string stream = uniqueStream ();
  const int port = freePort ();
  SinkSide pub (stream);
  g_object_set (pub.sink (), "uri", ("srt://:" + std::to_string (port)).c_str (), nullptr);
  pub.addTrack (0, kH264Caps);
  pub.addTrack (1, kOpusCaps);
  pub.start ();

  GstElement *src = gst_element_factory_make ("xdnrelaysrc", nullptr);
  GstElement *sink = gst_element_factory_make ("xdnrelaysink", nullptr);
  g_object_set (src, "stream", stream.c_str (), "uri", localUri (port).c_str (),
      "latency", kLatencyMs, nullptr);
  g_object_set (sink, "stream", (stream + "-copy").c_str (), nullptr);
  RelayChain chain (src, sink);
  BusLog bus (chain.pipeline ());
  ASSERT_NE (gst_element_set_state (chain.pipeline (), GST_STATE_PLAYING),
      GST_STATE_CHANGE_FAILURE);
  ASSERT_TRUE (bus.waitLink ("connected"));

  auto described = [&] (guint id, const char *expected) {
    auto caps = describedCaps (sink);
    return caps.count (id) && !caps[id].empty () && capsEqual (
        adoptGRef (gst_caps_from_string (caps[id].c_str ())).get (), expected);
  };
  /* Only video packets that are not a keyframe: nothing can flow yet. */
  for (int i = 0; i < 5; i++)
    pub.push (0, rtpPacket (i, h264Delta (), 96, i * 3000, true));
  EXPECT_TRUE (waitUntil ([&] { return described (0, kH264Caps) && described (1, kOpusCaps); },
      3000)) << "every track described before the first keyframe";
  expectNoErrors (bus);
}

/* The serving pipeline is stopped as soon as it posts EOS (the node does
 * that): the end of the stream must still reach the downstream side, as EOS
 * and not as a lost link. */
static void
checkEndSurvivesImmediateStop (SinkSide &pub, SrcSide &sub)
{
  ASSERT_TRUE (sub.waitPads (2));
  ASSERT_TRUE (pub.waitSubscribers (1));
  for (int i = 0; i < 10; i++) {
    pub.push (0, rtpPacket (i, payloadOf (i, 200, 1), 111, i * 960));
    pub.push (1, rtpPacket (i, payloadOf (i, 40, 2), 100, i * 3000, true, 0x9abc));
  }
  ASSERT_TRUE (sub.waitBuffers ("audio_0", 10));
  const size_t links = sub.bus ().links ().size ();
  pub.endOfStream (0);
  pub.endOfStream (1);
  ASSERT_TRUE (pub.bus ().waitEos ());
  pub.stop ();  /* at once: no grace time given to the link */
  EXPECT_TRUE (sub.bus ().waitEos (5000)) << "EOS on every pad downstream";
  for (size_t i = links; i < sub.bus ().links ().size (); i++)
    ADD_FAILURE () << "link " << sub.bus ().links ()[i].state << ": "
                   << sub.bus ().links ()[i].reason;
  EXPECT_EQ (sub.stat ("connect-attempts"), 1u) << "no reconnect after the end";
  EXPECT_EQ (sub.stat ("packets"), 20u);
  expectNoErrors (sub.bus ());
  expectNoErrors (pub.bus ());
}

TEST (RelaySrt, StreamEndSurvivesStopRightAfterEos)
{
  const std::string stream = uniqueStream ();
  const int port = freePort ();
  SinkSide pub (stream);
  g_object_set (pub.sink (), "uri", ("srt://:" + std::to_string (port)).c_str (),
      "latency", 120u, nullptr);
  pub.addTrack (0, kOpusCaps);
  pub.addTrack (1, kDataCaps);
  pub.start ();
  SrcSide sub (stream, localUri (port));
  g_object_set (sub.src (), "latency", 120u, nullptr);
  sub.start ();
  checkEndSurvivesImmediateStop (pub, sub);
}

TEST (RelaySrt, StreamEndSurvivesStopRightAfterEosOnAnAcceptedSocket)
{
  const std::string stream = uniqueStream ();
  const int port = freePort ();
  /* The node's part: a non-blocking listener (as the node's), so the
   * accepted socket is non-blocking too. */
  xdn::relay::ensureSrtStarted ();
  SRTSOCKET listener = srt_create_socket ();
  struct sockaddr_in a = {};
  a.sin_family = AF_INET;
  a.sin_port = htons (port);
  a.sin_addr.s_addr = htonl (INADDR_LOOPBACK);
  const int latency = 120;
  const bool no = false;
  srt_setsockflag (listener, SRTO_LATENCY, &latency, sizeof latency);
  srt_setsockflag (listener, SRTO_RCVSYN, &no, sizeof no);
  ASSERT_EQ (srt_bind (listener, reinterpret_cast<struct sockaddr *> (&a), sizeof a), 0);
  ASSERT_EQ (srt_listen (listener, 4), 0);

  SrcSide sub (stream, localUri (port));
  g_object_set (sub.src (), "latency", 120u, nullptr);
  sub.start ();
  int eid = srt_epoll_create ();
  const int events = SRT_EPOLL_IN;
  srt_epoll_add_usock (eid, listener, &events);
  SRT_EPOLL_EVENT ev[1];
  ASSERT_EQ (srt_epoll_uwait (eid, ev, 1, 5000), 1) << "downstream connects";
  SRTSOCKET accepted = srt_accept (listener, nullptr, nullptr);
  ASSERT_NE (accepted, SRT_INVALID_SOCK);
  srt_epoll_release (eid);

  SinkSide pub (stream);
  g_object_set (pub.sink (), "socket", int (accepted), nullptr);
  pub.addTrack (0, kOpusCaps);
  pub.addTrack (1, kDataCaps);
  pub.start ();
  checkEndSurvivesImmediateStop (pub, sub);
  srt_close (listener);
}
