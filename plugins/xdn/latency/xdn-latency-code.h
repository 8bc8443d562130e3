/* The latency stamp: a wall-clock time written into the picture as a band
 * of black and white cells that survives lossy coding and scaling.
 *
 * Layout (version 1; docs/elements/latency.md is the reference that other
 * implementations, such as apps/web/js/latency.js, follow):
 *
 *   - the band covers the whole width and the top bandHeight (H) rows,
 *     H = max (2, (height + 8) / 16) in integer arithmetic, i.e. 1/16
 *     of the height, rounded;
 *   - it is split into kCells (60) cells of equal width: cell i covers the
 *     columns [i * W / 60, (i + 1) * W / 60) (integer division);
 *   - a white cell is a 1, a black cell a 0. Cells 0 and 59 are white,
 *     cells 1 and 58 black (calibration); cells 2..41 hold the low 40 bits
 *     of the time in milliseconds since the Unix epoch, most significant
 *     bit first; cells 42..57 hold a CRC-16/CCITT-FALSE (poly 0x1021, init
 *     0xffff, no reflection, no final xor) of those 40 bits taken as five
 *     big-endian bytes, most significant bit first.
 *
 * A reader averages the inner area of each cell (columns
 * [x0 + w/4, x1 - w/4) of a cell [x0, x1) of width w, rows [H/4, H - H/4)), takes the threshold halfway
 * between the calibration means and refuses the frame when the calibration
 * has too little contrast, when any data cell is too close to the
 * threshold, or when the CRC does not match. The 40-bit value is then put
 * back into the full time by choosing the candidate nearest to the
 * reader's own clock (2^40 ms is about 35 years). */
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>

namespace xdn {

class LatencyCode {
public:
  static constexpr int kCells = 60;
  static constexpr int kTimestampBits = 40;
  static constexpr int kCheckBits = 16;
  static constexpr int kFirstTimestampCell = 2;
  static constexpr int kFirstCheckCell = kFirstTimestampCell + kTimestampBits;
  static constexpr uint64_t kTimestampMask = (uint64_t (1) << kTimestampBits) - 1;
  /* Smallest picture that carries a stamp: one pixel per cell and a band
   * at least two rows high. */
  static constexpr int kMinWidth = kCells;
  static constexpr int kMinHeight = 16;

  /* Calibration contrast below which a band is not a stamp, in 8-bit
   * levels (a stamp has 219 in limited range, 255 in full range). */
  static constexpr double kMinContrast = 64.0;
  /* A data cell must lie at least this fraction of the contrast away from
   * the threshold (so between 0 and 0.35 or between 0.65 and 1 of the way
   * from black to white). */
  static constexpr double kMargin = 0.15;

  using Cells = std::array<double, kCells>;

  enum class Status {
    kOk,
    kTooSmall,      /* picture smaller than kMinWidth x kMinHeight */
    kNoContrast,    /* calibration cells are not white/black */
    kAmbiguousCell, /* a data cell is neither clearly white nor black */
    kBadCheck,      /* CRC mismatch */
  };

  struct Result {
    Status status = Status::kTooSmall;
    /* Low kTimestampBits bits of the stamp, valid when status is kOk. */
    uint64_t stampLow = 0;
    bool ok () const { return status == Status::kOk; }
  };

  static bool fits (int width, int height)
  {
    return width >= kMinWidth && height >= kMinHeight;
  }
  static int bandHeight (int height);
  /* First column of cell i (i == kCells gives the width). */
  static int cellStart (int i, int width);

  /* The value of every cell for a time: true = white. */
  static std::array<bool, kCells> cellBits (uint64_t stampMs);

  /* Writes the band into one 8-bit component of a picture: luma of a YUV
   * picture, or each of R, G and B of an RGB picture. pixelStride is the
   * distance in bytes between two pixels of that component. Does nothing
   * when the picture does not fits(). */
  static void encode (uint64_t stampMs, uint8_t *data, int width, int height,
      int stride, int pixelStride, uint8_t white, uint8_t black);

  /* Mean of the inner area of every cell of one 8-bit component. */
  static Cells cellMeans (const uint8_t *data, int width, int height,
      int stride, int pixelStride);
  /* Reads cell means (luma, any 8-bit range). */
  static Result decodeCells (const Cells &means);
  /* Reads the stamp from a luma plane. */
  static Result decode (const uint8_t *luma, int width, int height, int stride,
      int pixelStride = 1);

  /* Full time in ms of a 40-bit stamp, the one nearest to nowMs. */
  static uint64_t unwrap (uint64_t stampLow, uint64_t nowMs);

  static uint16_t crc16 (const uint8_t *data, size_t size);
  static const char *statusName (Status status);
};

}  // namespace xdn
