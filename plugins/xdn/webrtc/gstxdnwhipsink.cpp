/**
 * SECTION:element-xdnwhipsink
 * @title: xdnwhipsink
 *
 * Publishes encoded audio and video to a WHIP endpoint (an OpenXDN node's
 * `/whip/{stream}` or any WHIP server) over WebRTC.
 *
 * Request pads `video_%u` take H.264 (byte-stream or avc) or VP8, pads
 * `audio_%u` take Opus. Each pad gets a queue and, once its caps are known,
 * the matching RTP payloader feeding a sendonly transceiver of an internal
 * webrtcbin. When every requested pad has seen data the element creates
 * one offer with all its ICE candidates (no trickle), POSTs it, and sets
 * the answer. On PAUSED->READY it DELETEs the session.
 *
 * ## Example launch line
 * |[
 * gst-launch-1.0 videotestsrc is-live=true ! x264enc tune=zerolatency ! \
 *     xdnwhipsink name=s location=http://127.0.0.1:8080/whip/live/x \
 *     audiotestsrc is-live=true ! opusenc ! s.
 * ]|
 */
#include "gstxdnwhipsink.h"

#include <gst/webrtc/webrtc.h>

#include <algorithm>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "xdn-gref.h"
#include "xdn-ice.h"
#include "xdn-webrtc-codecs.h"
#include "xdn-webrtc-session.h"

GST_DEBUG_CATEGORY_STATIC (xdn_whip_sink_debug);
#define GST_CAT_DEFAULT xdn_whip_sink_debug

using xdn::GRef;
using xdn::adoptGRef;

namespace {

/* What the sink pads accept. H.264 in constrained baseline comes first so
 * that an encoder that can choose (x264enc) picks what every WebRTC peer
 * decodes; other profiles are still taken. */
#define VIDEO_CAPS \
  "video/x-h264, stream-format=(string)byte-stream, alignment=(string)au, " \
  "profile=(string)constrained-baseline; " \
  "video/x-h264, stream-format=(string){ byte-stream, avc }, alignment=(string){ au, nal }; " \
  "video/x-vp8"
#define AUDIO_CAPS "audio/x-opus"

GstStaticPadTemplate video_template = GST_STATIC_PAD_TEMPLATE ("video_%u",
    GST_PAD_SINK, GST_PAD_REQUEST, GST_STATIC_CAPS (VIDEO_CAPS));
GstStaticPadTemplate audio_template = GST_STATIC_PAD_TEMPLATE ("audio_%u",
    GST_PAD_SINK, GST_PAD_REQUEST, GST_STATIC_CAPS (AUDIO_CAPS));

enum {
  PROP_0,
  PROP_LOCATION,
  PROP_AUTH_TOKEN,
  PROP_STUN_SERVER,
  PROP_TURN_SERVER,
  PROP_ICE_ADDRESSES,
  PROP_RESOURCE_URL,
  N_PROPERTIES
};
GParamSpec *properties[N_PROPERTIES];

struct Settings {
  std::string location;
  std::string authToken;
  std::string stunServer;
  std::string turnServer;
  std::string iceAddresses;
};

/* One request pad: ghost pad -> queue -> payloader -> webrtcbin sink pad. */
struct SinkStream {
  bool video = false;
  GRef<GstPad> ghost;
  GRef<GstElement> queue;
  /* Made when the caps arrive, dropped on PAUSED->READY. */
  GRef<GstElement> payloader;
  GRef<GstPad> webrtcPad;
  xdn::RtpCodec codec = xdn::RtpCodec::None;
  bool ready = false;   /* its first RTP packet reached webrtcbin's pad */
  bool eos = false;
};

}  // namespace

struct GstXdnWhipSinkPrivate {
  std::mutex settingsLock;   /* protects settings and resourceUrl */
  Settings settings;
  std::string resourceUrl;

  std::mutex lock;           /* protects everything below */
  std::vector<std::unique_ptr<SinkStream>> streams;
  GRef<GstElement> webrtcbin;            /* exists from READY->PAUSED to PAUSED->READY */
  std::unique_ptr<xdn::WebRtcSession> session;
  bool sessionStarted = false;
  bool eosPosted = false;
  guint nextVideo = 0;
  guint nextAudio = 0;
};

struct _GstXdnWhipSink {
  GstBin parent;
  GstXdnWhipSinkPrivate *priv;
};

#define gst_xdn_whip_sink_parent_class parent_class
G_DEFINE_TYPE (GstXdnWhipSink, gst_xdn_whip_sink, GST_TYPE_BIN);
GST_ELEMENT_REGISTER_DEFINE (xdnwhipsink, "xdnwhipsink", GST_RANK_NONE,
    GST_TYPE_XDN_WHIP_SINK);

/* A new element with the floating reference sunk into the handle. */
static GRef<GstElement>
make_element (const char *factory, const char *name = nullptr)
{
  GstElement *e = gst_element_factory_make (factory, name);
  return adoptGRef (e ? GST_ELEMENT (gst_object_ref_sink (e)) : nullptr);
}

static SinkStream *
find_stream_by_ghost (GstXdnWhipSink *self, GstPad *ghost)
{
  for (auto &s : self->priv->streams)
    if (s->ghost.get () == ghost)
      return s.get ();
  return nullptr;
}

static void
set_resource_url (GstXdnWhipSink *self, const std::string &url)
{
  {
    std::lock_guard<std::mutex> guard (self->priv->settingsLock);
    if (self->priv->resourceUrl == url)
      return;
    self->priv->resourceUrl = url;
  }
  g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_RESOURCE_URL]);
}

/* Called with priv->lock held. Starts the offer once every pad is ready. */
static void
maybe_start_session_locked (GstXdnWhipSink *self)
{
  GstXdnWhipSinkPrivate *priv = self->priv;
  if (priv->sessionStarted || !priv->session || priv->streams.empty ())
    return;
  for (auto &s : priv->streams)
    if (!s->ready)
      return;
  GST_INFO_OBJECT (self, "all %zu pads have data, negotiating", priv->streams.size ());
  priv->sessionStarted = true;
  priv->session->start ();
}

static GstPadProbeReturn
payloader_buffer_probe (GstPad *pad, GstPadProbeInfo *info, gpointer user_data)
{
  GstXdnWhipSink *self = GST_XDN_WHIP_SINK (user_data);
  std::lock_guard<std::mutex> guard (self->priv->lock);
  for (auto &s : self->priv->streams) {
    if (s->payloader && !s->ready) {
      GRef<GstPad> src = adoptGRef (gst_element_get_static_pad (s->payloader.get (), "src"));
      if (src.get () == pad)
        s->ready = true;
    }
  }
  maybe_start_session_locked (self);
  return GST_PAD_PROBE_REMOVE;
}

static GRef<GstElement>
make_payloader (xdn::RtpCodec codec)
{
  GRef<GstElement> pay;
  switch (codec) {
    case xdn::RtpCodec::H264:
      pay = make_element ("rtph264pay");
      if (pay) {
        g_object_set (pay.get (), "config-interval", -1, NULL);
        gst_util_set_object_arg (G_OBJECT (pay.get ()), "aggregate-mode", "zero-latency");
      }
      break;
    case xdn::RtpCodec::VP8:
      pay = make_element ("rtpvp8pay");
      if (pay)
        gst_util_set_object_arg (G_OBJECT (pay.get ()), "picture-id-mode", "15-bit");
      break;
    case xdn::RtpCodec::Opus:
      pay = make_element ("rtpopuspay");
      break;
    case xdn::RtpCodec::None:
      break;
  }
  if (pay)
    g_object_set (pay.get (), "pt", xdn::codecPayloadType (codec), NULL);
  return pay;
}

/* In the queue's streaming thread, on the first caps: builds the
 * payloader and the sendonly transceiver for this pad. */
static bool
link_stream (GstXdnWhipSink *self, GstPad *queueSrc, GstCaps *caps)
{
  GstXdnWhipSinkPrivate *priv = self->priv;
  xdn::RtpCodec codec = xdn::codecFromMediaCaps (caps);
  GRef<GstElement> webrtc;
  SinkStream *stream = nullptr;
  {
    std::lock_guard<std::mutex> guard (priv->lock);
    for (auto &s : priv->streams) {
      GRef<GstPad> src = adoptGRef (gst_element_get_static_pad (s->queue.get (), "src"));
      if (src.get () == queueSrc)
        stream = s.get ();
    }
    if (!stream || stream->payloader)
      return true;    /* already linked: a caps update flows on */
    webrtc = priv->webrtcbin;
  }
  if (!webrtc)
    return false;

  GRef<GstElement> pay = make_payloader (codec);
  if (!pay) {
    GST_ELEMENT_ERROR (self, CORE, MISSING_PLUGIN, ("No RTP payloader for %" GST_PTR_FORMAT, caps),
        ("gst-plugins-good is needed"));
    return false;
  }

  GRef<GstPad> webrtcPad = adoptGRef (gst_element_request_pad_simple (webrtc.get (), "sink_%u"));
  if (!webrtcPad) {
    GST_ELEMENT_ERROR (self, CORE, PAD, ("webrtcbin refused a sink pad"), (nullptr));
    return false;
  }
  GstWebRTCRTPTransceiver *trans = nullptr;
  g_object_get (webrtcPad.get (), "transceiver", &trans, NULL);
  if (trans) {
    GRef<GstCaps> prefs = adoptGRef (xdn::rtpCapsForCodec (codec));
    g_object_set (trans, "direction", GST_WEBRTC_RTP_TRANSCEIVER_DIRECTION_SENDONLY,
        "codec-preferences", prefs.get (), NULL);
    gst_object_unref (trans);
  }

  gst_bin_add (GST_BIN (self), pay.get ());
  GRef<GstPad> paySrc = adoptGRef (gst_element_get_static_pad (pay.get (), "src"));
  GRef<GstPad> paySink = adoptGRef (gst_element_get_static_pad (pay.get (), "sink"));
  gst_pad_add_probe (paySrc.get (), GST_PAD_PROBE_TYPE_BUFFER, payloader_buffer_probe,
      self, nullptr);
  if (gst_pad_link (paySrc.get (), webrtcPad.get ()) != GST_PAD_LINK_OK
      || gst_pad_link (queueSrc, paySink.get ()) != GST_PAD_LINK_OK) {
    GST_ELEMENT_ERROR (self, CORE, NEGOTIATION, ("Could not link the %s payloader",
            xdn::codecName (codec)), (nullptr));
    return false;
  }
  gst_element_sync_state_with_parent (pay.get ());
  GST_INFO_OBJECT (self, "pad %s: %s on %s", GST_PAD_NAME (stream->ghost.get ()),
      xdn::codecName (codec), GST_PAD_NAME (webrtcPad.get ()));

  std::lock_guard<std::mutex> guard (priv->lock);
  stream->codec = codec;
  stream->payloader = pay;
  stream->webrtcPad = webrtcPad;
  return true;
}

static void
post_eos_if_all_done (GstXdnWhipSink *self)
{
  bool post = false;
  {
    std::lock_guard<std::mutex> guard (self->priv->lock);
    if (self->priv->eosPosted || self->priv->streams.empty ())
      return;
    post = std::all_of (self->priv->streams.begin (), self->priv->streams.end (),
        [] (const std::unique_ptr<SinkStream> &s) { return s->eos; });
    self->priv->eosPosted = post;
  }
  if (post) {
    GST_INFO_OBJECT (self, "every pad is at EOS");
    gst_element_post_message (GST_ELEMENT (self),
        gst_message_new_eos (GST_OBJECT (self)));
  }
}

static GstPadProbeReturn
queue_src_event_probe (GstPad *pad, GstPadProbeInfo *info, gpointer user_data)
{
  GstXdnWhipSink *self = GST_XDN_WHIP_SINK (user_data);
  GstEvent *event = GST_PAD_PROBE_INFO_EVENT (info);
  switch (GST_EVENT_TYPE (event)) {
    case GST_EVENT_CAPS: {
      GstCaps *caps;
      gst_event_parse_caps (event, &caps);
      if (!link_stream (self, pad, caps))
        return GST_PAD_PROBE_DROP;
      break;
    }
    case GST_EVENT_EOS: {
      {
        std::lock_guard<std::mutex> guard (self->priv->lock);
        for (auto &s : self->priv->streams) {
          GRef<GstPad> src = adoptGRef (gst_element_get_static_pad (s->queue.get (), "src"));
          if (src.get () == pad)
            s->eos = true;
        }
      }
      post_eos_if_all_done (self);
      break;
    }
    case GST_EVENT_FLUSH_STOP: {
      std::lock_guard<std::mutex> guard (self->priv->lock);
      for (auto &s : self->priv->streams) {
        GRef<GstPad> src = adoptGRef (gst_element_get_static_pad (s->queue.get (), "src"));
        if (src.get () == pad)
          s->eos = false;
      }
      self->priv->eosPosted = false;
      break;
    }
    default:
      break;
  }
  return GST_PAD_PROBE_OK;
}

/* Until a payloader sits behind the queue, answer caps queries from the
 * template (in its order of preference) rather than from an unlinked queue. */
static gboolean
ghost_query (GstPad *pad, GstObject *parent, GstQuery *query)
{
  GstXdnWhipSink *self = GST_XDN_WHIP_SINK (parent);
  bool linked;
  {
    std::lock_guard<std::mutex> guard (self->priv->lock);
    SinkStream *s = find_stream_by_ghost (self, pad);
    linked = s && s->payloader;
  }
  if (!linked) {
    if (GST_QUERY_TYPE (query) == GST_QUERY_CAPS) {
      GstCaps *filter;
      gst_query_parse_caps (query, &filter);
      GRef<GstCaps> templ = adoptGRef (gst_pad_get_pad_template_caps (pad));
      GRef<GstCaps> result = filter
          ? adoptGRef (gst_caps_intersect_full (filter, templ.get (), GST_CAPS_INTERSECT_FIRST))
          : templ;
      gst_query_set_caps_result (query, result.get ());
      return TRUE;
    }
    if (GST_QUERY_TYPE (query) == GST_QUERY_ACCEPT_CAPS) {
      GstCaps *caps;
      gst_query_parse_accept_caps (query, &caps);
      GRef<GstCaps> templ = adoptGRef (gst_pad_get_pad_template_caps (pad));
      gst_query_set_accept_caps_result (query, gst_caps_is_subset (caps, templ.get ()));
      return TRUE;
    }
  }
  return gst_pad_query_default (pad, parent, query);
}

static GstPad *
gst_xdn_whip_sink_request_new_pad (GstElement *element, GstPadTemplate *templ,
    const gchar *name, const GstCaps *caps)
{
  GstXdnWhipSink *self = GST_XDN_WHIP_SINK (element);
  GstXdnWhipSinkPrivate *priv = self->priv;
  bool video = g_str_equal (GST_PAD_TEMPLATE_NAME_TEMPLATE (templ), "video_%u");

  auto stream = std::make_unique<SinkStream> ();
  stream->video = video;
  std::string padName;
  {
    std::lock_guard<std::mutex> guard (priv->lock);
    if (priv->sessionStarted) {
      GST_WARNING_OBJECT (self, "cannot add a pad to a running session");
      return nullptr;
    }
    guint index = video ? priv->nextVideo++ : priv->nextAudio++;
    padName = (video ? "video_" : "audio_") + std::to_string (index);
  }

  stream->queue = make_element ("queue");
  /* Bounded: a slow start must not hoard seconds of stale media. */
  g_object_set (stream->queue.get (), "max-size-buffers", 0, "max-size-bytes", 0,
      "max-size-time", (guint64) 2 * GST_SECOND, NULL);
  gst_bin_add (GST_BIN (self), stream->queue.get ());
  GRef<GstPad> queueSink = adoptGRef (gst_element_get_static_pad (stream->queue.get (), "sink"));
  GRef<GstPad> queueSrc = adoptGRef (gst_element_get_static_pad (stream->queue.get (), "src"));
  gst_pad_add_probe (queueSrc.get (), GST_PAD_PROBE_TYPE_EVENT_DOWNSTREAM,
      queue_src_event_probe, self, nullptr);

  GstPad *ghost = gst_ghost_pad_new_from_template (padName.c_str (), queueSink.get (), templ);
  gst_pad_set_query_function (ghost, ghost_query);
  stream->ghost = GRef<GstPad>::ref (ghost);
  GRef<GstElement> queue = stream->queue;
  {
    std::lock_guard<std::mutex> guard (priv->lock);
    priv->streams.push_back (std::move (stream));
  }
  gst_element_sync_state_with_parent (queue.get ());
  gst_pad_set_active (ghost, TRUE);
  gst_element_add_pad (element, ghost);
  GST_DEBUG_OBJECT (self, "new pad %s", padName.c_str ());
  return ghost;
}

static void
gst_xdn_whip_sink_release_pad (GstElement *element, GstPad *pad)
{
  GstXdnWhipSink *self = GST_XDN_WHIP_SINK (element);
  std::unique_ptr<SinkStream> stream;
  GRef<GstElement> webrtc;
  {
    std::lock_guard<std::mutex> guard (self->priv->lock);
    auto &streams = self->priv->streams;
    auto it = std::find_if (streams.begin (), streams.end (),
        [pad] (const std::unique_ptr<SinkStream> &s) { return s->ghost.get () == pad; });
    if (it == streams.end ())
      return;
    stream = std::move (*it);
    streams.erase (it);
    webrtc = self->priv->webrtcbin;
  }
  if (stream->payloader) {
    gst_element_set_state (stream->payloader.get (), GST_STATE_NULL);
    gst_bin_remove (GST_BIN (self), stream->payloader.get ());
  }
  if (stream->webrtcPad && webrtc)
    gst_element_release_request_pad (webrtc.get (), stream->webrtcPad.get ());
  gst_element_set_state (stream->queue.get (), GST_STATE_NULL);
  gst_bin_remove (GST_BIN (self), stream->queue.get ());
  gst_pad_set_active (pad, FALSE);
  gst_element_remove_pad (element, pad);
}

static bool
setup_webrtcbin (GstXdnWhipSink *self)
{
  GstXdnWhipSinkPrivate *priv = self->priv;
  Settings settings;
  {
    std::lock_guard<std::mutex> guard (priv->settingsLock);
    settings = priv->settings;
  }
  if (settings.location.empty ()) {
    GST_ELEMENT_ERROR (self, RESOURCE, NOT_FOUND, ("No WHIP URL set (property 'location')"),
        (nullptr));
    return false;
  }

  GRef<GstElement> webrtc = make_element ("webrtcbin", "webrtc");
  if (!webrtc) {
    GST_ELEMENT_ERROR (self, CORE, MISSING_PLUGIN, ("webrtcbin is missing"),
        ("gst-plugins-bad's webrtc plugin is needed"));
    return false;
  }
  xdn::IceSettings ice;
  ice.addresses = xdn::splitList (settings.iceAddresses);
  ice.stunServer = settings.stunServer;
  ice.turnServer = settings.turnServer;
  std::string error;
  if (!xdn::configureWebRtcBin (webrtc.get (), ice, &error)) {
    GST_ELEMENT_ERROR (self, RESOURCE, SETTINGS, ("Bad ICE settings: %s", error.c_str ()),
        (nullptr));
    return false;
  }

  xdn::WhipClientOptions options;
  options.url = settings.location;
  options.authToken = settings.authToken;
  xdn::WebRtcSessionCallbacks callbacks;
  callbacks.onError = [self] (const std::string &message, const std::string &detail) {
    GST_ELEMENT_ERROR (self, RESOURCE, WRITE, ("%s", message.c_str ()), ("%s", detail.c_str ()));
  };
  callbacks.onResourceUrl = [self] (const std::string &url) { set_resource_url (self, url); };
  callbacks.onNegotiated = [self] () { GST_INFO_OBJECT (self, "publishing"); };
  auto session = std::make_unique<xdn::WebRtcSession> (webrtc.get (), options, callbacks);
  session->setOfferFilter (xdn::completeH264Fmtp);

  gst_bin_add (GST_BIN (self), webrtc.get ());
  std::lock_guard<std::mutex> guard (priv->lock);
  priv->webrtcbin = webrtc;
  priv->session = std::move (session);
  priv->sessionStarted = false;
  priv->eosPosted = false;
  for (auto &s : priv->streams)
    s->ready = s->eos = false;
  return true;
}

static void
teardown_webrtcbin (GstXdnWhipSink *self)
{
  GstXdnWhipSinkPrivate *priv = self->priv;
  GRef<GstElement> webrtc;
  std::unique_ptr<xdn::WebRtcSession> session;
  std::vector<GRef<GstElement>> payloaders;
  {
    std::lock_guard<std::mutex> guard (priv->lock);
    webrtc = std::move (priv->webrtcbin);
    priv->webrtcbin.reset ();
    session = std::move (priv->session);
    for (auto &s : priv->streams) {
      if (s->payloader)
        payloaders.push_back (std::move (s->payloader));
      s->payloader.reset ();
      s->webrtcPad.reset ();
      s->codec = xdn::RtpCodec::None;
      s->ready = false;
    }
    priv->sessionStarted = false;
  }
  for (auto &pay : payloaders) {
    gst_element_set_state (pay.get (), GST_STATE_NULL);
    gst_bin_remove (GST_BIN (self), pay.get ());
  }
  if (webrtc) {
    gst_element_set_state (webrtc.get (), GST_STATE_NULL);
    session.reset ();   /* its handlers are on webrtcbin, now silent */
    gst_bin_remove (GST_BIN (self), webrtc.get ());
  }
}

static GstStateChangeReturn
gst_xdn_whip_sink_change_state (GstElement *element, GstStateChange transition)
{
  GstXdnWhipSink *self = GST_XDN_WHIP_SINK (element);

  switch (transition) {
    case GST_STATE_CHANGE_READY_TO_PAUSED:
      if (!setup_webrtcbin (self))
        return GST_STATE_CHANGE_FAILURE;
      break;
    case GST_STATE_CHANGE_PAUSED_TO_READY: {
      /* End the session while the peer connection still exists. */
      xdn::WebRtcSession *session;
      {
        std::lock_guard<std::mutex> guard (self->priv->lock);
        session = self->priv->session.get ();
      }
      if (session)
        session->stop ();
      break;
    }
    default:
      break;
  }

  GstStateChangeReturn ret = GST_ELEMENT_CLASS (parent_class)->change_state (element, transition);

  switch (transition) {
    case GST_STATE_CHANGE_READY_TO_PAUSED:
      if (ret == GST_STATE_CHANGE_FAILURE)
        teardown_webrtcbin (self);
      break;
    case GST_STATE_CHANGE_PAUSED_TO_READY:
      teardown_webrtcbin (self);
      set_resource_url (self, std::string ());
      break;
    default:
      break;
  }
  return ret;
}

static void
gst_xdn_whip_sink_set_property (GObject *object, guint prop_id, const GValue *value,
    GParamSpec *pspec)
{
  GstXdnWhipSink *self = GST_XDN_WHIP_SINK (object);
  std::lock_guard<std::mutex> guard (self->priv->settingsLock);
  Settings &s = self->priv->settings;
  const char *str = G_VALUE_HOLDS_STRING (value) ? g_value_get_string (value) : nullptr;
  switch (prop_id) {
    case PROP_LOCATION: s.location = str ? str : ""; break;
    case PROP_AUTH_TOKEN: s.authToken = str ? str : ""; break;
    case PROP_STUN_SERVER: s.stunServer = str ? str : ""; break;
    case PROP_TURN_SERVER: s.turnServer = str ? str : ""; break;
    case PROP_ICE_ADDRESSES: s.iceAddresses = str ? str : ""; break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
      break;
  }
}

static void
gst_xdn_whip_sink_get_property (GObject *object, guint prop_id, GValue *value,
    GParamSpec *pspec)
{
  GstXdnWhipSink *self = GST_XDN_WHIP_SINK (object);
  std::lock_guard<std::mutex> guard (self->priv->settingsLock);
  const Settings &s = self->priv->settings;
  auto set = [value] (const std::string &v) { g_value_set_string (value, v.empty () ? nullptr : v.c_str ()); };
  switch (prop_id) {
    case PROP_LOCATION: set (s.location); break;
    case PROP_AUTH_TOKEN: set (s.authToken); break;
    case PROP_STUN_SERVER: set (s.stunServer); break;
    case PROP_TURN_SERVER: set (s.turnServer); break;
    case PROP_ICE_ADDRESSES: set (s.iceAddresses); break;
    case PROP_RESOURCE_URL: set (self->priv->resourceUrl); break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
      break;
  }
}

static void
gst_xdn_whip_sink_finalize (GObject *object)
{
  GstXdnWhipSink *self = GST_XDN_WHIP_SINK (object);
  delete self->priv;
  G_OBJECT_CLASS (parent_class)->finalize (object);
}

static void
gst_xdn_whip_sink_init (GstXdnWhipSink *self)
{
  self->priv = new GstXdnWhipSinkPrivate ();
  GST_OBJECT_FLAG_SET (self, GST_ELEMENT_FLAG_SINK);
}

static void
gst_xdn_whip_sink_class_init (GstXdnWhipSinkClass *klass)
{
  GObjectClass *gobject_class = G_OBJECT_CLASS (klass);
  GstElementClass *element_class = GST_ELEMENT_CLASS (klass);

  gobject_class->set_property = gst_xdn_whip_sink_set_property;
  gobject_class->get_property = gst_xdn_whip_sink_get_property;
  gobject_class->finalize = gst_xdn_whip_sink_finalize;

  const GParamFlags rw = static_cast<GParamFlags> (G_PARAM_READWRITE
      | G_PARAM_STATIC_STRINGS | GST_PARAM_MUTABLE_READY);
  /**
   * GstXdnWhipSink:location:
   * The WHIP endpoint the offer is POSTed to, http:// or https://.
   */
  properties[PROP_LOCATION] = g_param_spec_string ("location", "Location",
      "WHIP endpoint URL", nullptr, rw);
  /**
   * GstXdnWhipSink:auth-token:
   * Sent as `Authorization: Bearer <token>` with the POST and the DELETE.
   */
  properties[PROP_AUTH_TOKEN] = g_param_spec_string ("auth-token", "Auth token",
      "Bearer token for the WHIP endpoint", nullptr, rw);
  /**
   * GstXdnWhipSink:stun-server:
   * STUN server, stun://host:port.
   */
  properties[PROP_STUN_SERVER] = g_param_spec_string ("stun-server", "STUN server",
      "STUN server (stun://host:port)", nullptr, rw);
  /**
   * GstXdnWhipSink:turn-server:
   * TURN server, turn(s)://user:password@host:port.
   */
  properties[PROP_TURN_SERVER] = g_param_spec_string ("turn-server", "TURN server",
      "TURN server (turn(s)://user:password@host:port)", nullptr, rw);
  /**
   * GstXdnWhipSink:ice-addresses:
   * Comma-separated local addresses to gather host candidates on; empty
   * gathers on every interface. UPnP is never used.
   */
  properties[PROP_ICE_ADDRESSES] = g_param_spec_string ("ice-addresses", "ICE addresses",
      "Comma-separated local addresses for ICE (empty: all)", nullptr, rw);
  /**
   * GstXdnWhipSink:resource-url:
   * The session URL the server gave in `Location`, once known.
   */
  properties[PROP_RESOURCE_URL] = g_param_spec_string ("resource-url", "Resource URL",
      "URL of the WHIP session (read-only)", nullptr,
      static_cast<GParamFlags> (G_PARAM_READABLE | G_PARAM_STATIC_STRINGS));
  g_object_class_install_properties (gobject_class, N_PROPERTIES, properties);

  element_class->request_new_pad = gst_xdn_whip_sink_request_new_pad;
  element_class->release_pad = gst_xdn_whip_sink_release_pad;
  element_class->change_state = gst_xdn_whip_sink_change_state;

  gst_element_class_add_static_pad_template (element_class, &video_template);
  gst_element_class_add_static_pad_template (element_class, &audio_template);
  gst_element_class_set_static_metadata (element_class, "OpenXDN WHIP sink",
      "Sink/Network/WebRTC", "Publishes H.264/VP8 video and Opus audio to a WHIP endpoint",
      "OpenXDN");

  GST_DEBUG_CATEGORY_INIT (xdn_whip_sink_debug, "xdnwhipsink", 0, "OpenXDN WHIP sink");
}
