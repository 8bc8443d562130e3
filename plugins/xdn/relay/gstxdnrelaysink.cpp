/**
 * SECTION:element-xdnrelaysink
 * @title: xdnrelaysink
 * @see_also: xdnrelaysrc
 *
 * Publishes any number of RTP tracks (one request pad `sink_%u` each; the
 * track id is the pad's number) as one named stream.
 *
 * In hub mode (no `uri`, no `socket`) the stream goes to the process'
 * in-process hub, where any number of xdnrelaysrc elements, each in a
 * pipeline of its own, subscribe to it by name. Buffers are handed over by
 * reference, never copied, and the element never waits for a subscriber: a
 * subscriber that does not keep up loses its own oldest packets.
 *
 * In SRT mode the stream goes to downstream nodes over SRT, all its tracks
 * in one connection per downstream node (wire format: docs/relay-protocol.md):
 * on #GstXdnRelaySink:socket, an SRT socket the application accepted for a
 * `m=request` streamid, or, with `uri=srt://:PORT`, to every caller of a
 * listener of its own whose streamid requests this stream (`#!::r=NAME,m=request`;
 * others are refused with 1404). The stream description (tracks, caps) is
 * sent on every change and repeated every second. Packets are written
 * without ever waiting for the network: when a link's send buffer is full
 * the packet is dropped (#GstXdnRelaySink:stats `dropped`) and that link's
 * video waits for the next keyframe. Link changes are posted as
 * `xdn-relay-link` element messages (uri, state "connected" / "lost",
 * reason, reject-code). EOS on every pad tells the downstream side that the
 * stream ended; the element posts its EOS message once every link has
 * delivered that (bounded by the link latency + 1.1 s), so the application
 * may stop the pipeline on EOS. Stopping without EOS only closes the links
 * (they reconnect).
 *
 * Keyframe requests from subscribers (in SRT mode: from downstream nodes)
 * go upstream on the track's pad as force-key-unit events (an encoder makes
 * a keyframe, webrtcbin's receiver sends a PLI), at most one per track every
 * #GstXdnRelaySink:keyframe-min-interval; a request held back by that limit
 * is sent with the track's first packet after the interval.
 *
 * The stream is published on READY->PAUSED and unpublished on PAUSED->READY;
 * hub subscribers then get EOS. EOS on a pad ends that track; when every
 * track has ended the stream ends.
 *
 * ## Example launch lines
 * |[
 * gst-launch-1.0 videotestsrc is-live=true ! x264enc tune=zerolatency ! \
 *   rtph264pay config-interval=-1 ! xdnrelaysink stream=demo \
 *   xdnrelaysrc stream=demo ! rtph264depay ! avdec_h264 ! videoconvert ! autovideosink
 * ]| Hub mode joins pipelines of one process, so publisher and viewer are two
 * branches of one launch line here; in the node each is a pipeline of its own.
 * |[
 * gst-launch-1.0 -e videotestsrc is-live=true ! x264enc tune=zerolatency key-int-max=60 ! \
 *   rtph264pay config-interval=-1 ! xdnrelaysink stream=demo uri=srt://:9710 latency=80
 * ]| SRT mode, serving `demo` on UDP port 9710 to any number of
 * `xdnrelaysrc stream=demo uri=srt://HOST:9710` (see xdnrelaysrc).
 */
#include "gstxdnrelaysink.h"

#include <gst/video/video.h>

#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "xdn-gref.h"
#include "xdn-keyframe-limiter.h"
#include "xdn-relay-srt.h"
#include "xdn-relay-transport.h"
#include "xdn-stream-name.h"

GST_DEBUG_CATEGORY_STATIC (gst_xdn_relay_sink_debug);
#define GST_CAT_DEFAULT gst_xdn_relay_sink_debug

using namespace xdn;
using namespace xdn::relay;

namespace {

constexpr GstClockTime kDefaultKeyframeMinInterval = 500 * GST_MSECOND;
constexpr guint kDefaultLatency = 120;

struct SinkTrack {
  GstPad *pad = nullptr;     /* borrowed: the element owns its pads */
  GRef<GstCaps> caps;        /* last caps seen on the pad */
  bool eos = false;
  guint64 keyframeRequestsSent = 0;
  guint64 keyframeRequestsLimited = 0;
};

/* Shared with the keyframe request handler given to the transport, which may
 * run on a subscriber's thread after this element is gone: it only holds a
 * weak reference. */
struct WeakSelf {
  explicit WeakSelf (GstElement *e) { g_weak_ref_init (&ref, e); }
  ~WeakSelf () { g_weak_ref_clear (&ref); }
  GWeakRef ref;
};

}  // namespace

struct GstXdnRelaySinkPrivate {
  std::mutex settingsLock;  /* protects the settings below */
  std::string stream;
  std::string uri;
  GstClockTime keyframeMinInterval = kDefaultKeyframeMinInterval;
  int socket = -1;
  bool socketHandedOver = false;  /* the transport owns (and closes) socket */
  std::string passphrase;
  guint latency = kDefaultLatency;

  std::mutex stateLock;     /* protects publisher, tracks, limiter, nextTrack */
  std::shared_ptr<StreamPublisher> publisher;  /* PAUSED and PLAYING */
  std::map<guint, SinkTrack> tracks;           /* by track id = pad number */
  KeyframeRateLimiter limiter;
  guint nextTrack = 0;

  std::shared_ptr<WeakSelf> weakSelf;
};

struct _GstXdnRelaySink {
  GstElement parent;
  GstXdnRelaySinkPrivate *priv;
};

enum {
  PROP_0,
  PROP_STREAM,
  PROP_URI,
  PROP_KEYFRAME_MIN_INTERVAL,
  PROP_SOCKET,
  PROP_PASSPHRASE,
  PROP_LATENCY,
  PROP_STATS,
  N_PROPS
};
static GParamSpec *properties[N_PROPS];

static GstStaticPadTemplate sink_template = GST_STATIC_PAD_TEMPLATE ("sink_%u",
    GST_PAD_SINK, GST_PAD_REQUEST, GST_STATIC_CAPS ("application/x-rtp"));

#define gst_xdn_relay_sink_parent_class parent_class
G_DEFINE_TYPE_WITH_CODE (GstXdnRelaySink, gst_xdn_relay_sink, GST_TYPE_ELEMENT,
    GST_DEBUG_CATEGORY_INIT (gst_xdn_relay_sink_debug, "xdnrelaysink", 0,
        "OpenXDN relay sink"));
GST_ELEMENT_REGISTER_DEFINE (xdnrelaysink, "xdnrelaysink", GST_RANK_NONE,
    GST_TYPE_XDN_RELAY_SINK);

static guint
pad_track (GstPad * pad)
{
  return GPOINTER_TO_UINT (gst_pad_get_element_private (pad));
}

static GstClockTime
gst_xdn_relay_sink_now (GstXdnRelaySink * self)
{
  if (auto clock = adoptGRef (gst_element_get_clock (GST_ELEMENT (self))))
    return gst_clock_get_time (clock.get ());
  return g_get_monotonic_time () * GST_USECOND;
}

static GstClockTime
gst_xdn_relay_sink_keyframe_interval (GstXdnRelaySink * self)
{
  std::lock_guard<std::mutex> l (self->priv->settingsLock);
  return self->priv->keyframeMinInterval;
}

/* A keyframe request on @track: sent upstream now, or held back by the rate
 * limit. @due_only: only send one that was held back and is now due (from
 * the streaming thread). Any thread, no lock held by the caller. */
static void
gst_xdn_relay_sink_request_keyframe (GstXdnRelaySink * self, guint track, bool due_only)
{
  GstXdnRelaySinkPrivate *priv = self->priv;
  const GstClockTime interval = gst_xdn_relay_sink_keyframe_interval (self);
  const GstClockTime now = gst_xdn_relay_sink_now (self);

  GRef<GstPad> pad;
  guint count = 0;
  {
    std::lock_guard<std::mutex> l (priv->stateLock);
    auto it = priv->tracks.find (track);
    if (it == priv->tracks.end () || it->second.eos)
      return;
    if (due_only) {
      if (!priv->limiter.takeDue (track, now, interval))
        return;
    } else if (!priv->limiter.request (track, now, interval)) {
      it->second.keyframeRequestsLimited++;
      GST_LOG_OBJECT (self, "keyframe request on track %u within %" GST_TIME_FORMAT
          " of the last one: held back", track, GST_TIME_ARGS (interval));
      return;
    }
    count = ++it->second.keyframeRequestsSent;
    pad = GRef<GstPad>::ref (it->second.pad);
  }
  GST_DEBUG_OBJECT (pad.get (), "requesting keyframe upstream (#%u)", count);
  /* all-headers FALSE: payloaders in front send SPS/PPS with every IDR
   * (config-interval=-1). With TRUE, rtph264pay sends them with the very next
   * frame, usually not the IDR, which Chromium takes for a broken keyframe
   * and answers with another PLI. */
  gst_pad_push_event (pad.get (),
      gst_video_event_new_upstream_force_key_unit (GST_CLOCK_TIME_NONE, FALSE, count));
}

static GstFlowReturn
gst_xdn_relay_sink_chain (GstPad * pad, GstObject * parent, GstBuffer * buffer)
{
  auto *self = GST_XDN_RELAY_SINK (parent);
  const guint track = pad_track (pad);
  std::shared_ptr<StreamPublisher> publisher;
  bool requests_pending;
  {
    std::lock_guard<std::mutex> l (self->priv->stateLock);
    publisher = self->priv->publisher;
    requests_pending = self->priv->limiter.hasPending ();
  }
  if (!publisher) {
    gst_buffer_unref (buffer);
    return GST_FLOW_FLUSHING;
  }
  try {
    if (!publisher->push (track, buffer))
      return GST_FLOW_EOS;
  } catch (const std::exception &e) {
    GST_ELEMENT_ERROR (self, STREAM, FAILED, (nullptr), ("%s", e.what ()));
    return GST_FLOW_ERROR;
  }
  /* A request held back by the rate limit goes once its interval is over. */
  if (requests_pending)
    gst_xdn_relay_sink_request_keyframe (self, track, true);
  return GST_FLOW_OK;
}

static gboolean
gst_xdn_relay_sink_handle_event (GstPad * pad, GstObject * parent, GstEvent * event)
{
  auto *self = GST_XDN_RELAY_SINK (parent);
  GstXdnRelaySinkPrivate *priv = self->priv;
  const guint track = pad_track (pad);

  switch (GST_EVENT_TYPE (event)) {
    case GST_EVENT_CAPS:{
      GstCaps *caps;
      gst_event_parse_caps (event, &caps);
      std::shared_ptr<StreamPublisher> publisher;
      {
        std::lock_guard<std::mutex> l (priv->stateLock);
        auto it = priv->tracks.find (track);
        if (it != priv->tracks.end ()) {
          it->second.caps = GRef<GstCaps>::ref (caps);
          it->second.eos = false;
        }
        publisher = priv->publisher;
      }
      GST_DEBUG_OBJECT (pad, "track %u caps %" GST_PTR_FORMAT, track, caps);
      if (publisher)
        publisher->setTrack (track, caps);
      break;
    }
    case GST_EVENT_EOS:{
      std::shared_ptr<StreamPublisher> publisher;
      bool all_eos = true;
      {
        std::lock_guard<std::mutex> l (priv->stateLock);
        auto it = priv->tracks.find (track);
        if (it != priv->tracks.end ())
          it->second.eos = true;
        for (const auto &t : priv->tracks)
          all_eos = all_eos && t.second.eos;
        publisher = priv->publisher;
      }
      GST_INFO_OBJECT (pad, "track %u ended", track);
      if (publisher)
        publisher->endTrack (track);
      if (all_eos) {
        GstMessage *msg = gst_message_new_eos (GST_OBJECT (self));
        gst_message_set_seqnum (msg, gst_event_get_seqnum (event));
        gst_element_post_message (GST_ELEMENT (self), msg);
      }
      break;
    }
    case GST_EVENT_STREAM_START:{
      std::lock_guard<std::mutex> l (priv->stateLock);
      auto it = priv->tracks.find (track);
      if (it != priv->tracks.end ())
        it->second.eos = false;
      break;
    }
    default:
      break;
  }
  /* Nothing downstream: every event ends here. */
  gst_event_unref (event);
  return TRUE;
}

static gboolean
gst_xdn_relay_sink_event (GstPad * pad, GstObject * parent, GstEvent * event)
{
  gst_event_ref (event);  /* kept for the error path */
  try {
    gboolean ret = gst_xdn_relay_sink_handle_event (pad, parent, event);
    gst_event_unref (event);
    return ret;
  } catch (const std::exception &e) {
    GST_ELEMENT_ERROR (parent, STREAM, FAILED, (nullptr),
        ("%s event: %s", GST_EVENT_TYPE_NAME (event), e.what ()));
    gst_event_unref (event);
    return FALSE;
  }
}

static GstPad *
gst_xdn_relay_sink_add_track_pad (GstElement * element, GstPadTemplate * templ,
    const gchar * name)
{
  auto *self = GST_XDN_RELAY_SINK (element);
  GstXdnRelaySinkPrivate *priv = self->priv;
  guint track;
  {
    std::lock_guard<std::mutex> l (priv->stateLock);
    if (name && sscanf (name, "sink_%u", &track) == 1) {
      if (priv->tracks.count (track)) {
        GST_WARNING_OBJECT (self, "pad %s already exists", name);
        return nullptr;
      }
    } else {
      track = priv->nextTrack;
      while (priv->tracks.count (track))
        track++;
    }
    priv->nextTrack = std::max (priv->nextTrack, track + 1);
  }

  GUniquePtr<gchar> pad_name (g_strdup_printf ("sink_%u", track));
  GstPad *pad = gst_pad_new_from_template (templ, pad_name.get ());
  gst_pad_set_element_private (pad, GUINT_TO_POINTER (track));
  gst_pad_set_chain_function (pad, GST_DEBUG_FUNCPTR (gst_xdn_relay_sink_chain));
  gst_pad_set_event_function (pad, GST_DEBUG_FUNCPTR (gst_xdn_relay_sink_event));
  GST_PAD_SET_ACCEPT_TEMPLATE (pad);
  {
    std::lock_guard<std::mutex> l (priv->stateLock);
    SinkTrack t;
    t.pad = pad;
    priv->tracks[track] = std::move (t);
  }
  if (!gst_element_add_pad (element, pad)) {
    std::lock_guard<std::mutex> l (priv->stateLock);
    priv->tracks.erase (track);
    return nullptr;
  }
  GST_DEBUG_OBJECT (self, "new track %u", track);
  return pad;
}

static GstPad *
gst_xdn_relay_sink_request_new_pad (GstElement * element, GstPadTemplate * templ,
    const gchar * name, const GstCaps * caps)
{
  try {
    return gst_xdn_relay_sink_add_track_pad (element, templ, name);
  } catch (const std::exception &e) {
    GST_ERROR_OBJECT (element, "cannot add pad %s: %s", GST_STR_NULL (name), e.what ());
    return nullptr;
  }
}

static void
gst_xdn_relay_sink_release_pad (GstElement * element, GstPad * pad)
{
  auto *self = GST_XDN_RELAY_SINK (element);
  GstXdnRelaySinkPrivate *priv = self->priv;
  const guint track = pad_track (pad);
  std::shared_ptr<StreamPublisher> publisher;
  {
    std::lock_guard<std::mutex> l (priv->stateLock);
    priv->tracks.erase (track);
    priv->limiter.forget (track);
    publisher = priv->publisher;
  }
  GST_DEBUG_OBJECT (self, "releasing track %u", track);
  if (publisher)
    publisher->endTrack (track);
  gst_pad_set_active (pad, FALSE);
  gst_element_remove_pad (element, pad);
}

/* The transport settings of the element's properties. @take_socket: the
 * socket goes to the transport, which closes it from then on. */
static TransportSettings
gst_xdn_relay_sink_transport_settings (GstXdnRelaySink * self, bool take_socket)
{
  GstXdnRelaySinkPrivate *priv = self->priv;
  TransportSettings t;
  std::lock_guard<std::mutex> l (priv->settingsLock);
  t.uri = priv->uri;
  t.socket = priv->socketHandedOver ? -1 : priv->socket;
  t.passphrase = priv->passphrase;
  t.latencyMs = priv->latency;
  if (take_socket && t.socket >= 0)
    priv->socketHandedOver = true;
  return t;
}

/* Posts an `xdn-relay-link` element message; from the transport's I/O
 * thread (or the state change that adopts a socket). */
static LinkHandler
gst_xdn_relay_sink_link_handler (GstXdnRelaySink * self)
{
  auto weak = self->priv->weakSelf;
  return [weak] (const LinkState &state) {
    auto self = adoptGRef (static_cast<GstElement *> (g_weak_ref_get (&weak->ref)));
    if (!self)
      return;
    gst_element_post_message (self.get (), gst_message_new_element (GST_OBJECT (self.get ()),
            linkStateToStructure (state)));
  };
}

/* READY->PAUSED. Posts an element error and returns false on failure. */
static bool
gst_xdn_relay_sink_publish (GstXdnRelaySink * self)
{
  GstXdnRelaySinkPrivate *priv = self->priv;
  std::string stream;
  {
    std::lock_guard<std::mutex> l (priv->settingsLock);
    stream = priv->stream;
  }
  {
    std::lock_guard<std::mutex> l (priv->settingsLock);
    if (priv->socket >= 0 && priv->socketHandedOver) {
      GST_ELEMENT_ERROR (self, RESOURCE, SETTINGS,
          ("SRT socket %d was served already and is closed; set a new socket", priv->socket),
          (nullptr));
      return false;
    }
  }
  TransportSettings settings = gst_xdn_relay_sink_transport_settings (self, true);
  settings.onLink = gst_xdn_relay_sink_link_handler (self);
  const std::string where = settings.socket >= 0
      ? "SRT socket " + std::to_string (settings.socket) : settings.uri;
  auto weak = priv->weakSelf;
  KeyframeRequestHandler on_request = [weak] (guint track) {
    auto self = adoptGRef (static_cast<GstElement *> (g_weak_ref_get (&weak->ref)));
    if (self)
      gst_xdn_relay_sink_request_keyframe (GST_XDN_RELAY_SINK (self.get ()), track, false);
  };

  try {
    std::shared_ptr<StreamPublisher> publisher =
        openTransport (settings)->publish (stream, std::move (on_request));
    std::lock_guard<std::mutex> l (priv->stateLock);
    for (const auto &t : priv->tracks)
      if (t.second.caps)
        publisher->setTrack (t.first, t.second.caps.get ());
    priv->publisher = std::move (publisher);
    priv->limiter.clear ();
  } catch (const RelayError &e) {
    if (e.code () == RelayError::Code::Busy)
      GST_ELEMENT_ERROR (self, RESOURCE, BUSY,
          ("Stream \"%s\" already has a publisher", stream.c_str ()), ("%s", e.what ()));
    else if (e.code () == RelayError::Code::Network)
      GST_ELEMENT_ERROR (self, RESOURCE, OPEN_READ_WRITE,
          ("Cannot serve stream \"%s\" on %s: %s", stream.c_str (), where.c_str (), e.what ()),
          (nullptr));
    else
      GST_ELEMENT_ERROR (self, RESOURCE, SETTINGS,
          ("Cannot publish stream \"%s\": %s", stream.c_str (), e.what ()), (nullptr));
    return false;
  } catch (const std::exception &e) {
    GST_ELEMENT_ERROR (self, RESOURCE, FAILED,
        ("Cannot publish stream \"%s\"", stream.c_str ()), ("%s", e.what ()));
    return false;
  }
  GST_INFO_OBJECT (self, "published stream %s%s%s", stream.c_str (),
      settings.isHub () ? "" : " on ", settings.isHub () ? "" : where.c_str ());
  return true;
}

static void
gst_xdn_relay_sink_unpublish (GstXdnRelaySink * self)
{
  std::shared_ptr<StreamPublisher> publisher;
  {
    std::lock_guard<std::mutex> l (self->priv->stateLock);
    publisher = std::move (self->priv->publisher);
  }
  if (publisher) {
    GST_INFO_OBJECT (self, "unpublishing stream %s", publisher->streamName ().c_str ());
    publisher->unpublish ();
  }
}

/* NULL->READY: settings that can never work fail early and clearly. */
static bool
gst_xdn_relay_sink_check_settings (GstXdnRelaySink * self)
{
  std::string stream;
  {
    std::lock_guard<std::mutex> l (self->priv->settingsLock);
    stream = self->priv->stream;
  }
  try {
    checkTransportSettings (gst_xdn_relay_sink_transport_settings (self, false));
  } catch (const RelayError &e) {
    GST_ELEMENT_ERROR (self, RESOURCE, SETTINGS, ("%s", e.what ()), (nullptr));
    return false;
  }
  std::string why = streamNameError (stream);
  if (!why.empty ()) {
    GST_ELEMENT_ERROR (self, RESOURCE, SETTINGS,
        ("Invalid stream name \"%s\": %s", stream.c_str (), why.c_str ()), (nullptr));
    return false;
  }
  return true;
}

static GstStateChangeReturn
gst_xdn_relay_sink_do_change_state (GstElement * element, GstStateChange transition)
{
  auto *self = GST_XDN_RELAY_SINK (element);

  switch (transition) {
    case GST_STATE_CHANGE_NULL_TO_READY:
      if (!gst_xdn_relay_sink_check_settings (self))
        return GST_STATE_CHANGE_FAILURE;
      break;
    case GST_STATE_CHANGE_READY_TO_PAUSED:
      if (!gst_xdn_relay_sink_publish (self))
        return GST_STATE_CHANGE_FAILURE;
      break;
    default:
      break;
  }

  GstStateChangeReturn ret = GST_ELEMENT_CLASS (parent_class)->change_state (element, transition);
  if (ret == GST_STATE_CHANGE_FAILURE) {
    if (transition == GST_STATE_CHANGE_READY_TO_PAUSED)
      gst_xdn_relay_sink_unpublish (self);
    return ret;
  }

  switch (transition) {
    case GST_STATE_CHANGE_PAUSED_TO_READY:
      /* Pads are deactivated: no chain function runs any more. */
      gst_xdn_relay_sink_unpublish (self);
      break;
    default:
      break;
  }
  return ret;
}

static GstStateChangeReturn
gst_xdn_relay_sink_change_state (GstElement * element, GstStateChange transition)
{
  try {
    return gst_xdn_relay_sink_do_change_state (element, transition);
  } catch (const std::exception &e) {
    GST_ELEMENT_ERROR (element, CORE, STATE_CHANGE, (nullptr),
        ("%s: %s", gst_state_change_get_name (transition), e.what ()));
    return GST_STATE_CHANGE_FAILURE;
  }
}

static GstStructure *
gst_xdn_relay_sink_stats (GstXdnRelaySink * self)
{
  GstXdnRelaySinkPrivate *priv = self->priv;
  std::string stream;
  {
    std::lock_guard<std::mutex> l (priv->settingsLock);
    stream = priv->stream;
  }
  std::shared_ptr<StreamPublisher> publisher;
  std::map<guint, SinkTrack> tracks;
  {
    std::lock_guard<std::mutex> l (priv->stateLock);
    publisher = priv->publisher;
    tracks = priv->tracks;
  }
  StreamStats stats;
  if (publisher)
    stats = publisher->stats ();

  GValue list = G_VALUE_INIT;
  gst_value_array_init (&list, tracks.size ());
  guint64 packets = 0, bytes = 0, requests = 0;
  for (const auto &[id, local] : tracks) {
    TrackStats ts;
    ts.id = id;
    ts.caps = local.caps;
    ts.kind = trackKindFromCaps (local.caps.get ());
    for (const auto &published : stats.tracks)
      if (published.id == id)
        ts = published;
    GstStructure *s = trackStatsToStructure (ts);
    /* keyframe-requests: sent upstream; -limited: held back by the rate limit */
    gst_structure_set (s, "keyframe-requests", G_TYPE_UINT64, local.keyframeRequestsSent,
        "keyframe-requests-limited", G_TYPE_UINT64, local.keyframeRequestsLimited, nullptr);
    packets += ts.packets;
    bytes += ts.bytes;
    requests += local.keyframeRequestsSent;
    GValue v = G_VALUE_INIT;
    g_value_init (&v, GST_TYPE_STRUCTURE);
    g_value_take_boxed (&v, s);
    gst_value_array_append_and_take_value (&list, &v);
  }

  GstStructure *s = gst_structure_new ("xdnrelaysink-stats",
      "stream", G_TYPE_STRING, stream.c_str (),
      "published", G_TYPE_BOOLEAN, publisher != nullptr,
      "subscribers", G_TYPE_UINT, guint (stats.subscribers),
      "packets", G_TYPE_UINT64, packets,
      "bytes", G_TYPE_UINT64, bytes,
      "keyframe-requests", G_TYPE_UINT64, requests,
      "dropped", G_TYPE_UINT64, stats.dropped,
      "ignored", G_TYPE_UINT64, stats.ignored,
      "port", G_TYPE_INT, stats.port, nullptr);
  gst_structure_take_value (s, "tracks", &list);
  return s;
}

static void
gst_xdn_relay_sink_set_property (GObject * object, guint prop_id,
    const GValue * value, GParamSpec * pspec)
{
  auto *self = GST_XDN_RELAY_SINK (object);
  GstXdnRelaySinkPrivate *priv = self->priv;
  std::lock_guard<std::mutex> l (priv->settingsLock);
  switch (prop_id) {
    case PROP_STREAM:{
      const gchar *s = g_value_get_string (value);
      priv->stream = s ? s : "";
      break;
    }
    case PROP_URI:{
      const gchar *s = g_value_get_string (value);
      priv->uri = s ? s : "";
      break;
    }
    case PROP_KEYFRAME_MIN_INTERVAL:
      priv->keyframeMinInterval = g_value_get_uint64 (value);
      break;
    case PROP_SOCKET:{
      const int socket = g_value_get_int (value);
      /* A socket given and never served is still ours to close. */
      if (!priv->socketHandedOver && priv->socket >= 0 && priv->socket != socket)
        closeSrtSocket (priv->socket);
      priv->socket = socket;
      priv->socketHandedOver = false;
      break;
    }
    case PROP_PASSPHRASE:{
      const gchar *s = g_value_get_string (value);
      priv->passphrase = s ? s : "";
      break;
    }
    case PROP_LATENCY:
      priv->latency = g_value_get_uint (value);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
      break;
  }
}

static void
gst_xdn_relay_sink_get_property (GObject * object, guint prop_id, GValue * value,
    GParamSpec * pspec)
{
  auto *self = GST_XDN_RELAY_SINK (object);
  GstXdnRelaySinkPrivate *priv = self->priv;
  if (prop_id == PROP_STATS) {
    try {
      g_value_take_boxed (value, gst_xdn_relay_sink_stats (self));
    } catch (const std::exception &e) {
      GST_ERROR_OBJECT (self, "stats: %s", e.what ());
    }
    return;
  }
  std::lock_guard<std::mutex> l (priv->settingsLock);
  switch (prop_id) {
    case PROP_STREAM:
      g_value_set_string (value, priv->stream.empty () ? nullptr : priv->stream.c_str ());
      break;
    case PROP_URI:
      g_value_set_string (value, priv->uri.empty () ? nullptr : priv->uri.c_str ());
      break;
    case PROP_KEYFRAME_MIN_INTERVAL:
      g_value_set_uint64 (value, priv->keyframeMinInterval);
      break;
    case PROP_SOCKET:
      g_value_set_int (value, priv->socket);
      break;
    case PROP_PASSPHRASE:
      /* Write-only in effect: never read back. */
      g_value_set_string (value, nullptr);
      break;
    case PROP_LATENCY:
      g_value_set_uint (value, priv->latency);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
      break;
  }
}

static void
gst_xdn_relay_sink_init (GstXdnRelaySink * self)
{
  self->priv = new GstXdnRelaySinkPrivate ();
  self->priv->weakSelf = std::make_shared<WeakSelf> (GST_ELEMENT (self));
  GST_OBJECT_FLAG_SET (self, GST_ELEMENT_FLAG_SINK);
}

static void
gst_xdn_relay_sink_dispose (GObject * object)
{
  /* Released without a state change (e.g. unref in PAUSED after an error). */
  gst_xdn_relay_sink_unpublish (GST_XDN_RELAY_SINK (object));
  G_OBJECT_CLASS (parent_class)->dispose (object);
}

static void
gst_xdn_relay_sink_finalize (GObject * object)
{
  GstXdnRelaySinkPrivate *priv = GST_XDN_RELAY_SINK (object)->priv;
  if (!priv->socketHandedOver && priv->socket >= 0)
    closeSrtSocket (priv->socket);
  delete priv;
  G_OBJECT_CLASS (parent_class)->finalize (object);
}

static void
gst_xdn_relay_sink_class_init (GstXdnRelaySinkClass * klass)
{
  GObjectClass *gobject_class = G_OBJECT_CLASS (klass);
  GstElementClass *element_class = GST_ELEMENT_CLASS (klass);

  gobject_class->set_property = gst_xdn_relay_sink_set_property;
  gobject_class->get_property = gst_xdn_relay_sink_get_property;
  gobject_class->dispose = gst_xdn_relay_sink_dispose;
  gobject_class->finalize = gst_xdn_relay_sink_finalize;

  /**
   * GstXdnRelaySink:stream:
   *
   * Name of the stream to publish (`live/race-7`: letters, digits, `_ - . /`).
   */
  properties[PROP_STREAM] = g_param_spec_string ("stream", "Stream",
      "Name of the stream to publish", nullptr,
      (GParamFlags) (G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS | GST_PARAM_MUTABLE_READY));
  /**
   * GstXdnRelaySink:uri:
   *
   * `srt://:PORT` (or `srt://ADDRESS:PORT`): serve the stream over SRT from
   * a listener of this element to every caller that requests it
   * (`#!::r=NAME,m=request`). Empty (with #GstXdnRelaySink:socket unset):
   * the in-process hub.
   */
  properties[PROP_URI] = g_param_spec_string ("uri", "URI",
      "srt://[ADDRESS]:PORT to serve the stream from an SRT listener; empty for the in-process hub",
      nullptr,
      (GParamFlags) (G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS | GST_PARAM_MUTABLE_READY));
  /**
   * GstXdnRelaySink:socket:
   *
   * An accepted, connected SRT socket (a downstream node's `m=request`) to
   * serve the stream on. The element owns it from then on and closes it,
   * even if it never serves it. When the peer goes the element posts
   * `xdn-relay-link` with state "lost"; stopping the pipeline is up to the
   * application. -1: not in socket mode.
   */
  properties[PROP_SOCKET] = g_param_spec_int ("socket", "Socket",
      "Accepted SRT socket to serve the stream on (owned by the element); -1 for none",
      -1, G_MAXINT, -1,
      (GParamFlags) (G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS | GST_PARAM_MUTABLE_READY));
  /**
   * GstXdnRelaySink:passphrase:
   *
   * SRT listener mode: encrypt the links with this passphrase (10 to 79
   * characters; SRTO_PASSPHRASE). Callers with another one are refused.
   * In socket mode the accepting application's settings apply.
   */
  properties[PROP_PASSPHRASE] = g_param_spec_string ("passphrase", "Passphrase",
      "SRT passphrase (10 to 79 characters) of the listener; empty for none", nullptr,
      (GParamFlags) (G_PARAM_WRITABLE | G_PARAM_READABLE | G_PARAM_STATIC_STRINGS |
          GST_PARAM_MUTABLE_READY));
  /**
   * GstXdnRelaySink:latency:
   *
   * SRT listener mode: SRT latency in milliseconds (SRTO_LATENCY; a link
   * uses the larger of both ends' values).
   */
  properties[PROP_LATENCY] = g_param_spec_uint ("latency", "Latency",
      "SRT latency of the listener's links (ms)", 0, 60000, kDefaultLatency,
      (GParamFlags) (G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS | GST_PARAM_MUTABLE_READY));
  /**
   * GstXdnRelaySink:keyframe-min-interval:
   *
   * Shortest time between two keyframe requests sent upstream on one track.
   */
  properties[PROP_KEYFRAME_MIN_INTERVAL] = g_param_spec_uint64 ("keyframe-min-interval",
      "Keyframe min interval",
      "Shortest time between two keyframe requests sent upstream on a track (ns)",
      0, G_MAXUINT64, kDefaultKeyframeMinInterval,
      (GParamFlags) (G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS | GST_PARAM_MUTABLE_PLAYING));
  /**
   * GstXdnRelaySink:stats:
   *
   * `xdnrelaysink-stats`: stream (string), published (boolean), subscribers
   * (uint; SRT: downstream connections), packets, bytes, keyframe-requests,
   * dropped (SRT: packets a link had no room for), ignored (SRT: messages
   * from downstream that were not understood) (guint64), port (int, the SRT
   * listener's bound port, 0 otherwise), tracks (array of `track`
   * structures: id, kind, codec, caps, packets, bytes, keyframe-requests,
   * keyframe-requests-limited, ended).
   */
  properties[PROP_STATS] = g_param_spec_boxed ("stats", "Stats",
      "Stream, subscribers and per-track counters", GST_TYPE_STRUCTURE,
      (GParamFlags) (G_PARAM_READABLE | G_PARAM_STATIC_STRINGS));
  g_object_class_install_properties (gobject_class, N_PROPS, properties);

  gst_element_class_add_static_pad_template (element_class, &sink_template);
  gst_element_class_set_static_metadata (element_class, "OpenXDN relay sink",
      "Sink/Network/RTP",
      "Publishes RTP tracks as a named stream to the relay hub or over SRT",
      "OpenXDN");

  element_class->request_new_pad = GST_DEBUG_FUNCPTR (gst_xdn_relay_sink_request_new_pad);
  element_class->release_pad = GST_DEBUG_FUNCPTR (gst_xdn_relay_sink_release_pad);
  element_class->change_state = GST_DEBUG_FUNCPTR (gst_xdn_relay_sink_change_state);
}
