/* xdnwebrtcfanout as an element: buffers pushed through GstHarness reach
 * viewers built in the test; PLIs become one upstream force-key-unit
 * event; refused offers, timeouts and stats as the application sees them;
 * and a webrtcbin viewer that decodes what an
 * `x264enc ! rtph264pay ! xdnwebrtcfanout` pipeline serves.
 *
 * Run in a private network namespace (see test_fanout_core.cpp). */
#include <gst/check/gstharness.h>
#include <gst/gst.h>
#include <gst/video/video.h>
#include <gst/webrtc/webrtc.h>
#include <gtest/gtest.h>

#include "fanout-test-util.h"
#include "fanout-viewer.h"
#include "gstxdnwebrtcfanout.h"
#include "xdn-fanout-sdp.h"
#include "xdn-ice.h"

#include <atomic>
#include <condition_variable>
#include <mutex>
#include <thread>

using namespace std::chrono_literals;
using fanouttest::TestViewer;
using xdn::fanout::SockAddr;

namespace {

class GstEnvironment : public ::testing::Environment {
public:
  void SetUp () override
  {
    gst_init (nullptr, nullptr);
    GST_ELEMENT_REGISTER (xdnwebrtcfanout, nullptr);
  }
};

const auto *env = ::testing::AddGlobalTestEnvironment (new GstEnvironment);

constexpr const char *kH264Caps = "application/x-rtp, media=(string)video, "
    "encoding-name=(string)H264, clock-rate=(int)90000, payload=(int)96, "
    "packetization-mode=(string)1, profile-level-id=(string)42e01f";
constexpr const char *kOpusCaps = "application/x-rtp, media=(string)audio, "
    "encoding-name=(string)OPUS, clock-rate=(int)48000, payload=(int)111, "
    "encoding-params=(string)2";

GstBuffer *
bufferOf (const std::vector<uint8_t> &p)
{
  /* header and payload in two memories, as payloaders make them */
  GstBuffer *b = gst_buffer_new_memdup (p.data (), 12);
  gst_buffer_append_memory (b, gst_memory_new_wrapped (GST_MEMORY_FLAG_READONLY,
          g_memdup2 (p.data () + 12, p.size () - 12), p.size () - 12, 0, p.size () - 12,
          nullptr, nullptr));
  GST_BUFFER_PTS (b) = 0;
  return b;
}

std::string
removedReasonFrom (GstBus *bus, const std::string &id, GstClockTime timeout)
{
  const gint64 end = g_get_monotonic_time () + GST_TIME_AS_USECONDS (timeout);
  while (g_get_monotonic_time () < end) {
    GstMessage *m = gst_bus_timed_pop_filtered (bus, 50 * GST_MSECOND, GST_MESSAGE_ELEMENT);
    if (!m)
      continue;
    const GstStructure *s = gst_message_get_structure (m);
    std::string reason;
    if (gst_structure_has_name (s, "xdn-fanout-viewer") &&
        g_strcmp0 (gst_structure_get_string (s, "state"), "removed") == 0 &&
        id == gst_structure_get_string (s, "id"))
      reason = gst_structure_get_string (s, "reason");
    gst_message_unref (m);
    if (!reason.empty ())
      return reason;
  }
  return "";
}

/* The fan-out in a harness: sink_0 H.264, sink_1 Opus, a bus of its own. */
class FanoutHarness {
public:
  explicit FanoutHarness (const char *props = "")
  {
    std::string desc = std::string ("xdnwebrtcfanout threads=1 ") + props;
    GError *error = nullptr;
    element = gst_parse_launch (desc.c_str (), &error);
    if (error)
      g_error_free (error);
    bus = gst_bus_new ();
    gst_element_set_bus (element, bus);
    video = gst_harness_new_with_element (element, "sink_0", nullptr);
    audio = gst_harness_new_with_element (element, "sink_1", nullptr);
    gst_harness_set_src_caps_str (video, kH264Caps);
    gst_harness_set_src_caps_str (audio, kOpusCaps);
    gst_harness_play (video);
    gst_harness_play (audio);
  }
  ~FanoutHarness ()
  {
    gst_harness_teardown (audio);
    gst_harness_teardown (video);
    gst_element_set_bus (element, nullptr);
    gst_object_unref (bus);
    gst_object_unref (element);
  }

  /* add-viewer; empty id when refused. */
  std::pair<std::string, std::string> addViewer (const std::string &offer)
  {
    GstStructure *s = nullptr;
    g_signal_emit_by_name (element, "add-viewer", offer.c_str (), &s);
    if (!s)
      return {};
    std::pair<std::string, std::string> r (gst_structure_get_string (s, "id"),
        gst_structure_get_string (s, "answer"));
    gst_structure_free (s);
    return r;
  }

  std::unique_ptr<TestViewer> connectViewer (std::string *id = nullptr)
  {
    auto v = std::make_unique<TestViewer> ();
    auto [vid, answer] = addViewer (v->offer ());
    EXPECT_FALSE (vid.empty ());
    if (vid.empty () || !v->applyAnswer (answer) || !v->connect ())
      return nullptr;
    if (id)
      *id = vid;
    const gint64 end = g_get_monotonic_time () + 2 * G_USEC_PER_SEC;
    while (stat ("connected") < ++connected_ && g_get_monotonic_time () < end)
      g_usleep (5000);
    return v;
  }

  guint64 stat (const char *field)
  {
    GstStructure *s = nullptr;
    g_object_get (element, "stats", &s, nullptr);
    guint64 v = 0;
    gst_structure_get_uint64 (s, field, &v);
    gst_structure_free (s);
    return v;
  }

  void pushVideo (bool keyframe)
  {
    gst_harness_push (video, bufferOf (fanouttest::h264Packet (seq_++, ts_, 0x1234, keyframe)));
    ts_ += 3000;
  }

  /* force-key-unit events that reached upstream of sink_0 */
  int drainKeyUnits ()
  {
    int n = 0;
    while (GstEvent *e = gst_harness_try_pull_upstream_event (video)) {
      if (gst_video_event_is_force_key_unit (e))
        n++;
      gst_event_unref (e);
    }
    return n;
  }

  GstElement *element = nullptr;
  GstBus *bus = nullptr;
  GstHarness *video = nullptr;
  GstHarness *audio = nullptr;

private:
  uint16_t seq_ = 1;
  uint32_t ts_ = 0;
  guint64 connected_ = 0;
};

}  // namespace

TEST (WebRtcFanout, AnswersAnOfferAndServesPushedBuffersRewrittenPerViewer)
{
  FanoutHarness h;
  gint port = 0;
  g_object_get (h.element, "bound-port", &port, nullptr);
  ASSERT_GT (port, 0);
  std::string id;
  auto v = h.connectViewer (&id);
  ASSERT_TRUE (v);
  /* one host candidate, the configured address and bound port (repeated
   * in each bundled m-line) */
  EXPECT_EQ (std::set<std::string> (v->candidates.begin (), v->candidates.end ()),
      (std::set<std::string> {"127.0.0.1:" + std::to_string (port)}));
  h.pushVideo (false);  /* not a keyframe: the viewer does not start on it */
  h.pushVideo (true);
  for (int i = 0; i < 20; i++)
    h.pushVideo (false);
  for (uint16_t i = 0; i < 10; i++)
    gst_harness_push (h.audio, bufferOf (fanouttest::opusPacket (i, i * 960u, 0x5678)));
  ASSERT_TRUE (v->pumpUntil ([&] { return v->count ("video") == 21 && v->count ("audio") == 10; },
      3s)) << v->count ("video") << " " << v->count ("audio");
  for (const auto &r : v->received) {
    if (r.pt == 106) {
      EXPECT_EQ (r.ssrc, v->ssrc ("video"));
    } else {
      EXPECT_EQ (r.pt, 111);
    }
  }
  EXPECT_EQ (h.stat ("packets-sent"), 31u);
  EXPECT_EQ (h.stat ("viewers"), 1u);
}

TEST (WebRtcFanout, PlisFromViewersBecomeOneUpstreamForceKeyUnit)
{
  FanoutHarness h ("keyframe-min-interval=400000000");
  std::vector<std::unique_ptr<TestViewer>> viewers;
  for (int i = 0; i < 3; i++) {
    viewers.push_back (h.connectViewer ());
    ASSERT_TRUE (viewers.back ());
  }
  /* joining asked for a keyframe; one comes */
  h.pushVideo (true);
  g_usleep (500000);
  h.pushVideo (false);
  h.drainKeyUnits ();

  for (auto &v : viewers)
    ASSERT_TRUE (v->sendPli (v->ssrc ("video")));
  const gint64 end = g_get_monotonic_time () + 2 * G_USEC_PER_SEC;
  while (h.stat ("plis") < 3 && g_get_monotonic_time () < end)
    g_usleep (5000);
  ASSERT_EQ (h.stat ("plis"), 3u);
  h.pushVideo (false);  /* requests go upstream with the track's next buffer */
  EXPECT_EQ (h.drainKeyUnits (), 1);
  h.pushVideo (true);
  g_usleep (600000);
  h.pushVideo (false);
  EXPECT_EQ (h.drainKeyUnits (), 0) << "the keyframe answered the requests held back";
}

TEST (WebRtcFanout, RefusedOfferReturnsNullAndPostsAWarning)
{
  FanoutHarness h;
  TestViewer v;
  fanouttest::OfferOptions passive;
  passive.setup = "passive";
  auto [id, answer] = h.addViewer (v.offer (passive));
  EXPECT_TRUE (id.empty ());
  GstMessage *m = gst_bus_timed_pop_filtered (h.bus, GST_SECOND, GST_MESSAGE_WARNING);
  ASSERT_TRUE (m);
  GError *err = nullptr;
  gst_message_parse_warning (m, &err, nullptr);
  EXPECT_NE (std::string (err->message).find ("a=setup:passive"), std::string::npos)
      << err->message;
  g_error_free (err);
  gst_message_unref (m);
  gboolean removed = TRUE;
  g_signal_emit_by_name (h.element, "remove-viewer", "nosuchviewer", &removed);
  EXPECT_FALSE (removed);
}

namespace {
struct RemovedSignal {
  std::mutex lock;
  std::string id, reason;
  static void cb (GstElement *, const gchar *id, const gchar *reason, RemovedSignal *self)
  {
    std::lock_guard<std::mutex> l (self->lock);
    self->id = id;
    self->reason = reason;
  }
};
}  // namespace

TEST (WebRtcFanout, SilentViewerIsRemovedWithSignalMessageAndFreedState)
{
  FanoutHarness h ("viewer-timeout=500000000 per-viewer-stats=true");
  RemovedSignal sig;
  g_signal_connect (h.element, "viewer-removed", G_CALLBACK (RemovedSignal::cb), &sig);
  std::string id;
  auto v = h.connectViewer (&id);
  ASSERT_TRUE (v);
  GstStructure *s = nullptr;
  g_object_get (h.element, "stats", &s, nullptr);
  const GValue *list = gst_structure_get_value (s, "viewer-stats");
  ASSERT_TRUE (list);
  ASSERT_EQ (gst_value_array_get_size (list), 1u);
  const GstStructure *vs = gst_value_get_structure (gst_value_array_get_value (list, 0));
  EXPECT_STREQ (gst_structure_get_string (vs, "state"), "connected");
  for (const char *field : {"remb-bitrate", "transport-cc-feedbacks", "transport-cc-received",
           "transport-cc-lost", "transport-cc-bitrate"})
    EXPECT_TRUE (gst_structure_has_field_typed (vs, field, G_TYPE_UINT64)) << field;
  for (const char *field : {"transport-cc-feedbacks", "transport-cc-received", "transport-cc-lost"})
    EXPECT_TRUE (gst_structure_has_field_typed (s, field, G_TYPE_UINT64)) << field;
  gst_structure_free (s);

  const std::string reason = removedReasonFrom (h.bus, id, 3 * GST_SECOND);
  EXPECT_NE (reason.find ("timeout"), std::string::npos) << reason;
  /* The element posts the message, then emits the signal (same thread). */
  gint64 end = g_get_monotonic_time () + G_USEC_PER_SEC;
  auto signalled = [&sig] {
    std::lock_guard<std::mutex> l (sig.lock);
    return !sig.id.empty ();
  };
  while (!signalled () && g_get_monotonic_time () < end)
    g_usleep (1000);
  {
    std::lock_guard<std::mutex> l (sig.lock);
    EXPECT_EQ (sig.id, id);
    EXPECT_EQ (sig.reason, reason);
  }
  end = g_get_monotonic_time () + G_USEC_PER_SEC;
  while (h.stat ("viewer-states") > 0 && g_get_monotonic_time () < end)
    g_usleep (5000);
  EXPECT_EQ (h.stat ("viewer-states"), 0u);
  EXPECT_EQ (h.stat ("viewers"), 0u);
}

/* Random bytes, truncated and mis-signed STUN, DTLS garbage and a flood,
 * sent to the element's bound port: the viewer keeps receiving. */
TEST (WebRtcFanout, HostileInputOnTheBoundPortLeavesTheViewerServed)
{
  FanoutHarness h;
  auto v = h.connectViewer ();
  ASSERT_TRUE (v);
  gint port = 0;
  g_object_get (h.element, "bound-port", &port, nullptr);
  const SockAddr to = SockAddr::parse ("127.0.0.1", static_cast<uint16_t> (port));
  const int fd = socket (AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  fanouttest::Rng rng (5);
  uint8_t d[1500];
  TestViewer stranger;
  auto [id, answer] = h.addViewer (stranger.offer ());
  ASSERT_TRUE (stranger.applyAnswer (answer));
  const auto request = stranger.bindingRequest ();
  const std::string wrong = "wrongPasswordWrongPassword";
  const auto badRequest = stranger.bindingRequest (true, &wrong);
  h.pushVideo (true);
  int pushed = 1;
  for (int i = 0; i < 20000; i++) {
    size_t n;
    switch (i % 5) {
      case 0:
        n = 1 + rng.below (sizeof (d));
        rng.fill (d, n);
        break;
      case 1:
        n = 1 + rng.below (request.size () - 1);
        std::copy (request.begin (), request.begin () + n, d);
        break;
      case 2:
        n = badRequest.size ();
        std::copy (badRequest.begin (), badRequest.end (), d);
        break;
      case 3:
        n = 13 + rng.below (500);
        rng.fill (d, n);
        d[0] = 22;
        break;
      default:
        n = request.size ();
        std::copy (request.begin (), request.end (), d);
        d[30] ^= 0xff;  /* breaks integrity and fingerprint */
        break;
    }
    sendto (fd, d, n, 0, to.sa (), to.length);
    if (i % 200 == 0) {
      h.pushVideo (false);
      pushed++;
    }
  }
  close (fd);
  EXPECT_TRUE (v->pumpUntil ([&] { return int (v->count ("video")) == pushed; }, 3s))
      << v->count ("video") << " of " << pushed;
  EXPECT_EQ (h.stat ("connected"), 1u);
  EXPECT_GT (h.stat ("invalid") + h.stat ("rate-limited"), 10000u);
}

TEST (WebRtcFanout, StoppingRemovesEveryViewer)
{
  auto *h = new FanoutHarness ();
  std::string id;
  auto v = h->connectViewer (&id);
  ASSERT_TRUE (v);
  GstBus *bus = GST_BUS (gst_object_ref (h->bus));
  gst_element_set_state (h->element, GST_STATE_NULL);
  EXPECT_EQ (removedReasonFrom (bus, id, GST_SECOND), "stopped");
  gint port = -1;
  g_object_get (h->element, "bound-port", &port, nullptr);
  EXPECT_EQ (port, 0);
  delete h;
  gst_object_unref (bus);
}

/* ------------------------------------------------------------------ */
/* A webrtcbin viewer, driven by the test: its offer through add-viewer,
 * the answer back, frames decoded from what the fan-out sends. */

namespace {

GstStructure *
waitReply (GstPromise *promise)
{
  if (gst_promise_wait (promise) != GST_PROMISE_RESULT_REPLIED)
    return nullptr;
  const GstStructure *s = gst_promise_get_reply (promise);
  return s ? gst_structure_copy (s) : nullptr;
}

class WebrtcbinViewer {
public:
  WebrtcbinViewer ()
  {
    pipeline_ = gst_pipeline_new ("viewer");
    webrtc_ = gst_element_factory_make ("webrtcbin", "w");
    gst_bin_add (GST_BIN (pipeline_), webrtc_);
    xdn::IceSettings ice;
    ice.addresses = {"127.0.0.1"};
    std::string error;
    configured_ = xdn::configureWebRtcBin (webrtc_, ice, &error);
    GstCaps *video = gst_caps_from_string ("application/x-rtp, media=video, encoding-name=H264, "
        "clock-rate=90000, payload=96, packetization-mode=(string)1, "
        "profile-level-id=(string)42e01f, rtcp-fb-nack=(boolean)true, "
        "rtcp-fb-nack-pli=(boolean)true");
    GstCaps *audio = gst_caps_from_string ("application/x-rtp, media=audio, encoding-name=OPUS, "
        "clock-rate=48000, payload=111, encoding-params=(string)2");
    GstWebRTCRTPTransceiver *t = nullptr;
    g_signal_emit_by_name (webrtc_, "add-transceiver",
        GST_WEBRTC_RTP_TRANSCEIVER_DIRECTION_RECVONLY, video, &t);
    if (t)
      gst_object_unref (t);
    g_signal_emit_by_name (webrtc_, "add-transceiver",
        GST_WEBRTC_RTP_TRANSCEIVER_DIRECTION_RECVONLY, audio, &t);
    if (t)
      gst_object_unref (t);
    gst_caps_unref (video);
    gst_caps_unref (audio);
    g_signal_connect (webrtc_, "pad-added", G_CALLBACK (onPadAdded), this);
    gst_element_set_state (pipeline_, GST_STATE_PLAYING);
  }
  ~WebrtcbinViewer ()
  {
    gst_element_set_state (pipeline_, GST_STATE_NULL);
    gst_object_unref (pipeline_);
  }

  std::string createOffer ()
  {
    if (!configured_)
      return "";
    GstPromise *p = gst_promise_new ();
    g_signal_emit_by_name (webrtc_, "create-offer", nullptr, p);
    GstStructure *reply = waitReply (p);
    gst_promise_unref (p);
    GstWebRTCSessionDescription *offer = nullptr;
    if (reply) {
      gst_structure_get (reply, "offer", GST_TYPE_WEBRTC_SESSION_DESCRIPTION, &offer, nullptr);
      gst_structure_free (reply);
    }
    if (!offer)
      return "";
    p = gst_promise_new ();
    g_signal_emit_by_name (webrtc_, "set-local-description", offer, p);
    reply = waitReply (p);
    gst_promise_unref (p);
    if (reply)
      gst_structure_free (reply);
    gchar *text = gst_sdp_message_as_text (offer->sdp);
    std::string s (text);
    g_free (text);
    gst_webrtc_session_description_free (offer);
    return s;
  }

  bool setAnswer (const std::string &text)
  {
    GstSDPMessage *sdp;
    gst_sdp_message_new (&sdp);
    if (gst_sdp_message_parse_buffer ((const guint8 *) text.data (), text.size (), sdp) != GST_SDP_OK) {
      gst_sdp_message_free (sdp);
      return false;
    }
    GstWebRTCSessionDescription *answer =
        gst_webrtc_session_description_new (GST_WEBRTC_SDP_TYPE_ANSWER, sdp);
    GstPromise *p = gst_promise_new ();
    g_signal_emit_by_name (webrtc_, "set-remote-description", answer, p);
    GstStructure *reply = waitReply (p);
    gst_promise_unref (p);
    gst_webrtc_session_description_free (answer);
    bool ok = !(reply && gst_structure_has_field (reply, "error"));
    if (reply)
      gst_structure_free (reply);
    return ok;
  }

  bool waitFrames (int video, int audio, std::chrono::seconds timeout)
  {
    std::unique_lock<std::mutex> l (lock_);
    return cond_.wait_for (l, timeout, [&] { return videoFrames_ >= video && audioFrames_ >= audio; });
  }
  int videoFrames () { std::lock_guard<std::mutex> l (lock_); return videoFrames_; }
  int audioFrames () { std::lock_guard<std::mutex> l (lock_); return audioFrames_; }

private:
  static void onPadAdded (GstElement *, GstPad *pad, WebrtcbinViewer *self)
  {
    if (GST_PAD_DIRECTION (pad) != GST_PAD_SRC)
      return;
    GstCaps *caps = gst_pad_get_current_caps (pad);
    if (!caps)
      caps = gst_pad_query_caps (pad, nullptr);
    const gchar *media = gst_structure_get_string (gst_caps_get_structure (caps, 0), "media");
    const bool video = g_strcmp0 (media, "video") == 0;
    gst_caps_unref (caps);
    GstElement *bin = gst_parse_bin_from_description (video
        ? "rtph264depay ! avdec_h264 ! fakesink name=s signal-handoffs=true sync=false"
        : "rtpopusdepay ! opusdec ! fakesink name=s signal-handoffs=true sync=false",
        TRUE, nullptr);
    GstElement *sink = gst_bin_get_by_name (GST_BIN (bin), "s");
    g_signal_connect (sink, "handoff", G_CALLBACK (video ? onVideo : onAudio), self);
    gst_object_unref (sink);
    gst_bin_add (GST_BIN (self->pipeline_), bin);
    gst_element_sync_state_with_parent (bin);
    GstPad *sinkpad = gst_element_get_static_pad (bin, "sink");
    gst_pad_link (pad, sinkpad);
    gst_object_unref (sinkpad);
  }
  static void onVideo (GstElement *, GstBuffer *, GstPad *, WebrtcbinViewer *self)
  {
    std::lock_guard<std::mutex> l (self->lock_);
    self->videoFrames_++;
    self->cond_.notify_all ();
  }
  static void onAudio (GstElement *, GstBuffer *, GstPad *, WebrtcbinViewer *self)
  {
    std::lock_guard<std::mutex> l (self->lock_);
    self->audioFrames_++;
    self->cond_.notify_all ();
  }

  GstElement *pipeline_;
  GstElement *webrtc_;
  bool configured_ = false;
  std::mutex lock_;
  std::condition_variable cond_;
  int videoFrames_ = 0;
  int audioFrames_ = 0;
};

bool
haveElements (std::initializer_list<const char *> names)
{
  for (const char *n : names)
    if (GstElementFactory *f = gst_element_factory_find (n))
      gst_object_unref (f);
    else
      return false;
  return true;
}

}  // namespace

TEST (WebRtcFanout, AnswersWhatWebrtcbinOffers)
{
  if (!haveElements ({"webrtcbin"}))
    GTEST_SKIP () << "webrtcbin missing";
  WebrtcbinViewer viewer;
  const std::string offer = viewer.createOffer ();
  ASSERT_FALSE (offer.empty ());
  xdn::fanout::TrackCodec video;
  video.trackId = 0;
  video.encodingName = "H264";
  video.clockRate = 90000;
  video.profileLevelId = "42c01e";
  video.packetizationMode = 1;
  xdn::fanout::TrackCodec audio;
  audio.trackId = 1;
  audio.kind = xdn::fanout::MediaKind::Audio;
  audio.encodingName = "OPUS";
  audio.clockRate = 48000;
  xdn::fanout::SdpAnswerParams params;
  params.iceUfrag = "abcdABCD1234";
  params.icePwd = "abcdefghijklmnopqrstuvwx";
  params.fingerprint = "sha-256 00:11";
  params.addresses = {"127.0.0.1"};
  params.port = 5000;
  params.cname = "c";
  std::string error;
  auto n = xdn::fanout::SdpAnswerer ({video, audio}).answer (offer, params, &error);
  ASSERT_TRUE (n) << error << "\n" << offer;
  ASSERT_EQ (n->accepted.size (), 2u) << offer;
  EXPECT_EQ (n->accepted[0].payloadType, 96);
  EXPECT_TRUE (n->accepted[0].nack);
  EXPECT_TRUE (n->accepted[0].pli);
  EXPECT_EQ (n->accepted[1].payloadType, 111);
}

TEST (WebRtcFanout, WebrtcbinViewerDecodesVideoAndAudioFromX264Pipeline)
{
  if (!haveElements ({"webrtcbin", "x264enc", "avdec_h264", "opusenc", "opusdec"}))
    GTEST_SKIP () << "webrtcbin, x264enc, avdec_h264 or opus elements missing";
  GError *error = nullptr;
  GstElement *sender = gst_parse_launch (
      "videotestsrc is-live=true ! video/x-raw,width=320,height=240,framerate=30/1 ! "
      "x264enc tune=zerolatency speed-preset=ultrafast key-int-max=60 ! "
      "video/x-h264,profile=constrained-baseline ! "
      "rtph264pay config-interval=-1 aggregate-mode=zero-latency ! f.sink_0 "
      "audiotestsrc is-live=true ! opusenc ! rtpopuspay ! f.sink_1 "
      "xdnwebrtcfanout name=f address=127.0.0.1 threads=1", &error);
  ASSERT_TRUE (sender) << (error ? error->message : "");
  GstElement *fanout = gst_bin_get_by_name (GST_BIN (sender), "f");
  gst_element_set_state (sender, GST_STATE_PLAYING);
  /* the tracks' caps arrive with the first buffers */
  const gint64 end = g_get_monotonic_time () + 10 * G_USEC_PER_SEC;
  guint64 tracks = 0;
  while (tracks < 2 && g_get_monotonic_time () < end) {
    GstStructure *s = nullptr;
    g_object_get (fanout, "stats", &s, nullptr);
    gst_structure_get_uint64 (s, "tracks", &tracks);
    gst_structure_free (s);
    g_usleep (20000);
  }
  ASSERT_EQ (tracks, 2u);

  {
    WebrtcbinViewer viewer;
    const std::string offer = viewer.createOffer ();
    ASSERT_FALSE (offer.empty ());
    GstStructure *r = nullptr;
    g_signal_emit_by_name (fanout, "add-viewer", offer.c_str (), &r);
    ASSERT_TRUE (r) << offer;
    const std::string answer = gst_structure_get_string (r, "answer");
    gst_structure_free (r);
    ASSERT_TRUE (viewer.setAnswer (answer)) << answer;
    EXPECT_TRUE (viewer.waitFrames (30, 10, 20s))
        << "decoded video " << viewer.videoFrames () << " audio " << viewer.audioFrames ();
    /* Still served after the viewer-timeout (10 s): webrtcbin sends no
     * ICE consent, its RTCP receiver reports (about every 5 s) keep it. */
    const int decoded = viewer.videoFrames ();
    EXPECT_TRUE (viewer.waitFrames (decoded + 330, 0, 20s))
        << "decoded video " << viewer.videoFrames ();
    GstStructure *s = nullptr;
    g_object_get (fanout, "stats", &s, nullptr);
    guint64 connected = 0, requests = 0;
    gst_structure_get_uint64 (s, "connected", &connected);
    gst_structure_get_uint64 (s, "keyframe-requests", &requests);
    gst_structure_free (s);
    EXPECT_EQ (connected, 1u);
    EXPECT_GE (requests, 1u);
  }
  gst_element_set_state (sender, GST_STATE_NULL);
  gst_object_unref (fanout);
  gst_object_unref (sender);
}
