#include "xdn-latency-frame.h"

#include <algorithm>
#include <cstring>

namespace xdn {

static uint8_t *
compData (const GstVideoFrame *frame, int comp)
{
  return static_cast<uint8_t *> (GST_VIDEO_FRAME_COMP_DATA (frame, comp));
}

bool
writeLatencyStamp (GstVideoFrame *frame, uint64_t stampMs)
{
  const GstVideoFormatInfo *finfo = frame->info.finfo;
  const int width = GST_VIDEO_FRAME_WIDTH (frame);
  const int height = GST_VIDEO_FRAME_HEIGHT (frame);
  if (!LatencyCode::fits (width, height))
    return false;

  if (GST_VIDEO_FORMAT_INFO_IS_RGB (finfo)) {
    for (int comp = 0; comp < 3; comp++)
      LatencyCode::encode (stampMs, compData (frame, comp), width, height,
          GST_VIDEO_FRAME_COMP_STRIDE (frame, comp),
          GST_VIDEO_FRAME_COMP_PSTRIDE (frame, comp), 255, 0);
    return true;
  }

  const bool fullRange =
      frame->info.colorimetry.range == GST_VIDEO_COLOR_RANGE_0_255;
  LatencyCode::encode (stampMs, compData (frame, 0), width, height,
      GST_VIDEO_FRAME_COMP_STRIDE (frame, 0),
      GST_VIDEO_FRAME_COMP_PSTRIDE (frame, 0), fullRange ? 255 : 235,
      fullRange ? 0 : 16);

  if (!GST_VIDEO_FORMAT_INFO_IS_YUV (finfo))
    return true;
  /* Neutral chroma under the band so that it renders black and white. */
  const int band = LatencyCode::bandHeight (height);
  for (int comp = 1; comp < 3; comp++) {
    const int rows = std::min<int> (GST_VIDEO_FRAME_COMP_HEIGHT (frame, comp),
        GST_VIDEO_FORMAT_INFO_SCALE_HEIGHT (finfo, comp, band));
    const int cols = GST_VIDEO_FRAME_COMP_WIDTH (frame, comp);
    const int stride = GST_VIDEO_FRAME_COMP_STRIDE (frame, comp);
    const int pstride = GST_VIDEO_FRAME_COMP_PSTRIDE (frame, comp);
    uint8_t *data = compData (frame, comp);
    for (int y = 0; y < rows; y++) {
      uint8_t *row = data + static_cast<ptrdiff_t> (y) * stride;
      if (pstride == 1) {
        memset (row, 128, cols);
        continue;
      }
      for (int x = 0; x < cols; x++)
        row[static_cast<ptrdiff_t> (x) * pstride] = 128;
    }
  }
  return true;
}

LatencyCode::Result
readLatencyStamp (const GstVideoFrame *frame)
{
  const int width = GST_VIDEO_FRAME_WIDTH (frame);
  const int height = GST_VIDEO_FRAME_HEIGHT (frame);
  if (!LatencyCode::fits (width, height))
    return LatencyCode::Result{};

  if (!GST_VIDEO_FORMAT_INFO_IS_RGB (frame->info.finfo))
    return LatencyCode::decode (compData (frame, 0), width, height,
        GST_VIDEO_FRAME_COMP_STRIDE (frame, 0),
        GST_VIDEO_FRAME_COMP_PSTRIDE (frame, 0));

  /* BT.601 luma of the cell means (the mean is linear). */
  static const double kWeights[3] = { 0.299, 0.587, 0.114 };
  LatencyCode::Cells luma{};
  for (int comp = 0; comp < 3; comp++) {
    const auto means = LatencyCode::cellMeans (compData (frame, comp), width,
        height, GST_VIDEO_FRAME_COMP_STRIDE (frame, comp),
        GST_VIDEO_FRAME_COMP_PSTRIDE (frame, comp));
    for (int i = 0; i < LatencyCode::kCells; i++)
      luma[i] += kWeights[comp] * means[i];
  }
  return LatencyCode::decodeCells (luma);
}

}  // namespace xdn
