/**
 * SECTION:element-xdnlatencystamp
 * @title: xdnlatencystamp
 * @see_also: xdnlatencymeter
 *
 * Writes the wall-clock time (milliseconds since the Unix epoch, taken
 * when the frame passes the element) into a band of black and white cells
 * across the top 1/16 of the picture. The band survives lossy encoding at
 * low bitrates and scaling; xdnlatencymeter, or the browser player, reads
 * it back after the network to measure glass-to-glass latency. Place it
 * right after a live source so that the time written is the capture time.
 * The layout is documented in docs/elements/latency.md.
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

#include "gstxdnlatencystamp.h"

#include <atomic>

#include "xdn-latency-frame.h"

GST_DEBUG_CATEGORY_STATIC (gst_xdn_latency_stamp_debug);
#define GST_CAT_DEFAULT gst_xdn_latency_stamp_debug

#define DEFAULT_ENABLED TRUE

enum
{
  PROP_0,
  PROP_ENABLED,
  N_PROPERTIES
};

static GParamSpec *properties[N_PROPERTIES];

namespace {

struct Private {
  /* Written by the application, read by get_property; the streaming thread
   * follows it through the base class's passthrough flag (its own lock). */
  std::atomic<bool> enabled{ DEFAULT_ENABLED };
  /* Streaming thread only: warn once about a picture too small. */
  bool warnedTooSmall = false;
};

}  // namespace

struct _GstXdnLatencyStamp
{
  GstVideoFilter parent;

  Private *priv;
};

#define gst_xdn_latency_stamp_parent_class parent_class
G_DEFINE_TYPE (GstXdnLatencyStamp, gst_xdn_latency_stamp, GST_TYPE_VIDEO_FILTER);
GST_ELEMENT_REGISTER_DEFINE (xdnlatencystamp, "xdnlatencystamp", GST_RANK_NONE,
    GST_TYPE_XDN_LATENCY_STAMP);

static GstStaticPadTemplate sink_template = GST_STATIC_PAD_TEMPLATE ("sink",
    GST_PAD_SINK, GST_PAD_ALWAYS,
    GST_STATIC_CAPS (GST_VIDEO_CAPS_MAKE (XDN_LATENCY_FORMATS)));

static GstStaticPadTemplate src_template = GST_STATIC_PAD_TEMPLATE ("src",
    GST_PAD_SRC, GST_PAD_ALWAYS,
    GST_STATIC_CAPS (GST_VIDEO_CAPS_MAKE (XDN_LATENCY_FORMATS)));

static void
gst_xdn_latency_stamp_set_property (GObject * object, guint prop_id,
    const GValue * value, GParamSpec * pspec)
{
  GstXdnLatencyStamp *self = GST_XDN_LATENCY_STAMP (object);

  switch (prop_id) {
    case PROP_ENABLED:
      self->priv->enabled = g_value_get_boolean (value);
      /* Disabled: passthrough, so frames are neither copied nor touched. */
      gst_base_transform_set_passthrough (GST_BASE_TRANSFORM (self),
          !self->priv->enabled);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
      break;
  }
}

static void
gst_xdn_latency_stamp_get_property (GObject * object, guint prop_id,
    GValue * value, GParamSpec * pspec)
{
  GstXdnLatencyStamp *self = GST_XDN_LATENCY_STAMP (object);

  switch (prop_id) {
    case PROP_ENABLED:
      g_value_set_boolean (value, self->priv->enabled);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
      break;
  }
}

static GstFlowReturn
gst_xdn_latency_stamp_transform_frame_ip (GstVideoFilter * filter,
    GstVideoFrame * frame)
{
  GstXdnLatencyStamp *self = GST_XDN_LATENCY_STAMP (filter);

  /* The base class maps the frame read-only in passthrough (disabled). */
  if (!(frame->map[0].flags & GST_MAP_WRITE))
    return GST_FLOW_OK;

  const uint64_t nowMs = static_cast<uint64_t> (g_get_real_time () / 1000);
  if (!xdn::writeLatencyStamp (frame, nowMs)) {
    if (!self->priv->warnedTooSmall) {
      GST_WARNING_OBJECT (self, "%dx%d is too small for a stamp (minimum %dx%d)",
          GST_VIDEO_FRAME_WIDTH (frame), GST_VIDEO_FRAME_HEIGHT (frame),
          xdn::LatencyCode::kMinWidth, xdn::LatencyCode::kMinHeight);
      self->priv->warnedTooSmall = true;
    }
    return GST_FLOW_OK;
  }
  GST_LOG_OBJECT (self, "stamped %" G_GUINT64_FORMAT " ms on %" GST_TIME_FORMAT,
      nowMs, GST_TIME_ARGS (GST_BUFFER_PTS (frame->buffer)));
  return GST_FLOW_OK;
}

static void
gst_xdn_latency_stamp_finalize (GObject * object)
{
  GstXdnLatencyStamp *self = GST_XDN_LATENCY_STAMP (object);

  delete self->priv;
  self->priv = nullptr;

  G_OBJECT_CLASS (parent_class)->finalize (object);
}

static void
gst_xdn_latency_stamp_class_init (GstXdnLatencyStampClass * klass)
{
  GObjectClass *gobject_class = G_OBJECT_CLASS (klass);
  GstElementClass *element_class = GST_ELEMENT_CLASS (klass);
  GstVideoFilterClass *filter_class = GST_VIDEO_FILTER_CLASS (klass);

  gobject_class->set_property = gst_xdn_latency_stamp_set_property;
  gobject_class->get_property = gst_xdn_latency_stamp_get_property;
  gobject_class->finalize = gst_xdn_latency_stamp_finalize;

  /**
   * GstXdnLatencyStamp:enabled:
   *
   * Whether frames are stamped. When false, frames pass unchanged.
   */
  properties[PROP_ENABLED] = g_param_spec_boolean ("enabled", "Enabled",
      "Write the wall-clock time into each frame", DEFAULT_ENABLED,
      (GParamFlags) (G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS |
          GST_PARAM_MUTABLE_PLAYING));
  g_object_class_install_properties (gobject_class, N_PROPERTIES, properties);

  gst_element_class_add_static_pad_template (element_class, &sink_template);
  gst_element_class_add_static_pad_template (element_class, &src_template);
  gst_element_class_set_static_metadata (element_class,
      "OpenXDN latency stamp", "Filter/Video",
      "Writes the wall-clock capture time into the picture for "
      "glass-to-glass latency measurement",
      "OpenXDN");

  filter_class->transform_frame_ip =
      GST_DEBUG_FUNCPTR (gst_xdn_latency_stamp_transform_frame_ip);

  GST_DEBUG_CATEGORY_INIT (gst_xdn_latency_stamp_debug, "xdnlatencystamp", 0,
      "OpenXDN latency stamp");
}

static void
gst_xdn_latency_stamp_init (GstXdnLatencyStamp * self)
{
  self->priv = new Private ();
  gst_base_transform_set_in_place (GST_BASE_TRANSFORM (self), TRUE);
}
