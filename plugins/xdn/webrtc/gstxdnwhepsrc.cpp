/**
 * SECTION:element-xdnwhepsrc
 * @title: xdnwhepsrc
 *
 * Plays a stream from a WHEP endpoint (an OpenXDN node's `/whep/{stream}`
 * or any WHEP server) over WebRTC. A live source.
 *
 * The element offers recvonly transceivers (video: the codecs of
 * #GstXdnWhepSrc:video-codecs, H.264 packetization-mode 1 and VP8 by
 * default; audio: Opus) with all its ICE candidates (no trickle), POSTs the
 * offer and sets the answer. Each received track appears on a sometimes pad
 * `video_%u` or `audio_%u`, decoded to raw media, or depayloaded only when
 * #GstXdnWhepSrc:decode is false. Depayloaders ask for a keyframe at the
 * start and after losses; webrtcbin's RTP session turns that into RTCP PLI.
 * On PAUSED->READY the session is DELETEd. When no media arrives for
 * #GstXdnWhepSrc:timeout seconds while PLAYING, the element posts an error.
 *
 * ## Example launch line
 * |[
 * gst-launch-1.0 xdnwhepsrc name=s location=http://127.0.0.1:8080/whep/live/x \
 *     s. ! queue ! videoconvert ! autovideosink \
 *     s. ! queue ! audioconvert ! autoaudiosink
 * ]|
 */
#include "gstxdnwhepsrc.h"

#include <gst/webrtc/webrtc.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "xdn-gref.h"
#include "xdn-ice.h"
#include "xdn-webrtc-codecs.h"
#include "xdn-webrtc-session.h"

GST_DEBUG_CATEGORY_STATIC (xdn_whep_src_debug);
#define GST_CAT_DEFAULT xdn_whep_src_debug

using xdn::GRef;
using xdn::adoptGRef;

namespace {

GstStaticPadTemplate video_template = GST_STATIC_PAD_TEMPLATE ("video_%u",
    GST_PAD_SRC, GST_PAD_SOMETIMES,
    GST_STATIC_CAPS ("video/x-raw; video/x-h264; video/x-vp8"));
GstStaticPadTemplate audio_template = GST_STATIC_PAD_TEMPLATE ("audio_%u",
    GST_PAD_SRC, GST_PAD_SOMETIMES, GST_STATIC_CAPS ("audio/x-raw; audio/x-opus"));

constexpr const char *kDefaultVideoCodecs = "H264,VP8";
constexpr bool kDefaultAudio = true;
constexpr bool kDefaultDecode = true;
constexpr guint kDefaultTimeout = 10;

enum {
  PROP_0,
  PROP_LOCATION,
  PROP_AUTH_TOKEN,
  PROP_STUN_SERVER,
  PROP_TURN_SERVER,
  PROP_ICE_ADDRESSES,
  PROP_VIDEO_CODECS,
  PROP_AUDIO,
  PROP_DECODE,
  PROP_TIMEOUT,
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
  std::string videoCodecs = kDefaultVideoCodecs;
  bool audio = kDefaultAudio;
  bool decode = kDefaultDecode;
  guint timeout = kDefaultTimeout;
};

/* A new element with the floating reference sunk into the handle. */
GRef<GstElement>
make_element (const char *factory, const char *name = nullptr)
{
  GstElement *e = gst_element_factory_make (factory, name);
  return adoptGRef (e ? GST_ELEMENT (gst_object_ref_sink (e)) : nullptr);
}

void
set_if_exists (GstElement *e, const char *prop, gboolean value)
{
  if (g_object_class_find_property (G_OBJECT_GET_CLASS (e), prop))
    g_object_set (e, prop, value, NULL);
}

/* Waits in a thread of its own and calls back when no media has been seen
 * for the timeout. Media time is an atomic stamp set from streaming
 * threads. */
class MediaWatchdog {
public:
  ~MediaWatchdog () { stop (); }

  void touch () { lastMedia_.store (now (), std::memory_order_relaxed); }

  void start (guint timeoutSeconds, std::function<void ()> onTimeout)
  {
    stop ();
    if (timeoutSeconds == 0)
      return;
    touch ();
    {
      std::lock_guard<std::mutex> guard (lock_);
      stopping_ = false;
    }
    thread_ = std::thread ([this, timeoutSeconds, onTimeout] {
      const gint64 limit = gint64 (timeoutSeconds) * G_USEC_PER_SEC;
      std::unique_lock<std::mutex> guard (lock_);
      while (!stopping_) {
        cond_.wait_for (guard, std::chrono::milliseconds (250));
        if (stopping_)
          break;
        if (now () - lastMedia_.load (std::memory_order_relaxed) > limit) {
          guard.unlock ();
          onTimeout ();
          return;
        }
      }
    });
  }

  void stop ()
  {
    {
      std::lock_guard<std::mutex> guard (lock_);
      stopping_ = true;
    }
    cond_.notify_all ();
    if (thread_.joinable ())
      thread_.join ();
  }

private:
  static gint64 now () { return g_get_monotonic_time (); }

  std::atomic<gint64> lastMedia_{0};
  std::thread thread_;            /* start/stop only, from the state change */
  std::mutex lock_;               /* protects stopping_ */
  std::condition_variable cond_;
  bool stopping_ = false;
};

/* One received track: webrtcbin src pad -> depayloader [-> parser ->
 * decoder] -> ghost pad. */
struct SrcStream {
  std::vector<GRef<GstElement>> elements;
  GRef<GstPad> ghost;
};

}  // namespace

struct GstXdnWhepSrcPrivate {
  std::mutex settingsLock;   /* protects settings and resourceUrl */
  Settings settings;
  std::string resourceUrl;

  std::mutex lock;           /* protects everything below but the watchdog */
  GRef<GstElement> webrtcbin;   /* exists from READY->PAUSED to PAUSED->READY */
  std::unique_ptr<xdn::WebRtcSession> session;
  std::vector<std::unique_ptr<SrcStream>> streams;
  guint expectedStreams = 0;
  guint nextVideo = 0;
  guint nextAudio = 0;

  MediaWatchdog watchdog;    /* thread-safe itself; started/stopped by state changes */
};

struct _GstXdnWhepSrc {
  GstBin parent;
  GstXdnWhepSrcPrivate *priv;
};

#define gst_xdn_whep_src_parent_class parent_class
G_DEFINE_TYPE (GstXdnWhepSrc, gst_xdn_whep_src, GST_TYPE_BIN);
GST_ELEMENT_REGISTER_DEFINE (xdnwhepsrc, "xdnwhepsrc", GST_RANK_NONE,
    GST_TYPE_XDN_WHEP_SRC);

static void
set_resource_url (GstXdnWhepSrc *self, const std::string &url)
{
  {
    std::lock_guard<std::mutex> guard (self->priv->settingsLock);
    if (self->priv->resourceUrl == url)
      return;
    self->priv->resourceUrl = url;
  }
  g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_RESOURCE_URL]);
}

static GstPadProbeReturn
media_probe (GstPad *, GstPadProbeInfo *, gpointer user_data)
{
  GstXdnWhepSrc *self = GST_XDN_WHEP_SRC (user_data);
  self->priv->watchdog.touch ();
  return GST_PAD_PROBE_OK;
}

/* The chain after a webrtcbin src pad carrying @codec. */
static std::vector<GRef<GstElement>>
make_chain (xdn::RtpCodec codec, bool decode, std::string *missing)
{
  std::vector<const char *> names;
  switch (codec) {
    case xdn::RtpCodec::H264:
      names = { "rtph264depay", "h264parse" };
      break;
    case xdn::RtpCodec::VP8:
      names = { "rtpvp8depay" };
      break;
    case xdn::RtpCodec::Opus:
      names = { "rtpopusdepay" };
      break;
    case xdn::RtpCodec::None:
      break;
  }
  std::vector<GRef<GstElement>> chain;
  for (const char *n : names) {
    GRef<GstElement> e = make_element (n);
    if (!e) {
      *missing = n;
      return {};
    }
    chain.push_back (e);
  }
  if (!chain.empty ()) {
    /* Keyframe at the start and after a loss: the force-key-unit event goes
     * upstream into webrtcbin's RTP session, which sends a PLI. */
    set_if_exists (chain.front ().get (), "request-keyframe", TRUE);
    set_if_exists (chain.front ().get (), "wait-for-keyframe", TRUE);
  }
  if (decode) {
    std::vector<const char *> decoders;
    switch (codec) {
      case xdn::RtpCodec::H264: decoders = { "avdec_h264", "openh264dec" }; break;
      case xdn::RtpCodec::VP8: decoders = { "vp8dec", "avdec_vp8" }; break;
      case xdn::RtpCodec::Opus: decoders = { "opusdec" }; break;
      case xdn::RtpCodec::None: break;
    }
    GRef<GstElement> dec;
    for (const char *n : decoders)
      if ((dec = make_element (n)))
        break;
    if (!dec) {
      *missing = decoders.empty () ? "decoder" : decoders.front ();
      return {};
    }
    /* A decoder that meets a broken frame asks upstream for a keyframe. */
    set_if_exists (dec.get (), "automatic-request-sync-points", TRUE);
    chain.push_back (dec);
  } else if (codec == xdn::RtpCodec::H264) {
    g_object_set (chain.back ().get (), "config-interval", -1, NULL);
  }
  return chain;
}

static void
on_webrtc_pad_added (GstElement *webrtc, GstPad *pad, GstXdnWhepSrc *self)
{
  if (GST_PAD_DIRECTION (pad) != GST_PAD_SRC)
    return;
  GstXdnWhepSrcPrivate *priv = self->priv;
  bool decode;
  {
    std::lock_guard<std::mutex> guard (priv->settingsLock);
    decode = priv->settings.decode;
  }

  GRef<GstCaps> caps = adoptGRef (gst_pad_get_current_caps (pad));
  if (!caps)
    caps = adoptGRef (gst_pad_query_caps (pad, nullptr));
  xdn::RtpCodec codec = xdn::codecFromRtpCaps (caps.get ());
  if (codec == xdn::RtpCodec::None) {
    GST_WARNING_OBJECT (self, "ignoring %s with caps %" GST_PTR_FORMAT,
        GST_PAD_NAME (pad), caps.get ());
    return;
  }

  std::string missing;
  auto stream = std::make_unique<SrcStream> ();
  stream->elements = make_chain (codec, decode, &missing);
  if (stream->elements.empty ()) {
    GST_ELEMENT_ERROR (self, CORE, MISSING_PLUGIN, ("Missing element '%s' to play %s",
            missing.c_str (), xdn::codecName (codec)), (nullptr));
    return;
  }

  for (auto &e : stream->elements)
    gst_bin_add (GST_BIN (self), e.get ());
  for (size_t i = 0; i + 1 < stream->elements.size (); i++)
    gst_element_link (stream->elements[i].get (), stream->elements[i + 1].get ());
  for (auto &e : stream->elements)
    gst_element_sync_state_with_parent (e.get ());

  GRef<GstPad> first = adoptGRef (gst_element_get_static_pad (
          stream->elements.front ().get (), "sink"));
  GRef<GstPad> last = adoptGRef (gst_element_get_static_pad (
          stream->elements.back ().get (), "src"));
  gst_pad_add_probe (last.get (), GST_PAD_PROBE_TYPE_BUFFER, media_probe, self, nullptr);

  bool video = xdn::codecIsVideo (codec);
  std::string name;
  bool allExposed;
  {
    std::lock_guard<std::mutex> guard (priv->lock);
    name = (video ? "video_" : "audio_")
        + std::to_string (video ? priv->nextVideo++ : priv->nextAudio++);
  }
  GstPadTemplate *templ = gst_element_class_get_pad_template (
      GST_ELEMENT_GET_CLASS (self), video ? "video_%u" : "audio_%u");
  GstPad *ghost = gst_ghost_pad_new_from_template (name.c_str (), last.get (), templ);
  stream->ghost = GRef<GstPad>::ref (ghost);
  gst_pad_set_active (ghost, TRUE);
  gst_element_add_pad (GST_ELEMENT (self), ghost);
  if (gst_pad_link (pad, first.get ()) != GST_PAD_LINK_OK)
    GST_ELEMENT_ERROR (self, CORE, NEGOTIATION, ("Could not link the %s depayloader",
            xdn::codecName (codec)), (nullptr));
  GST_INFO_OBJECT (self, "%s: %s from %s", name.c_str (), xdn::codecName (codec),
      GST_PAD_NAME (pad));
  {
    std::lock_guard<std::mutex> guard (priv->lock);
    priv->streams.push_back (std::move (stream));
    allExposed = priv->streams.size () == priv->expectedStreams;
  }
  if (allExposed)
    gst_element_no_more_pads (GST_ELEMENT (self));
}

static bool
add_transceivers (GstXdnWhepSrc *self, GstElement *webrtc, const Settings &settings)
{
  guint count = 0;
  GRef<GstCaps> video = adoptGRef (gst_caps_new_empty ());
  for (const auto &name : xdn::splitList (settings.videoCodecs)) {
    xdn::RtpCodec codec = g_ascii_strcasecmp (name.c_str (), "H264") == 0
        ? xdn::RtpCodec::H264
        : g_ascii_strcasecmp (name.c_str (), "VP8") == 0 ? xdn::RtpCodec::VP8
                                                         : xdn::RtpCodec::None;
    if (codec == xdn::RtpCodec::None) {
      GST_ELEMENT_ERROR (self, RESOURCE, SETTINGS, ("Unknown video codec '%s' in video-codecs",
              name.c_str ()), ("known: H264, VP8"));
      return false;
    }
    gst_caps_append (video.get (), xdn::rtpCapsForCodec (codec));
  }
  if (!gst_caps_is_empty (video.get ())) {
    GstWebRTCRTPTransceiver *trans = nullptr;
    g_signal_emit_by_name (webrtc, "add-transceiver",
        GST_WEBRTC_RTP_TRANSCEIVER_DIRECTION_RECVONLY, video.get (), &trans);
    if (trans) {
      g_object_set (trans, "do-nack", TRUE, NULL);
      gst_object_unref (trans);
    }
    count++;
  }
  if (settings.audio) {
    GRef<GstCaps> audio = adoptGRef (xdn::rtpCapsForCodec (xdn::RtpCodec::Opus));
    GstWebRTCRTPTransceiver *trans = nullptr;
    g_signal_emit_by_name (webrtc, "add-transceiver",
        GST_WEBRTC_RTP_TRANSCEIVER_DIRECTION_RECVONLY, audio.get (), &trans);
    if (trans)
      gst_object_unref (trans);
    count++;
  }
  if (count == 0) {
    GST_ELEMENT_ERROR (self, RESOURCE, SETTINGS, ("Nothing to receive"),
        ("video-codecs is empty and audio is false"));
    return false;
  }
  std::lock_guard<std::mutex> guard (self->priv->lock);
  self->priv->expectedStreams = count;
  return true;
}

static bool
setup_webrtcbin (GstXdnWhepSrc *self)
{
  GstXdnWhepSrcPrivate *priv = self->priv;
  Settings settings;
  {
    std::lock_guard<std::mutex> guard (priv->settingsLock);
    settings = priv->settings;
  }
  if (settings.location.empty ()) {
    GST_ELEMENT_ERROR (self, RESOURCE, NOT_FOUND, ("No WHEP URL set (property 'location')"),
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
  if (!add_transceivers (self, webrtc.get (), settings))
    return false;
  g_signal_connect (webrtc.get (), "pad-added", G_CALLBACK (on_webrtc_pad_added), self);

  xdn::WhipClientOptions options;
  options.url = settings.location;
  options.authToken = settings.authToken;
  xdn::WebRtcSessionCallbacks callbacks;
  callbacks.onError = [self] (const std::string &message, const std::string &detail) {
    GST_ELEMENT_ERROR (self, RESOURCE, READ, ("%s", message.c_str ()), ("%s", detail.c_str ()));
  };
  callbacks.onResourceUrl = [self] (const std::string &url) { set_resource_url (self, url); };
  callbacks.onNegotiated = [self] () { GST_INFO_OBJECT (self, "playing"); };
  auto session = std::make_unique<xdn::WebRtcSession> (webrtc.get (), options, callbacks);
  session->setOfferFilter (xdn::completeH264Fmtp);

  gst_bin_add (GST_BIN (self), webrtc.get ());
  /* webrtcbin holds sinks (nicesink); this bin is a source all the same. */
  GST_OBJECT_FLAG_UNSET (self, GST_ELEMENT_FLAG_SINK);
  std::lock_guard<std::mutex> guard (priv->lock);
  priv->webrtcbin = webrtc;
  priv->session = std::move (session);
  priv->nextVideo = priv->nextAudio = 0;
  return true;
}

static void
teardown_webrtcbin (GstXdnWhepSrc *self)
{
  GstXdnWhepSrcPrivate *priv = self->priv;
  GRef<GstElement> webrtc;
  std::unique_ptr<xdn::WebRtcSession> session;
  std::vector<std::unique_ptr<SrcStream>> streams;
  {
    std::lock_guard<std::mutex> guard (priv->lock);
    webrtc = std::move (priv->webrtcbin);
    priv->webrtcbin.reset ();
    session = std::move (priv->session);
    streams = std::move (priv->streams);
    priv->streams.clear ();
  }
  for (auto &s : streams) {
    for (auto &e : s->elements) {
      gst_element_set_state (e.get (), GST_STATE_NULL);
      gst_bin_remove (GST_BIN (self), e.get ());
    }
    gst_pad_set_active (s->ghost.get (), FALSE);
    gst_element_remove_pad (GST_ELEMENT (self), s->ghost.get ());
  }
  if (webrtc) {
    g_signal_handlers_disconnect_by_data (webrtc.get (), self);
    gst_element_set_state (webrtc.get (), GST_STATE_NULL);
    session.reset ();   /* its handlers are on webrtcbin, now silent */
    gst_bin_remove (GST_BIN (self), webrtc.get ());
  }
}

static void
start_watchdog (GstXdnWhepSrc *self)
{
  guint timeout;
  std::string url;
  {
    std::lock_guard<std::mutex> guard (self->priv->settingsLock);
    timeout = self->priv->settings.timeout;
    url = self->priv->settings.location;
  }
  self->priv->watchdog.start (timeout, [self, timeout, url] {
    GST_ELEMENT_ERROR (self, RESOURCE, READ, ("No media from %s for %u s", url.c_str (),
            timeout), ("the server stopped sending, or never started"));
  });
}

static GstStateChangeReturn
gst_xdn_whep_src_change_state (GstElement *element, GstStateChange transition)
{
  GstXdnWhepSrc *self = GST_XDN_WHEP_SRC (element);
  GstXdnWhepSrcPrivate *priv = self->priv;

  switch (transition) {
    case GST_STATE_CHANGE_READY_TO_PAUSED:
      if (!setup_webrtcbin (self)) {
        teardown_webrtcbin (self);
        return GST_STATE_CHANGE_FAILURE;
      }
      break;
    case GST_STATE_CHANGE_PLAYING_TO_PAUSED:
      priv->watchdog.stop ();
      break;
    case GST_STATE_CHANGE_PAUSED_TO_READY: {
      xdn::WebRtcSession *session;
      {
        std::lock_guard<std::mutex> guard (priv->lock);
        session = priv->session.get ();
      }
      if (session)
        session->stop ();
      break;
    }
    default:
      break;
  }

  GstStateChangeReturn ret = GST_ELEMENT_CLASS (parent_class)->change_state (element, transition);
  if (ret == GST_STATE_CHANGE_FAILURE) {
    if (transition == GST_STATE_CHANGE_READY_TO_PAUSED)
      teardown_webrtcbin (self);
    return ret;
  }

  switch (transition) {
    case GST_STATE_CHANGE_READY_TO_PAUSED: {
      xdn::WebRtcSession *session;
      {
        std::lock_guard<std::mutex> guard (priv->lock);
        session = priv->session.get ();
      }
      if (session)
        session->start ();
      ret = GST_STATE_CHANGE_NO_PREROLL;
      break;
    }
    case GST_STATE_CHANGE_PAUSED_TO_PLAYING:
      start_watchdog (self);
      break;
    case GST_STATE_CHANGE_PLAYING_TO_PAUSED:
      ret = GST_STATE_CHANGE_NO_PREROLL;
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
gst_xdn_whep_src_set_property (GObject *object, guint prop_id, const GValue *value,
    GParamSpec *pspec)
{
  GstXdnWhepSrc *self = GST_XDN_WHEP_SRC (object);
  std::lock_guard<std::mutex> guard (self->priv->settingsLock);
  Settings &s = self->priv->settings;
  auto str = [value] { const char *v = g_value_get_string (value); return std::string (v ? v : ""); };
  switch (prop_id) {
    case PROP_LOCATION: s.location = str (); break;
    case PROP_AUTH_TOKEN: s.authToken = str (); break;
    case PROP_STUN_SERVER: s.stunServer = str (); break;
    case PROP_TURN_SERVER: s.turnServer = str (); break;
    case PROP_ICE_ADDRESSES: s.iceAddresses = str (); break;
    case PROP_VIDEO_CODECS: s.videoCodecs = str (); break;
    case PROP_AUDIO: s.audio = g_value_get_boolean (value); break;
    case PROP_DECODE: s.decode = g_value_get_boolean (value); break;
    case PROP_TIMEOUT: s.timeout = g_value_get_uint (value); break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
      break;
  }
}

static void
gst_xdn_whep_src_get_property (GObject *object, guint prop_id, GValue *value,
    GParamSpec *pspec)
{
  GstXdnWhepSrc *self = GST_XDN_WHEP_SRC (object);
  std::lock_guard<std::mutex> guard (self->priv->settingsLock);
  const Settings &s = self->priv->settings;
  auto set = [value] (const std::string &v) { g_value_set_string (value, v.empty () ? nullptr : v.c_str ()); };
  switch (prop_id) {
    case PROP_LOCATION: set (s.location); break;
    case PROP_AUTH_TOKEN: set (s.authToken); break;
    case PROP_STUN_SERVER: set (s.stunServer); break;
    case PROP_TURN_SERVER: set (s.turnServer); break;
    case PROP_ICE_ADDRESSES: set (s.iceAddresses); break;
    case PROP_VIDEO_CODECS: g_value_set_string (value, s.videoCodecs.c_str ()); break;
    case PROP_AUDIO: g_value_set_boolean (value, s.audio); break;
    case PROP_DECODE: g_value_set_boolean (value, s.decode); break;
    case PROP_TIMEOUT: g_value_set_uint (value, s.timeout); break;
    case PROP_RESOURCE_URL: set (self->priv->resourceUrl); break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
      break;
  }
}

static void
gst_xdn_whep_src_finalize (GObject *object)
{
  GstXdnWhepSrc *self = GST_XDN_WHEP_SRC (object);
  delete self->priv;
  G_OBJECT_CLASS (parent_class)->finalize (object);
}

static void
gst_xdn_whep_src_init (GstXdnWhepSrc *self)
{
  self->priv = new GstXdnWhepSrcPrivate ();
  GST_OBJECT_FLAG_SET (self, GST_ELEMENT_FLAG_SOURCE);
}

static void
gst_xdn_whep_src_class_init (GstXdnWhepSrcClass *klass)
{
  GObjectClass *gobject_class = G_OBJECT_CLASS (klass);
  GstElementClass *element_class = GST_ELEMENT_CLASS (klass);

  gobject_class->set_property = gst_xdn_whep_src_set_property;
  gobject_class->get_property = gst_xdn_whep_src_get_property;
  gobject_class->finalize = gst_xdn_whep_src_finalize;

  const GParamFlags rw = static_cast<GParamFlags> (G_PARAM_READWRITE
      | G_PARAM_STATIC_STRINGS | GST_PARAM_MUTABLE_READY);
  /**
   * GstXdnWhepSrc:location:
   * The WHEP endpoint the offer is POSTed to, http:// or https://.
   */
  properties[PROP_LOCATION] = g_param_spec_string ("location", "Location",
      "WHEP endpoint URL", nullptr, rw);
  /**
   * GstXdnWhepSrc:auth-token:
   * Sent as `Authorization: Bearer <token>` with the POST and the DELETE.
   */
  properties[PROP_AUTH_TOKEN] = g_param_spec_string ("auth-token", "Auth token",
      "Bearer token for the WHEP endpoint", nullptr, rw);
  /**
   * GstXdnWhepSrc:stun-server:
   * STUN server, stun://host:port.
   */
  properties[PROP_STUN_SERVER] = g_param_spec_string ("stun-server", "STUN server",
      "STUN server (stun://host:port)", nullptr, rw);
  /**
   * GstXdnWhepSrc:turn-server:
   * TURN server, turn(s)://user:password@host:port.
   */
  properties[PROP_TURN_SERVER] = g_param_spec_string ("turn-server", "TURN server",
      "TURN server (turn(s)://user:password@host:port)", nullptr, rw);
  /**
   * GstXdnWhepSrc:ice-addresses:
   * Comma-separated local addresses to gather host candidates on; empty
   * gathers on every interface. UPnP is never used.
   */
  properties[PROP_ICE_ADDRESSES] = g_param_spec_string ("ice-addresses", "ICE addresses",
      "Comma-separated local addresses for ICE (empty: all)", nullptr, rw);
  /**
   * GstXdnWhepSrc:video-codecs:
   * Video codecs offered, in order of preference (H264, VP8); empty
   * receives no video.
   */
  properties[PROP_VIDEO_CODECS] = g_param_spec_string ("video-codecs", "Video codecs",
      "Comma-separated video codecs to offer, preferred first (H264, VP8; empty: no video)",
      kDefaultVideoCodecs, rw);
  /**
   * GstXdnWhepSrc:audio:
   * Whether to receive an Opus audio track.
   */
  properties[PROP_AUDIO] = g_param_spec_boolean ("audio", "Audio",
      "Receive audio (Opus)", kDefaultAudio, rw);
  /**
   * GstXdnWhepSrc:decode:
   * Expose decoded raw media (true) or the depayloaded encoded streams
   * (video/x-h264, video/x-vp8, audio/x-opus).
   */
  properties[PROP_DECODE] = g_param_spec_boolean ("decode", "Decode",
      "Decode to raw audio/video (false: output encoded streams)", kDefaultDecode, rw);
  /**
   * GstXdnWhepSrc:timeout:
   * Seconds without any media while PLAYING before the element posts an
   * error; 0 waits forever.
   */
  properties[PROP_TIMEOUT] = g_param_spec_uint ("timeout", "Timeout",
      "Seconds without media before an error (0: never)", 0, 3600, kDefaultTimeout, rw);
  /**
   * GstXdnWhepSrc:resource-url:
   * The session URL the server gave in `Location`, once known.
   */
  properties[PROP_RESOURCE_URL] = g_param_spec_string ("resource-url", "Resource URL",
      "URL of the WHEP session (read-only)", nullptr,
      static_cast<GParamFlags> (G_PARAM_READABLE | G_PARAM_STATIC_STRINGS));
  g_object_class_install_properties (gobject_class, N_PROPERTIES, properties);

  element_class->change_state = gst_xdn_whep_src_change_state;

  gst_element_class_add_static_pad_template (element_class, &video_template);
  gst_element_class_add_static_pad_template (element_class, &audio_template);
  gst_element_class_set_static_metadata (element_class, "OpenXDN WHEP source",
      "Source/Network/WebRTC", "Plays a stream from a WHEP endpoint",
      "OpenXDN");

  GST_DEBUG_CATEGORY_INIT (xdn_whep_src_debug, "xdnwhepsrc", 0, "OpenXDN WHEP source");
}
