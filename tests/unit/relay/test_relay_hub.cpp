/* xdnrelaysink -> hub -> xdnrelaysrc, driven through GstHarness. */
#include <gtest/gtest.h>

#include <gst/check/gstharness.h>
#include <gst/check/gsttestclock.h>
#include <gst/video/video.h>

#include <atomic>
#include <chrono>
#include <map>
#include <thread>

#include "gstxdnrelaysink.h"
#include "gstxdnrelaysrc.h"
#include "relay-test-util.h"
#include "xdn-hub.h"

using namespace relaytest;

namespace {

const char *kH264Caps = "application/x-rtp, media=(string)video, clock-rate=(int)90000, "
    "encoding-name=(string)H264, payload=(int)96, packetization-mode=(string)1";
const char *kOpusCaps = "application/x-rtp, media=(string)audio, clock-rate=(int)48000, "
    "encoding-name=(string)OPUS, payload=(int)111";

std::string
uniqueStream ()
{
  const auto *info = ::testing::UnitTest::GetInstance ()->current_test_info ();
  return std::string ("test/") + info->name ();
}

/* An xdnrelaysink with one harness per track (pad sink_<n>). */
class Publisher {
public:
  explicit Publisher (const std::string &stream)
  {
    sink_ = gst_element_factory_make ("xdnrelaysink", nullptr);
    g_object_set (sink_, "stream", stream.c_str (), nullptr);
  }
  ~Publisher () { stop (); }

  /* Adds track @id with @caps; the first call sets the element PLAYING. */
  GstHarness *addTrack (guint id, const char *caps)
  {
    GUniquePtr pad (g_strdup_printf ("sink_%u", id));
    GstHarness *h = gst_harness_new_with_element (sink_, pad.get (), nullptr);
    if (tracks_.empty ())
      gst_harness_use_testclock (h);
    gst_harness_set_src_caps_str (h, caps);
    tracks_[id] = h;
    return h;
  }
  GstHarness *track (guint id) { return tracks_.at (id); }
  GstElement *element () { return sink_; }

  void push (guint id, GstBuffer *buf)
  {
    ASSERT_EQ (gst_harness_push (tracks_.at (id), buf), GST_FLOW_OK);
  }

  guint keyframeRequests (guint id)
  {
    guint n = 0;
    GstHarness *h = tracks_.at (id);
    while (GstEvent *e = gst_harness_try_pull_upstream_event (h)) {
      if (gst_video_event_is_force_key_unit (e)) {
        /* SPS/PPS come with the IDR (config-interval=-1), not with the
         * frame after the request. */
        gboolean all_headers = TRUE;
        gst_video_event_parse_upstream_force_key_unit (e, nullptr, &all_headers, nullptr);
        EXPECT_FALSE (all_headers);
        n++;
      }
      gst_event_unref (e);
    }
    return n;
  }

  void stop ()
  {
    for (auto &t : tracks_)
      gst_harness_teardown (t.second);
    tracks_.clear ();
    if (sink_) {
      gst_element_set_state (sink_, GST_STATE_NULL);
      gst_object_unref (sink_);
      sink_ = nullptr;
    }
  }

private:
  struct GFree { void operator() (gchar *p) const { g_free (p); } };
  using GUniquePtr = std::unique_ptr<gchar, GFree>;
  GstElement *sink_ = nullptr;
  std::map<guint, GstHarness *> tracks_;
};

/* An xdnrelaysrc in PAUSED with a harness on each of its pads. */
class Subscriber {
public:
  explicit Subscriber (const std::string &stream, guint max_queue = 1024, bool direct = false)
  {
    src_ = gst_element_factory_make ("xdnrelaysrc", nullptr);
    g_object_set (src_, "stream", stream.c_str (), "max-queue", max_queue, "direct", direct,
        nullptr);
    clock_ = gst_test_clock_new ();
    gst_element_set_clock (src_, clock_);
  }
  ~Subscriber () { stop (); }

  GstStateChangeReturn pause () { return gst_element_set_state (src_, GST_STATE_PAUSED); }

  GstHarness *attach (const char *pad_name)
  {
    GstPad *pad = gst_element_get_static_pad (src_, pad_name);
    if (!pad)
      return nullptr;
    GstHarness *h = gst_harness_new_with_element (src_, nullptr, nullptr);
    gst_harness_add_element_src_pad (h, pad);
    gst_object_unref (pad);
    pads_[pad_name] = h;
    return h;
  }

  void play () { ASSERT_NE (gst_element_set_state (src_, GST_STATE_PLAYING), GST_STATE_CHANGE_FAILURE); }
  void setTime (GstClockTime t) { gst_test_clock_set_time (GST_TEST_CLOCK (clock_), t); }
  GstHarness *pad (const char *name) { return pads_.at (name); }
  GstElement *element () { return src_; }

  guint64 dropped ()
  {
    guint64 d = 0;
    g_object_get (src_, "dropped", &d, nullptr);
    return d;
  }

  void stop ()
  {
    if (src_)
      gst_element_set_state (src_, GST_STATE_NULL);
    for (auto &p : pads_)
      gst_harness_teardown (p.second);
    pads_.clear ();
    if (src_) {
      gst_object_unref (src_);
      src_ = nullptr;
    }
    if (clock_) {
      gst_object_unref (clock_);
      clock_ = nullptr;
    }
  }

private:
  GstElement *src_ = nullptr;
  GstClock *clock_ = nullptr;
  std::map<std::string, GstHarness *> pads_;
};

/* The first error an element posted on its own bus. */
GError *
stateChangeError (GstElement *element, GstState state, GstStateChangeReturn *ret)
{
  GstBus *bus = gst_bus_new ();
  gst_element_set_bus (element, bus);
  *ret = gst_element_set_state (element, state);
  GError *err = nullptr;
  if (GstMessage *msg = gst_bus_pop_filtered (bus, GST_MESSAGE_ERROR)) {
    gst_message_parse_error (msg, &err, nullptr);
    gst_message_unref (msg);
  }
  gst_element_set_state (element, GST_STATE_NULL);
  gst_element_set_bus (element, nullptr);
  gst_object_unref (bus);
  return err;
}

}  // namespace

TEST (RelayHub, LateSubscriberGetsCapsAndStartsOnKeyframe)
{
  const std::string stream = uniqueStream ();
  Publisher pub (stream);
  pub.addTrack (0, kH264Caps);
  pub.addTrack (1, kOpusCaps);
  /* Before anyone watches: a GOP that the late subscriber must not get. */
  pub.push (0, rtpPacket (1, h264Sps ()));
  pub.push (0, rtpPacket (2, h264Delta ()));
  pub.push (1, rtpPacket (1, {0xfc, 0x01}));
  EXPECT_EQ (pub.keyframeRequests (0), 0u);

  Subscriber sub (stream);
  ASSERT_EQ (sub.pause (), GST_STATE_CHANGE_NO_PREROLL);
  GstHarness *video = sub.attach ("video_0");
  GstHarness *audio = sub.attach ("audio_1");
  ASSERT_NE (video, nullptr);
  ASSERT_NE (audio, nullptr);
  /* Joining asked for a keyframe on the video track only. */
  EXPECT_EQ (pub.keyframeRequests (0), 1u);
  EXPECT_EQ (pub.keyframeRequests (1), 0u);

  sub.setTime (1 * GST_SECOND);
  sub.play ();
  pub.push (0, rtpPacket (10, h264Delta ()));
  pub.push (1, rtpPacket (2, {0xfc, 0x02}));
  pub.push (0, rtpPacket (11, h264FuA (true, false, 5)));
  sub.setTime (2 * GST_SECOND);
  pub.push (0, rtpPacket (12, h264FuA (false, true, 5)));

  /* Full caps of each track, after stream-start, before the first buffer. */
  GstEvent *caps_ev = pullEventWithin (video, GST_EVENT_CAPS);
  ASSERT_NE (caps_ev, nullptr);
  GstCaps *caps;
  gst_event_parse_caps (caps_ev, &caps);
  GstCaps *expected = gst_caps_from_string (kH264Caps);
  EXPECT_TRUE (gst_caps_is_equal (caps, expected));
  gst_caps_unref (expected);
  gst_event_unref (caps_ev);

  /* Video starts on the keyframe; the delta before it is dropped. */
  GstBuffer *b = pullWithin (video);
  ASSERT_NE (b, nullptr);
  EXPECT_EQ (rtpSeq (b), 11);
  EXPECT_EQ (GST_BUFFER_PTS (b), 1 * GST_SECOND);  /* running time at hand-over */
  EXPECT_FALSE (GST_BUFFER_DTS_IS_VALID (b));
  EXPECT_TRUE (GST_BUFFER_FLAG_IS_SET (b, GST_BUFFER_FLAG_DISCONT));
  gst_buffer_unref (b);
  b = pullWithin (video);
  ASSERT_NE (b, nullptr);
  EXPECT_EQ (rtpSeq (b), 12);
  EXPECT_EQ (GST_BUFFER_PTS (b), 2 * GST_SECOND);
  gst_buffer_unref (b);

  /* Audio starts at once. */
  b = pullWithin (audio);
  ASSERT_NE (b, nullptr);
  EXPECT_EQ (rtpSeq (b), 2);
  gst_buffer_unref (b);
  EXPECT_EQ (sub.dropped (), 0u);
}

TEST (RelayHub, SubscriberLeavesWhilePlaying)
{
  const std::string stream = uniqueStream ();
  Publisher pub (stream);
  pub.addTrack (0, kOpusCaps);

  Subscriber stays (stream), leaves (stream);
  ASSERT_EQ (stays.pause (), GST_STATE_CHANGE_NO_PREROLL);
  ASSERT_EQ (leaves.pause (), GST_STATE_CHANGE_NO_PREROLL);
  GstHarness *h = stays.attach ("audio_0");
  leaves.attach ("audio_0");
  stays.play ();
  leaves.play ();

  std::vector<GstBuffer *> sent;
  for (guint16 i = 0; i < 20; i++) {
    GstBuffer *buf = rtpPacket (i, {0xfc, guint8 (i)});
    sent.push_back (gst_buffer_ref (buf));
    pub.push (0, buf);
    if (i == 9)
      leaves.stop ();  /* gone in the middle of the stream */
  }
  for (guint16 i = 0; i < 20; i++) {
    GstBuffer *b = pullWithin (h);
    ASSERT_NE (b, nullptr) << "packet " << i;
    EXPECT_EQ (rtpSeq (b), i);
    gst_buffer_unref (b);
  }
  /* Nobody holds the published buffers any more. */
  for (GstBuffer *buf : sent) {
    EXPECT_EQ (GST_MINI_OBJECT_REFCOUNT_VALUE (buf), 1);
    gst_buffer_unref (buf);
  }
  auto stats = xdn::relay::Hub::instance ().streamStats (stream);
  ASSERT_TRUE (stats.has_value ());
  EXPECT_EQ (stats->subscribers, 1u);
}

TEST (RelayHub, BuffersAreSharedNotCopied)
{
  const std::string stream = uniqueStream ();
  Publisher pub (stream);
  pub.addTrack (0, kOpusCaps);
  Subscriber sub (stream);
  ASSERT_EQ (sub.pause (), GST_STATE_CHANGE_NO_PREROLL);
  GstHarness *h = sub.attach ("audio_0");
  sub.play ();

  GstBuffer *buf = rtpPacket (7, {0xfc, 0x07});
  pub.push (0, gst_buffer_ref (buf));
  GstBuffer *out = pullWithin (h);
  ASSERT_NE (out, nullptr);
  /* Same memory blocks: only the GstBuffer (timestamps) is per viewer. */
  ASSERT_EQ (gst_buffer_n_memory (out), gst_buffer_n_memory (buf));
  for (guint i = 0; i < gst_buffer_n_memory (buf); i++)
    EXPECT_EQ (gst_buffer_peek_memory (out, i), gst_buffer_peek_memory (buf, i));
  gst_buffer_unref (out);
  gst_buffer_unref (buf);
}

TEST (RelayHub, SlowSubscriberDropsAndOthersKeepUp)
{
  const std::string stream = uniqueStream ();
  Publisher pub (stream);
  pub.addTrack (0, kOpusCaps);

  Subscriber fast (stream), slow (stream, 8);
  ASSERT_EQ (fast.pause (), GST_STATE_CHANGE_NO_PREROLL);
  ASSERT_EQ (slow.pause (), GST_STATE_CHANGE_NO_PREROLL);
  GstHarness *h = fast.attach ("audio_0");
  slow.attach ("audio_0");
  fast.play ();
  /* slow stays PAUSED: subscribed, never drained. */

  const auto start = std::chrono::steady_clock::now ();
  for (guint16 i = 0; i < 200; i++)
    pub.push (0, rtpPacket (i, {0xfc, guint8 (i)}));
  const auto elapsed = std::chrono::steady_clock::now () - start;
  EXPECT_LT (elapsed, std::chrono::milliseconds (500)) << "the publisher was held up";

  for (guint16 i = 0; i < 200; i++) {
    GstBuffer *b = pullWithin (h);
    ASSERT_NE (b, nullptr) << "packet " << i;
    EXPECT_EQ (rtpSeq (b), i);
    gst_buffer_unref (b);
  }
  EXPECT_EQ (fast.dropped (), 0u);
  EXPECT_EQ (slow.dropped (), 200u - 8u);

  /* The slow one gets the newest packets when it finally plays, the first
   * marked DISCONT. */
  GstHarness *hs = slow.pad ("audio_0");
  slow.play ();
  GstBuffer *b = pullWithin (hs);
  ASSERT_NE (b, nullptr);
  EXPECT_EQ (rtpSeq (b), 192);
  EXPECT_TRUE (GST_BUFFER_FLAG_IS_SET (b, GST_BUFFER_FLAG_DISCONT));
  gst_buffer_unref (b);
}

TEST (RelayHub, VideoThatLostPacketsRestartsOnKeyframeAndAsksForOne)
{
  const std::string stream = uniqueStream ();
  Publisher pub (stream);
  pub.addTrack (0, kH264Caps);
  Subscriber slow (stream, 4);
  ASSERT_EQ (slow.pause (), GST_STATE_CHANGE_NO_PREROLL);
  GstHarness *h = slow.attach ("video_0");
  EXPECT_EQ (pub.keyframeRequests (0), 1u);  /* join */

  pub.push (0, rtpPacket (1, h264Sps ()));
  for (guint16 seq = 2; seq <= 6; seq++)   /* the 5th packet overflows */
    pub.push (0, rtpPacket (seq, h264Delta ()));
  /* The queued part of the broken GOP is dropped; packet 6 is skipped (the
   * track waits for a keyframe), not counted as dropped. */
  EXPECT_EQ (slow.dropped (), 4u);
  /* The request right after the join's is held back by the rate limit... */
  EXPECT_EQ (pub.keyframeRequests (0), 0u);
  /* ...and goes with the first packet after the interval. */
  gst_harness_set_time (pub.track (0), GST_SECOND);
  pub.push (0, rtpPacket (7, h264Delta ()));  /* skipped: waits for a keyframe */
  EXPECT_EQ (pub.keyframeRequests (0), 1u);
  pub.push (0, rtpPacket (8, h264Sps ()));
  pub.push (0, rtpPacket (9, h264Delta ()));
  slow.play ();
  GstBuffer *b = pullWithin (h);
  ASSERT_NE (b, nullptr);
  EXPECT_EQ (rtpSeq (b), 8);
  EXPECT_TRUE (GST_BUFFER_FLAG_IS_SET (b, GST_BUFFER_FLAG_DISCONT));
  gst_buffer_unref (b);
  b = pullWithin (h);
  ASSERT_NE (b, nullptr);
  EXPECT_EQ (rtpSeq (b), 9);
  gst_buffer_unref (b);
}

TEST (RelayHub, KeyframeRequestReachesPublisherRateLimited)
{
  const std::string stream = uniqueStream ();
  Publisher pub (stream);
  g_object_set (pub.element (), "keyframe-min-interval", guint64 (500 * GST_MSECOND), nullptr);
  pub.addTrack (0, kH264Caps);
  gst_harness_set_time (pub.track (0), 10 * GST_SECOND);

  Subscriber sub (stream);
  ASSERT_EQ (sub.pause (), GST_STATE_CHANGE_NO_PREROLL);
  GstHarness *h = sub.attach ("video_0");
  sub.play ();
  EXPECT_EQ (pub.keyframeRequests (0), 1u);  /* on join */

  /* A viewer's PLI through webrtcbin: upstream force-key-unit on the pad. */
  auto fku = [] { return gst_video_event_new_upstream_force_key_unit (GST_CLOCK_TIME_NONE, TRUE, 1); };
  gst_harness_set_time (pub.track (0), 10 * GST_SECOND + 100 * GST_MSECOND);
  EXPECT_TRUE (gst_harness_push_upstream_event (h, fku ()));
  EXPECT_EQ (pub.keyframeRequests (0), 0u);  /* within the interval */

  gst_harness_set_time (pub.track (0), 10 * GST_SECOND + 600 * GST_MSECOND);
  EXPECT_TRUE (gst_harness_push_upstream_event (h, fku ()));
  EXPECT_EQ (pub.keyframeRequests (0), 1u);
  EXPECT_TRUE (gst_harness_push_upstream_event (h, fku ()));
  EXPECT_EQ (pub.keyframeRequests (0), 0u);

  gst_harness_set_time (pub.track (0), 11 * GST_SECOND + 200 * GST_MSECOND);
  EXPECT_TRUE (gst_harness_push_upstream_event (h, fku ()));
  EXPECT_EQ (pub.keyframeRequests (0), 1u);

  GstStructure *stats = nullptr;
  g_object_get (pub.element (), "stats", &stats, nullptr);
  ASSERT_NE (stats, nullptr);
  guint64 sent = 0;
  EXPECT_TRUE (gst_structure_get_uint64 (stats, "keyframe-requests", &sent));
  EXPECT_EQ (sent, 3u);
  const GValue *tracks = gst_structure_get_value (stats, "tracks");
  ASSERT_EQ (gst_value_array_get_size (tracks), 1u);
  const GstStructure *t0 = gst_value_get_structure (gst_value_array_get_value (tracks, 0));
  guint64 limited = 0;
  EXPECT_TRUE (gst_structure_get_uint64 (t0, "keyframe-requests-limited", &limited));
  EXPECT_EQ (limited, 2u);
  EXPECT_STREQ (gst_structure_get_string (t0, "kind"), "video");
  EXPECT_STREQ (gst_structure_get_string (t0, "codec"), "H264");
  gst_structure_free (stats);
}

TEST (RelayHub, SecondPublisherIsRefused)
{
  const std::string stream = uniqueStream ();
  Publisher first (stream);
  first.addTrack (0, kOpusCaps);

  GstElement *second = gst_element_factory_make ("xdnrelaysink", nullptr);
  g_object_set (second, "stream", stream.c_str (), nullptr);
  GstStateChangeReturn ret;
  GError *err = stateChangeError (second, GST_STATE_PAUSED, &ret);
  EXPECT_EQ (ret, GST_STATE_CHANGE_FAILURE);
  ASSERT_NE (err, nullptr);
  EXPECT_TRUE (g_error_matches (err, GST_RESOURCE_ERROR, GST_RESOURCE_ERROR_BUSY));
  EXPECT_NE (std::string (err->message).find (stream), std::string::npos) << err->message;
  g_error_free (err);
  gst_object_unref (second);

  /* The first one is unaffected, and the name is free once it leaves. */
  EXPECT_TRUE (xdn::relay::Hub::instance ().isPublished (stream));
  first.stop ();
  EXPECT_FALSE (xdn::relay::Hub::instance ().isPublished (stream));
  Publisher third (stream);
  third.addTrack (0, kOpusCaps);
  EXPECT_TRUE (xdn::relay::Hub::instance ().isPublished (stream));
}

TEST (RelayHub, PublisherGoneSendsEos)
{
  const std::string stream = uniqueStream ();
  auto pub = std::make_unique<Publisher> (stream);
  pub->addTrack (0, kH264Caps);
  pub->addTrack (1, kOpusCaps);
  Subscriber sub (stream);
  ASSERT_EQ (sub.pause (), GST_STATE_CHANGE_NO_PREROLL);
  GstHarness *video = sub.attach ("video_0");
  GstHarness *audio = sub.attach ("audio_1");
  sub.play ();
  pub->push (1, rtpPacket (1, {0xfc, 0x01}));
  GstBuffer *b = pullWithin (audio);
  ASSERT_NE (b, nullptr);
  gst_buffer_unref (b);

  pub.reset ();  /* the publisher's pipeline goes to NULL */
  GstEvent *eos = pullEventWithin (video, GST_EVENT_EOS);
  EXPECT_NE (eos, nullptr);
  if (eos)
    gst_event_unref (eos);
  eos = pullEventWithin (audio, GST_EVENT_EOS);
  EXPECT_NE (eos, nullptr);
  if (eos)
    gst_event_unref (eos);
}

TEST (RelayHub, EosOnOneTrackEndsThatTrackOnly)
{
  const std::string stream = uniqueStream ();
  Publisher pub (stream);
  pub.addTrack (0, kH264Caps);
  pub.addTrack (1, kOpusCaps);
  Subscriber sub (stream);
  ASSERT_EQ (sub.pause (), GST_STATE_CHANGE_NO_PREROLL);
  GstHarness *video = sub.attach ("video_0");
  GstHarness *audio = sub.attach ("audio_1");
  sub.play ();

  ASSERT_TRUE (gst_harness_push_event (pub.track (1), gst_event_new_eos ()));
  GstEvent *eos = pullEventWithin (audio, GST_EVENT_EOS);
  ASSERT_NE (eos, nullptr);
  gst_event_unref (eos);
  EXPECT_TRUE (xdn::relay::Hub::instance ().isPublished (stream));

  pub.push (0, rtpPacket (1, h264Sps ()));
  GstBuffer *b = pullWithin (video);
  ASSERT_NE (b, nullptr);
  gst_buffer_unref (b);

  /* The last track ends: the stream ends. */
  ASSERT_TRUE (gst_harness_push_event (pub.track (0), gst_event_new_eos ()));
  eos = pullEventWithin (video, GST_EVENT_EOS);
  ASSERT_NE (eos, nullptr);
  gst_event_unref (eos);
  EXPECT_FALSE (xdn::relay::Hub::instance ().isPublished (stream));
}

TEST (RelayHub, UnknownStreamFailsClearly)
{
  GstElement *src = gst_element_factory_make ("xdnrelaysrc", nullptr);
  g_object_set (src, "stream", "test/nobody-here", nullptr);
  GstStateChangeReturn ret;
  GError *err = stateChangeError (src, GST_STATE_PAUSED, &ret);
  EXPECT_EQ (ret, GST_STATE_CHANGE_FAILURE);
  ASSERT_NE (err, nullptr);
  EXPECT_TRUE (g_error_matches (err, GST_RESOURCE_ERROR, GST_RESOURCE_ERROR_NOT_FOUND));
  EXPECT_STREQ (err->message, "stream \"test/nobody-here\" is not published");
  g_error_free (err);
  gst_object_unref (src);
}

TEST (RelayHub, WaitForStreamJoinsWhenPublished)
{
  const std::string stream = uniqueStream ();
  GstElement *src = gst_element_factory_make ("xdnrelaysrc", nullptr);
  g_object_set (src, "stream", stream.c_str (), "wait-for-stream", TRUE, nullptr);
  std::atomic<int> pads_added{0};
  GstHarness *h = gst_harness_new_with_element (src, nullptr, nullptr);
  struct Ctx { GstHarness *h; std::atomic<int> *n; } ctx{h, &pads_added};
  g_signal_connect (src, "pad-added", G_CALLBACK (+[] (GstElement *, GstPad *pad, gpointer data) {
    auto *c = static_cast<Ctx *> (data);
    gst_harness_add_element_src_pad (c->h, pad);
    (*c->n)++;
  }), &ctx);
  ASSERT_EQ (gst_element_set_state (src, GST_STATE_PLAYING), GST_STATE_CHANGE_SUCCESS);
  EXPECT_EQ (pads_added.load (), 0);

  {
    Publisher pub (stream);
    pub.addTrack (0, kOpusCaps);
    pub.push (0, rtpPacket (5, {0xfc, 0x05}));
    GstBuffer *b = pullWithin (h);
    ASSERT_NE (b, nullptr);
    EXPECT_EQ (rtpSeq (b), 5);
    gst_buffer_unref (b);
    EXPECT_EQ (pads_added.load (), 1);
  }
  GstEvent *eos = pullEventWithin (h, GST_EVENT_EOS);
  EXPECT_NE (eos, nullptr);
  if (eos)
    gst_event_unref (eos);
  gst_element_set_state (src, GST_STATE_NULL);
  gst_harness_teardown (h);
  gst_object_unref (src);
}

TEST (RelayHub, UnsupportedUriFailsClearly)
{
  for (const char *factory : {"xdnrelaysink", "xdnrelaysrc"}) {
    GstElement *e = gst_element_factory_make (factory, nullptr);
    g_object_set (e, "stream", "x", "uri", "udp://127.0.0.1:9000", nullptr);
    GstStateChangeReturn ret;
    GError *err = stateChangeError (e, GST_STATE_READY, &ret);
    EXPECT_EQ (ret, GST_STATE_CHANGE_FAILURE);
    ASSERT_NE (err, nullptr);
    EXPECT_NE (std::string (err->message).find ("unsupported relay uri udp://127.0.0.1:9000"),
        std::string::npos) << err->message;
    g_error_free (err);
    gst_object_unref (e);
  }
}

TEST (RelayHub, InvalidStreamNameFailsClearly)
{
  for (const char *factory : {"xdnrelaysink", "xdnrelaysrc"}) {
    GstElement *e = gst_element_factory_make (factory, nullptr);
    g_object_set (e, "stream", "live/../etc", nullptr);
    GstStateChangeReturn ret;
    GError *err = stateChangeError (e, GST_STATE_READY, &ret);
    EXPECT_EQ (ret, GST_STATE_CHANGE_FAILURE);
    ASSERT_NE (err, nullptr);
    EXPECT_NE (std::string (err->message).find ("live/../etc"), std::string::npos) << err->message;
    g_error_free (err);
    gst_object_unref (e);
  }
}

TEST (RelayHub, NewCapsReachSubscribers)
{
  const std::string stream = uniqueStream ();
  Publisher pub (stream);
  pub.addTrack (0, kOpusCaps);
  Subscriber sub (stream);
  ASSERT_EQ (sub.pause (), GST_STATE_CHANGE_NO_PREROLL);
  GstHarness *h = sub.attach ("audio_0");
  sub.play ();
  GstEvent *e = pullEventWithin (h, GST_EVENT_CAPS, 0);
  if (e)
    gst_event_unref (e);

  const char *stereo = "application/x-rtp, media=(string)audio, clock-rate=(int)48000, "
      "encoding-name=(string)OPUS, payload=(int)111, sprop-stereo=(string)1";
  gst_harness_set_src_caps_str (pub.track (0), stereo);
  pub.push (0, rtpPacket (1, {0xfc, 0x01}));
  GstBuffer *b = pullWithin (h);
  ASSERT_NE (b, nullptr);
  gst_buffer_unref (b);
  e = pullEventWithin (h, GST_EVENT_CAPS, 0);
  ASSERT_NE (e, nullptr);
  GstCaps *caps;
  gst_event_parse_caps (e, &caps);
  EXPECT_STREQ (gst_structure_get_string (gst_caps_get_structure (caps, 0), "sprop-stereo"), "1");
  gst_event_unref (e);
}

/* Subscribers join and leave (from PLAYING or PAUSED) while a thread
 * publishes: none hangs, and the stream is left with none. */
void
subscribersComeAndGo (const std::string &stream, bool direct)
{
  Publisher pub (stream);
  pub.addTrack (0, kH264Caps);
  pub.addTrack (1, kOpusCaps);
  GstHarness *video = pub.track (0), *audio = pub.track (1);

  std::atomic<bool> running{true};
  std::thread publisher ([&] {
    guint16 seq = 0;
    while (running) {
      gst_harness_push (video, rtpPacket (seq, seq % 10 == 0 ? h264Sps () : h264Delta ()));
      gst_harness_push (audio, rtpPacket (seq, {0xfc, 0x00}));
      seq++;
      g_usleep (100);
    }
  });
  for (int i = 0; i < 30; i++) {
    Subscriber sub (stream, 16, direct);
    ASSERT_EQ (sub.pause (), GST_STATE_CHANGE_NO_PREROLL);
    GstHarness *h = sub.attach ("audio_1");
    ASSERT_NE (h, nullptr);
    if (i % 2) {
      sub.play ();
      GstBuffer *b = pullWithin (h);
      EXPECT_NE (b, nullptr);
      if (b)
        gst_buffer_unref (b);
    }
    /* even: leaves while PAUSED with packets queued */
  }
  running = false;
  publisher.join ();
  auto stats = xdn::relay::Hub::instance ().streamStats (stream);
  ASSERT_TRUE (stats.has_value ());
  EXPECT_EQ (stats->subscribers, 0u);
}

TEST (RelayHub, SubscribersComeAndGoWhilePublishing)
{
  subscribersComeAndGo (uniqueStream (), false);
}

/* With direct delivery the publisher's thread is inside the leaving
 * subscriber's pads: leaving waits for it to be out. */
TEST (RelayHub, DirectSubscribersComeAndGoWhilePublishing)
{
  subscribersComeAndGo (uniqueStream (), true);
}

/* The node's serving pipeline links each pad in pad-added to an xdnrelaysink:
 * the sink must learn every track's caps at once (and describe it), not with
 * the track's first buffer, which for video waits for a keyframe. */
TEST (RelayHub, PeerLinkedInPadAddedGetsCapsBeforeAnyBuffer)
{
  const std::string stream = uniqueStream ();
  Publisher pub (stream);
  pub.addTrack (0, kH264Caps);

  GstElement *src = gst_element_factory_make ("xdnrelaysrc", nullptr);
  GstElement *sink = gst_element_factory_make ("xdnrelaysink", nullptr);
  g_object_set (src, "stream", stream.c_str (), nullptr);
  g_object_set (sink, "stream", (stream + "-copy").c_str (), nullptr);
  RelayChain chain (src, sink);
  ASSERT_NE (gst_element_set_state (chain.pipeline (), GST_STATE_PLAYING),
      GST_STATE_CHANGE_FAILURE);

  GstCaps *h264 = gst_caps_from_string (kH264Caps);
  GstCaps *opus = gst_caps_from_string (kOpusCaps);
  auto described = [&] (guint id, GstCaps *expected) {
    auto caps = describedCaps (sink);
    if (caps.count (id) == 0 || caps[id].empty ())
      return false;
    GstCaps *c = gst_caps_from_string (caps[id].c_str ());
    const bool equal = c && gst_caps_is_equal (c, expected);
    if (c)
      gst_caps_unref (c);
    return equal;
  };
  /* A track the stream had when the source subscribed (state change)... */
  EXPECT_TRUE (waitUntil ([&] { return described (0, h264); }, 2000))
      << "video caps described with no packet published";
  /* ...and one added later (streaming thread). */
  pub.addTrack (1, kOpusCaps);
  EXPECT_TRUE (waitUntil ([&] { return described (1, opus); }, 2000))
      << "audio caps described with no packet published";
  gst_caps_unref (h264);
  gst_caps_unref (opus);
}

/* direct=true: a packet comes out on the publisher's own thread, before its
 * push returns. A track added later, which no packet carries, still gets
 * its pad (from the element's thread), and the publisher leaving still
 * ends every pad. */
TEST (RelayHub, DirectSubscriberGetsPacketsOnThePublishersThread)
{
  const std::string stream = uniqueStream ();
  Publisher pub (stream);
  pub.addTrack (0, kH264Caps);
  Subscriber sub (stream, 1024, true);
  ASSERT_EQ (sub.pause (), GST_STATE_CHANGE_NO_PREROLL);
  GstHarness *video = sub.attach ("video_0");
  sub.play ();

  std::thread::id pushedOn;
  GstPad *pad = gst_element_get_static_pad (sub.element (), "video_0");
  gulong probe = gst_pad_add_probe (pad, GST_PAD_PROBE_TYPE_BUFFER,
      [] (GstPad *, GstPadProbeInfo *, gpointer data) {
        *static_cast<std::thread::id *> (data) = std::this_thread::get_id ();
        return GST_PAD_PROBE_OK;
      }, &pushedOn, nullptr);
  pub.push (0, rtpPacket (7, h264Sps ()));
  GstBuffer *b = gst_harness_try_pull (video);
  ASSERT_NE (b, nullptr) << "not delivered before the publisher's push returned";
  EXPECT_EQ (rtpSeq (b), 7);
  gst_buffer_unref (b);
  EXPECT_EQ (pushedOn, std::this_thread::get_id ());
  gst_pad_remove_probe (pad, probe);
  gst_object_unref (pad);

  pub.addTrack (1, kOpusCaps);
  ASSERT_TRUE (waitUntil ([&] {
    GstPad *p = gst_element_get_static_pad (sub.element (), "audio_1");
    if (p)
      gst_object_unref (p);
    return p != nullptr;
  }, 2000)) << "no pad for the track added later";
  GstHarness *audio = sub.attach ("audio_1");
  /* (the element's thread may still be finishing the new track's event,
   * and then delivers this packet too: wait for it) */
  pub.push (1, rtpPacket (3, {0xfc, 0x01}));
  b = pullWithin (audio);
  ASSERT_NE (b, nullptr);
  EXPECT_EQ (rtpSeq (b), 3);
  gst_buffer_unref (b);

  pub.stop ();
  for (GstHarness *h : {video, audio}) {
    GstEvent *eos = pullEventWithin (h, GST_EVENT_EOS);
    EXPECT_NE (eos, nullptr);
    if (eos)
      gst_event_unref (eos);
  }
}

/* Two publisher threads (one per track) with direct delivery: every packet
 * arrives, in order on each track, and never two at once downstream. */
TEST (RelayHub, DirectDeliveryIsOneAtATimeAndInOrder)
{
  constexpr guint16 kPackets = 400;
  const std::string stream = uniqueStream ();
  Publisher pub (stream);
  pub.addTrack (0, kOpusCaps);
  pub.addTrack (1, kOpusCaps);
  Subscriber sub (stream, 2 * kPackets, true);
  ASSERT_EQ (sub.pause (), GST_STATE_CHANGE_NO_PREROLL);
  GstHarness *first = sub.attach ("audio_0");
  GstHarness *second = sub.attach ("audio_1");
  sub.play ();

  struct Overlap {
    std::atomic<int> inside {0};
    std::atomic<bool> seen {false};
  } overlap;
  auto onBuffer = [] (GstPad *, GstPadProbeInfo *, gpointer data) {
    auto *o = static_cast<Overlap *> (data);
    if (o->inside.fetch_add (1) != 0)
      o->seen = true;
    g_usleep (20);  /* widens the window another delivery would overlap in */
    o->inside.fetch_sub (1);
    return GST_PAD_PROBE_OK;
  };
  for (const char *name : {"audio_0", "audio_1"}) {
    GstPad *pad = gst_element_get_static_pad (sub.element (), name);
    gst_pad_add_probe (pad, GST_PAD_PROBE_TYPE_BUFFER, onBuffer, &overlap, nullptr);
    gst_object_unref (pad);
  }
  auto publish = [&] (guint track) {
    for (guint16 seq = 0; seq < kPackets; seq++)
      pub.push (track, rtpPacket (seq, {0xfc, 0x01}));
  };
  std::thread a (publish, 0), b (publish, 1);
  a.join ();
  b.join ();

  for (GstHarness *h : {first, second}) {
    for (guint16 seq = 0; seq < kPackets; seq++) {
      GstBuffer *buf = gst_harness_try_pull (h);
      ASSERT_NE (buf, nullptr) << "packet " << seq << " missing";
      EXPECT_EQ (rtpSeq (buf), seq);
      gst_buffer_unref (buf);
    }
  }
  EXPECT_FALSE (overlap.seen);
  EXPECT_EQ (sub.dropped (), 0u);
}
