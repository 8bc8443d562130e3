/* xdnwhipsink and xdnwhepsrc against a tiny WHIP/WHEP server inside the
 * test: a SoupServer whose handler answers each offer with a webrtcbin of
 * its own (a receiver for WHIP, a sender fed by videotestsrc and
 * audiotestsrc for WHEP). Everything runs on 127.0.0.1. */
#include <gst/app/gstappsink.h>
#include <gst/video/video.h>
#include <gst/gst.h>
#include <gst/webrtc/webrtc.h>
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <map>
#include <memory>

#include "gstxdnwhepsrc.h"
#include "gstxdnwhipsink.h"
#include "test-http-server.h"
#include "xdn-ice.h"

using namespace std::chrono_literals;
using xdntest::HttpRequest;
using xdntest::HttpResponse;
using xdntest::TestHttpServer;

namespace {

void
ensureGst ()
{
  static bool done = false;
  if (done)
    return;
  gst_init (nullptr, nullptr);
  GST_ELEMENT_REGISTER (xdnwhipsink, nullptr);
  GST_ELEMENT_REGISTER (xdnwhepsrc, nullptr);
  done = true;
}

/* Waits for a promise and gives back its reply structure (a copy). */
GstStructure *
waitReply (GstPromise *promise)
{
  if (gst_promise_wait (promise) != GST_PROMISE_RESULT_REPLIED)
    return nullptr;
  const GstStructure *s = gst_promise_get_reply (promise);
  return s ? gst_structure_copy (s) : nullptr;
}

/* The server side of one session: a pipeline around a webrtcbin that
 * answers the client's offer. */
class Peer {
public:
  enum class Role { Receiver, Sender };

  explicit Peer (Role role)
  {
    if (role == Role::Sender) {
      pipeline_ = gst_parse_launch (
          "webrtcbin name=w "
          "videotestsrc is-live=true ! video/x-raw,width=320,height=240,framerate=30/1 ! "
          "x264enc tune=zerolatency speed-preset=ultrafast key-int-max=30 ! "
          "video/x-h264,profile=constrained-baseline ! "
          "rtph264pay name=pay config-interval=-1 pt=96 aggregate-mode=zero-latency ! "
          "application/x-rtp,media=video,encoding-name=H264,payload=96 ! w. "
          "audiotestsrc is-live=true ! opusenc ! rtpopuspay pt=111 ! "
          "application/x-rtp,media=audio,encoding-name=OPUS,payload=111 ! w.",
          nullptr);
    } else {
      pipeline_ = gst_pipeline_new (nullptr);
      gst_bin_add (GST_BIN (pipeline_), gst_element_factory_make ("webrtcbin", "w"));
    }
    webrtc_ = gst_bin_get_by_name (GST_BIN (pipeline_), "w");
    if (GstElement *pay = gst_bin_get_by_name (GST_BIN (pipeline_), "pay")) {
      GstPad *src = gst_element_get_static_pad (pay, "src");
      gst_pad_add_probe (src, GST_PAD_PROBE_TYPE_EVENT_UPSTREAM, keyUnitProbe, this, nullptr);
      gst_object_unref (src);
      gst_object_unref (pay);
    }
    xdn::IceSettings ice;
    ice.addresses = { "127.0.0.1" };
    std::string error;
    configured_ = xdn::configureWebRtcBin (webrtc_, ice, &error);
    g_signal_connect (webrtc_, "notify::ice-gathering-state", G_CALLBACK (onGathering), this);
    if (role == Role::Receiver)
      g_signal_connect (webrtc_, "pad-added", G_CALLBACK (onPadAdded), this);
    gst_element_set_state (pipeline_, GST_STATE_PLAYING);
  }

  ~Peer ()
  {
    gst_element_set_state (pipeline_, GST_STATE_NULL);
    g_signal_handlers_disconnect_by_data (webrtc_, this);
    gst_object_unref (webrtc_);
    gst_object_unref (pipeline_);
  }

  /* Blocking: remote offer, answer, local answer, gathering. */
  bool answer (const std::string &offerText, std::string *answerText)
  {
    if (!configured_)
      return false;
    GstSDPMessage *sdp;
    gst_sdp_message_new (&sdp);
    if (gst_sdp_message_parse_buffer ((const guint8 *) offerText.data (), offerText.size (),
            sdp) != GST_SDP_OK) {
      gst_sdp_message_free (sdp);
      return false;
    }
    GstWebRTCSessionDescription *offer =
        gst_webrtc_session_description_new (GST_WEBRTC_SDP_TYPE_OFFER, sdp);
    GstPromise *p = gst_promise_new ();
    g_signal_emit_by_name (webrtc_, "set-remote-description", offer, p);
    GstStructure *reply = waitReply (p);
    gst_promise_unref (p);
    gst_webrtc_session_description_free (offer);
    if (reply && gst_structure_has_field (reply, "error")) {
      gst_structure_free (reply);
      return false;
    }
    if (reply)
      gst_structure_free (reply);

    p = gst_promise_new ();
    g_signal_emit_by_name (webrtc_, "create-answer", nullptr, p);
    reply = waitReply (p);
    gst_promise_unref (p);
    GstWebRTCSessionDescription *answer = nullptr;
    if (reply) {
      gst_structure_get (reply, "answer", GST_TYPE_WEBRTC_SESSION_DESCRIPTION, &answer, NULL);
      gst_structure_free (reply);
    }
    if (!answer)
      return false;
    p = gst_promise_new ();
    g_signal_emit_by_name (webrtc_, "set-local-description", answer, p);
    reply = waitReply (p);
    gst_promise_unref (p);
    if (reply)
      gst_structure_free (reply);
    gst_webrtc_session_description_free (answer);

    {
      std::unique_lock<std::mutex> guard (lock_);
      cond_.wait_for (guard, 3s, [this] { return gathered_; });
    }
    GstWebRTCSessionDescription *local = nullptr;
    g_object_get (webrtc_, "local-description", &local, NULL);
    if (!local)
      return false;
    gchar *text = gst_sdp_message_as_text (local->sdp);
    *answerText = text;
    g_free (text);
    gst_webrtc_session_description_free (local);
    return true;
  }

  std::atomic<int> videoPackets{0};
  std::atomic<int> audioPackets{0};
  std::atomic<int> keyUnitRequests{0};   /* PLI/FIR turned into events by the sender */

private:
  static GstPadProbeReturn keyUnitProbe (GstPad *, GstPadProbeInfo *info, gpointer data)
  {
    if (gst_video_event_is_force_key_unit (GST_PAD_PROBE_INFO_EVENT (info)))
      static_cast<Peer *> (data)->keyUnitRequests++;
    return GST_PAD_PROBE_OK;
  }

  static void onGathering (GstElement *webrtc, GParamSpec *, Peer *self)
  {
    GstWebRTCICEGatheringState state;
    g_object_get (webrtc, "ice-gathering-state", &state, NULL);
    if (state == GST_WEBRTC_ICE_GATHERING_STATE_COMPLETE) {
      std::lock_guard<std::mutex> guard (self->lock_);
      self->gathered_ = true;
      self->cond_.notify_all ();
    }
  }

  static GstPadProbeReturn countProbe (GstPad *pad, GstPadProbeInfo *, gpointer data)
  {
    auto *self = static_cast<Peer *> (data);
    GstCaps *caps = gst_pad_get_current_caps (pad);
    if (caps) {
      const char *media = gst_structure_get_string (gst_caps_get_structure (caps, 0), "media");
      if (g_strcmp0 (media, "video") == 0)
        self->videoPackets++;
      else if (g_strcmp0 (media, "audio") == 0)
        self->audioPackets++;
      gst_caps_unref (caps);
    }
    return GST_PAD_PROBE_OK;
  }

  static void onPadAdded (GstElement *, GstPad *pad, Peer *self)
  {
    if (GST_PAD_DIRECTION (pad) != GST_PAD_SRC)
      return;
    GstElement *sink = gst_element_factory_make ("fakesink", nullptr);
    g_object_set (sink, "async", FALSE, "sync", FALSE, NULL);
    gst_bin_add (GST_BIN (self->pipeline_), sink);
    gst_element_sync_state_with_parent (sink);
    GstPad *sinkPad = gst_element_get_static_pad (sink, "sink");
    gst_pad_add_probe (sinkPad, GST_PAD_PROBE_TYPE_BUFFER, countProbe, self, nullptr);
    gst_pad_link (pad, sinkPad);
    gst_object_unref (sinkPad);
  }

  GstElement *pipeline_ = nullptr;
  GstElement *webrtc_ = nullptr;
  bool configured_ = false;
  std::mutex lock_;
  std::condition_variable cond_;
  bool gathered_ = false;
};

/* A WHIP or WHEP server: POST /whip/... or /whep/... makes a Peer,
 * DELETE /sessions/N drops it. */
class LoopbackServer {
public:
  LoopbackServer ()
      : http_ ([this] (const HttpRequest &req) { return handle (req); })
  {
  }

  ~LoopbackServer ()
  {
    http_.stop ();
    std::lock_guard<std::mutex> guard (lock_);
    peers_.clear ();
  }

  TestHttpServer &http () { return http_; }

  std::shared_ptr<Peer> lastPeer ()
  {
    std::lock_guard<std::mutex> guard (lock_);
    return last_;
  }

private:
  HttpResponse handle (const HttpRequest &req)
  {
    HttpResponse resp;
    if (req.method == "DELETE") {
      std::lock_guard<std::mutex> guard (lock_);
      resp.status = peers_.erase (req.path) ? 200 : 404;
      return resp;
    }
    if (req.method != "POST") {
      resp.status = 405;
      return resp;
    }
    bool whip = req.path.rfind ("/whip/", 0) == 0;
    auto peer = std::make_shared<Peer> (whip ? Peer::Role::Receiver : Peer::Role::Sender);
    if (!peer->answer (req.body, &resp.body)) {
      resp.status = 400;
      resp.contentType = "text/plain";
      resp.body = "bad offer";
      return resp;
    }
    std::lock_guard<std::mutex> guard (lock_);
    std::string location = "/sessions/" + std::to_string (++count_);
    peers_[location] = peer;
    last_ = peer;
    resp.status = 201;
    resp.location = location;
    return resp;
  }

  TestHttpServer http_;
  std::mutex lock_;   /* protects the fields below */
  std::map<std::string, std::shared_ptr<Peer>> peers_;
  std::shared_ptr<Peer> last_;
  int count_ = 0;
};

/* Pops bus messages until @until says stop, an error comes or the deadline
 * passes; redistributes latency as an application should. Returns the
 * error text, if any. */
std::string
runBus (GstElement *pipeline, std::chrono::milliseconds timeout,
    const std::function<bool ()> &until)
{
  GstBus *bus = gst_element_get_bus (pipeline);
  auto deadline = std::chrono::steady_clock::now () + timeout;
  std::string error;
  while (std::chrono::steady_clock::now () < deadline && !until ()) {
    GstMessage *msg = gst_bus_timed_pop_filtered (bus, 50 * GST_MSECOND,
        static_cast<GstMessageType> (GST_MESSAGE_ERROR | GST_MESSAGE_LATENCY));
    if (msg && GST_MESSAGE_TYPE (msg) == GST_MESSAGE_LATENCY) {
      gst_bin_recalculate_latency (GST_BIN (pipeline));
      gst_message_unref (msg);
    } else if (msg) {
      GError *err = nullptr;
      gchar *dbg = nullptr;
      gst_message_parse_error (msg, &err, &dbg);
      error = std::string (err->message) + " (" + (dbg ? dbg : "") + ")";
      g_error_free (err);
      g_free (dbg);
      gst_message_unref (msg);
      break;
    }
  }
  gst_object_unref (bus);
  return error;
}

class WebRtcLoopback : public ::testing::Test {
protected:
  void SetUp () override { ensureGst (); }
};

}  // namespace

using WhipSink = WebRtcLoopback;
using WhepSrc = WebRtcLoopback;

TEST_F (WhipSink, PublishesH264AndOpus)
{
  LoopbackServer server;
  ASSERT_TRUE (server.http ().ok ());
  std::string desc =
      "videotestsrc is-live=true ! video/x-raw,width=320,height=240,framerate=30/1 ! "
      "x264enc tune=zerolatency speed-preset=ultrafast key-int-max=30 ! "
      "xdnwhipsink name=s ice-addresses=127.0.0.1 auth-token=tok location="
      + server.http ().url ("/whip/live/x")
      + " audiotestsrc is-live=true ! opusenc ! s.";
  GError *err = nullptr;
  GstElement *pipeline = gst_parse_launch (desc.c_str (), &err);
  ASSERT_TRUE (pipeline) << (err ? err->message : "");
  ASSERT_NE (gst_element_set_state (pipeline, GST_STATE_PLAYING), GST_STATE_CHANGE_FAILURE);

  std::string error = runBus (pipeline, 20s, [&] {
    auto peer = server.lastPeer ();
    return peer && peer->videoPackets >= 30 && peer->audioPackets >= 30;
  });
  EXPECT_EQ (error, "");
  auto peer = server.lastPeer ();
  ASSERT_TRUE (peer);
  EXPECT_GE (peer->videoPackets, 30);
  EXPECT_GE (peer->audioPackets, 30);

  GstElement *sink = gst_bin_get_by_name (GST_BIN (pipeline), "s");
  gchar *resource = nullptr;
  g_object_get (sink, "resource-url", &resource, NULL);
  EXPECT_STREQ (resource, server.http ().url ("/sessions/1").c_str ());
  g_free (resource);
  gst_object_unref (sink);

  auto reqs = server.http ().requests ();
  ASSERT_FALSE (reqs.empty ());
  EXPECT_EQ (reqs[0].authorization, "Bearer tok");

  gst_element_set_state (pipeline, GST_STATE_NULL);
  EXPECT_TRUE (server.http ().waitForRequest ("DELETE", "/sessions/1", 1s));
  gst_object_unref (pipeline);
}

TEST_F (WhipSink, PublishesAgainAfterARestart)
{
  LoopbackServer server;
  std::string desc =
      "videotestsrc is-live=true ! video/x-raw,width=320,height=240,framerate=30/1 ! "
      "x264enc tune=zerolatency speed-preset=ultrafast key-int-max=30 ! "
      "xdnwhipsink ice-addresses=127.0.0.1 location=" + server.http ().url ("/whip/live/x");
  GstElement *pipeline = gst_parse_launch (desc.c_str (), nullptr);
  ASSERT_TRUE (pipeline);
  for (int round = 1; round <= 2; round++) {
    gst_element_set_state (pipeline, GST_STATE_PLAYING);
    std::string error = runBus (pipeline, 20s, [&] {
      auto peer = server.lastPeer ();
      return server.http ().requests ().size () == size_t (2 * round - 1) && peer
          && peer->videoPackets >= 30;
    });
    EXPECT_EQ (error, "") << "round " << round;
    gst_element_set_state (pipeline, GST_STATE_NULL);
    std::string session = "/sessions/" + std::to_string (round);
    EXPECT_TRUE (server.http ().waitForRequest ("DELETE", session, 1s)) << session;
  }
  gst_object_unref (pipeline);
}

TEST_F (WhipSink, EndOfStreamReachesTheApplication)
{
  LoopbackServer server;
  std::string desc =
      "videotestsrc is-live=true num-buffers=45 ! video/x-raw,width=320,height=240,framerate=30/1 ! "
      "x264enc tune=zerolatency speed-preset=ultrafast ! "
      "xdnwhipsink ice-addresses=127.0.0.1 location=" + server.http ().url ("/whip/live/x");
  GstElement *pipeline = gst_parse_launch (desc.c_str (), nullptr);
  ASSERT_TRUE (pipeline);
  gst_element_set_state (pipeline, GST_STATE_PLAYING);
  GstBus *bus = gst_element_get_bus (pipeline);
  GstMessage *msg = gst_bus_timed_pop_filtered (bus, 15 * GST_SECOND,
      static_cast<GstMessageType> (GST_MESSAGE_EOS | GST_MESSAGE_ERROR));
  ASSERT_TRUE (msg);
  EXPECT_EQ (GST_MESSAGE_TYPE (msg), GST_MESSAGE_EOS);
  gst_message_unref (msg);
  gst_object_unref (bus);
  auto peer = server.lastPeer ();
  ASSERT_TRUE (peer);
  EXPECT_GT (peer->videoPackets, 0);
  gst_element_set_state (pipeline, GST_STATE_NULL);
  gst_object_unref (pipeline);
}

TEST_F (WhipSink, ServerRefusal409IsAnElementError)
{
  TestHttpServer server ([] (const HttpRequest &) {
    HttpResponse r;
    r.status = 409;
    r.contentType = "application/json";
    r.body = "{\"error\":\"stream live/x already has a publisher\"}";
    return r;
  });
  std::string desc =
      "videotestsrc is-live=true ! x264enc tune=zerolatency speed-preset=ultrafast ! "
      "xdnwhipsink ice-addresses=127.0.0.1 location=" + server.url ("/whip/live/x");
  GstElement *pipeline = gst_parse_launch (desc.c_str (), nullptr);
  ASSERT_TRUE (pipeline);
  gst_element_set_state (pipeline, GST_STATE_PLAYING);
  std::string error = runBus (pipeline, 15s, [] { return false; });
  EXPECT_NE (error.find ("409"), std::string::npos) << error;
  EXPECT_NE (error.find ("already has a publisher"), std::string::npos) << error;

  auto start = std::chrono::steady_clock::now ();
  gst_element_set_state (pipeline, GST_STATE_NULL);
  EXPECT_LT (std::chrono::steady_clock::now () - start, 5s);
  gst_object_unref (pipeline);
}

namespace {

/* xdnwhepsrc with video to an appsink and audio to a fakesink. */
struct WhepPlayer {
  explicit WhepPlayer (const std::string &url, guint timeout = 10)
  {
    pipeline = gst_pipeline_new (nullptr);
    src = gst_element_factory_make ("xdnwhepsrc", "src");
    g_object_set (src, "location", url.c_str (), "ice-addresses", "127.0.0.1",
        "timeout", timeout, NULL);
    appsink = gst_element_factory_make ("appsink", "video");
    g_object_set (appsink, "sync", FALSE, "max-buffers", 100, "drop", TRUE, NULL);
    gst_bin_add_many (GST_BIN (pipeline), src, appsink, NULL);
    g_signal_connect (src, "pad-added", G_CALLBACK (onPadAdded), this);
  }

  ~WhepPlayer ()
  {
    gst_element_set_state (pipeline, GST_STATE_NULL);
    gst_object_unref (pipeline);
  }

  static void onPadAdded (GstElement *, GstPad *pad, WhepPlayer *self)
  {
    GstPad *peer = nullptr;
    if (g_str_has_prefix (GST_PAD_NAME (pad), "video_") && !self->videoLinked) {
      self->videoLinked = true;
      peer = gst_element_get_static_pad (self->appsink, "sink");
    } else {
      GstElement *sink = gst_element_factory_make ("fakesink", nullptr);
      g_object_set (sink, "sync", FALSE, "async", FALSE, NULL);
      gst_bin_add (GST_BIN (self->pipeline), sink);
      gst_element_sync_state_with_parent (sink);
      peer = gst_element_get_static_pad (sink, "sink");
      if (g_str_has_prefix (GST_PAD_NAME (pad), "audio_"))
        self->audioLinked = true;
    }
    gst_pad_link (pad, peer);
    gst_object_unref (peer);
  }

  GstElement *pipeline = nullptr;
  GstElement *src = nullptr;
  GstElement *appsink = nullptr;
  std::atomic<bool> videoLinked{false};
  std::atomic<bool> audioLinked{false};
};

}  // namespace

TEST_F (WhepSrc, PlaysAndDecodesFrames)
{
  LoopbackServer server;
  WhepPlayer player (server.http ().url ("/whep/live/x"));
  /* A live source: PAUSED does not wait for data. */
  ASSERT_EQ (gst_element_set_state (player.pipeline, GST_STATE_PAUSED),
      GST_STATE_CHANGE_NO_PREROLL);
  ASSERT_NE (gst_element_set_state (player.pipeline, GST_STATE_PLAYING),
      GST_STATE_CHANGE_FAILURE);

  int frames = 0;
  GstCaps *caps = nullptr;
  std::string error = runBus (player.pipeline, 20s, [&] {
    GstSample *sample = gst_app_sink_try_pull_sample (GST_APP_SINK (player.appsink),
        20 * GST_MSECOND);
    if (sample) {
      frames++;
      if (!caps)
        caps = gst_caps_ref (gst_sample_get_caps (sample));
      gst_sample_unref (sample);
    }
    return frames >= 10;
  });
  EXPECT_EQ (error, "");
  EXPECT_GE (frames, 10);
  ASSERT_TRUE (caps);
  EXPECT_STREQ (gst_structure_get_name (gst_caps_get_structure (caps, 0)), "video/x-raw");
  gst_caps_unref (caps);
  EXPECT_TRUE (player.audioLinked);
}

TEST_F (WhepSrc, KeyframeRequestReachesTheSender)
{
  LoopbackServer server;
  WhepPlayer player (server.http ().url ("/whep/live/x"));
  gst_element_set_state (player.pipeline, GST_STATE_PLAYING);
  std::string error = runBus (player.pipeline, 20s, [&] {
    GstSample *sample = gst_app_sink_try_pull_sample (GST_APP_SINK (player.appsink),
        20 * GST_MSECOND);
    if (sample)
      gst_sample_unref (sample);
    return sample != nullptr;
  });
  ASSERT_EQ (error, "");
  auto peer = server.lastPeer ();
  ASSERT_TRUE (peer);
  int before = peer->keyUnitRequests;

  /* What a decoder or an application does after a loss: the request goes
   * up through the decoder and depayloader into webrtcbin, out as RTCP PLI,
   * and comes back as a force-key-unit event at the sender's payloader. */
  GstPad *pad = gst_element_get_static_pad (player.appsink, "sink");
  gst_pad_push_event (pad, gst_video_event_new_upstream_force_key_unit (
          GST_CLOCK_TIME_NONE, TRUE, 0));
  gst_object_unref (pad);
  error = runBus (player.pipeline, 5s, [&] { return peer->keyUnitRequests > before; });
  EXPECT_EQ (error, "");
  EXPECT_GT (peer->keyUnitRequests, before);
}

TEST_F (WhepSrc, DeletesSessionOnStop)
{
  LoopbackServer server;
  WhepPlayer player (server.http ().url ("/whep/live/x"));
  gst_element_set_state (player.pipeline, GST_STATE_PLAYING);
  std::string error = runBus (player.pipeline, 15s, [&] {
    gchar *resource = nullptr;
    g_object_get (player.src, "resource-url", &resource, NULL);
    bool known = resource != nullptr;
    g_free (resource);
    return known;
  });
  ASSERT_EQ (error, "");
  gchar *resource = nullptr;
  g_object_get (player.src, "resource-url", &resource, NULL);
  ASSERT_STREQ (resource, server.http ().url ("/sessions/1").c_str ());
  g_free (resource);

  gst_element_set_state (player.pipeline, GST_STATE_NULL);
  /* The DELETE is part of the state change: it has been received by now. */
  EXPECT_TRUE (server.http ().waitForRequest ("DELETE", "/sessions/1", 100ms));
  g_object_get (player.src, "resource-url", &resource, NULL);
  EXPECT_EQ (resource, nullptr);
  g_free (resource);
}

TEST_F (WhepSrc, PassesEncodedVideoWhenNotDecoding)
{
  LoopbackServer server;
  WhepPlayer player (server.http ().url ("/whep/live/x"));
  g_object_set (player.src, "decode", FALSE, "audio", FALSE, NULL);
  gst_element_set_state (player.pipeline, GST_STATE_PLAYING);
  GstCaps *caps = nullptr;
  std::string error = runBus (player.pipeline, 20s, [&] {
    GstSample *sample = gst_app_sink_try_pull_sample (GST_APP_SINK (player.appsink),
        20 * GST_MSECOND);
    if (sample) {
      caps = gst_caps_ref (gst_sample_get_caps (sample));
      gst_sample_unref (sample);
    }
    return caps != nullptr;
  });
  EXPECT_EQ (error, "");
  ASSERT_TRUE (caps);
  EXPECT_STREQ (gst_structure_get_name (gst_caps_get_structure (caps, 0)), "video/x-h264");
  gst_caps_unref (caps);
}

TEST_F (WhepSrc, StreamNotLiveIsAnElementErrorWith404)
{
  TestHttpServer server ([] (const HttpRequest &) {
    HttpResponse r;
    r.status = 404;
    r.contentType = "application/json";
    r.body = "{\"error\":\"stream live/x is not live\"}";
    return r;
  });
  WhepPlayer player (server.url ("/whep/live/x"));
  gst_element_set_state (player.pipeline, GST_STATE_PLAYING);
  std::string error = runBus (player.pipeline, 10s, [] { return false; });
  EXPECT_NE (error.find ("404"), std::string::npos) << error;
  EXPECT_NE (error.find ("not live"), std::string::npos) << error;
}

TEST_F (WhepSrc, NoMediaForTimeoutIsAnElementError)
{
  /* The server accepts, but its answer's address is nowhere: no media. */
  LoopbackServer server;
  TestHttpServer mute ([&] (const HttpRequest &req) {
    HttpResponse r;
    if (req.method != "POST") {
      r.status = 200;
      return r;
    }
    Peer peer (Peer::Role::Receiver);
    if (!peer.answer (req.body, &r.body)) {
      r.status = 400;
      return r;
    }
    r.location = "/sessions/1";
    return r;    /* the peer is gone once the answer is sent */
  });
  WhepPlayer player (mute.url ("/whep/live/x"), 2);
  gst_element_set_state (player.pipeline, GST_STATE_PLAYING);
  auto start = std::chrono::steady_clock::now ();
  std::string error = runBus (player.pipeline, 15s, [] { return false; });
  EXPECT_LT (std::chrono::steady_clock::now () - start, 10s);
  EXPECT_NE (error.find ("No media from"), std::string::npos) << error;
}
