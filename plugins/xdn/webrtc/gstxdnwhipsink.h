#pragma once

#include <gst/gst.h>

G_BEGIN_DECLS

#define GST_TYPE_XDN_WHIP_SINK (gst_xdn_whip_sink_get_type ())
G_DECLARE_FINAL_TYPE (GstXdnWhipSink, gst_xdn_whip_sink, GST, XDN_WHIP_SINK, GstBin)

GST_ELEMENT_REGISTER_DECLARE (xdnwhipsink);

G_END_DECLS
