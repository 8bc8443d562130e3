#include "xdn-latency-code.h"

#include <algorithm>
#include <cmath>

namespace xdn {

int
LatencyCode::bandHeight (int height)
{
  return std::max (2, (height + 8) / 16);
}

int
LatencyCode::cellStart (int i, int width)
{
  return static_cast<int> (static_cast<int64_t> (i) * width / kCells);
}

uint16_t
LatencyCode::crc16 (const uint8_t *data, size_t size)
{
  uint16_t crc = 0xffff;
  for (size_t i = 0; i < size; i++) {
    crc ^= static_cast<uint16_t> (data[i] << 8);
    for (int b = 0; b < 8; b++)
      crc = (crc & 0x8000) ? static_cast<uint16_t> ((crc << 1) ^ 0x1021)
                           : static_cast<uint16_t> (crc << 1);
  }
  return crc;
}

static uint16_t
stampCheck (uint64_t stampLow)
{
  uint8_t bytes[5];
  for (int i = 0; i < 5; i++)
    bytes[i] = static_cast<uint8_t> (stampLow >> (8 * (4 - i)));
  return LatencyCode::crc16 (bytes, sizeof (bytes));
}

std::array<bool, LatencyCode::kCells>
LatencyCode::cellBits (uint64_t stampMs)
{
  std::array<bool, kCells> bits{};
  bits[0] = true;
  bits[1] = false;
  bits[kCells - 2] = false;
  bits[kCells - 1] = true;

  const uint64_t low = stampMs & kTimestampMask;
  for (int i = 0; i < kTimestampBits; i++)
    bits[kFirstTimestampCell + i] = (low >> (kTimestampBits - 1 - i)) & 1;

  const uint16_t check = stampCheck (low);
  for (int i = 0; i < kCheckBits; i++)
    bits[kFirstCheckCell + i] = (check >> (kCheckBits - 1 - i)) & 1;
  return bits;
}

void
LatencyCode::encode (uint64_t stampMs, uint8_t *data, int width, int height,
    int stride, int pixelStride, uint8_t white, uint8_t black)
{
  if (!fits (width, height))
    return;

  const auto bits = cellBits (stampMs);
  const int band = bandHeight (height);
  for (int y = 0; y < band; y++) {
    uint8_t *row = data + static_cast<ptrdiff_t> (y) * stride;
    for (int i = 0; i < kCells; i++) {
      const uint8_t v = bits[i] ? white : black;
      const int x1 = cellStart (i + 1, width);
      for (int x = cellStart (i, width); x < x1; x++)
        row[static_cast<ptrdiff_t> (x) * pixelStride] = v;
    }
  }
}

LatencyCode::Cells
LatencyCode::cellMeans (const uint8_t *data, int width, int height, int stride,
    int pixelStride)
{
  Cells means{};
  if (!fits (width, height))
    return means;

  const int band = bandHeight (height);
  const int y0 = band / 4, y1 = band - band / 4;
  for (int i = 0; i < kCells; i++) {
    const int c0 = cellStart (i, width), c1 = cellStart (i + 1, width);
    const int x0 = c0 + (c1 - c0) / 4, x1 = c1 - (c1 - c0) / 4;
    uint64_t sum = 0;
    for (int y = y0; y < y1; y++) {
      const uint8_t *row = data + static_cast<ptrdiff_t> (y) * stride;
      for (int x = x0; x < x1; x++)
        sum += row[static_cast<ptrdiff_t> (x) * pixelStride];
    }
    means[i] = static_cast<double> (sum) / ((y1 - y0) * (x1 - x0));
  }
  return means;
}

LatencyCode::Result
LatencyCode::decodeCells (const Cells &means)
{
  Result result;

  const double whiteLow = std::min (means[0], means[kCells - 1]);
  const double blackHigh = std::max (means[1], means[kCells - 2]);
  if (whiteLow - blackHigh < kMinContrast) {
    result.status = Status::kNoContrast;
    return result;
  }
  const double white = (means[0] + means[kCells - 1]) / 2;
  const double black = (means[1] + means[kCells - 2]) / 2;
  const double threshold = (white + black) / 2;
  const double margin = kMargin * (white - black);

  uint64_t low = 0;
  uint16_t check = 0;
  for (int i = kFirstTimestampCell; i < kCells - 2; i++) {
    if (std::fabs (means[i] - threshold) < margin) {
      result.status = Status::kAmbiguousCell;
      return result;
    }
    const unsigned bit = means[i] > threshold ? 1 : 0;
    if (i < kFirstCheckCell)
      low = (low << 1) | bit;
    else
      check = static_cast<uint16_t> ((check << 1) | bit);
  }
  if (stampCheck (low) != check) {
    result.status = Status::kBadCheck;
    return result;
  }
  result.status = Status::kOk;
  result.stampLow = low;
  return result;
}

LatencyCode::Result
LatencyCode::decode (const uint8_t *luma, int width, int height, int stride,
    int pixelStride)
{
  if (!fits (width, height))
    return Result{};
  return decodeCells (cellMeans (luma, width, height, stride, pixelStride));
}

uint64_t
LatencyCode::unwrap (uint64_t stampLow, uint64_t nowMs)
{
  const uint64_t period = kTimestampMask + 1;
  const uint64_t half = period / 2;
  uint64_t candidate = (nowMs & ~kTimestampMask) | (stampLow & kTimestampMask);
  if (candidate > nowMs && candidate - nowMs > half && candidate >= period)
    candidate -= period;
  else if (candidate < nowMs && nowMs - candidate > half)
    candidate += period;
  return candidate;
}

const char *
LatencyCode::statusName (Status status)
{
  switch (status) {
    case Status::kOk:
      return "ok";
    case Status::kTooSmall:
      return "picture too small";
    case Status::kNoContrast:
      return "no calibration contrast";
    case Status::kAmbiguousCell:
      return "ambiguous cell";
    case Status::kBadCheck:
      return "check mismatch";
  }
  return "unknown";
}

}  // namespace xdn
