/* Writes and reads the latency stamp (xdn-latency-code.h) in mapped video
 * frames of the formats that xdnlatencystamp and xdnlatencymeter accept. */
#pragma once

#include <gst/video/video.h>

#include "xdn-latency-code.h"

/* 8-bit formats with luma (or R, G, B) as components 0..2. */
#define XDN_LATENCY_FORMATS \
  "{ I420, YV12, NV12, NV21, Y41B, Y42B, Y444, YUY2, UYVY, YVYU, GRAY8, " \
  "RGBA, BGRA, ARGB, ABGR, RGBx, BGRx, xRGB, xBGR, RGB, BGR }"

namespace xdn {

/* Writes the band for stampMs: luma white/black and neutral chroma for YUV,
 * white/black in R, G and B for RGB (alpha untouched). Returns false, and
 * leaves the frame as it was, when the picture is too small for a stamp. */
bool writeLatencyStamp (GstVideoFrame *frame, uint64_t stampMs);

/* Reads the band of a frame mapped for reading. */
LatencyCode::Result readLatencyStamp (const GstVideoFrame *frame);

}  // namespace xdn
