#include "xdn-webrtc-session.h"

#include <gst/sdp/sdp.h>
#include <gst/webrtc/webrtc.h>

#include <chrono>
#include <utility>

GST_DEBUG_CATEGORY_STATIC (xdn_webrtc_session_debug);
#define GST_CAT_DEFAULT xdn_webrtc_session_debug

namespace xdn {

namespace {

struct SdpDeleter {
  void operator() (GstSDPMessage *m) const { gst_sdp_message_free (m); }
};
using SdpPtr = std::unique_ptr<GstSDPMessage, SdpDeleter>;

struct DescDeleter {
  void operator() (GstWebRTCSessionDescription *d) const
  {
    gst_webrtc_session_description_free (d);
  }
};
using DescPtr = std::unique_ptr<GstWebRTCSessionDescription, DescDeleter>;

/* The error a webrtcbin promise reply carries, if any. */
std::string
replyError (GstPromise *promise)
{
  const GstStructure *reply = gst_promise_get_reply (promise);
  if (!reply || !gst_structure_has_field (reply, "error"))
    return {};
  GError *error = nullptr;
  gst_structure_get (reply, "error", G_TYPE_ERROR, &error, NULL);
  std::string message = error ? error->message : "unknown error";
  if (error)
    g_error_free (error);
  return message;
}

void
ensureDebugCategory ()
{
  static gsize once = 0;
  if (g_once_init_enter (&once)) {
    GST_DEBUG_CATEGORY_INIT (xdn_webrtc_session_debug, "xdnwebrtcsession", 0,
        "OpenXDN WHIP/WHEP session");
    g_once_init_leave (&once, 1);
  }
}

}  // namespace

WebRtcSession::WebRtcSession (GstElement *webrtcbin, WhipClientOptions options,
    WebRtcSessionCallbacks callbacks)
    : webrtcbin_ (GRef<GstElement>::ref (webrtcbin)),
      client_ (std::move (options)),
      callbacks_ (std::move (callbacks))
{
  ensureDebugCategory ();
  gatheringHandler_ = g_signal_connect (webrtcbin, "notify::ice-gathering-state",
      G_CALLBACK (onGatheringStateNotify), this);
  iceStateHandler_ = g_signal_connect (webrtcbin, "notify::ice-connection-state",
      G_CALLBACK (onConnectionStateNotify), this);
  connectionStateHandler_ = g_signal_connect (webrtcbin, "notify::connection-state",
      G_CALLBACK (onConnectionStateNotify), this);
}

WebRtcSession::~WebRtcSession ()
{
  stop ();
  g_signal_handler_disconnect (webrtcbin_.get (), gatheringHandler_);
  g_signal_handler_disconnect (webrtcbin_.get (), iceStateHandler_);
  g_signal_handler_disconnect (webrtcbin_.get (), connectionStateHandler_);
}

void
WebRtcSession::start ()
{
  if (thread_.joinable ())
    return;
  {
    std::lock_guard<std::mutex> guard (lock_);
    stopping_ = false;
  }
  thread_ = std::thread ([this] { run (); });
}

void
WebRtcSession::stop ()
{
  GRef<GstPromise> pending;
  {
    std::lock_guard<std::mutex> guard (lock_);
    stopping_ = true;
    pending = pendingPromise_;
  }
  cond_.notify_all ();
  if (pending)
    gst_promise_interrupt (pending.get ());
  client_.cancel ();
  if (thread_.joinable ())
    thread_.join ();

  std::string resource = client_.resourceUrl ();
  if (!resource.empty ()) {
    std::string error;
    if (client_.deleteSession (&error))
      GST_INFO_OBJECT (webrtcbin_.get (), "deleted session %s", resource.c_str ());
    else
      GST_WARNING_OBJECT (webrtcbin_.get (), "could not end session: %s", error.c_str ());
    if (callbacks_.onResourceUrl)
      callbacks_.onResourceUrl (std::string ());
  }
}

GstPromiseResult
WebRtcSession::waitPromise (GstPromise *promise)
{
  {
    std::lock_guard<std::mutex> guard (lock_);
    if (stopping_)
      gst_promise_interrupt (promise);
    pendingPromise_ = GRef<GstPromise>::ref (promise);
  }
  GstPromiseResult result = gst_promise_wait (promise);
  {
    std::lock_guard<std::mutex> guard (lock_);
    pendingPromise_.reset ();
  }
  return result;
}

void
WebRtcSession::fail (const std::string &message, const std::string &detail)
{
  {
    std::lock_guard<std::mutex> guard (lock_);
    if (failed_ || stopping_)
      return;
    failed_ = true;
  }
  GST_WARNING_OBJECT (webrtcbin_.get (), "%s (%s)", message.c_str (), detail.c_str ());
  if (callbacks_.onError)
    callbacks_.onError (message, detail);
}

void
WebRtcSession::run ()
{
  std::string message, detail;
  if (!negotiate (&message, &detail)) {
    bool stopping;
    {
      std::lock_guard<std::mutex> guard (lock_);
      stopping = stopping_;
    }
    if (!stopping)
      fail (message, detail);
  }
}

bool
WebRtcSession::negotiate (std::string *message, std::string *detail)
{
  GstElement *webrtc = webrtcbin_.get ();
  const std::string &url = client_.options ().url;

  /* Offer. */
  GRef<GstPromise> promise = adoptGRef (gst_promise_new ());
  g_signal_emit_by_name (webrtc, "create-offer", NULL, promise.get ());
  if (waitPromise (promise.get ()) != GST_PROMISE_RESULT_REPLIED) {
    *message = "could not create an SDP offer for " + url;
    *detail = "interrupted";
    return false;
  }
  std::string err = replyError (promise.get ());
  GstWebRTCSessionDescription *rawOffer = nullptr;
  const GstStructure *reply = gst_promise_get_reply (promise.get ());
  if (reply)
    gst_structure_get (reply, "offer", GST_TYPE_WEBRTC_SESSION_DESCRIPTION, &rawOffer, NULL);
  DescPtr offer (rawOffer);
  if (!offer) {
    *message = "could not create an SDP offer for " + url;
    *detail = err.empty () ? "webrtcbin gave no offer" : err;
    return false;
  }
  if (offerFilter_)
    offerFilter_ (offer->sdp);

  promise = adoptGRef (gst_promise_new ());
  g_signal_emit_by_name (webrtc, "set-local-description", offer.get (), promise.get ());
  if (waitPromise (promise.get ()) != GST_PROMISE_RESULT_REPLIED
      || !(err = replyError (promise.get ())).empty ()) {
    *message = "could not set the local SDP offer for " + url;
    *detail = err;
    return false;
  }

  /* No trickle: the offer carries every candidate found in time. */
  {
    std::unique_lock<std::mutex> guard (lock_);
    cond_.wait_for (guard, std::chrono::milliseconds (gatheringTimeoutMs_),
        [this] { return gatheringComplete_ || stopping_; });
    if (stopping_)
      return false;
    if (!gatheringComplete_)
      GST_INFO_OBJECT (webrtc, "ICE gathering not complete after %u ms, sending "
          "the candidates found so far", gatheringTimeoutMs_);
  }
  GstWebRTCSessionDescription *rawLocal = nullptr;
  g_object_get (webrtc, "local-description", &rawLocal, NULL);
  DescPtr local (rawLocal);
  if (!local) {
    *message = "webrtcbin lost its local description for " + url;
    *detail = "";
    return false;
  }
  GUniquePtr<gchar> offerText (gst_sdp_message_as_text (local->sdp));
  std::string offerSdp = offerText.get ();
  if (offerSdp.find ("a=candidate:") == std::string::npos) {
    *message = "no ICE candidate gathered for " + url;
    *detail = "check ice-addresses / network";
    return false;
  }
  GST_DEBUG_OBJECT (webrtc, "offer:\n%s", offerSdp.c_str ());

  /* Exchange. */
  std::string answerSdp, httpError;
  if (!client_.postOffer (offerSdp, &answerSdp, &httpError)) {
    *message = httpError;
    *detail = "WHIP/WHEP offer refused or not delivered";
    return false;
  }
  GST_INFO_OBJECT (webrtc, "session %s created", client_.resourceUrl ().c_str ());
  GST_DEBUG_OBJECT (webrtc, "answer:\n%s", answerSdp.c_str ());
  if (callbacks_.onResourceUrl)
    callbacks_.onResourceUrl (client_.resourceUrl ());

  GstSDPMessage *rawSdp = nullptr;
  gst_sdp_message_new (&rawSdp);
  SdpPtr sdp (rawSdp);
  if (gst_sdp_message_parse_buffer (reinterpret_cast<const guint8 *> (answerSdp.data ()),
          answerSdp.size (), sdp.get ()) != GST_SDP_OK
      || gst_sdp_message_medias_len (sdp.get ()) == 0) {
    *message = "bad SDP answer from " + url;
    *detail = answerSdp.substr (0, 200);
    return false;
  }
  DescPtr answer (gst_webrtc_session_description_new (GST_WEBRTC_SDP_TYPE_ANSWER,
          sdp.release ()));
  promise = adoptGRef (gst_promise_new ());
  g_signal_emit_by_name (webrtc, "set-remote-description", answer.get (), promise.get ());
  if (waitPromise (promise.get ()) != GST_PROMISE_RESULT_REPLIED
      || !(err = replyError (promise.get ())).empty ()) {
    *message = "bad SDP answer from " + url;
    *detail = err;
    return false;
  }
  if (callbacks_.onNegotiated)
    callbacks_.onNegotiated ();
  return true;
}

void
WebRtcSession::onGatheringStateNotify (GstElement *webrtcbin, GParamSpec *,
    WebRtcSession *self)
{
  GstWebRTCICEGatheringState state;
  g_object_get (webrtcbin, "ice-gathering-state", &state, NULL);
  if (state != GST_WEBRTC_ICE_GATHERING_STATE_COMPLETE)
    return;
  {
    std::lock_guard<std::mutex> guard (self->lock_);
    self->gatheringComplete_ = true;
  }
  self->cond_.notify_all ();
}

void
WebRtcSession::onConnectionStateNotify (GstElement *webrtcbin, GParamSpec *pspec,
    WebRtcSession *self)
{
  bool failed = false;
  if (g_str_equal (pspec->name, "ice-connection-state")) {
    GstWebRTCICEConnectionState state;
    g_object_get (webrtcbin, "ice-connection-state", &state, NULL);
    GST_DEBUG_OBJECT (webrtcbin, "ICE connection state %d", state);
    failed = state == GST_WEBRTC_ICE_CONNECTION_STATE_FAILED;
  } else {
    GstWebRTCPeerConnectionState state;
    g_object_get (webrtcbin, "connection-state", &state, NULL);
    GST_DEBUG_OBJECT (webrtcbin, "connection state %d", state);
    failed = state == GST_WEBRTC_PEER_CONNECTION_STATE_FAILED;
  }
  if (failed)
    self->fail ("WebRTC connection with " + self->url () + " failed",
        std::string (pspec->name) + " is failed (ICE or DTLS)");
}

}  // namespace xdn
