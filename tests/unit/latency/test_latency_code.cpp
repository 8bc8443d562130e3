/* The stamp codec and the statistics, without a pipeline. */
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <random>
#include <vector>

#include "xdn-latency-code.h"
#include "xdn-latency-stats.h"

using xdn::LatencyCode;
using Status = xdn::LatencyCode::Status;

namespace {

/* An 8-bit plane with a stride wider than the picture. */
struct Plane {
  Plane (int w, int h, uint8_t fill = 100)
      : width (w), height (h), stride (w + 13), data (size_t (stride) * h, fill) {}

  void encode (uint64_t stampMs)
  {
    LatencyCode::encode (stampMs, data.data (), width, height, stride, 1, 235, 16);
  }
  LatencyCode::Result decode () const
  {
    return LatencyCode::decode (data.data (), width, height, stride);
  }
  uint8_t &at (int x, int y) { return data[size_t (y) * stride + x]; }

  int width, height, stride;
  std::vector<uint8_t> data;
};

/* Nearest-neighbour resize (no filtering: the hardest case for cell edges). */
Plane
resize (const Plane &src, int w, int h)
{
  Plane dst (w, h);
  for (int y = 0; y < h; y++)
    for (int x = 0; x < w; x++)
      dst.at (x, y) = src.data[size_t (y * src.height / h) * src.stride
          + x * src.width / w];
  return dst;
}

const uint64_t kStamp = 1767225600123ull;  /* 2026-01-01T00:00:00.123Z */

}  // namespace

TEST (LatencyCode, RoundTripsOnPlanesOfSeveralSizes)
{
  const int sizes[][2] = { { 1920, 1080 }, { 1280, 720 }, { 640, 360 },
    { 320, 180 }, { 426, 240 }, { 176, 144 }, { 61, 17 }, { 60, 16 } };
  for (const auto &s : sizes) {
    for (uint64_t stamp : { kStamp, uint64_t (0), LatencyCode::kTimestampMask,
             uint64_t (0x5555555555) }) {
      Plane plane (s[0], s[1]);
      plane.encode (stamp);
      const auto r = plane.decode ();
      ASSERT_TRUE (r.ok ()) << s[0] << "x" << s[1] << ": "
          << LatencyCode::statusName (r.status);
      EXPECT_EQ (r.stampLow, stamp & LatencyCode::kTimestampMask);
    }
  }
}

TEST (LatencyCode, EncodesOnlyTheBandAndOnlyItsComponent)
{
  /* Interleaved: component at offset 1 of 2-byte pixels (like YUY2 luma). */
  const int w = 320, h = 180, stride = 2 * w;
  std::vector<uint8_t> data (size_t (stride) * h, 77);
  LatencyCode::encode (kStamp, data.data () + 1, w, h, stride, 2, 235, 16);

  const int band = LatencyCode::bandHeight (h);
  EXPECT_EQ (band, 11);
  for (int y = 0; y < h; y++)
    for (int x = 0; x < stride; x++) {
      const uint8_t v = data[size_t (y) * stride + x];
      if (y < band && x % 2 == 1)
        EXPECT_TRUE (v == 235 || v == 16) << x << "," << y;
      else
        ASSERT_EQ (v, 77) << x << "," << y;
    }
  const auto r = LatencyCode::decode (data.data () + 1, w, h, stride, 2);
  ASSERT_TRUE (r.ok ());
  EXPECT_EQ (r.stampLow, kStamp & LatencyCode::kTimestampMask);
}

TEST (LatencyCode, SurvivesFourTimesDownscalingAndAspectChanges)
{
  Plane big (1280, 720, 30);
  big.encode (kStamp);
  for (auto [w, h] : { std::pair{ 320, 180 }, std::pair{ 426, 320 },
           std::pair{ 640, 480 }, std::pair{ 1920, 1080 } }) {
    const auto r = resize (big, w, h).decode ();
    ASSERT_TRUE (r.ok ()) << w << "x" << h << ": " << LatencyCode::statusName (r.status);
    EXPECT_EQ (r.stampLow, kStamp & LatencyCode::kTimestampMask);
  }
}

TEST (LatencyCode, SurvivesNoiseAndLowContrast)
{
  Plane plane (640, 360);
  LatencyCode::encode (kStamp, plane.data.data (), plane.width, plane.height,
      plane.stride, 1, 180, 70);
  std::mt19937 rng (7);
  std::uniform_int_distribution<int> noise (-25, 25);
  for (auto &v : plane.data)
    v = static_cast<uint8_t> (std::clamp (v + noise (rng), 0, 255));
  const auto r = plane.decode ();
  ASSERT_TRUE (r.ok ()) << LatencyCode::statusName (r.status);
  EXPECT_EQ (r.stampLow, kStamp & LatencyCode::kTimestampMask);
}

TEST (LatencyCode, RefusesAFrameWithoutAStamp)
{
  for (uint8_t fill : { 0, 16, 128, 235, 255 })
    EXPECT_EQ (Plane (640, 360, fill).decode ().status, Status::kNoContrast);

  /* Vertical stripes, white and black at the calibration cells' places
   * but nothing else of a stamp. */
  Plane stripes (640, 360);
  for (int y = 0; y < stripes.height; y++)
    for (int x = 0; x < stripes.width; x++)
      stripes.at (x, y) = (x * LatencyCode::kCells / stripes.width) % 2 ? 16 : 235;
  EXPECT_FALSE (stripes.decode ().ok ());
}

TEST (LatencyCode, RefusesRandomNoise)
{
  std::mt19937 rng (1234);
  std::uniform_int_distribution<int> byte (0, 255);
  for (int round = 0; round < 200; round++) {
    Plane plane (320 + round, 180);
    for (auto &v : plane.data)
      v = static_cast<uint8_t> (byte (rng));
    EXPECT_FALSE (plane.decode ().ok ()) << "round " << round;
  }
  /* Noise made of whole cells, each clearly black or white: only the check
   * can tell it from a stamp. */
  std::bernoulli_distribution coin (0.5);
  int refusedByCheck = 0;
  for (int round = 0; round < 2000; round++) {
    LatencyCode::Cells cells{};
    for (auto &c : cells)
      c = coin (rng) ? 235 : 16;
    cells[0] = cells[LatencyCode::kCells - 1] = 235;
    cells[1] = cells[LatencyCode::kCells - 2] = 16;
    const auto r = LatencyCode::decodeCells (cells);
    EXPECT_FALSE (r.ok ()) << "round " << round;
    refusedByCheck += r.status == Status::kBadCheck;
  }
  EXPECT_EQ (refusedByCheck, 2000);
}

TEST (LatencyCode, RefusesAHalfCoveredStamp)
{
  const int w = 640, h = 360, band = LatencyCode::bandHeight (h);
  auto cover = [&] (int x0, int x1, int y0, int y1, uint8_t v) {
    Plane plane (w, h);
    plane.encode (kStamp);
    for (int y = y0; y < y1; y++)
      for (int x = x0; x < x1; x++)
        plane.at (x, y) = v;
    return plane.decode ();
  };
  for (uint8_t v : { 16, 128, 235 }) {
    EXPECT_FALSE (cover (w / 2, w, 0, band, v).ok ()) << "right half, " << int (v);
    EXPECT_FALSE (cover (0, w / 2, 0, band, v).ok ()) << "left half, " << int (v);
    EXPECT_FALSE (cover (w / 4, 3 * w / 4, 0, band, v).ok ()) << "middle, " << int (v);
    /* Covering the lower rows of every cell leaves every bit visible above:
     * reading the stamp is then right, and it must never be wrong. */
    for (int y0 = band / 4; y0 < band; y0++) {
      const auto r = cover (0, w, y0, band, v);
      EXPECT_TRUE (!r.ok () || r.stampLow == (kStamp & LatencyCode::kTimestampMask))
          << "rows from " << y0 << ", " << int (v);
    }
  }
  /* Each cell half covered with its opposite, in turn: a data cell becomes
   * unreadable; a calibration cell only lowers the contrast, and the data
   * cells, intact, may still be read right. */
  for (int i = 0; i < LatencyCode::kCells; i++) {
    const int c0 = LatencyCode::cellStart (i, w), c1 = LatencyCode::cellStart (i + 1, w);
    const bool white = LatencyCode::cellBits (kStamp)[i];
    const auto r = cover (c0, (c0 + c1) / 2 + 1, 0, band, white ? 16 : 235);
    if (i >= LatencyCode::kFirstTimestampCell && i < LatencyCode::kCells - 2)
      EXPECT_FALSE (r.ok ()) << "cell " << i;
    else
      EXPECT_TRUE (!r.ok () || r.stampLow == (kStamp & LatencyCode::kTimestampMask))
          << "cell " << i;
  }
}

TEST (LatencyCode, RefusesEverySingleFlippedCell)
{
  LatencyCode::Cells cells{};
  const auto bits = LatencyCode::cellBits (kStamp);
  for (int i = 0; i < LatencyCode::kCells; i++)
    cells[i] = bits[i] ? 235 : 16;
  ASSERT_TRUE (LatencyCode::decodeCells (cells).ok ());
  for (int i = LatencyCode::kFirstTimestampCell; i < LatencyCode::kCells - 2; i++) {
    auto flipped = cells;
    flipped[i] = bits[i] ? 16 : 235;
    EXPECT_EQ (LatencyCode::decodeCells (flipped).status, Status::kBadCheck) << i;
    auto grey = cells;
    grey[i] = 125;
    EXPECT_EQ (LatencyCode::decodeCells (grey).status, Status::kAmbiguousCell) << i;
  }
}

TEST (LatencyCode, RefusesPicturesTooSmallForAStamp)
{
  Plane plane (59, 100);
  plane.encode (kStamp);
  EXPECT_EQ (plane.decode ().status, Status::kTooSmall);
  EXPECT_TRUE (std::all_of (plane.data.begin (), plane.data.end (),
      [] (uint8_t v) { return v == 100; }));
  EXPECT_EQ (Plane (320, 15).decode ().status, Status::kTooSmall);
}

TEST (LatencyCode, ChecksWithCrc16CcittFalse)
{
  const uint8_t check[] = { '1', '2', '3', '4', '5', '6', '7', '8', '9' };
  EXPECT_EQ (LatencyCode::crc16 (check, sizeof (check)), 0x29b1);

  /* The example of docs/elements/latency.md, cell by cell. */
  const auto bits = LatencyCode::cellBits (0x0123456789ull);
  uint64_t stamp = 0, crc = 0;
  for (int i = 2; i < 42; i++)
    stamp = stamp << 1 | bits[i];
  for (int i = 42; i < 58; i++)
    crc = crc << 1 | bits[i];
  EXPECT_EQ (stamp, 0x0123456789ull);
  EXPECT_EQ (crc, 0x738eu);
  EXPECT_TRUE (bits[0] && !bits[1] && !bits[58] && bits[59]);
}

TEST (LatencyCode, UnwrapsToTheTimeNearestToNow)
{
  const uint64_t period = LatencyCode::kTimestampMask + 1;
  const uint64_t now = 3 * period + 1000;
  EXPECT_EQ (LatencyCode::unwrap (900, now), 3 * period + 900);
  EXPECT_EQ (LatencyCode::unwrap (2000, now), 3 * period + 2000);
  /* Stamped just before the low bits wrapped, read just after. */
  EXPECT_EQ (LatencyCode::unwrap (period - 50, now), 3 * period - 50);
  /* Read just before the wrap, stamped (by a clock ahead) just after. */
  EXPECT_EQ (LatencyCode::unwrap (10, 4 * period - 20), 4 * period + 10);
  EXPECT_EQ (LatencyCode::unwrap (kStamp & LatencyCode::kTimestampMask, kStamp + 35),
      kStamp);
}

TEST (LatencyStats, SummarisesCountsPercentilesAndExtremes)
{
  xdn::LatencyStats stats (100);
  EXPECT_EQ (stats.summary ().p50Ms, 0);
  for (int i = 1; i <= 100; i++)
    stats.addRead (i);
  stats.addUnreadable ();
  const auto s = stats.summary ();
  EXPECT_EQ (s.framesRead, 100u);
  EXPECT_EQ (s.framesUnreadable, 1u);
  EXPECT_DOUBLE_EQ (s.p50Ms, 50);
  EXPECT_DOUBLE_EQ (s.p95Ms, 95);
  EXPECT_DOUBLE_EQ (s.minMs, 1);
  EXPECT_DOUBLE_EQ (s.maxMs, 100);
  EXPECT_DOUBLE_EQ (s.meanMs, 50.5);
}

TEST (LatencyStats, TakesPercentilesOverTheWindowOnly)
{
  xdn::LatencyStats stats (10);
  for (int i = 0; i < 90; i++)
    stats.addRead (1000);
  for (int i = 0; i < 10; i++)
    stats.addRead (10);
  auto s = stats.summary ();
  EXPECT_DOUBLE_EQ (s.p95Ms, 10);
  EXPECT_DOUBLE_EQ (s.maxMs, 1000);
  EXPECT_EQ (s.framesRead, 100u);

  stats.setWindow (1);
  stats.addRead (20);
  s = stats.summary ();
  EXPECT_DOUBLE_EQ (s.p50Ms, 20);
  stats.reset ();
  EXPECT_EQ (stats.summary ().framesRead, 0u);
}
