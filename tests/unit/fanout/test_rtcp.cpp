/* RTCP as the fan-out reads it from viewers and writes it to them, with
 * packets built in the test. */
#include <gtest/gtest.h>

#include "fanout-test-util.h"
#include "xdn-fanout-bytes.h"
#include "xdn-fanout-rtcp.h"

#include <algorithm>
#include <vector>

using namespace xdn::fanout;

namespace {

struct Recorder : RtcpVisitor {
  std::vector<RtcpReportBlock> blocks;
  std::vector<std::pair<uint32_t, uint16_t>> nacks;
  std::vector<uint32_t> plis;
  std::vector<std::pair<uint32_t, uint8_t>> firs;
  uint64_t remb = 0;
  std::vector<uint32_t> rembSsrcs;
  int twcc = 0;
  uint16_t twccBase = 0, twccCount = 0;
  int32_t twccRef = 0;
  std::vector<uint32_t> byes;

  void onReportBlock (uint32_t, const RtcpReportBlock &b) override { blocks.push_back (b); }
  void onNack (uint32_t, uint32_t media, uint16_t seq) override { nacks.emplace_back (media, seq); }
  void onPli (uint32_t, uint32_t media) override { plis.push_back (media); }
  void onFir (uint32_t, uint32_t media, uint8_t seq) override { firs.emplace_back (media, seq); }
  void onRemb (uint32_t, uint64_t bitrate, const uint8_t *ssrcs, unsigned count) override
  {
    remb = bitrate;
    for (unsigned i = 0; i < count; i++)
      rembSsrcs.push_back (rd32 (ssrcs + 4 * i));
  }
  void onTransportCc (uint32_t, uint32_t, uint16_t base, uint16_t count, int32_t ref,
      uint8_t) override
  {
    twcc++;
    twccBase = base;
    twccCount = count;
    twccRef = ref;
  }
  void onBye (uint32_t ssrc) override { byes.push_back (ssrc); }
};

}  // namespace

TEST (FanoutRtcp, NackExpandsIntoEveryLostSequenceNumber)
{
  const std::vector<uint16_t> lost = {65534, 65535, 0, 1, 5, 17, 18, 40, 1000};
  uint8_t b[256];
  size_t n = rtcpWriteNack (b, sizeof (b), 1, 0xabcd, lost.data (), unsigned (lost.size ()));
  ASSERT_GT (n, 0u);
  Recorder r;
  ASSERT_EQ (rtcpParse (b, n, r), RtcpParseStatus::Ok);
  std::vector<uint16_t> got;
  for (auto &[media, seq] : r.nacks) {
    EXPECT_EQ (media, 0xabcdu);
    got.push_back (seq);
  }
  std::vector<uint16_t> want = lost;
  std::sort (want.begin (), want.end ());
  std::sort (got.begin (), got.end ());
  EXPECT_EQ (got, want);
}

TEST (FanoutRtcp, FeedbackMessagesAreRead)
{
  std::vector<uint8_t> compound;
  uint8_t b[256];
  RtcpReportBlock rb;
  rb.ssrc = 0x1111;
  rb.fractionLost = 25;
  rb.cumulativeLost = -3;
  rb.highestSeq = 70000;
  rb.jitter = 321;
  rb.lastSr = 0x12345678;
  rb.delaySinceLastSr = 65536;
  size_t n = rtcpWriteReceiverReport (b, sizeof (b), 9, &rb, 1);
  compound.insert (compound.end (), b, b + n);
  n = rtcpWritePli (b, sizeof (b), 9, 0x2222);
  compound.insert (compound.end (), b, b + n);
  n = rtcpWriteFir (b, sizeof (b), 9, 0x3333, 7);
  compound.insert (compound.end (), b, b + n);
  const uint32_t ssrcs[] = {0x2222, 0x4444};
  n = rtcpWriteRemb (b, sizeof (b), 9, 1500000, ssrcs, 2);
  compound.insert (compound.end (), b, b + n);
  /* transport-cc: base 300, 12 statuses, reference time -5, count 4, one chunk */
  const uint8_t twcc[] = {0x8f, 205, 0, 5, 0, 0, 0, 9, 0, 0, 0x22, 0x22,
                          0x01, 0x2c, 0x00, 0x0c, 0xff, 0xff, 0xfb, 0x04, 0x20, 0x0c, 0, 0};
  compound.insert (compound.end (), twcc, twcc + sizeof (twcc));
  n = rtcpWriteBye (b, sizeof (b), 9);
  compound.insert (compound.end (), b, b + n);

  Recorder r;
  ASSERT_EQ (rtcpParse (compound.data (), compound.size (), r), RtcpParseStatus::Ok);
  ASSERT_EQ (r.blocks.size (), 1u);
  EXPECT_EQ (r.blocks[0].ssrc, 0x1111u);
  EXPECT_EQ (r.blocks[0].fractionLost, 25);
  EXPECT_EQ (r.blocks[0].cumulativeLost, -3);
  EXPECT_EQ (r.blocks[0].highestSeq, 70000u);
  EXPECT_EQ (r.blocks[0].jitter, 321u);
  EXPECT_EQ (r.blocks[0].lastSr, 0x12345678u);
  EXPECT_EQ (r.plis, std::vector<uint32_t> {0x2222});
  ASSERT_EQ (r.firs.size (), 1u);
  EXPECT_EQ (r.firs[0].first, 0x3333u);
  EXPECT_EQ (r.firs[0].second, 7);
  /* 1,500,000 = 187500 << 3 fits the 18-bit mantissa exactly */
  EXPECT_EQ (r.remb, 1500000u);
  EXPECT_EQ (r.rembSsrcs, (std::vector<uint32_t> {0x2222, 0x4444}));
  EXPECT_EQ (r.twcc, 1);
  EXPECT_EQ (r.twccBase, 300);
  EXPECT_EQ (r.twccCount, 12);
  EXPECT_EQ (r.twccRef, -5);
  EXPECT_EQ (r.byes, std::vector<uint32_t> {9});
}

TEST (FanoutRtcp, SenderReportWithCnameIsACompoundPacket)
{
  uint8_t b[128];
  const uint64_t ntp = ntpFromUnixMicros (1700000000ll * 1000000 + 500000);
  EXPECT_EQ (ntp >> 32, 1700000000ull + 2208988800ull);
  EXPECT_EQ (ntp & 0xffffffff, 0x80000000ull);
  size_t n = rtcpWriteSenderReport (b, sizeof (b), 0xfeed, ntp, 90000, 12, 3456, "abc");
  ASSERT_EQ (n, 28u + 4u + 12u);
  EXPECT_EQ (b[1], 200);
  EXPECT_EQ (rd32 (b + 4), 0xfeedu);
  EXPECT_EQ (rd64 (b + 8), ntp);
  EXPECT_EQ (rd32 (b + 16), 90000u);
  EXPECT_EQ (rd32 (b + 20), 12u);
  EXPECT_EQ (rd32 (b + 24), 3456u);
  EXPECT_EQ (b[29], 202);
  EXPECT_EQ (b[28 + 8], 1);   /* CNAME */
  EXPECT_EQ (b[28 + 9], 3);
  EXPECT_EQ (std::string (reinterpret_cast<char *> (b + 38), 3), "abc");
  Recorder r;
  EXPECT_EQ (rtcpParse (b, n, r), RtcpParseStatus::Ok);
  EXPECT_EQ (rtcpWriteSenderReport (b, 40, 1, ntp, 0, 0, 0, "abc"), 0u);
}

TEST (FanoutRtcp, TruncatedAndForeignPacketsStopTheWalk)
{
  uint8_t b[64];
  size_t n = rtcpWritePli (b, sizeof (b), 1, 2);
  Recorder r;
  EXPECT_EQ (rtcpParse (b, 0, r), RtcpParseStatus::Empty);
  for (size_t cut = 1; cut < n; cut++)
    EXPECT_EQ (rtcpParse (b, cut, r), RtcpParseStatus::Truncated) << cut;
  b[0] = 0x41;
  EXPECT_EQ (rtcpParse (b, n, r), RtcpParseStatus::BadVersion);
  EXPECT_TRUE (r.plis.empty ());
}

TEST (FanoutRtcp, RandomBytesNeverReadOutOfBounds)
{
  fanouttest::Rng rng (11);
  Recorder r;
  for (int i = 0; i < 50000; i++) {
    std::vector<uint8_t> d (rng.below (200));
    rng.fill (d.data (), d.size ());
    if (!d.empty () && rng.below (2))
      d[0] = static_cast<uint8_t> (0x80 | (d[0] & 0x3f));
    rtcpParse (d.data (), d.size (), r);
  }
  SUCCEED ();
}
