/* xdnrelaysink: publishes RTP tracks as one named stream. */
#pragma once

#include <gst/gst.h>

G_BEGIN_DECLS

#define GST_TYPE_XDN_RELAY_SINK (gst_xdn_relay_sink_get_type ())
G_DECLARE_FINAL_TYPE (GstXdnRelaySink, gst_xdn_relay_sink, GST, XDN_RELAY_SINK, GstElement)

GST_ELEMENT_REGISTER_DECLARE (xdnrelaysink);

G_END_DECLS
