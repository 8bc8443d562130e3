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
  unsigned twccReceived = 0;
  struct TwccPacket {
    uint16_t seq;
    bool received;
    int64_t arrivalUs;
    bool operator== (const TwccPacket &o) const
    {
      return seq == o.seq && received == o.received && arrivalUs == o.arrivalUs;
    }
  };
  std::vector<TwccPacket> twccPackets;
  int malformed = 0;
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
  void onTransportCc (const RtcpTransportCc &fb) override
  {
    twcc++;
    twccBase = fb.baseSeq;
    twccCount = fb.statusCount;
    twccRef = fb.referenceTime;
    twccReceived = fb.received;
    twccPackets.clear ();
    fb.forEach ([this] (uint16_t seq, bool received, int64_t arrivalUs) {
      twccPackets.push_back ({seq, received, received ? arrivalUs : 0});
    });
  }
  void onMalformed (uint8_t type, uint8_t format) override
  {
    if (type == 205 && format == 15)
      malformed++;
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
  /* transport-cc: base 300, 12 statuses, reference time -5, count 4, one
   * run-length chunk (12 received, small deltas), 12 deltas, padding */
  const uint8_t twcc[] = {0x8f, 205, 0, 8, 0, 0, 0, 9, 0, 0, 0x22, 0x22,
                          0x01, 0x2c, 0x00, 0x0c, 0xff, 0xff, 0xfb, 0x04, 0x20, 0x0c,
                          4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 0, 0};
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

using fanouttest::TransportCcMessage;
using TwccPacket = Recorder::TwccPacket;

namespace {

Recorder
parseOne (const TransportCcMessage &m)
{
  Recorder r;
  const auto b = m.bytes ();
  EXPECT_EQ (rtcpParse (b.data (), b.size (), r), RtcpParseStatus::Ok);
  return r;
}

}  // namespace

TEST (FanoutRtcp, TransportCcRunLengthChunksGiveEachPacketAndItsArrival)
{
  TransportCcMessage m;
  m.baseSeq = 65534;          /* wraps */
  m.statusCount = 6;
  m.referenceTime = 10;       /* 640 ms */
  m.feedbackCount = 3;
  m.chunks = {TransportCcMessage::run (1, 3), TransportCcMessage::run (0, 1),
              TransportCcMessage::run (2, 2)};
  m.small (4);                /* +1 ms */
  m.small (0);
  m.small (8);
  m.large (-4);               /* -1 ms: reordered */
  m.large (400);              /* +100 ms */
  Recorder r = parseOne (m);
  ASSERT_EQ (r.twcc, 1);
  EXPECT_EQ (r.malformed, 0);
  EXPECT_EQ (r.twccReceived, 5u);
  const std::vector<TwccPacket> want = {{65534, true, 641000}, {65535, true, 641000},
      {0, true, 643000}, {1, false, 0}, {2, true, 642000}, {3, true, 742000}};
  EXPECT_EQ (r.twccPackets, want);
}

TEST (FanoutRtcp, TransportCcOneBitStatusVectorIgnoresSymbolsPastTheCount)
{
  TransportCcMessage m;
  m.baseSeq = 500;
  m.statusCount = 10;
  m.referenceTime = -1;       /* -64 ms */
  /* the last four symbols lie past the count: no deltas for them */
  m.chunks = {TransportCcMessage::vector1 ({1, 0, 1, 1, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1})};
  m.small (1);
  m.small (2);
  m.small (3);
  m.small (255);
  Recorder r = parseOne (m);
  ASSERT_EQ (r.twcc, 1);
  EXPECT_EQ (r.twccReceived, 4u);
  ASSERT_EQ (r.twccPackets.size (), 10u);
  EXPECT_EQ (r.twccPackets[0], (TwccPacket {500, true, -64000 + 250}));
  EXPECT_EQ (r.twccPackets[1], (TwccPacket {501, false, 0}));
  EXPECT_EQ (r.twccPackets[2], (TwccPacket {502, true, -64000 + 750}));
  EXPECT_EQ (r.twccPackets[3], (TwccPacket {503, true, -64000 + 1500}));
  EXPECT_EQ (r.twccPackets[9], (TwccPacket {509, true, -64000 + 1500 + 63750}));
}

TEST (FanoutRtcp, TransportCcTwoBitStatusVectorThenARun)
{
  TransportCcMessage m;
  m.baseSeq = 7;
  m.statusCount = 9;
  m.referenceTime = 0x7fffff;  /* the largest reference time */
  m.chunks = {TransportCcMessage::vector2 ({2, 0, 1, 1, 0, 2, 1}),
              TransportCcMessage::run (1, 2)};
  m.large (-100);
  m.small (2);
  m.small (3);
  m.large (1000);
  m.small (255);
  m.small (0);
  m.small (1);
  Recorder r = parseOne (m);
  ASSERT_EQ (r.twcc, 1);
  EXPECT_EQ (r.twccReceived, 7u);
  const int64_t ref = int64_t (0x7fffff) * 64000;
  const std::vector<TwccPacket> want = {{7, true, ref - 25000}, {8, false, 0},
      {9, true, ref - 24500}, {10, true, ref - 23750}, {11, false, 0}, {12, true, ref + 226250},
      {13, true, ref + 290000}, {14, true, ref + 290000}, {15, true, ref + 290250}};
  EXPECT_EQ (r.twccPackets, want);
}

TEST (FanoutRtcp, TransportCcLongRunOfLossesIsBounded)
{
  TransportCcMessage m;
  m.statusCount = 65535;
  for (int i = 0; i < 8; i++)
    m.chunks.push_back (TransportCcMessage::run (0, 8191));
  m.chunks.push_back (TransportCcMessage::run (0, 7));
  Recorder r = parseOne (m);
  ASSERT_EQ (r.twcc, 1);
  EXPECT_EQ (r.twccReceived, 0u);
  EXPECT_EQ (r.twccPackets.size (), 65535u);
}

TEST (FanoutRtcp, MalformedTransportCcIsRefusedAndTheWalkGoesOn)
{
  std::vector<TransportCcMessage> bad (9);
  bad[0].statusCount = 5;                                  /* no chunk at all */
  bad[1].statusCount = 20;                                 /* chunks cover 14 */
  bad[1].chunks = {TransportCcMessage::vector1 ({1})};
  bad[1].small (1);
  bad[2].statusCount = 5;                                  /* 5 deltas announced, 2 there */
  bad[2].chunks = {TransportCcMessage::run (1, 5)};
  bad[2].small (1);
  bad[2].small (1);
  bad[3].statusCount = 10;                                 /* 20 bytes of deltas announced */
  bad[3].chunks = {TransportCcMessage::run (2, 10)};
  bad[3].large (1);
  bad[3].large (1);
  bad[4].statusCount = 2;                                  /* reserved symbol in a run */
  bad[4].chunks = {TransportCcMessage::run (3, 2)};
  bad[4].small (1);
  bad[4].small (1);
  bad[5].statusCount = 3;                                  /* reserved symbol in a vector */
  bad[5].chunks = {TransportCcMessage::vector2 ({1, 3, 1})};
  bad[5].small (1);
  bad[5].small (1);
  bad[5].small (1);
  bad[6].statusCount = 0;                                  /* reports on nothing */
  bad[6].chunks = {TransportCcMessage::run (1, 1)};
  bad[6].small (1);
  bad[7].statusCount = 3;                                  /* empty run then nothing */
  bad[7].chunks = {TransportCcMessage::run (1, 0)};
  bad[8].statusCount = 65535;                              /* a run can never cover it */
  bad[8].chunks = {TransportCcMessage::run (0, 8191)};
  for (size_t i = 0; i < bad.size (); i++) {
    std::vector<uint8_t> compound = bad[i].bytes ();
    uint8_t b[64];
    const size_t n = rtcpWritePli (b, sizeof (b), 9, 0x2222);
    compound.insert (compound.end (), b, b + n);
    Recorder r;
    EXPECT_EQ (rtcpParse (compound.data (), compound.size (), r), RtcpParseStatus::Ok) << i;
    EXPECT_EQ (r.twcc, 0) << i;
    EXPECT_EQ (r.malformed, 1) << i;
    EXPECT_EQ (r.plis.size (), 1u) << "the message after it is still read, " << i;
  }

  /* a length that runs past the datagram ends the walk */
  TransportCcMessage lie;
  lie.statusCount = 1;
  lie.chunks = {TransportCcMessage::run (1, 1)};
  lie.small (1);
  lie.lengthWords = 40;
  Recorder r;
  const auto b = lie.bytes ();
  EXPECT_EQ (rtcpParse (b.data (), b.size (), r), RtcpParseStatus::Truncated);
  EXPECT_EQ (r.twcc, 0);
}

TEST (FanoutRtcp, RandomTransportCcContentsNeverReadOutOfBounds)
{
  fanouttest::Rng rng (23);
  int accepted = 0;
  for (int i = 0; i < 20000; i++) {
    TransportCcMessage m;
    m.statusCount = static_cast<uint16_t> (rng.below (2) ? rng.below (40) : rng.below (65536));
    const size_t chunks = rng.below (12);
    for (size_t c = 0; c < chunks; c++)
      m.chunks.push_back (static_cast<uint16_t> (rng.below (65536)));
    m.deltas.resize (rng.below (60));
    rng.fill (m.deltas.data (), m.deltas.size ());
    auto bytes = m.bytes ();
    /* cut the message short in its own length field too, now and then */
    if (rng.below (4) == 0 && bytes.size () > 24) {
      bytes.resize (bytes.size () - 4);
      bytes[2] = 0;
      bytes[3] = static_cast<uint8_t> (bytes.size () / 4 - 1);
    }
    Recorder r;
    rtcpParse (bytes.data (), bytes.size (), r);
    if (r.twcc) {
      accepted++;
      ASSERT_EQ (r.twccPackets.size (), m.statusCount);
      unsigned received = 0;
      for (const auto &p : r.twccPackets)
        received += p.received;
      ASSERT_EQ (received, r.twccReceived);
    }
  }
  EXPECT_GT (accepted, 0);
}
