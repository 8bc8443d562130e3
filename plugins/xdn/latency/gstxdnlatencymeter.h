/* xdnlatencymeter: reads the stamp of xdnlatencystamp and reports latency. */
#pragma once

#include <gst/video/gstvideofilter.h>

G_BEGIN_DECLS

#define GST_TYPE_XDN_LATENCY_METER (gst_xdn_latency_meter_get_type ())
G_DECLARE_FINAL_TYPE (GstXdnLatencyMeter, gst_xdn_latency_meter, GST,
    XDN_LATENCY_METER, GstVideoFilter)

GST_ELEMENT_REGISTER_DECLARE (xdnlatencymeter);

G_END_DECLS
