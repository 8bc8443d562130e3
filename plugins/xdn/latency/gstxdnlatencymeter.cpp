/**
 * SECTION:element-xdnlatencymeter
 * @title: xdnlatencymeter
 * @see_also: xdnlatencystamp
 *
 * Reads the wall-clock time that xdnlatencystamp wrote into each picture
 * and reports latency = now - stamp, in milliseconds, per frame. Frames
 * pass unchanged (the element never writes to them). Place it right before
 * the sink, after decoding and any scaling; stamp and meter must run on
 * clocks that agree (the same machine, or NTP/PTP-synchronised hosts).
 *
 * Per frame read, it posts an element message `xdn-latency` with
 * `latency-ms` (double), `stamp-ms` (guint64, ms since the Unix epoch) and
 * `frame` (guint64, index of the frame among all frames the meter saw,
 * read or not), unless #GstXdnLatencyMeter:post-messages is false. At EOS,
 * and when going from PAUSED to READY if nothing was posted since, it posts
 * `xdn-latency-summary` with `frames-read`, `frames-unreadable` (guint64),
 * `p50-ms`, `p95-ms`, `max-ms`, `min-ms` and `mean-ms` (double), and logs
 * it at INFO. The same figures are available at any time in the #GstXdnLatencyMeter:stats
 * property.
 *
 * ## Example launch line
 * |[
 * gst-launch-1.0 -m videotestsrc is-live=true num-buffers=90 ! xdnlatencystamp ! \
 *     x264enc tune=zerolatency bitrate=300 ! avdec_h264 ! xdnlatencymeter ! fakesink
 * ]|
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include "gstxdnlatencymeter.h"

#include <atomic>
#include <mutex>

#include "xdn-latency-frame.h"
#include "xdn-latency-stats.h"

GST_DEBUG_CATEGORY_STATIC (gst_xdn_latency_meter_debug);
#define GST_CAT_DEFAULT gst_xdn_latency_meter_debug

#define DEFAULT_POST_MESSAGES TRUE
#define DEFAULT_WINDOW 10000
#define MAX_WINDOW 10000000

enum
{
  PROP_0,
  PROP_POST_MESSAGES,
  PROP_WINDOW,
  PROP_STATS,
  N_PROPERTIES
};

static GParamSpec *properties[N_PROPERTIES];

namespace {

struct Private {
  /* Setting read per frame by the streaming thread: atomic. */
  std::atomic<bool> postMessages{ DEFAULT_POST_MESSAGES };

  std::mutex lock;  /* protects stats, frames and summaryPosted */
  xdn::LatencyStats stats{ DEFAULT_WINDOW };
  uint64_t frames = 0;
  /* The figures have been posted in a summary since the last frame. */
  bool summaryPosted = false;
};

}  // namespace

struct _GstXdnLatencyMeter
{
  GstVideoFilter parent;

  Private *priv;
};

#define gst_xdn_latency_meter_parent_class parent_class
G_DEFINE_TYPE (GstXdnLatencyMeter, gst_xdn_latency_meter, GST_TYPE_VIDEO_FILTER);
GST_ELEMENT_REGISTER_DEFINE (xdnlatencymeter, "xdnlatencymeter", GST_RANK_NONE,
    GST_TYPE_XDN_LATENCY_METER);

static GstStaticPadTemplate sink_template = GST_STATIC_PAD_TEMPLATE ("sink",
    GST_PAD_SINK, GST_PAD_ALWAYS,
    GST_STATIC_CAPS (GST_VIDEO_CAPS_MAKE (XDN_LATENCY_FORMATS)));

static GstStaticPadTemplate src_template = GST_STATIC_PAD_TEMPLATE ("src",
    GST_PAD_SRC, GST_PAD_ALWAYS,
    GST_STATIC_CAPS (GST_VIDEO_CAPS_MAKE (XDN_LATENCY_FORMATS)));

static GstStructure *
summary_structure (const char *name, const xdn::LatencySummary & s)
{
  return gst_structure_new (name,
      "frames-read", G_TYPE_UINT64, (guint64) s.framesRead,
      "frames-unreadable", G_TYPE_UINT64, (guint64) s.framesUnreadable,
      "p50-ms", G_TYPE_DOUBLE, s.p50Ms,
      "p95-ms", G_TYPE_DOUBLE, s.p95Ms,
      "max-ms", G_TYPE_DOUBLE, s.maxMs,
      "min-ms", G_TYPE_DOUBLE, s.minMs,
      "mean-ms", G_TYPE_DOUBLE, s.meanMs, NULL);
}

/* Posts and logs the summary unless `onlyIfNew` and it was already posted
 * with the same figures. */
static void
gst_xdn_latency_meter_post_summary (GstXdnLatencyMeter * self, bool onlyIfNew)
{
  Private *priv = self->priv;
  xdn::LatencySummary summary;
  {
    std::lock_guard<std::mutex> guard (priv->lock);
    if (onlyIfNew && priv->summaryPosted)
      return;
    priv->summaryPosted = true;
    summary = priv->stats.summary ();
  }

  GST_INFO_OBJECT (self, "latency summary: %" G_GUINT64_FORMAT " frames read, %"
      G_GUINT64_FORMAT " unreadable, p50 %.1f ms, p95 %.1f ms, min %.1f ms, "
      "max %.1f ms, mean %.1f ms", (guint64) summary.framesRead,
      (guint64) summary.framesUnreadable, summary.p50Ms, summary.p95Ms,
      summary.minMs, summary.maxMs, summary.meanMs);
  gst_element_post_message (GST_ELEMENT (self),
      gst_message_new_element (GST_OBJECT (self),
          summary_structure ("xdn-latency-summary", summary)));
}

static void
gst_xdn_latency_meter_set_property (GObject * object, guint prop_id,
    const GValue * value, GParamSpec * pspec)
{
  GstXdnLatencyMeter *self = GST_XDN_LATENCY_METER (object);

  switch (prop_id) {
    case PROP_POST_MESSAGES:
      self->priv->postMessages = g_value_get_boolean (value);
      break;
    case PROP_WINDOW:{
      std::lock_guard<std::mutex> guard (self->priv->lock);
      self->priv->stats.setWindow (g_value_get_uint (value));
      break;
    }
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
      break;
  }
}

static void
gst_xdn_latency_meter_get_property (GObject * object, guint prop_id,
    GValue * value, GParamSpec * pspec)
{
  GstXdnLatencyMeter *self = GST_XDN_LATENCY_METER (object);

  switch (prop_id) {
    case PROP_POST_MESSAGES:
      g_value_set_boolean (value, self->priv->postMessages);
      break;
    case PROP_WINDOW:{
      std::lock_guard<std::mutex> guard (self->priv->lock);
      g_value_set_uint (value, (guint) self->priv->stats.window ());
      break;
    }
    case PROP_STATS:{
      xdn::LatencySummary summary;
      {
        std::lock_guard<std::mutex> guard (self->priv->lock);
        summary = self->priv->stats.summary ();
      }
      g_value_take_boxed (value,
          summary_structure ("xdn-latency-stats", summary));
      break;
    }
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
      break;
  }
}

static GstFlowReturn
gst_xdn_latency_meter_transform_frame_ip (GstVideoFilter * filter,
    GstVideoFrame * frame)
{
  GstXdnLatencyMeter *self = GST_XDN_LATENCY_METER (filter);
  Private *priv = self->priv;

  const xdn::LatencyCode::Result result = xdn::readLatencyStamp (frame);
  const gint64 nowUs = g_get_real_time ();

  uint64_t index;
  uint64_t stampMs = 0;
  double latencyMs = 0;
  if (result.ok ()) {
    stampMs = xdn::LatencyCode::unwrap (result.stampLow,
        static_cast<uint64_t> (nowUs / 1000));
    latencyMs = static_cast<double> (nowUs - static_cast<gint64> (stampMs) * 1000)
        / 1000.0;
  }
  {
    std::lock_guard<std::mutex> guard (priv->lock);
    index = priv->frames++;
    if (result.ok ())
      priv->stats.addRead (latencyMs);
    else
      priv->stats.addUnreadable ();
    priv->summaryPosted = false;
  }

  if (!result.ok ()) {
    GST_LOG_OBJECT (self, "frame %" G_GUINT64_FORMAT " (%" GST_TIME_FORMAT
        ") unreadable: %s", (guint64) index,
        GST_TIME_ARGS (GST_BUFFER_PTS (frame->buffer)),
        xdn::LatencyCode::statusName (result.status));
    return GST_FLOW_OK;
  }

  GST_LOG_OBJECT (self, "frame %" G_GUINT64_FORMAT ": stamp %" G_GUINT64_FORMAT
      " ms, latency %.1f ms", (guint64) index, (guint64) stampMs, latencyMs);
  if (priv->postMessages) {
    gst_element_post_message (GST_ELEMENT (self),
        gst_message_new_element (GST_OBJECT (self),
            gst_structure_new ("xdn-latency",
                "latency-ms", G_TYPE_DOUBLE, latencyMs,
                "stamp-ms", G_TYPE_UINT64, (guint64) stampMs,
                "frame", G_TYPE_UINT64, (guint64) index, NULL)));
  }
  return GST_FLOW_OK;
}

static gboolean
gst_xdn_latency_meter_sink_event (GstBaseTransform * trans, GstEvent * event)
{
  if (GST_EVENT_TYPE (event) == GST_EVENT_EOS)
    gst_xdn_latency_meter_post_summary (GST_XDN_LATENCY_METER (trans), false);

  return GST_BASE_TRANSFORM_CLASS (parent_class)->sink_event (trans, event);
}

static GstStateChangeReturn
gst_xdn_latency_meter_change_state (GstElement * element,
    GstStateChange transition)
{
  GstXdnLatencyMeter *self = GST_XDN_LATENCY_METER (element);

  if (transition == GST_STATE_CHANGE_READY_TO_PAUSED) {
    std::lock_guard<std::mutex> guard (self->priv->lock);
    self->priv->stats.reset ();
    self->priv->frames = 0;
    self->priv->summaryPosted = false;
  }

  GstStateChangeReturn ret =
      GST_ELEMENT_CLASS (parent_class)->change_state (element, transition);
  if (ret == GST_STATE_CHANGE_FAILURE)
    return ret;

  if (transition == GST_STATE_CHANGE_PAUSED_TO_READY)
    gst_xdn_latency_meter_post_summary (self, true);
  return ret;
}

static void
gst_xdn_latency_meter_finalize (GObject * object)
{
  GstXdnLatencyMeter *self = GST_XDN_LATENCY_METER (object);

  delete self->priv;
  self->priv = nullptr;

  G_OBJECT_CLASS (parent_class)->finalize (object);
}

static void
gst_xdn_latency_meter_class_init (GstXdnLatencyMeterClass * klass)
{
  GObjectClass *gobject_class = G_OBJECT_CLASS (klass);
  GstElementClass *element_class = GST_ELEMENT_CLASS (klass);
  GstBaseTransformClass *trans_class = GST_BASE_TRANSFORM_CLASS (klass);
  GstVideoFilterClass *filter_class = GST_VIDEO_FILTER_CLASS (klass);

  gobject_class->set_property = gst_xdn_latency_meter_set_property;
  gobject_class->get_property = gst_xdn_latency_meter_get_property;
  gobject_class->finalize = gst_xdn_latency_meter_finalize;

  /**
   * GstXdnLatencyMeter:post-messages:
   *
   * Post an `xdn-latency` element message for every frame read.
   */
  properties[PROP_POST_MESSAGES] = g_param_spec_boolean ("post-messages",
      "Post messages", "Post an xdn-latency element message per frame read",
      DEFAULT_POST_MESSAGES,
      (GParamFlags) (G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS |
          GST_PARAM_MUTABLE_PLAYING));

  /**
   * GstXdnLatencyMeter:window:
   *
   * How many of the most recent latencies the p50 and p95 are taken over.
   */
  properties[PROP_WINDOW] = g_param_spec_uint ("window", "Window",
      "Number of recent latencies kept for the percentiles", 1, MAX_WINDOW,
      DEFAULT_WINDOW,
      (GParamFlags) (G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS |
          GST_PARAM_MUTABLE_PLAYING));

  /**
   * GstXdnLatencyMeter:stats:
   *
   * The figures of `xdn-latency-summary` so far, as a structure named
   * `xdn-latency-stats`. Reset when the element goes from READY to PAUSED.
   */
  properties[PROP_STATS] = g_param_spec_boxed ("stats", "Statistics",
      "Frames read and unreadable, latency percentiles, min, max and mean",
      GST_TYPE_STRUCTURE,
      (GParamFlags) (G_PARAM_READABLE | G_PARAM_STATIC_STRINGS));
  g_object_class_install_properties (gobject_class, N_PROPERTIES, properties);

  gst_element_class_add_static_pad_template (element_class, &sink_template);
  gst_element_class_add_static_pad_template (element_class, &src_template);
  gst_element_class_set_static_metadata (element_class,
      "OpenXDN latency meter", "Filter/Video/Analyzer",
      "Reads the capture time written by xdnlatencystamp and reports "
      "glass-to-glass latency",
      "OpenXDN");

  element_class->change_state =
      GST_DEBUG_FUNCPTR (gst_xdn_latency_meter_change_state);
  trans_class->sink_event = GST_DEBUG_FUNCPTR (gst_xdn_latency_meter_sink_event);
  filter_class->transform_frame_ip =
      GST_DEBUG_FUNCPTR (gst_xdn_latency_meter_transform_frame_ip);

  GST_DEBUG_CATEGORY_INIT (gst_xdn_latency_meter_debug, "xdnlatencymeter", 0,
      "OpenXDN latency meter");
}

static void
gst_xdn_latency_meter_init (GstXdnLatencyMeter * self)
{
  self->priv = new Private ();
  /* An analyser: frames are mapped read-only and pushed as they came. */
  gst_base_transform_set_passthrough (GST_BASE_TRANSFORM (self), TRUE);
}
