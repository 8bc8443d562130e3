/* xdnrelaysrc: subscribes to a named stream, one sometimes pad per track. */
#pragma once

#include <gst/gst.h>

G_BEGIN_DECLS

#define GST_TYPE_XDN_RELAY_SRC (gst_xdn_relay_src_get_type ())
G_DECLARE_FINAL_TYPE (GstXdnRelaySrc, gst_xdn_relay_src, GST, XDN_RELAY_SRC, GstElement)

GST_ELEMENT_REGISTER_DECLARE (xdnrelaysrc);

G_END_DECLS
