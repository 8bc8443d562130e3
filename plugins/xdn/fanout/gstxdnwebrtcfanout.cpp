/**
 * SECTION:element-xdnwebrtcfanout
 * @title: xdnwebrtcfanout
 * @see_also: xdnrelaysrc, webrtcbin
 *
 * Serves every WebRTC viewer of one stream from one element and one UDP
 * port. Each request pad `sink_%u` takes one RTP track (H.264 or VP8
 * video, Opus audio), payloaded once upstream; every viewer gets the same
 * packets with only the header rewritten for it (its payload type, its
 * SSRC, continuous sequence numbers and timestamps), SRTP-protected with
 * its own DTLS-SRTP keys, and sent in batches (sendmmsg, UDP GSO where the
 * kernel has it) by a fixed number of threads (#GstXdnWebRtcFanout:threads)
 * whatever the number of viewers.
 *
 * The port is an ICE-lite agent (RFC 8445): it answers the viewers'
 * connectivity checks, told apart by their ICE credentials, and sends to
 * the address a viewer nominated. The answer announces one host candidate
 * per address of #GstXdnWebRtcFanout:address and nothing else: no STUN,
 * TURN or UPnP, nothing leaves the machine but answers to the viewers.
 *
 * Viewers come and go with action signals. `add-viewer` takes a viewer's
 * SDP offer and returns a #GstStructure `xdn-fanout-viewer` with `id` (the
 * handle for `remove-viewer`) and `answer` (the SDP answer: a=ice-lite,
 * a=setup:passive, one m-line per offered medium a track can serve, the
 * codec matched against the track's caps, rtcp-fb nack, nack pli, ccm fir,
 * goog-remb and transport-cc when offered, and the transport-wide sequence
 * number header extension when offered with transport-cc), or %NULL when
 * the offer cannot
 * be served (a warning message says why). `remove-viewer` ends a viewer.
 * The element posts `xdn-fanout-viewer` element messages (`id`, `state`
 * "connected" or "removed", `reason`) and emits `viewer-removed` when a
 * viewer goes: removed, timed out (no STUN consent or RTCP for
 * #GstXdnWebRtcFanout:viewer-timeout), BYE, DTLS failure, or the element
 * stopping.
 *
 * Video starts for a viewer on a keyframe. Keyframe requests (a viewer
 * starting, PLI or FIR from viewers) are aggregated over viewers into at
 * most one upstream force-key-unit event per track every
 * #GstXdnWebRtcFanout:keyframe-min-interval, sent with the track's next
 * buffer. NACKs are answered from a per-track history of the last
 * #GstXdnWebRtcFanout:history-packets packets (at most one second old).
 * Each viewer gets RTCP sender reports for its tracks about every second,
 * whose NTP and RTP times come from the buffers' running time. A viewer
 * that negotiated the transport-wide sequence number gets one on each of
 * its packets (one counter across its tracks); REMB and transport-cc
 * feedback (packets reported received and lost, the rate they arrived at)
 * are kept per viewer (#GstXdnWebRtcFanout:stats).
 *
 * The socket is opened in NULL->READY (#GstXdnWebRtcFanout:bound-port is
 * known from then on) and closed in READY->NULL; viewers may be added from
 * READY on, once the pads have caps.
 *
 * ## Example launch line
 * |[
 * gst-launch-1.0 videotestsrc is-live=true ! x264enc tune=zerolatency key-int-max=60 ! \
 *   rtph264pay config-interval=-1 aggregate-mode=zero-latency ! \
 *   xdnwebrtcfanout name=f address=127.0.0.1 port=9500
 * ]| Serves the test picture on UDP port 9500; an application hands each
 * viewer's offer to `add-viewer` and returns the answer (xdn-node's WHEP
 * endpoint does that).
 */
#include "gstxdnwebrtcfanout.h"

#include <gst/video/video.h>

#include <atomic>
#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "xdn-fanout-core.h"
#include "xdn-gref.h"
#include "xdn-ice.h"
#include "xdn-rtp-keyframe.h"

GST_DEBUG_CATEGORY_STATIC (gst_xdn_webrtc_fanout_debug);
#define GST_CAT_DEFAULT gst_xdn_webrtc_fanout_debug

using namespace xdn;
using namespace xdn::fanout;

namespace {

constexpr const char *kDefaultAddress = "127.0.0.1";
constexpr GstClockTime kDefaultViewerTimeout = 10 * GST_SECOND;
constexpr GstClockTime kDefaultKeyframeMinInterval = 500 * GST_MSECOND;
constexpr guint kDefaultHistoryPackets = 1024;
constexpr guint kDefaultViewerQueue = 512;
constexpr guint kDefaultMaxViewers = 10000;

/* One sink pad's track. Its fields other than the atomics are used by the
 * pad's streaming thread only (chain and event functions). */
struct SinkTrack {
  GstPad *pad = nullptr;            /* borrowed: the element owns its pads */
  guint track = 0;
  GstSegment segment;
  relay::VideoCodec codec = relay::VideoCodec::Unknown;
  bool video = false;
  GRef<GstCaps> caps;               /* last caps (guarded by stateLock) */
  bool eos = false;                 /* guarded by stateLock */
  std::atomic<bool> keyframeWanted {false};
  std::atomic<guint64> keyframeRequests {0};
};

/* A GstBuffer as a fan-out packet: the buffer's memories stay mapped (read)
 * while the packet lives; nothing is copied. */
class BufferPacket : public Packet {
public:
  BufferPacket (guint track, GstBuffer *buffer, bool keyframe,
      std::chrono::steady_clock::time_point capture)
      : buffer_ (buffer)
  {
    const guint n = gst_buffer_n_memory (buffer);
    for (guint i = 0; i < n && i < kMaxSegments; i++) {
      GstMemory *mem = gst_buffer_peek_memory (buffer, i);
      if (!gst_memory_map (mem, &maps_[mapped_], GST_MAP_READ))
        break;
      mems_[mapped_++] = mem;
      addSegment (maps_[mapped_ - 1].data, maps_[mapped_ - 1].size);
    }
    if (mapped_ == n)
      init (track, keyframe, capture);
  }
  ~BufferPacket () override
  {
    for (guint i = 0; i < mapped_; i++)
      gst_memory_unmap (mems_[i], &maps_[i]);
    gst_buffer_unref (buffer_);
  }
  static constexpr guint kMaxMemories = kMaxSegments;

private:
  GstBuffer *buffer_;
  GstMemory *mems_[kMaxSegments] = {};
  GstMapInfo maps_[kMaxSegments] = {};
  guint mapped_ = 0;
};

/* Takes @buffer. */
PacketRef
packetFromBuffer (guint track, GstBuffer *buffer, bool keyframe,
    std::chrono::steady_clock::time_point capture)
{
  if (gst_buffer_n_memory (buffer) <= BufferPacket::kMaxMemories)
    return std::make_shared<BufferPacket> (track, buffer, keyframe, capture);
  /* Many small memories: one copy rather than a merge of the buffer. */
  GstMapInfo map;
  PacketRef p;
  if (gst_buffer_map (buffer, &map, GST_MAP_READ)) {
    p = makeBytesPacket (track, map.data, map.size, keyframe, capture);
    gst_buffer_unmap (buffer, &map);
  }
  gst_buffer_unref (buffer);
  return p;
}

}  // namespace

struct GstXdnWebRtcFanoutPrivate {
  std::mutex settingsLock;          /* protects the settings below */
  std::string address = kDefaultAddress;
  guint port = 0;
  guint threads = 0;
  GstClockTime viewerTimeout = kDefaultViewerTimeout;
  GstClockTime keyframeMinInterval = kDefaultKeyframeMinInterval;
  guint historyPackets = kDefaultHistoryPackets;
  guint viewerQueue = kDefaultViewerQueue;
  guint maxViewers = kDefaultMaxViewers;
  bool perViewerStats = false;

  std::mutex stateLock;             /* protects core, tracks, nextTrack */
  std::shared_ptr<FanoutCore> core; /* READY and above */
  std::map<guint, std::unique_ptr<SinkTrack>> tracks;  /* by pad number */
  guint nextTrack = 0;

  /* The core's callbacks run on its threads, which are joined before the
   * element goes (READY->NULL or dispose); they hold no reference (the
   * last one dropped on a fan-out thread would join that thread from
   * itself) and do nothing once dispose has begun. */
  std::atomic<bool> callbacksEnabled {true};
};

struct _GstXdnWebRtcFanout {
  GstElement parent;
  GstXdnWebRtcFanoutPrivate *priv;
};

enum {
  PROP_0,
  PROP_ADDRESS,
  PROP_PORT,
  PROP_BOUND_PORT,
  PROP_THREADS,
  PROP_VIEWER_TIMEOUT,
  PROP_KEYFRAME_MIN_INTERVAL,
  PROP_HISTORY_PACKETS,
  PROP_VIEWER_QUEUE,
  PROP_MAX_VIEWERS,
  PROP_PER_VIEWER_STATS,
  PROP_STATS,
  N_PROPS
};
static GParamSpec *properties[N_PROPS];

enum {
  SIGNAL_ADD_VIEWER,
  SIGNAL_REMOVE_VIEWER,
  SIGNAL_VIEWER_REMOVED,
  N_SIGNALS
};
static guint signals[N_SIGNALS];

static GstStaticPadTemplate sink_template = GST_STATIC_PAD_TEMPLATE ("sink_%u",
    GST_PAD_SINK, GST_PAD_REQUEST,
    GST_STATIC_CAPS ("application/x-rtp, media = (string) video, "
        "encoding-name = (string) { H264, VP8 }, clock-rate = (int) 90000; "
        "application/x-rtp, media = (string) audio, encoding-name = (string) OPUS, "
        "clock-rate = (int) 48000"));

#define gst_xdn_webrtc_fanout_parent_class parent_class
G_DEFINE_TYPE_WITH_CODE (GstXdnWebRtcFanout, gst_xdn_webrtc_fanout, GST_TYPE_ELEMENT,
    GST_DEBUG_CATEGORY_INIT (gst_xdn_webrtc_fanout_debug, "xdnwebrtcfanout", 0,
        "OpenXDN WebRTC fan-out"));
GST_ELEMENT_REGISTER_DEFINE (xdnwebrtcfanout, "xdnwebrtcfanout", GST_RANK_NONE,
    GST_TYPE_XDN_WEBRTC_FANOUT);

static std::shared_ptr<FanoutCore>
gst_xdn_webrtc_fanout_core (GstXdnWebRtcFanout * self)
{
  std::lock_guard<std::mutex> l (self->priv->stateLock);
  return self->priv->core;
}

/* The track a caps structure describes, or false (with @why) when the
 * fan-out cannot serve it. */
static bool
track_codec_from_caps (GstCaps * caps, guint track, TrackCodec & out, std::string & why)
{
  if (!caps || gst_caps_get_size (caps) == 0) {
    why = "empty caps";
    return false;
  }
  const GstStructure *s = gst_caps_get_structure (caps, 0);
  const gchar *media = gst_structure_get_string (s, "media");
  const gchar *name = gst_structure_get_string (s, "encoding-name");
  gint rate = 0;
  if (!media || !name || !gst_structure_get_int (s, "clock-rate", &rate) || rate <= 0) {
    why = "RTP caps without media, encoding-name or clock-rate";
    return false;
  }
  out = TrackCodec ();
  out.trackId = track;
  out.kind = g_str_equal (media, "audio") ? MediaKind::Audio : MediaKind::Video;
  out.encodingName = name;
  out.clockRate = static_cast<uint32_t> (rate);
  if (const gchar *params = gst_structure_get_string (s, "encoding-params"))
    out.channels = static_cast<unsigned> (g_ascii_strtoull (params, nullptr, 10));
  if (const gchar *pli = gst_structure_get_string (s, "profile-level-id"))
    out.profileLevelId = pli;
  gint mode = 0;
  if (const gchar *m = gst_structure_get_string (s, "packetization-mode"))
    out.packetizationMode = static_cast<int> (g_ascii_strtoll (m, nullptr, 10));
  else if (gst_structure_get_int (s, "packetization-mode", &mode))
    out.packetizationMode = mode;
  return true;
}

/* When the buffer's media was captured, on the steady clock: its running
 * time against the element clock's running time now. Arrival time when
 * either is unknown. */
static std::chrono::steady_clock::time_point
gst_xdn_webrtc_fanout_capture_time (GstXdnWebRtcFanout * self, SinkTrack * t, GstBuffer * buffer)
{
  const auto now = std::chrono::steady_clock::now ();
  GstClockTime ts = GST_BUFFER_PTS_IS_VALID (buffer) ? GST_BUFFER_PTS (buffer)
      : GST_BUFFER_DTS (buffer);
  if (!GST_CLOCK_TIME_IS_VALID (ts) || t->segment.format != GST_FORMAT_TIME)
    return now;
  const GstClockTime rt = gst_segment_to_running_time (&t->segment, GST_FORMAT_TIME, ts);
  auto clock = adoptGRef (gst_element_get_clock (GST_ELEMENT (self)));
  const GstClockTime base = gst_element_get_base_time (GST_ELEMENT (self));
  if (!GST_CLOCK_TIME_IS_VALID (rt) || !clock || !GST_CLOCK_TIME_IS_VALID (base))
    return now;
  const GstClockTime clockNow = gst_clock_get_time (clock.get ());
  if (clockNow < base)
    return now;
  const gint64 ageNs = GST_CLOCK_DIFF (rt, clockNow - base);  /* now_rt - rt */
  if (ageNs > 10 * (gint64) GST_SECOND || ageNs < -10 * (gint64) GST_SECOND)
    return now;
  return now - std::chrono::nanoseconds (ageNs);
}

static GstFlowReturn
gst_xdn_webrtc_fanout_chain (GstPad * pad, GstObject * parent, GstBuffer * buffer)
{
  auto *self = GST_XDN_WEBRTC_FANOUT (parent);
  auto *t = static_cast<SinkTrack *> (gst_pad_get_element_private (pad));
  std::shared_ptr<FanoutCore> core = gst_xdn_webrtc_fanout_core (self);
  if (!core) {
    gst_buffer_unref (buffer);
    return GST_FLOW_FLUSHING;
  }
  try {
    const bool keyframe = t->video && relay::rtpBufferStartsKeyframe (t->codec, buffer);
    const auto capture = gst_xdn_webrtc_fanout_capture_time (self, t, buffer);
    PacketRef packet = packetFromBuffer (t->track, buffer, keyframe, capture);
    if (packet)
      core->push (std::move (packet));
  } catch (const std::exception &e) {
    GST_ELEMENT_ERROR (self, STREAM, FAILED, (nullptr), ("track %u: %s", t->track, e.what ()));
    return GST_FLOW_ERROR;
  }
  /* A keyframe request the core let through (aggregated over viewers,
   * rate-limited) goes upstream from this streaming thread. */
  if (t->keyframeWanted.exchange (false)) {
    const guint64 count = ++t->keyframeRequests;
    GST_DEBUG_OBJECT (pad, "requesting a keyframe upstream (#%" G_GUINT64_FORMAT ")", count);
    gst_pad_push_event (pad, gst_video_event_new_upstream_force_key_unit (GST_CLOCK_TIME_NONE,
            FALSE, static_cast<guint> (count)));
  }
  return GST_FLOW_OK;
}

static gboolean
gst_xdn_webrtc_fanout_handle_event (GstPad * pad, GstXdnWebRtcFanout * self, GstEvent * event)
{
  GstXdnWebRtcFanoutPrivate *priv = self->priv;
  auto *t = static_cast<SinkTrack *> (gst_pad_get_element_private (pad));

  switch (GST_EVENT_TYPE (event)) {
    case GST_EVENT_CAPS:{
      GstCaps *caps;
      gst_event_parse_caps (event, &caps);
      TrackCodec codec;
      std::string why;
      if (!track_codec_from_caps (caps, t->track, codec, why)) {
        GST_ELEMENT_ERROR (self, STREAM, FORMAT, (nullptr),
            ("track %u: %s: %" GST_PTR_FORMAT, t->track, why.c_str (), caps));
        return FALSE;
      }
      t->video = codec.kind == MediaKind::Video;
      t->codec = t->video ? relay::videoCodecFromEncodingName (codec.encodingName.c_str ())
          : relay::VideoCodec::Unknown;
      std::shared_ptr<FanoutCore> core;
      {
        std::lock_guard<std::mutex> l (priv->stateLock);
        t->caps = GRef<GstCaps>::ref (caps);
        t->eos = false;
        core = priv->core;
      }
      GST_DEBUG_OBJECT (pad, "track %u caps %" GST_PTR_FORMAT, t->track, caps);
      if (core)
        core->setTrack (codec);
      return TRUE;
    }
    case GST_EVENT_SEGMENT:
      gst_event_copy_segment (event, &t->segment);
      return TRUE;
    case GST_EVENT_FLUSH_STOP:
      gst_segment_init (&t->segment, GST_FORMAT_UNDEFINED);
      return TRUE;
    case GST_EVENT_STREAM_START:{
      std::lock_guard<std::mutex> l (priv->stateLock);
      t->eos = false;
      return TRUE;
    }
    case GST_EVENT_EOS:{
      bool all = true;
      {
        std::lock_guard<std::mutex> l (priv->stateLock);
        t->eos = true;
        for (const auto &[id, other] : priv->tracks)
          all = all && other->eos;
      }
      GST_INFO_OBJECT (pad, "track %u ended", t->track);
      if (all) {
        GstMessage *msg = gst_message_new_eos (GST_OBJECT (self));
        gst_message_set_seqnum (msg, gst_event_get_seqnum (event));
        gst_element_post_message (GST_ELEMENT (self), msg);
      }
      return TRUE;
    }
    default:
      return TRUE;
  }
}

static gboolean
gst_xdn_webrtc_fanout_event (GstPad * pad, GstObject * parent, GstEvent * event)
{
  gboolean ret = FALSE;
  try {
    ret = gst_xdn_webrtc_fanout_handle_event (pad, GST_XDN_WEBRTC_FANOUT (parent), event);
  } catch (const std::exception &e) {
    GST_ELEMENT_ERROR (parent, STREAM, FAILED, (nullptr),
        ("%s event: %s", GST_EVENT_TYPE_NAME (event), e.what ()));
  }
  /* Nothing downstream: every event ends here. */
  gst_event_unref (event);
  return ret;
}

static GstPad *
gst_xdn_webrtc_fanout_request_new_pad (GstElement * element, GstPadTemplate * templ,
    const gchar * name, const GstCaps * caps)
{
  auto *self = GST_XDN_WEBRTC_FANOUT (element);
  GstXdnWebRtcFanoutPrivate *priv = self->priv;
  try {
    guint track;
    SinkTrack *t;
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
      auto owned = std::make_unique<SinkTrack> ();
      t = owned.get ();
      t->track = track;
      gst_segment_init (&t->segment, GST_FORMAT_UNDEFINED);
      priv->tracks[track] = std::move (owned);
    }
    GUniquePtr<gchar> pad_name (g_strdup_printf ("sink_%u", track));
    GstPad *pad = gst_pad_new_from_template (templ, pad_name.get ());
    t->pad = pad;
    gst_pad_set_element_private (pad, t);
    gst_pad_set_chain_function (pad, GST_DEBUG_FUNCPTR (gst_xdn_webrtc_fanout_chain));
    gst_pad_set_event_function (pad, GST_DEBUG_FUNCPTR (gst_xdn_webrtc_fanout_event));
    GST_PAD_SET_ACCEPT_TEMPLATE (pad);
    if (!gst_element_add_pad (element, pad)) {
      std::lock_guard<std::mutex> l (priv->stateLock);
      priv->tracks.erase (track);
      return nullptr;
    }
    GST_DEBUG_OBJECT (self, "new track %u", track);
    return pad;
  } catch (const std::exception &e) {
    GST_ERROR_OBJECT (element, "cannot add pad %s: %s", GST_STR_NULL (name), e.what ());
    return nullptr;
  }
}

static void
gst_xdn_webrtc_fanout_release_pad (GstElement * element, GstPad * pad)
{
  auto *self = GST_XDN_WEBRTC_FANOUT (element);
  GstXdnWebRtcFanoutPrivate *priv = self->priv;
  auto *t = static_cast<SinkTrack *> (gst_pad_get_element_private (pad));
  const guint track = t->track;
  /* Deactivating waits for the streaming thread to leave the chain function. */
  gst_pad_set_active (pad, FALSE);
  gst_element_remove_pad (element, pad);
  std::unique_ptr<SinkTrack> owned;
  std::shared_ptr<FanoutCore> core;
  {
    std::lock_guard<std::mutex> l (priv->stateLock);
    auto it = priv->tracks.find (track);
    if (it != priv->tracks.end ()) {
      owned = std::move (it->second);
      priv->tracks.erase (it);
    }
    core = priv->core;
  }
  if (core)
    core->removeTrack (track);
  GST_DEBUG_OBJECT (self, "released track %u", track);
}

static FanoutCallbacks
gst_xdn_webrtc_fanout_callbacks (GstXdnWebRtcFanout * self)
{
  FanoutCallbacks cb;
  cb.keyframeRequest = [self] (uint32_t track) {
    if (!self->priv->callbacksEnabled)
      return;
    std::lock_guard<std::mutex> l (self->priv->stateLock);
    auto it = self->priv->tracks.find (track);
    if (it != self->priv->tracks.end ())
      it->second->keyframeWanted = true;
  };
  cb.viewerEvent = [self] (const std::string &id, ViewerEvent event, const std::string &reason) {
    if (!self->priv->callbacksEnabled)
      return;
    GstElement *e = GST_ELEMENT (self);
    const bool removed = event == ViewerEvent::Removed;
    if (removed)
      GST_INFO_OBJECT (e, "viewer %s removed: %s", id.c_str (), reason.c_str ());
    else
      GST_INFO_OBJECT (e, "viewer %s connected", id.c_str ());
    gst_element_post_message (e, gst_message_new_element (GST_OBJECT (e),
            gst_structure_new ("xdn-fanout-viewer",
                "id", G_TYPE_STRING, id.c_str (),
                "state", G_TYPE_STRING, removed ? "removed" : "connected",
                "reason", G_TYPE_STRING, reason.c_str (), nullptr)));
    if (removed)
      g_signal_emit (e, signals[SIGNAL_VIEWER_REMOVED], 0, id.c_str (), reason.c_str ());
  };
  return cb;
}

/* NULL->READY: opens the port and starts the threads. */
static bool
gst_xdn_webrtc_fanout_start (GstXdnWebRtcFanout * self)
{
  GstXdnWebRtcFanoutPrivate *priv = self->priv;
  FanoutSettings settings;
  {
    std::lock_guard<std::mutex> l (priv->settingsLock);
    settings.addresses = splitList (priv->address);
    settings.port = static_cast<uint16_t> (priv->port);
    settings.threads = priv->threads;
    settings.viewerTimeout = std::chrono::milliseconds (priv->viewerTimeout / GST_MSECOND);
    settings.keyframeMinInterval =
        std::chrono::milliseconds (priv->keyframeMinInterval / GST_MSECOND);
    settings.historyPackets = priv->historyPackets;
    settings.viewerQueue = priv->viewerQueue;
    settings.maxViewers = priv->maxViewers;
  }
  std::string error;
  std::shared_ptr<FanoutCore> core =
      FanoutCore::create (settings, gst_xdn_webrtc_fanout_callbacks (self), &error);
  if (!core) {
    GST_ELEMENT_ERROR (self, RESOURCE, OPEN_READ_WRITE,
        ("Cannot open the WebRTC port: %s", error.c_str ()), (nullptr));
    return false;
  }
  {
    std::lock_guard<std::mutex> l (priv->stateLock);
    /* Pads that kept their caps across a stop. */
    for (const auto &[id, t] : priv->tracks) {
      TrackCodec codec;
      std::string why;
      if (t->caps && track_codec_from_caps (t->caps.get (), id, codec, why))
        core->setTrack (codec);
    }
    priv->core = core;
  }
  GST_INFO_OBJECT (self, "serving on UDP port %u (%s)", core->port (), settings.addresses.size ()
      ? settings.addresses.front ().c_str () : "");
  g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_BOUND_PORT]);
  return true;
}

/* READY->NULL: every viewer is removed (reason "stopped"), the port closed. */
static void
gst_xdn_webrtc_fanout_stop (GstXdnWebRtcFanout * self)
{
  std::shared_ptr<FanoutCore> core;
  {
    std::lock_guard<std::mutex> l (self->priv->stateLock);
    core = std::move (self->priv->core);
  }
  if (!core)
    return;
  core->stop ("stopped");
  core.reset ();
  g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_BOUND_PORT]);
}

static GstStateChangeReturn
gst_xdn_webrtc_fanout_change_state (GstElement * element, GstStateChange transition)
{
  auto *self = GST_XDN_WEBRTC_FANOUT (element);
  try {
    if (transition == GST_STATE_CHANGE_NULL_TO_READY && !gst_xdn_webrtc_fanout_start (self))
      return GST_STATE_CHANGE_FAILURE;
    GstStateChangeReturn ret = GST_ELEMENT_CLASS (parent_class)->change_state (element, transition);
    if (ret == GST_STATE_CHANGE_FAILURE) {
      if (transition == GST_STATE_CHANGE_NULL_TO_READY)
        gst_xdn_webrtc_fanout_stop (self);
      return ret;
    }
    if (transition == GST_STATE_CHANGE_READY_TO_NULL)
      gst_xdn_webrtc_fanout_stop (self);
    return ret;
  } catch (const std::exception &e) {
    GST_ELEMENT_ERROR (element, CORE, STATE_CHANGE, (nullptr),
        ("%s: %s", gst_state_change_get_name (transition), e.what ()));
    return GST_STATE_CHANGE_FAILURE;
  }
}

/* Action signal add-viewer: the answer and id, or NULL with a warning. */
static GstStructure *
gst_xdn_webrtc_fanout_add_viewer (GstXdnWebRtcFanout * self, const gchar * offer)
{
  try {
    std::shared_ptr<FanoutCore> core = gst_xdn_webrtc_fanout_core (self);
    FanoutCore::AddResult r;
    if (!offer)
      r.error = "no offer";
    else if (!core)
      r.error = "the element is not started (set it to READY or above)";
    else
      r = core->addViewer (offer);
    if (!r.ok ()) {
      GST_ELEMENT_WARNING (self, STREAM, FORMAT, ("Viewer refused: %s", r.error.c_str ()),
          (nullptr));
      return nullptr;
    }
    GST_INFO_OBJECT (self, "viewer %s added", r.id.c_str ());
    return gst_structure_new ("xdn-fanout-viewer",
        "id", G_TYPE_STRING, r.id.c_str (),
        "answer", G_TYPE_STRING, r.answer.c_str (), nullptr);
  } catch (const std::exception &e) {
    GST_ELEMENT_WARNING (self, STREAM, FAILED, ("Viewer refused"), ("%s", e.what ()));
    return nullptr;
  }
}

static gboolean
gst_xdn_webrtc_fanout_remove_viewer (GstXdnWebRtcFanout * self, const gchar * id)
{
  try {
    std::shared_ptr<FanoutCore> core = gst_xdn_webrtc_fanout_core (self);
    return id && core && core->removeViewer (id, "removed");
  } catch (const std::exception &e) {
    GST_ERROR_OBJECT (self, "remove-viewer %s: %s", GST_STR_NULL (id), e.what ());
    return FALSE;
  }
}

static GstStructure *
gst_xdn_webrtc_fanout_stats (GstXdnWebRtcFanout * self)
{
  bool perViewer;
  {
    std::lock_guard<std::mutex> l (self->priv->settingsLock);
    perViewer = self->priv->perViewerStats;
  }
  std::shared_ptr<FanoutCore> core = gst_xdn_webrtc_fanout_core (self);
  FanoutStats s;
  if (core)
    s = core->stats (perViewer);
  GstStructure *st = gst_structure_new ("xdnwebrtcfanout-stats",
      "bound-port", G_TYPE_INT, core ? int (core->port ()) : 0,
      "viewers", G_TYPE_UINT64, s.viewers,
      "connected", G_TYPE_UINT64, s.connected,
      "viewer-states", G_TYPE_UINT64, s.viewerStates,
      "tracks", G_TYPE_UINT64, s.tracks,
      "packets-in", G_TYPE_UINT64, s.packetsIn,
      "bytes-in", G_TYPE_UINT64, s.bytesIn,
      "packets-sent", G_TYPE_UINT64, s.packetsSent,
      "bytes-sent", G_TYPE_UINT64, s.bytesSent,
      "retransmits", G_TYPE_UINT64, s.retransmits,
      "nacks", G_TYPE_UINT64, s.nacks,
      "nack-misses", G_TYPE_UINT64, s.nackMisses,
      "dropped", G_TYPE_UINT64, s.dropped,
      "sender-reports", G_TYPE_UINT64, s.senderReports,
      "keyframe-requests", G_TYPE_UINT64, s.keyframeRequests,
      "keyframe-requests-limited", G_TYPE_UINT64, s.keyframeRequestsLimited,
      "plis", G_TYPE_UINT64, s.plis,
      "firs", G_TYPE_UINT64, s.firs,
      "stun-requests", G_TYPE_UINT64, s.stunRequests,
      "stun-errors", G_TYPE_UINT64, s.stunErrors,
      "rate-limited", G_TYPE_UINT64, s.rateLimited,
      "invalid", G_TYPE_UINT64, s.invalid,
      "transport-cc-feedbacks", G_TYPE_UINT64, s.transportCcFeedbacks,
      "transport-cc-received", G_TYPE_UINT64, s.transportCcReceived,
      "transport-cc-lost", G_TYPE_UINT64, s.transportCcLost,
      "threads", G_TYPE_UINT, guint (s.threads),
      "rounds", G_TYPE_UINT64, s.rounds,
      "rounds-on-pushing-thread", G_TYPE_UINT64, s.roundsOnPushingThread,
      "receive-turns", G_TYPE_UINT64, s.receiveTurns,
      "read-by-rounds", G_TYPE_UINT64, s.readByRounds,
      "gso", G_TYPE_BOOLEAN, s.gso, nullptr);
  if (perViewer) {
    GValue list = G_VALUE_INIT;
    gst_value_array_init (&list, s.viewerList.size ());
    for (const auto &v : s.viewerList) {
      GValue item = G_VALUE_INIT;
      g_value_init (&item, GST_TYPE_STRUCTURE);
      g_value_take_boxed (&item, gst_structure_new ("xdn-fanout-viewer-stats",
              "id", G_TYPE_STRING, v.id.c_str (),
              "state", G_TYPE_STRING, v.state.c_str (),
              "address", G_TYPE_STRING, v.address.c_str (),
              "srtp-profile", G_TYPE_STRING, v.srtpProfile.c_str (),
              "thread", G_TYPE_UINT, v.thread,
              "packets-sent", G_TYPE_UINT64, v.packetsSent,
              "bytes-sent", G_TYPE_UINT64, v.bytesSent,
              "retransmits", G_TYPE_UINT64, v.retransmits,
              "nacks", G_TYPE_UINT64, v.nacks,
              "plis", G_TYPE_UINT64, v.plis,
              "firs", G_TYPE_UINT64, v.firs,
              "dropped", G_TYPE_UINT64, v.dropped,
              "rtcp-packets", G_TYPE_UINT64, v.rtcpPackets,
              "remb-bitrate", G_TYPE_UINT64, v.rembBitrate,
              "transport-cc-feedbacks", G_TYPE_UINT64, v.transportCcFeedbacks,
              "transport-cc-received", G_TYPE_UINT64, v.transportCcReceived,
              "transport-cc-lost", G_TYPE_UINT64, v.transportCcLost,
              "transport-cc-bitrate", G_TYPE_UINT64, v.transportCcBitrate,
              "fraction-lost", G_TYPE_UINT, guint (v.fractionLost),
              "cumulative-lost", G_TYPE_INT64, gint64 (v.cumulativeLost),
              "jitter", G_TYPE_UINT, guint (v.jitter),
              "rtt-us", G_TYPE_INT64, gint64 (v.rttUs), nullptr));
      gst_value_array_append_and_take_value (&list, &item);
    }
    gst_structure_take_value (st, "viewer-stats", &list);
  }
  return st;
}

static void
gst_xdn_webrtc_fanout_set_property (GObject * object, guint prop_id, const GValue * value,
    GParamSpec * pspec)
{
  auto *self = GST_XDN_WEBRTC_FANOUT (object);
  GstXdnWebRtcFanoutPrivate *priv = self->priv;
  std::lock_guard<std::mutex> l (priv->settingsLock);
  switch (prop_id) {
    case PROP_ADDRESS:{
      const gchar *s = g_value_get_string (value);
      priv->address = s ? s : kDefaultAddress;
      break;
    }
    case PROP_PORT:
      priv->port = g_value_get_uint (value);
      break;
    case PROP_THREADS:
      priv->threads = g_value_get_uint (value);
      break;
    case PROP_VIEWER_TIMEOUT:
      priv->viewerTimeout = g_value_get_uint64 (value);
      break;
    case PROP_KEYFRAME_MIN_INTERVAL:
      priv->keyframeMinInterval = g_value_get_uint64 (value);
      break;
    case PROP_HISTORY_PACKETS:
      priv->historyPackets = g_value_get_uint (value);
      break;
    case PROP_VIEWER_QUEUE:
      priv->viewerQueue = g_value_get_uint (value);
      break;
    case PROP_MAX_VIEWERS:
      priv->maxViewers = g_value_get_uint (value);
      break;
    case PROP_PER_VIEWER_STATS:
      priv->perViewerStats = g_value_get_boolean (value);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
      break;
  }
}

static void
gst_xdn_webrtc_fanout_get_property (GObject * object, guint prop_id, GValue * value,
    GParamSpec * pspec)
{
  auto *self = GST_XDN_WEBRTC_FANOUT (object);
  GstXdnWebRtcFanoutPrivate *priv = self->priv;
  if (prop_id == PROP_STATS) {
    try {
      g_value_take_boxed (value, gst_xdn_webrtc_fanout_stats (self));
    } catch (const std::exception &e) {
      GST_ERROR_OBJECT (self, "stats: %s", e.what ());
    }
    return;
  }
  if (prop_id == PROP_BOUND_PORT) {
    std::shared_ptr<FanoutCore> core = gst_xdn_webrtc_fanout_core (self);
    g_value_set_int (value, core ? int (core->port ()) : 0);
    return;
  }
  std::lock_guard<std::mutex> l (priv->settingsLock);
  switch (prop_id) {
    case PROP_ADDRESS:
      g_value_set_string (value, priv->address.c_str ());
      break;
    case PROP_PORT:
      g_value_set_uint (value, priv->port);
      break;
    case PROP_THREADS:
      g_value_set_uint (value, priv->threads);
      break;
    case PROP_VIEWER_TIMEOUT:
      g_value_set_uint64 (value, priv->viewerTimeout);
      break;
    case PROP_KEYFRAME_MIN_INTERVAL:
      g_value_set_uint64 (value, priv->keyframeMinInterval);
      break;
    case PROP_HISTORY_PACKETS:
      g_value_set_uint (value, priv->historyPackets);
      break;
    case PROP_VIEWER_QUEUE:
      g_value_set_uint (value, priv->viewerQueue);
      break;
    case PROP_MAX_VIEWERS:
      g_value_set_uint (value, priv->maxViewers);
      break;
    case PROP_PER_VIEWER_STATS:
      g_value_set_boolean (value, priv->perViewerStats);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
      break;
  }
}

static void
gst_xdn_webrtc_fanout_init (GstXdnWebRtcFanout * self)
{
  self->priv = new GstXdnWebRtcFanoutPrivate ();
  GST_OBJECT_FLAG_SET (self, GST_ELEMENT_FLAG_SINK);
}

static void
gst_xdn_webrtc_fanout_dispose (GObject * object)
{
  /* Released without going through READY->NULL. */
  GST_XDN_WEBRTC_FANOUT (object)->priv->callbacksEnabled = false;
  gst_xdn_webrtc_fanout_stop (GST_XDN_WEBRTC_FANOUT (object));
  G_OBJECT_CLASS (parent_class)->dispose (object);
}

static void
gst_xdn_webrtc_fanout_finalize (GObject * object)
{
  delete GST_XDN_WEBRTC_FANOUT (object)->priv;
  G_OBJECT_CLASS (parent_class)->finalize (object);
}

static void
gst_xdn_webrtc_fanout_class_init (GstXdnWebRtcFanoutClass * klass)
{
  GObjectClass *gobject_class = G_OBJECT_CLASS (klass);
  GstElementClass *element_class = GST_ELEMENT_CLASS (klass);

  gobject_class->set_property = gst_xdn_webrtc_fanout_set_property;
  gobject_class->get_property = gst_xdn_webrtc_fanout_get_property;
  gobject_class->dispose = gst_xdn_webrtc_fanout_dispose;
  gobject_class->finalize = gst_xdn_webrtc_fanout_finalize;

  const auto readyFlags = (GParamFlags) (G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS |
      GST_PARAM_MUTABLE_READY);

  /**
   * GstXdnWebRtcFanout:address:
   *
   * Local address(es) of the port, comma-separated numeric IPv4/IPv6. The
   * answer announces one host candidate on each and no other. With one
   * address the socket binds to it; with several, to the wildcard address.
   */
  properties[PROP_ADDRESS] = g_param_spec_string ("address", "Address",
      "Local address(es) to serve and announce, comma-separated", kDefaultAddress, readyFlags);
  /**
   * GstXdnWebRtcFanout:port:
   *
   * UDP port of the viewers' traffic; 0 lets the system pick one (read it
   * from #GstXdnWebRtcFanout:bound-port).
   */
  properties[PROP_PORT] = g_param_spec_uint ("port", "Port",
      "UDP port (0: any free port)", 0, 65535, 0, readyFlags);
  /**
   * GstXdnWebRtcFanout:bound-port:
   *
   * The UDP port in use, from READY on; 0 when not bound.
   */
  properties[PROP_BOUND_PORT] = g_param_spec_int ("bound-port", "Bound port",
      "UDP port in use (READY and above), 0 if none", 0, 65535, 0,
      (GParamFlags) (G_PARAM_READABLE | G_PARAM_STATIC_STRINGS));
  /**
   * GstXdnWebRtcFanout:threads:
   *
   * Sending threads; 0: one per core. Constant whatever the number of
   * viewers (plus one receiving thread).
   */
  properties[PROP_THREADS] = g_param_spec_uint ("threads", "Threads",
      "Sending threads (0: one per core)", 0, 256, 0, readyFlags);
  /**
   * GstXdnWebRtcFanout:viewer-timeout:
   *
   * A viewer that sends no authenticated STUN (ICE consent) nor SRTCP for
   * this long, or never checks connectivity, is removed (nanoseconds).
   */
  properties[PROP_VIEWER_TIMEOUT] = g_param_spec_uint64 ("viewer-timeout", "Viewer timeout",
      "Remove a viewer silent for this long (ns)", 100 * GST_MSECOND, 3600 * GST_SECOND,
      kDefaultViewerTimeout, readyFlags);
  /**
   * GstXdnWebRtcFanout:keyframe-min-interval:
   *
   * Shortest time between two keyframe requests sent upstream on one track,
   * whatever the number of viewers asking.
   */
  properties[PROP_KEYFRAME_MIN_INTERVAL] = g_param_spec_uint64 ("keyframe-min-interval",
      "Keyframe min interval", "Shortest time between two upstream keyframe requests (ns)",
      0, 60 * GST_SECOND, kDefaultKeyframeMinInterval, readyFlags);
  /**
   * GstXdnWebRtcFanout:history-packets:
   *
   * Packets kept per track to answer NACKs (rounded up to a power of two;
   * packets older than one second are not sent again).
   */
  properties[PROP_HISTORY_PACKETS] = g_param_spec_uint ("history-packets", "History packets",
      "Packets kept per track for retransmission", 16, 65536, kDefaultHistoryPackets, readyFlags);
  /**
   * GstXdnWebRtcFanout:viewer-queue:
   *
   * How many packets a viewer may fall behind before it skips to the
   * newest (its video then waits for a keyframe): a slow viewer never holds
   * back the others.
   */
  properties[PROP_VIEWER_QUEUE] = g_param_spec_uint ("viewer-queue", "Viewer queue",
      "Packets a viewer may lag before it skips ahead", 16, 65536, kDefaultViewerQueue,
      readyFlags);
  /**
   * GstXdnWebRtcFanout:max-viewers:
   *
   * Offers beyond this many viewers are refused.
   */
  properties[PROP_MAX_VIEWERS] = g_param_spec_uint ("max-viewers", "Max viewers",
      "Most viewers at once", 1, G_MAXUINT, kDefaultMaxViewers, readyFlags);
  /**
   * GstXdnWebRtcFanout:per-viewer-stats:
   *
   * Include a `viewer-stats` array (one structure per viewer) in
   * #GstXdnWebRtcFanout:stats.
   */
  properties[PROP_PER_VIEWER_STATS] = g_param_spec_boolean ("per-viewer-stats",
      "Per-viewer stats", "Include one structure per viewer in stats", FALSE,
      (GParamFlags) (G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS | GST_PARAM_MUTABLE_PLAYING));
  /**
   * GstXdnWebRtcFanout:stats:
   *
   * Counters: viewers, connected, viewer-states (viewer objects still in
   * memory), packets-in/bytes-in, packets-sent/bytes-sent (SRTP to
   * viewers), retransmits, nacks, nack-misses, dropped, sender-reports,
   * keyframe-requests (upstream) and -limited, plis, firs, stun-requests,
   * stun-errors, rate-limited, invalid (datagrams refused), threads, gso,
   * bound-port; with #GstXdnWebRtcFanout:per-viewer-stats, `viewer-stats`.
   */
  properties[PROP_STATS] = g_param_spec_boxed ("stats", "Statistics",
      "Fan-out counters", GST_TYPE_STRUCTURE,
      (GParamFlags) (G_PARAM_READABLE | G_PARAM_STATIC_STRINGS));
  g_object_class_install_properties (gobject_class, N_PROPS, properties);

  /**
   * GstXdnWebRtcFanout::add-viewer:
   * @fanout: the element
   * @offer: the viewer's SDP offer
   *
   * Returns: (transfer full) (nullable): `xdn-fanout-viewer` with `id` and
   * `answer` (SDP), or %NULL when the offer cannot be served (a warning
   * message says why).
   */
  signals[SIGNAL_ADD_VIEWER] = g_signal_new_class_handler ("add-viewer",
      G_TYPE_FROM_CLASS (klass), (GSignalFlags) (G_SIGNAL_RUN_LAST | G_SIGNAL_ACTION),
      G_CALLBACK (gst_xdn_webrtc_fanout_add_viewer), nullptr, nullptr, nullptr,
      GST_TYPE_STRUCTURE, 1, G_TYPE_STRING);
  /**
   * GstXdnWebRtcFanout::remove-viewer:
   * @fanout: the element
   * @id: a viewer id from add-viewer
   *
   * Ends the viewer (DTLS close_notify or RTCP BYE to it); `viewer-removed`
   * follows. Returns: %FALSE when there is no such viewer.
   */
  signals[SIGNAL_REMOVE_VIEWER] = g_signal_new_class_handler ("remove-viewer",
      G_TYPE_FROM_CLASS (klass), (GSignalFlags) (G_SIGNAL_RUN_LAST | G_SIGNAL_ACTION),
      G_CALLBACK (gst_xdn_webrtc_fanout_remove_viewer), nullptr, nullptr, nullptr,
      G_TYPE_BOOLEAN, 1, G_TYPE_STRING);
  /**
   * GstXdnWebRtcFanout::viewer-removed:
   * @fanout: the element
   * @id: the viewer
   * @reason: why ("removed", "timeout: ...", "dtls: ...", "stopped", ...)
   *
   * A viewer is gone and its state freed. Emitted from the element's
   * receiving thread.
   */
  signals[SIGNAL_VIEWER_REMOVED] = g_signal_new ("viewer-removed", G_TYPE_FROM_CLASS (klass),
      G_SIGNAL_RUN_LAST, 0, nullptr, nullptr, nullptr, G_TYPE_NONE, 2, G_TYPE_STRING,
      G_TYPE_STRING);

  gst_element_class_add_static_pad_template (element_class, &sink_template);
  gst_element_class_set_static_metadata (element_class, "OpenXDN WebRTC fan-out",
      "Sink/Network",
      "Serves every WebRTC viewer of a stream from one UDP port: ICE-lite, DTLS-SRTP per "
      "viewer, shared packets with per-viewer headers, batched sends",
      "OpenXDN");
  element_class->change_state = GST_DEBUG_FUNCPTR (gst_xdn_webrtc_fanout_change_state);
  element_class->request_new_pad = GST_DEBUG_FUNCPTR (gst_xdn_webrtc_fanout_request_new_pad);
  element_class->release_pad = GST_DEBUG_FUNCPTR (gst_xdn_webrtc_fanout_release_pad);
}
