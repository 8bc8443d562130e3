/**
 * SECTION:element-xdnrelaysrc
 * @title: xdnrelaysrc
 * @see_also: xdnrelaysink
 *
 * Subscribes to a stream published by an xdnrelaysink and exposes one
 * sometimes pad per track: `video_%u`, `audio_%u` or `track_%u` (the number
 * is the track id), each with the track's full RTP caps; a peer linked in
 * pad-added gets the caps at once, before any buffer. With `uri` empty
 * the stream comes from the process' in-process hub; with
 * `uri=srt://HOST:PORT` it is pulled from another node over SRT.
 *
 * It is a live source: READY->PAUSED subscribes, adds the pads of the tracks
 * the stream has, emits no-more-pads and returns NO_PREROLL; data flows in
 * PLAYING. Buffers are timestamped with this pipeline's running time at the
 * moment the publisher handed them over (SRT mode: the moment they arrived),
 * DTS unset. In hub mode their memory is shared with the publisher and every
 * other subscriber.
 *
 * Video tracks (H.264, VP8) start on a keyframe: a subscriber that joins late
 * drops packets until the next one and asks the publisher for it. Each
 * subscription queues at most #GstXdnRelaySrc:max-queue packets; when it is
 * full the oldest are dropped (#GstXdnRelaySrc:dropped), and a video track
 * that lost packets waits for, and asks for, a keyframe again. An upstream
 * force-key-unit event on a pad (a viewer's PLI/FIR through webrtcbin) is a
 * keyframe request for that track; in SRT mode it travels to the upstream
 * node. When the publisher goes away every pad gets EOS.
 *
 * SRT mode: the element connects as SRT caller with the streamid
 * `#!::r=NAME,m=request` (`,s=TOKEN` with #GstXdnRelaySrc:token), with
 * #GstXdnRelaySrc:passphrase, #GstXdnRelaySrc:latency and
 * #GstXdnRelaySrc:packet-filter. It never fails for
 * a stream that is not there: it keeps trying, 100 ms after a failure then
 * doubling up to 2 s. Pads appear when the upstream node's stream
 * description arrives. When the link drops it reconnects the same way
 * without touching its pads or the pipeline downstream: caps are sent again
 * only if they changed, the first buffer of each track after the gap is
 * DISCONT, and video waits for (and asks for) a keyframe. Every change is
 * posted as an `xdn-relay-link` element message: uri (string), state
 * ("connected", "lost" or "refused"), reason (string), reject-code (int, the
 * SRT reject reason of a refusal: 1404 stream not found upstream, 1403
 * forbidden, libsrt's own codes below 1000 such as a wrong passphrase; 0 if
 * none).
 *
 * One streaming thread per element serves all its pads: the subscription is
 * one queue in publish order, so the pads keep the publisher's interleaving,
 * and a node with many viewers runs one thread per viewer whatever the number
 * of tracks. SRT mode adds one I/O thread per element.
 *
 * With #GstXdnRelaySrc:direct, packets skip that thread: each is pushed on
 * the thread that hands it over (the publisher's streaming thread in hub
 * mode, the I/O thread in SRT mode), still one at a time and in publish
 * order. That saves a thread switch per packet, but the publisher, and
 * every subscriber after this one, waits while downstream handles the
 * packet: only for downstream elements that never block, such as
 * xdnwebrtcfanout. The element's own thread then only adds pads and ends
 * tracks that no packet follows.
 *
 * ## Example launch lines
 * |[
 * gst-launch-1.0 videotestsrc is-live=true ! x264enc tune=zerolatency ! \
 *   rtph264pay config-interval=-1 ! xdnrelaysink stream=demo \
 *   xdnrelaysrc stream=demo ! rtph264depay ! avdec_h264 ! videoconvert ! autovideosink
 * ]| Hub mode.
 * |[
 * gst-launch-1.0 xdnrelaysrc stream=demo uri=srt://127.0.0.1:9710 latency=80 ! \
 *   rtph264depay ! avdec_h264 ! videoconvert ! autovideosink
 * ]| SRT mode: plays `demo` from an `xdnrelaysink stream=demo uri=srt://:9710`
 * (see xdnrelaysink) or from a node serving it on its SRT port.
 */
#include "gstxdnrelaysrc.h"

#include <gst/base/gstflowcombiner.h>
#include <gst/video/video.h>

#include <atomic>
#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "xdn-gref.h"
#include "xdn-relay-srt.h"
#include "xdn-relay-transport.h"
#include "xdn-stream-name.h"

GST_DEBUG_CATEGORY_STATIC (gst_xdn_relay_src_debug);
#define GST_CAT_DEFAULT gst_xdn_relay_src_debug

using namespace xdn;
using namespace xdn::relay;

namespace {

constexpr guint kDefaultMaxQueue = 1024;
constexpr guint kDefaultLatency = 120;

struct SrcTrack {
  GRef<GstPad> pad;
  TrackKind kind = TrackKind::Other;
  bool eos = false;       /* ended, or downstream returned EOS: no more buffers */
  bool eosSent = false;   /* an EOS event was pushed */
};

}  // namespace

struct GstXdnRelaySrcPrivate {
  std::mutex settingsLock;  /* protects the settings below */
  std::string stream;
  std::string uri;
  guint maxQueue = kDefaultMaxQueue;
  bool waitForStream = false;
  std::string passphrase;
  guint latency = kDefaultLatency;
  std::string token;
  std::string packetFilter;
  bool directSetting = false;

  std::mutex stateLock;     /* protects subscription, tracks, droppedBefore */
  std::shared_ptr<StreamSubscription> subscription;  /* PAUSED and PLAYING */
  std::map<guint, SrcTrack> tracks;                  /* by track id */
  SubscriptionStats before;  /* counters of subscriptions already closed */

  /* directSetting, taken on READY->PAUSED before anything is delivered and
   * fixed until READY: read without a lock. */
  bool direct = false;

  /* Streaming thread only (with direct delivery: whichever thread delivers,
   * one at a time; and state changes while it is stopped). */
  GstFlowCombiner *combiner = nullptr;
  guint groupId = 0;
  bool noMorePads = false;

  GstTask *task = nullptr;
  GRecMutex taskLock;
  /* The streaming thread pauses its task (flushing, EOS, no subscription)
   * only while it is not being stopped: a pause after gst_task_stop() would
   * leave the task waiting and gst_task_join() waiting for it. */
  std::mutex pauseLock;     /* protects stopping */
  bool stopping = false;
};

struct _GstXdnRelaySrc {
  GstElement parent;
  GstXdnRelaySrcPrivate *priv;
};

enum {
  PROP_0,
  PROP_STREAM,
  PROP_URI,
  PROP_MAX_QUEUE,
  PROP_WAIT_FOR_STREAM,
  PROP_PASSPHRASE,
  PROP_LATENCY,
  PROP_TOKEN,
  PROP_PACKET_FILTER,
  PROP_DIRECT,
  PROP_DROPPED,
  PROP_STATS,
  N_PROPS
};
static GParamSpec *properties[N_PROPS];

static GstStaticPadTemplate video_template = GST_STATIC_PAD_TEMPLATE ("video_%u",
    GST_PAD_SRC, GST_PAD_SOMETIMES, GST_STATIC_CAPS ("application/x-rtp, media=(string)video"));
static GstStaticPadTemplate audio_template = GST_STATIC_PAD_TEMPLATE ("audio_%u",
    GST_PAD_SRC, GST_PAD_SOMETIMES, GST_STATIC_CAPS ("application/x-rtp, media=(string)audio"));
static GstStaticPadTemplate track_template = GST_STATIC_PAD_TEMPLATE ("track_%u",
    GST_PAD_SRC, GST_PAD_SOMETIMES, GST_STATIC_CAPS ("application/x-rtp"));

#define gst_xdn_relay_src_parent_class parent_class
G_DEFINE_TYPE_WITH_CODE (GstXdnRelaySrc, gst_xdn_relay_src, GST_TYPE_ELEMENT,
    GST_DEBUG_CATEGORY_INIT (gst_xdn_relay_src_debug, "xdnrelaysrc", 0,
        "OpenXDN relay source"));
GST_ELEMENT_REGISTER_DEFINE (xdnrelaysrc, "xdnrelaysrc", GST_RANK_NONE,
    GST_TYPE_XDN_RELAY_SRC);

static guint
pad_track (GstPad * pad)
{
  return GPOINTER_TO_UINT (gst_pad_get_element_private (pad));
}

static std::shared_ptr<StreamSubscription>
current_subscription (GstXdnRelaySrc * self)
{
  std::lock_guard<std::mutex> l (self->priv->stateLock);
  return self->priv->subscription;
}

static gboolean
gst_xdn_relay_src_src_event (GstPad * pad, GstObject * parent, GstEvent * event)
{
  auto *self = GST_XDN_RELAY_SRC (parent);
  gboolean ret = FALSE;

  if (gst_video_event_is_force_key_unit (event)) {
    const guint track = pad_track (pad);
    GST_DEBUG_OBJECT (pad, "keyframe requested downstream on track %u", track);
    if (auto sub = current_subscription (self)) {
      try {
        sub->requestKeyframe (track);
      } catch (const std::exception &e) {
        GST_WARNING_OBJECT (pad, "keyframe request failed: %s", e.what ());
      }
    }
    ret = TRUE;
  } else {
    switch (GST_EVENT_TYPE (event)) {
      case GST_EVENT_RECONFIGURE:
      case GST_EVENT_LATENCY:
      case GST_EVENT_QOS:
        ret = TRUE;
        break;
      default:
        /* Live relay: no seeking, nothing upstream to forward to. */
        ret = FALSE;
        break;
    }
  }
  gst_event_unref (event);
  return ret;
}

static gboolean
gst_xdn_relay_src_src_query (GstPad * pad, GstObject * parent, GstQuery * query)
{
  switch (GST_QUERY_TYPE (query)) {
    case GST_QUERY_LATENCY:
      /* Live, and buffers carry the time they were published at. */
      gst_query_set_latency (query, TRUE, 0, GST_CLOCK_TIME_NONE);
      return TRUE;
    case GST_QUERY_SCHEDULING:
      gst_query_set_scheduling (query, GST_SCHEDULING_FLAG_SEQUENTIAL, 1, -1, 0);
      gst_query_add_scheduling_mode (query, GST_PAD_MODE_PUSH);
      return TRUE;
    default:
      return gst_pad_query_default (pad, parent, query);
  }
}

/* stream-start, caps, segment: stored sticky on @pad (a pad-added handler
 * reads its caps), and sent to the peer, if it has one, now. */
static void
gst_xdn_relay_src_start_pad (GstXdnRelaySrc * self, GstPad * pad, guint track, GstCaps * caps)
{
  std::string stream;
  {
    std::lock_guard<std::mutex> l (self->priv->settingsLock);
    stream = self->priv->stream;
  }
  /* Stable: the same stream and track give the same id in every viewer. */
  GUniquePtr<gchar> stream_id (g_strdup_printf ("xdnrelay/%s/%u", stream.c_str (), track));
  GstEvent *ev = gst_event_new_stream_start (stream_id.get ());
  gst_event_set_group_id (ev, self->priv->groupId);
  gst_pad_push_event (pad, ev);
  gst_pad_push_event (pad, gst_event_new_caps (caps));
  GstSegment segment;
  gst_segment_init (&segment, GST_FORMAT_TIME);
  gst_pad_push_event (pad, gst_event_new_segment (&segment));
}

/* After gst_element_add_pad (): a peer linked in pad-added gets the new
 * pad's sticky events now, not with the first buffer, which for a video
 * track waits for a keyframe (an xdnrelaysink there would describe the
 * track a GOP late). Pushing the stored segment again changes nothing on
 * the pad; it makes the pad send the events its peer does not have yet. */
static void
gst_xdn_relay_src_send_sticky (GstPad * pad)
{
  if (GstEvent *segment = gst_pad_get_sticky_event (pad, GST_EVENT_SEGMENT, 0))
    gst_pad_push_event (pad, segment);
}

/* Adds the pad of a new track (or restarts the pad of a track that came
 * back). Called with no lock held. */
static void
gst_xdn_relay_src_add_track (GstXdnRelaySrc * self, const TrackDescription & t)
{
  GstXdnRelaySrcPrivate *priv = self->priv;
  GRef<GstPad> existing;
  {
    std::lock_guard<std::mutex> l (priv->stateLock);
    auto it = priv->tracks.find (t.id);
    if (it != priv->tracks.end ()) {
      it->second.eos = false;
      it->second.eosSent = false;
      existing = it->second.pad;
    }
  }
  if (existing) {
    gst_xdn_relay_src_start_pad (self, existing.get (), t.id, t.caps.get ());
    return;
  }

  GstStaticPadTemplate *tmpl = t.kind == TrackKind::Video ? &video_template
      : t.kind == TrackKind::Audio ? &audio_template : &track_template;
  GUniquePtr<gchar> name (g_strdup_printf ("%s_%u",
      t.kind == TrackKind::Other ? "track" : trackKindName (t.kind), t.id));
  auto templ = adoptGRef (gst_static_pad_template_get (tmpl));
  GstPad *pad = gst_pad_new_from_template (GST_PAD_TEMPLATE (templ.get ()), name.get ());
  gst_pad_set_element_private (pad, GUINT_TO_POINTER (t.id));
  gst_pad_set_event_function (pad, GST_DEBUG_FUNCPTR (gst_xdn_relay_src_src_event));
  gst_pad_set_query_function (pad, GST_DEBUG_FUNCPTR (gst_xdn_relay_src_src_query));
  gst_pad_use_fixed_caps (pad);
  gst_pad_set_active (pad, TRUE);
  gst_xdn_relay_src_start_pad (self, pad, t.id, t.caps.get ());
  {
    std::lock_guard<std::mutex> l (priv->stateLock);
    SrcTrack st;
    st.pad = GRef<GstPad>::ref (pad);
    st.kind = t.kind;
    priv->tracks[t.id] = std::move (st);
  }
  gst_flow_combiner_add_pad (priv->combiner, pad);
  GST_INFO_OBJECT (self, "track %u: pad %s, caps %" GST_PTR_FORMAT, t.id, name.get (),
      t.caps.get ());
  gst_element_add_pad (GST_ELEMENT (self), pad);
  gst_xdn_relay_src_send_sticky (pad);
}

static GRef<GstPad>
track_pad (GstXdnRelaySrc * self, guint track, bool *eos = nullptr)
{
  std::lock_guard<std::mutex> l (self->priv->stateLock);
  auto it = self->priv->tracks.find (track);
  if (it == self->priv->tracks.end ())
    return nullptr;
  if (eos)
    *eos = it->second.eos;
  return it->second.pad;
}

static void
gst_xdn_relay_src_end_track (GstXdnRelaySrc * self, guint track)
{
  GRef<GstPad> pad;
  {
    std::lock_guard<std::mutex> l (self->priv->stateLock);
    auto it = self->priv->tracks.find (track);
    if (it == self->priv->tracks.end () || it->second.eosSent)
      return;
    it->second.eos = true;
    it->second.eosSent = true;
    pad = it->second.pad;
  }
  GST_INFO_OBJECT (pad.get (), "track %u ended", track);
  gst_pad_push_event (pad.get (), gst_event_new_eos ());
}

static void
gst_xdn_relay_src_end_all (GstXdnRelaySrc * self)
{
  std::vector<guint> ids;
  {
    std::lock_guard<std::mutex> l (self->priv->stateLock);
    for (const auto &t : self->priv->tracks)
      ids.push_back (t.first);
  }
  for (guint id : ids)
    gst_xdn_relay_src_end_track (self, id);
}

static GstClockTime
gst_xdn_relay_src_running_time_now (GstXdnRelaySrc * self)
{
  auto clock = adoptGRef (gst_element_get_clock (GST_ELEMENT (self)));
  if (!clock)
    return GST_CLOCK_TIME_NONE;
  GstClockTime now = gst_clock_get_time (clock.get ());
  GstClockTime base = gst_element_get_base_time (GST_ELEMENT (self));
  return now > base ? now - base : 0;
}

/* Pushes one packet. Returns false when the task must pause. */
static bool
gst_xdn_relay_src_push_buffer (GstXdnRelaySrc * self, RelayEvent & ev)
{
  GstXdnRelaySrcPrivate *priv = self->priv;
  bool eos = false;
  GRef<GstPad> pad = track_pad (self, ev.track, &eos);
  if (!pad || eos)
    return true;

  /* The buffer is shared with the publisher and the other subscribers: make
   * it writable copies the small GstBuffer, not the packet, so that this
   * pipeline's timestamps can be set on it. */
  GstBuffer *buf = gst_buffer_make_writable (ev.buffer.release ());
  GST_BUFFER_PTS (buf) = GST_CLOCK_TIME_IS_VALID (ev.runningTime)
      ? ev.runningTime : gst_xdn_relay_src_running_time_now (self);
  GST_BUFFER_DTS (buf) = GST_CLOCK_TIME_NONE;
  if (ev.discont)
    GST_BUFFER_FLAG_SET (buf, GST_BUFFER_FLAG_DISCONT);
  else
    GST_BUFFER_FLAG_UNSET (buf, GST_BUFFER_FLAG_DISCONT);
  if (ev.keyframe)
    GST_BUFFER_FLAG_UNSET (buf, GST_BUFFER_FLAG_DELTA_UNIT);

  GstFlowReturn ret = gst_pad_push (pad.get (), buf);
  if (ret == GST_FLOW_EOS) {
    std::lock_guard<std::mutex> l (priv->stateLock);
    auto it = priv->tracks.find (ev.track);
    if (it != priv->tracks.end ())
      it->second.eos = true;
  }
  GstFlowReturn combined = gst_flow_combiner_update_pad_flow (priv->combiner, pad.get (), ret);
  if (combined == GST_FLOW_OK)
    return true;
  if (combined == GST_FLOW_FLUSHING) {
    GST_DEBUG_OBJECT (self, "flushing, pausing");
    return false;
  }
  if (combined == GST_FLOW_EOS) {
    /* As a base source does: downstream wants no more, so it gets EOS. */
    GST_INFO_OBJECT (self, "every pad is EOS downstream: sending EOS, pausing");
    gst_xdn_relay_src_end_all (self);
    return false;
  }
  GST_ELEMENT_FLOW_ERROR (self, combined);
  gst_xdn_relay_src_end_all (self);
  return false;
}

/* Pauses the task from its own thread, unless it is being stopped. */
static void
gst_xdn_relay_src_pause_task (GstXdnRelaySrc * self)
{
  GstXdnRelaySrcPrivate *priv = self->priv;
  std::lock_guard<std::mutex> l (priv->pauseLock);
  if (!priv->stopping)
    gst_task_pause (priv->task);
}

/* Performs one event on the pads. Returns false when the task must pause. */
static bool
gst_xdn_relay_src_handle_event (GstXdnRelaySrc * self, RelayEvent & ev)
{
  GstXdnRelaySrcPrivate *priv = self->priv;
  try {
    switch (ev.type) {
      case RelayEvent::Type::TrackAdded:{
        TrackDescription t;
        t.id = ev.track;
        t.kind = ev.kind;
        t.caps = ev.caps;
        gst_xdn_relay_src_add_track (self, t);
        /* After the last track of a batch (an SRT description lists them
         * all at once), so that delayed links see every pad. */
        if (!priv->noMorePads && !ev.moreTracks) {
          priv->noMorePads = true;
          gst_element_no_more_pads (GST_ELEMENT (self));
        }
        return true;
      }
      case RelayEvent::Type::CapsChanged:
        if (auto pad = track_pad (self, ev.track)) {
          GST_DEBUG_OBJECT (pad.get (), "new caps %" GST_PTR_FORMAT, ev.caps.get ());
          gst_pad_push_event (pad.get (), gst_event_new_caps (ev.caps.get ()));
        }
        return true;
      case RelayEvent::Type::Buffer:
        return gst_xdn_relay_src_push_buffer (self, ev);
      case RelayEvent::Type::TrackEnded:
        gst_xdn_relay_src_end_track (self, ev.track);
        return true;
      case RelayEvent::Type::StreamEnded:
        GST_INFO_OBJECT (self, "the publisher went away");
        gst_xdn_relay_src_end_all (self);
        return false;
    }
  } catch (const std::exception &e) {
    GST_ELEMENT_ERROR (self, STREAM, FAILED, (nullptr), ("%s", e.what ()));
    gst_xdn_relay_src_end_all (self);
  }
  return false;
}

static void
gst_xdn_relay_src_loop (gpointer user_data)
{
  auto *self = GST_XDN_RELAY_SRC (user_data);
  auto sub = current_subscription (self);
  if (!sub) {
    gst_xdn_relay_src_pause_task (self);
    return;
  }
  if (self->priv->direct) {
    /* Interrupted by a state change, or a delivery wanted the task paused. */
    if (!sub->deliverWaiting ())
      gst_xdn_relay_src_pause_task (self);
    return;
  }
  RelayEvent ev;
  if (!sub->pop (ev))
    return;  /* interrupted: the task is being paused or stopped */
  if (!gst_xdn_relay_src_handle_event (self, ev))
    gst_xdn_relay_src_pause_task (self);
}

struct WeakSrc {
  explicit WeakSrc (GstElement * e) { g_weak_ref_init (&ref, e); }
  ~WeakSrc () { g_weak_ref_clear (&ref); }
  GWeakRef ref;
};

static TransportSettings
gst_xdn_relay_src_transport_settings (GstXdnRelaySrc * self)
{
  GstXdnRelaySrcPrivate *priv = self->priv;
  TransportSettings t;
  std::lock_guard<std::mutex> l (priv->settingsLock);
  t.uri = priv->uri;
  t.passphrase = priv->passphrase;
  t.latencyMs = priv->latency;
  t.token = priv->token;
  t.packetFilter = priv->packetFilter;
  return t;
}

/* READY->PAUSED. Posts an element error and returns false on failure. */
static bool
gst_xdn_relay_src_subscribe (GstXdnRelaySrc * self)
{
  GstXdnRelaySrcPrivate *priv = self->priv;
  std::string stream;
  SubscriptionOptions options;
  {
    std::lock_guard<std::mutex> l (priv->settingsLock);
    stream = priv->stream;
    options.maxQueue = priv->maxQueue;
    options.waitForStream = priv->waitForStream;
    /* Fixed while subscribed: the streaming thread reads it unlocked. */
    priv->direct = priv->directSetting;
  }
  TransportSettings settings = gst_xdn_relay_src_transport_settings (self);
  /* Link changes become `xdn-relay-link` messages, posted from the
   * transport's I/O thread; the handler holds only a weak reference. */
  auto weak = std::make_shared<WeakSrc> (GST_ELEMENT (self));
  settings.onLink = [weak] (const LinkState &state) {
    auto self = adoptGRef (static_cast<GstElement *> (g_weak_ref_get (&weak->ref)));
    if (!self)
      return;
    gst_element_post_message (self.get (), gst_message_new_element (GST_OBJECT (self.get ()),
            linkStateToStructure (state)));
  };
  std::shared_ptr<StreamSubscription> sub;
  try {
    sub = openTransport (settings)->subscribe (stream, options);
  } catch (const RelayError &e) {
    if (e.code () == RelayError::Code::NotFound)
      GST_ELEMENT_ERROR (self, RESOURCE, NOT_FOUND,
          ("stream \"%s\" is not published", stream.c_str ()), ("%s", e.what ()));
    else
      GST_ELEMENT_ERROR (self, RESOURCE, SETTINGS,
          ("Cannot subscribe to stream \"%s\": %s", stream.c_str (), e.what ()), (nullptr));
    return false;
  } catch (const std::exception &e) {
    GST_ELEMENT_ERROR (self, RESOURCE, FAILED,
        ("Cannot subscribe to stream \"%s\"", stream.c_str ()), ("%s", e.what ()));
    return false;
  }
  sub->setInterrupted (true);  /* until PLAYING */
  if (priv->direct)
    sub->setDelivery ([self] (RelayEvent &ev) {
      return gst_xdn_relay_src_handle_event (self, ev);
    });
  {
    std::lock_guard<std::mutex> l (priv->stateLock);
    priv->subscription = sub;
  }
  priv->groupId = gst_util_group_id_next ();
  priv->noMorePads = false;
  GST_INFO_OBJECT (self, "subscribed to stream %s", stream.c_str ());
  return true;
}

static void
gst_xdn_relay_src_add_initial_pads (GstXdnRelaySrc * self)
{
  auto sub = current_subscription (self);
  if (!sub)
    return;
  auto tracks = sub->initialTracks ();
  for (const auto &t : tracks)
    gst_xdn_relay_src_add_track (self, t);
  /* With no track yet, no-more-pads waits for the first one: a launch line's
   * delayed link must not give up on an empty stream. */
  if (!tracks.empty ()) {
    self->priv->noMorePads = true;
    gst_element_no_more_pads (GST_ELEMENT (self));
  }
}

static void
gst_xdn_relay_src_unsubscribe (GstXdnRelaySrc * self)
{
  GstXdnRelaySrcPrivate *priv = self->priv;
  std::shared_ptr<StreamSubscription> sub;
  std::map<guint, SrcTrack> tracks;
  {
    std::lock_guard<std::mutex> l (priv->stateLock);
    sub = std::move (priv->subscription);
    tracks.swap (priv->tracks);
    if (sub) {
      SubscriptionStats s = sub->stats ();
      priv->before.packets += s.packets;
      priv->before.bytes += s.bytes;
      priv->before.dropped += s.dropped;
    }
  }
  sub.reset ();  /* unsubscribes; queued buffers are released */
  for (auto &t : tracks) {
    gst_flow_combiner_remove_pad (priv->combiner, t.second.pad.get ());
    gst_pad_set_active (t.second.pad.get (), FALSE);
    gst_element_remove_pad (GST_ELEMENT (self), t.second.pad.get ());
  }
}

static GstStateChangeReturn
gst_xdn_relay_src_do_change_state (GstElement * element, GstStateChange transition)
{
  auto *self = GST_XDN_RELAY_SRC (element);
  GstXdnRelaySrcPrivate *priv = self->priv;

  switch (transition) {
    case GST_STATE_CHANGE_NULL_TO_READY:{
      std::string stream;
      {
        std::lock_guard<std::mutex> l (priv->settingsLock);
        stream = priv->stream;
      }
      try {
        checkTransportSettings (gst_xdn_relay_src_transport_settings (self));
      } catch (const RelayError &e) {
        GST_ELEMENT_ERROR (self, RESOURCE, SETTINGS, ("%s", e.what ()), (nullptr));
        return GST_STATE_CHANGE_FAILURE;
      }
      std::string why = streamNameError (stream);
      if (!why.empty ()) {
        GST_ELEMENT_ERROR (self, RESOURCE, SETTINGS,
            ("Invalid stream name \"%s\": %s", stream.c_str (), why.c_str ()), (nullptr));
        return GST_STATE_CHANGE_FAILURE;
      }
      break;
    }
    case GST_STATE_CHANGE_READY_TO_PAUSED:
      if (!gst_xdn_relay_src_subscribe (self))
        return GST_STATE_CHANGE_FAILURE;
      break;
    case GST_STATE_CHANGE_PLAYING_TO_PAUSED:
      if (auto sub = current_subscription (self)) {
        sub->setInterrupted (true);
        sub->setTimeBase (nullptr, 0);
      }
      gst_task_pause (priv->task);
      break;
    case GST_STATE_CHANGE_PAUSED_TO_READY:{
      if (auto sub = current_subscription (self))
        sub->setInterrupted (true);
      std::lock_guard<std::mutex> l (priv->pauseLock);
      priv->stopping = true;
      gst_task_stop (priv->task);
      break;
    }
    default:
      break;
  }

  GstStateChangeReturn ret = GST_ELEMENT_CLASS (parent_class)->change_state (element, transition);
  if (ret == GST_STATE_CHANGE_FAILURE) {
    if (transition == GST_STATE_CHANGE_READY_TO_PAUSED)
      gst_xdn_relay_src_unsubscribe (self);
    return ret;
  }

  switch (transition) {
    case GST_STATE_CHANGE_READY_TO_PAUSED:
      gst_xdn_relay_src_add_initial_pads (self);
      ret = GST_STATE_CHANGE_NO_PREROLL;
      break;
    case GST_STATE_CHANGE_PAUSED_TO_PLAYING:
      if (auto sub = current_subscription (self)) {
        auto clock = adoptGRef (gst_element_get_clock (element));
        sub->setTimeBase (clock.get (), gst_element_get_base_time (element));
        sub->setInterrupted (false);
      }
      {
        std::lock_guard<std::mutex> l (priv->pauseLock);
        priv->stopping = false;
        gst_task_start (priv->task);
      }
      break;
    case GST_STATE_CHANGE_PLAYING_TO_PAUSED:
      ret = GST_STATE_CHANGE_NO_PREROLL;
      break;
    case GST_STATE_CHANGE_PAUSED_TO_READY:
      gst_task_join (priv->task);
      gst_xdn_relay_src_unsubscribe (self);
      gst_flow_combiner_reset (priv->combiner);
      break;
    default:
      break;
  }
  return ret;
}

static GstStateChangeReturn
gst_xdn_relay_src_change_state (GstElement * element, GstStateChange transition)
{
  try {
    return gst_xdn_relay_src_do_change_state (element, transition);
  } catch (const std::exception &e) {
    GST_ELEMENT_ERROR (element, CORE, STATE_CHANGE, (nullptr),
        ("%s: %s", gst_state_change_get_name (transition), e.what ()));
    return GST_STATE_CHANGE_FAILURE;
  }
}

static GstStructure *
gst_xdn_relay_src_stats (GstXdnRelaySrc * self)
{
  GstXdnRelaySrcPrivate *priv = self->priv;
  std::string stream;
  {
    std::lock_guard<std::mutex> l (priv->settingsLock);
    stream = priv->stream;
  }
  SubscriptionStats s;
  bool subscribed;
  guint pads = 0;
  {
    std::lock_guard<std::mutex> l (priv->stateLock);
    s = priv->before;
    subscribed = priv->subscription != nullptr;
    if (priv->subscription) {
      SubscriptionStats now = priv->subscription->stats ();
      s.packets += now.packets;
      s.bytes += now.bytes;
      s.dropped += now.dropped;
      s.queued = now.queued;
      s.link = now.link;
      s.connectAttempts = now.connectAttempts;
      s.connects = now.connects;
      s.linkDropped = now.linkDropped;
      s.linkLost = now.linkLost;
      s.linkRetransmitted = now.linkRetransmitted;
      s.ignored = now.ignored;
    }
    pads = priv->tracks.size ();
  }
  return gst_structure_new ("xdnrelaysrc-stats",
      "stream", G_TYPE_STRING, stream.c_str (),
      "subscribed", G_TYPE_BOOLEAN, subscribed,
      "pads", G_TYPE_UINT, pads,
      "packets", G_TYPE_UINT64, s.packets,
      "bytes", G_TYPE_UINT64, s.bytes,
      "dropped", G_TYPE_UINT64, s.dropped,
      "queued", G_TYPE_UINT64, guint64 (s.queued),
      "link", G_TYPE_STRING, s.link.c_str (),
      "connect-attempts", G_TYPE_UINT64, s.connectAttempts,
      "connects", G_TYPE_UINT64, s.connects,
      "link-dropped", G_TYPE_UINT64, s.linkDropped,
      "link-lost", G_TYPE_UINT64, s.linkLost,
      "link-retransmitted", G_TYPE_UINT64, s.linkRetransmitted,
      "ignored", G_TYPE_UINT64, s.ignored, nullptr);
}

static void
gst_xdn_relay_src_set_property (GObject * object, guint prop_id,
    const GValue * value, GParamSpec * pspec)
{
  GstXdnRelaySrcPrivate *priv = GST_XDN_RELAY_SRC (object)->priv;
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
    case PROP_MAX_QUEUE:
      priv->maxQueue = g_value_get_uint (value);
      break;
    case PROP_DIRECT:
      priv->directSetting = g_value_get_boolean (value);
      break;
    case PROP_WAIT_FOR_STREAM:
      priv->waitForStream = g_value_get_boolean (value);
      break;
    case PROP_PASSPHRASE:{
      const gchar *s = g_value_get_string (value);
      priv->passphrase = s ? s : "";
      break;
    }
    case PROP_LATENCY:
      priv->latency = g_value_get_uint (value);
      break;
    case PROP_TOKEN:{
      const gchar *s = g_value_get_string (value);
      priv->token = s ? s : "";
      break;
    }
    case PROP_PACKET_FILTER:{
      const gchar *s = g_value_get_string (value);
      priv->packetFilter = s ? s : "";
      break;
    }
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
      break;
  }
}

static void
gst_xdn_relay_src_get_property (GObject * object, guint prop_id, GValue * value,
    GParamSpec * pspec)
{
  auto *self = GST_XDN_RELAY_SRC (object);
  GstXdnRelaySrcPrivate *priv = self->priv;
  if (prop_id == PROP_STATS || prop_id == PROP_DROPPED) {
    GstStructure *s;
    try {
      s = gst_xdn_relay_src_stats (self);
    } catch (const std::exception &e) {
      GST_ERROR_OBJECT (self, "stats: %s", e.what ());
      return;
    }
    if (prop_id == PROP_STATS) {
      g_value_take_boxed (value, s);
    } else {
      guint64 dropped = 0;
      gst_structure_get_uint64 (s, "dropped", &dropped);
      g_value_set_uint64 (value, dropped);
      gst_structure_free (s);
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
    case PROP_MAX_QUEUE:
      g_value_set_uint (value, priv->maxQueue);
      break;
    case PROP_WAIT_FOR_STREAM:
      g_value_set_boolean (value, priv->waitForStream);
      break;
    case PROP_DIRECT:
      g_value_set_boolean (value, priv->directSetting);
      break;
    case PROP_PACKET_FILTER:
      g_value_set_string (value, priv->packetFilter.c_str ());
      break;
    case PROP_PASSPHRASE:
    case PROP_TOKEN:
      /* Secrets are never read back. */
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
gst_xdn_relay_src_init (GstXdnRelaySrc * self)
{
  auto *priv = new GstXdnRelaySrcPrivate ();
  self->priv = priv;
  priv->combiner = gst_flow_combiner_new ();
  g_rec_mutex_init (&priv->taskLock);
  priv->task = gst_task_new (gst_xdn_relay_src_loop, self, nullptr);
  gst_task_set_lock (priv->task, &priv->taskLock);
  GST_OBJECT_FLAG_SET (self, GST_ELEMENT_FLAG_SOURCE);
}

static void
gst_xdn_relay_src_finalize (GObject * object)
{
  GstXdnRelaySrcPrivate *priv = GST_XDN_RELAY_SRC (object)->priv;
  gst_task_stop (priv->task);
  gst_task_join (priv->task);
  gst_object_unref (priv->task);
  g_rec_mutex_clear (&priv->taskLock);
  gst_flow_combiner_free (priv->combiner);
  delete priv;
  G_OBJECT_CLASS (parent_class)->finalize (object);
}

static void
gst_xdn_relay_src_class_init (GstXdnRelaySrcClass * klass)
{
  GObjectClass *gobject_class = G_OBJECT_CLASS (klass);
  GstElementClass *element_class = GST_ELEMENT_CLASS (klass);

  gobject_class->set_property = gst_xdn_relay_src_set_property;
  gobject_class->get_property = gst_xdn_relay_src_get_property;
  gobject_class->finalize = gst_xdn_relay_src_finalize;

  /**
   * GstXdnRelaySrc:stream:
   *
   * Name of the stream to subscribe to.
   */
  properties[PROP_STREAM] = g_param_spec_string ("stream", "Stream",
      "Name of the stream to subscribe to", nullptr,
      (GParamFlags) (G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS | GST_PARAM_MUTABLE_READY));
  /**
   * GstXdnRelaySrc:uri:
   *
   * Upstream node to pull the stream from (`srt://HOST:PORT`, HOST a name,
   * an IPv4 address or `[IPv6]`). Empty: the in-process hub.
   */
  properties[PROP_URI] = g_param_spec_string ("uri", "URI",
      "Upstream node to pull from (srt://HOST:PORT); empty for the in-process hub", nullptr,
      (GParamFlags) (G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS | GST_PARAM_MUTABLE_READY));
  /**
   * GstXdnRelaySrc:passphrase:
   *
   * SRT mode: passphrase of the link (10 to 79 characters; SRTO_PASSPHRASE).
   * A wrong one is refused by the upstream node (`xdn-relay-link` state
   * "refused"), and the element keeps trying.
   */
  properties[PROP_PASSPHRASE] = g_param_spec_string ("passphrase", "Passphrase",
      "SRT passphrase (10 to 79 characters); empty for none", nullptr,
      (GParamFlags) (G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS | GST_PARAM_MUTABLE_READY));
  /**
   * GstXdnRelaySrc:latency:
   *
   * SRT mode: SRT latency of the link in milliseconds (SRTO_LATENCY; the
   * link uses the larger of both ends' values). Lost packets are
   * retransmitted within it; about 4 x the round-trip time is a good value.
   */
  properties[PROP_LATENCY] = g_param_spec_uint ("latency", "Latency",
      "SRT latency of the link (ms)", 0, 60000, kDefaultLatency,
      (GParamFlags) (G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS | GST_PARAM_MUTABLE_READY));
  /**
   * GstXdnRelaySrc:token:
   *
   * SRT mode: credential sent as `s=TOKEN` in the streamid, for upstream
   * nodes that check it. Empty: none.
   */
  properties[PROP_TOKEN] = g_param_spec_string ("token", "Token",
      "Credential sent in the SRT streamid (s=TOKEN); empty for none", nullptr,
      (GParamFlags) (G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS | GST_PARAM_MUTABLE_READY));
  /**
   * GstXdnRelaySrc:packet-filter:
   *
   * SRT mode: SRT packet filter of the link (SRTO_PACKETFILTER), agreed with
   * the upstream node in the handshake. `fec,cols:10,rows:1,arq:always` adds
   * one parity packet per 10 to the retransmissions, so that lossy links
   * (a few percent) lose nothing at a latency of 4 x RTT. Empty: none.
   */
  properties[PROP_PACKET_FILTER] = g_param_spec_string ("packet-filter", "Packet filter",
      "SRT packet filter of the link (e.g. fec,cols:10,rows:1,arq:always); empty for none", nullptr,
      (GParamFlags) (G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS | GST_PARAM_MUTABLE_READY));
  /**
   * GstXdnRelaySrc:max-queue:
   *
   * Packets this subscriber may have waiting; when full the oldest are dropped.
   */
  properties[PROP_MAX_QUEUE] = g_param_spec_uint ("max-queue", "Max queue",
      "Packets waiting per subscription before the oldest are dropped",
      1, G_MAXUINT, kDefaultMaxQueue,
      (GParamFlags) (G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS | GST_PARAM_MUTABLE_READY));
  /**
   * GstXdnRelaySrc:wait-for-stream:
   *
   * When the stream is not published on READY->PAUSED: wait for it (TRUE)
   * or fail with an error (FALSE). SRT mode always waits (and retries).
   */
  properties[PROP_WAIT_FOR_STREAM] = g_param_spec_boolean ("wait-for-stream",
      "Wait for stream", "Wait for the stream to be published instead of failing",
      FALSE,
      (GParamFlags) (G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS | GST_PARAM_MUTABLE_READY));
  /**
   * GstXdnRelaySrc:direct:
   *
   * Push each packet on the thread that hands it over (the publisher's, or
   * the SRT I/O thread) instead of this element's own: a thread switch less
   * per packet, but the publisher waits while downstream handles it. Only
   * for downstream elements that never block (xdnwebrtcfanout).
   */
  properties[PROP_DIRECT] = g_param_spec_boolean ("direct", "Direct",
      "Push packets on the thread that hands them over, not this element's own "
      "(only for downstream elements that never block)",
      FALSE,
      (GParamFlags) (G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS | GST_PARAM_MUTABLE_READY));
  /**
   * GstXdnRelaySrc:dropped:
   *
   * Packets dropped because this subscriber's queue was full.
   */
  properties[PROP_DROPPED] = g_param_spec_uint64 ("dropped", "Dropped",
      "Packets dropped because the queue was full", 0, G_MAXUINT64, 0,
      (GParamFlags) (G_PARAM_READABLE | G_PARAM_STATIC_STRINGS));
  /**
   * GstXdnRelaySrc:stats:
   *
   * `xdnrelaysrc-stats`: stream (string), subscribed (boolean), pads (uint),
   * packets, bytes, dropped, queued (guint64); SRT mode: link (string:
   * "connecting", "connected", "waiting" to retry, "ended"), connect-attempts,
   * connects, link-dropped (packets the link lost for good), link-lost
   * (packets the link found missing, recovered unless also counted in
   * link-dropped), link-retransmitted (retransmissions received), ignored
   * (messages not understood) (guint64).
   */
  properties[PROP_STATS] = g_param_spec_boxed ("stats", "Stats",
      "Subscription counters", GST_TYPE_STRUCTURE,
      (GParamFlags) (G_PARAM_READABLE | G_PARAM_STATIC_STRINGS));
  g_object_class_install_properties (gobject_class, N_PROPS, properties);

  gst_element_class_add_static_pad_template (element_class, &video_template);
  gst_element_class_add_static_pad_template (element_class, &audio_template);
  gst_element_class_add_static_pad_template (element_class, &track_template);
  gst_element_class_set_static_metadata (element_class, "OpenXDN relay source",
      "Source/Network/RTP",
      "Subscribes to a named stream of the relay hub or of another node over SRT",
      "OpenXDN");

  element_class->change_state = GST_DEBUG_FUNCPTR (gst_xdn_relay_src_change_state);
}
