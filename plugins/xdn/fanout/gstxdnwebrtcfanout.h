/* xdnwebrtcfanout: serves every WebRTC viewer of a stream from one UDP port. */
#pragma once

#include <gst/gst.h>

G_BEGIN_DECLS

#define GST_TYPE_XDN_WEBRTC_FANOUT (gst_xdn_webrtc_fanout_get_type ())
G_DECLARE_FINAL_TYPE (GstXdnWebRtcFanout, gst_xdn_webrtc_fanout, GST, XDN_WEBRTC_FANOUT,
    GstElement)

GST_ELEMENT_REGISTER_DECLARE (xdnwebrtcfanout);

G_END_DECLS
