/* xdnlatencystamp: writes the wall-clock time into each picture. */
#pragma once

#include <gst/video/gstvideofilter.h>

G_BEGIN_DECLS

#define GST_TYPE_XDN_LATENCY_STAMP (gst_xdn_latency_stamp_get_type ())
G_DECLARE_FINAL_TYPE (GstXdnLatencyStamp, gst_xdn_latency_stamp, GST,
    XDN_LATENCY_STAMP, GstVideoFilter)

GST_ELEMENT_REGISTER_DECLARE (xdnlatencystamp);

G_END_DECLS
