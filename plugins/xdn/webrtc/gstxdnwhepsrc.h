#pragma once

#include <gst/gst.h>

G_BEGIN_DECLS

#define GST_TYPE_XDN_WHEP_SRC (gst_xdn_whep_src_get_type ())
G_DECLARE_FINAL_TYPE (GstXdnWhepSrc, gst_xdn_whep_src, GST, XDN_WHEP_SRC, GstBin)

GST_ELEMENT_REGISTER_DECLARE (xdnwhepsrc);

G_END_DECLS
