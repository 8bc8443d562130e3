#include "slow-link.h"
#include "stats.h"

#include "xdn-fanout-rtcp.h"

#include <json-glib/json-glib.h>

#include <gtest/gtest.h>

#include <set>
#include <vector>

using namespace xdn::loadtest;
using xdn::fanout::rtcpWriteNack;

namespace {

uint16_t
rd16 (const uint8_t *p)
{
  return static_cast<uint16_t> (p[0] << 8 | p[1]);
}

struct Entry {
  uint16_t pid;
  uint16_t blp;
  bool operator== (const Entry &o) const { return pid == o.pid && blp == o.blp; }
};

/* The FCI entries of a NACK built for @seqs, after checking its header. */
std::vector<Entry>
entries (const std::vector<uint16_t> &seqs)
{
  uint8_t buf[2048];
  const size_t n = rtcpWriteNack (buf, sizeof buf, 0x11223344, 0xaabbccdd, seqs.data (),
      static_cast<unsigned> (seqs.size ()));
  EXPECT_GE (n, 16u);
  EXPECT_EQ (n % 4, 0u);
  EXPECT_EQ (buf[0], 0x81);   /* V=2, P=0, FMT 1 */
  EXPECT_EQ (buf[1], 205);    /* RTPFB */
  EXPECT_EQ ((rd16 (buf + 2) + 1u) * 4, n);
  EXPECT_EQ (buf[4], 0x11);
  EXPECT_EQ (buf[8], 0xaa);
  std::vector<Entry> out;
  for (size_t off = 12; off + 4 <= n; off += 4)
    out.push_back (Entry {rd16 (buf + off), rd16 (buf + off + 2)});
  return out;
}

/* What the fan-out's own parser reads from the NACK built for @seqs. */
class NackReader : public xdn::fanout::RtcpVisitor {
public:
  void onNack (uint32_t sender, uint32_t media, uint16_t seq) override
  {
    EXPECT_EQ (sender, 0x11223344u);
    EXPECT_EQ (media, 0xaabbccddu);
    seqs.insert (seq);
  }
  std::set<uint16_t> seqs;
};

std::set<uint16_t>
parsed (const std::vector<uint16_t> &seqs)
{
  uint8_t buf[2048];
  const size_t n = rtcpWriteNack (buf, sizeof buf, 0x11223344, 0xaabbccdd, seqs.data (),
      static_cast<unsigned> (seqs.size ()));
  NackReader r;
  EXPECT_EQ (xdn::fanout::rtcpParse (buf, n, r), xdn::fanout::RtcpParseStatus::Ok);
  return r.seqs;
}

}  // namespace

TEST (GenericNack, PacksAPidAndTheSixteenAfterItIntoOneEntry)
{
  /* 101 is bit 0 of 100's mask, 116 bit 15; 117 is too far: its own. */
  EXPECT_EQ (entries ({100, 101, 116, 117}),
      (std::vector<Entry> {{100, 0x8001}, {117, 0x0000}}));
  EXPECT_EQ (entries ({7}), (std::vector<Entry> {{7, 0}}));
  /* 40 in a row: 17 per entry. */
  std::vector<uint16_t> run;
  for (uint16_t s = 1000; s < 1040; s++)
    run.push_back (s);
  EXPECT_EQ (entries (run),
      (std::vector<Entry> {{1000, 0xffff}, {1017, 0xffff}, {1034, 0x001f}}));
}

TEST (GenericNack, PacksAcrossTheSequenceWrap)
{
  EXPECT_EQ (entries ({65534, 65535, 0, 1, 20}),
      (std::vector<Entry> {{65534, 0x0007}, {20, 0x0000}}));
  EXPECT_EQ (parsed ({65534, 65535, 0, 1, 20}), (std::set<uint16_t> {65534, 65535, 0, 1, 20}));
}

TEST (GenericNack, UnorderedAndRepeatedSeqsAreAllAskedForOnce)
{
  /* Sorted from the first on, duplicates merged. */
  EXPECT_EQ (entries ({5, 3, 5, 4}), (std::vector<Entry> {{5, 0x0000}, {3, 0x0001}}));
  EXPECT_EQ (parsed ({5, 3, 5, 4}), (std::set<uint16_t> {3, 4, 5}));
  std::vector<uint16_t> scattered;
  std::set<uint16_t> expected;
  for (unsigned i = 0; i < 120; i++) {
    const uint16_t s = static_cast<uint16_t> (65500 + i * 7 % 150);
    scattered.push_back (s);
    expected.insert (s);
  }
  EXPECT_EQ (parsed (scattered), expected);
}

TEST (GenericNack, RefusesWhatDoesNotFit)
{
  uint8_t buf[64];
  const uint16_t seqs[] = {1, 100, 200, 300};
  EXPECT_EQ (rtcpWriteNack (buf, 12, 1, 2, seqs, 1), 0u);
  EXPECT_EQ (rtcpWriteNack (buf, 16, 1, 2, seqs, 1), 16u);
  EXPECT_EQ (rtcpWriteNack (buf, 20, 1, 2, seqs, 4), 0u);
  EXPECT_EQ (rtcpWriteNack (buf, sizeof buf, 1, 2, seqs, 4), 28u);
  EXPECT_EQ (rtcpWriteNack (buf, sizeof buf, 1, 2, seqs, 0), 0u);
}

TEST (TokenBucket, StartsFullAndDropsWhatIsOverIt)
{
  TokenBucket b (80000, 3000);  /* 10 bytes per ms */
  EXPECT_TRUE (b.admit (1000, 0));
  EXPECT_TRUE (b.admit (1000, 0));
  EXPECT_TRUE (b.admit (1000, 0));
  EXPECT_FALSE (b.admit (1000, 0));
  /* 50 ms: 500 bytes back, not enough; 100 ms: 1000. */
  EXPECT_FALSE (b.admit (1000, 50000));
  EXPECT_TRUE (b.admit (1000, 100000));
  EXPECT_FALSE (b.admit (1, 100000));
}

TEST (TokenBucket, NeverHoldsMoreThanItsDepth)
{
  TokenBucket b (80000, 3000);
  EXPECT_TRUE (b.admit (3000, 0));
  /* Ten idle seconds fill it once, not ten times over. */
  EXPECT_TRUE (b.admit (3000, 10000000));
  EXPECT_FALSE (b.admit (10, 10000000));
}

TEST (TokenBucket, PassesItsRateOverTime)
{
  /* 1200-byte datagrams at 2 Mbit/s into a 500 kbit/s bucket for 10 s:
   * what passes is the rate plus the depth, within one datagram. */
  const double rate = 500000, depth = 6250;
  TokenBucket b (rate, depth);
  uint64_t passed = 0;
  for (int64_t t = 0; t < 10000000; t += 4800)
    if (b.admit (1200, t))
      passed += 1200;
  const double expected = rate / 8 * 10 + depth;
  EXPECT_LE (static_cast<double> (passed), expected + 1200);
  EXPECT_GE (static_cast<double> (passed), expected - 2 * 1200);
}

TEST (TokenBucket, AClockThatStepsBackRefillsNothing)
{
  TokenBucket b (80000, 1000);
  EXPECT_TRUE (b.admit (1000, 1000000));
  EXPECT_FALSE (b.admit (1000, 500000));
  EXPECT_FALSE (b.admit (1000, 550000));   /* 50 ms since the new reference */
  EXPECT_TRUE (b.admit (1000, 600000));    /* 100 ms */
}

TEST (SlowLink, LossIsSeededAndNearItsRate)
{
  auto run = [] (uint64_t seed) {
    SlowLink link (100000, 10, seed);  /* fast enough that only loss drops */
    std::vector<bool> kept;
    for (int i = 0; i < 10000; i++)
      kept.push_back (link.admit (100, int64_t (i) * 1000));
    EXPECT_EQ (link.droppedByRate (), 0u);
    EXPECT_NEAR (static_cast<double> (link.droppedByLoss ()), 1000, 150);
    return kept;
  };
  EXPECT_EQ (run (42), run (42));
  EXPECT_NE (run (42), run (43));
}

TEST (SlowLink, BucketIsAHundredMillisecondsDeepAndPassesAFullDatagram)
{
  SlowLink link (800, 0, 1);  /* 100 bytes per ms: 10000 bytes deep */
  uint64_t passed = 0;
  for (int i = 0; i < 20; i++)
    passed += link.admit (1000, 0) ? 1 : 0;
  EXPECT_EQ (passed, 10u);
  EXPECT_EQ (link.droppedByRate (), 10u);
  SlowLink tiny (8, 0, 1);  /* 100 ms of 8 kbit/s is 100 bytes: the depth is 1500 */
  EXPECT_TRUE (tiny.admit (1500, 0));
  EXPECT_FALSE (tiny.admit (1, 0));
}

TEST (NackTracker, HandsOutEachMissingSeqOnceAndKnowsTheRetransmissions)
{
  NackTracker t;
  bool past = true;
  EXPECT_EQ (t.onPacket (65533, &past), NackTracker::Arrival::InOrder);
  EXPECT_FALSE (past);
  EXPECT_EQ (t.onPacket (1, &past), NackTracker::Arrival::InOrder);   /* 65534 .. 0 missing */
  EXPECT_FALSE (past);
  EXPECT_EQ (t.onPacket (4, &past), NackTracker::Arrival::InOrder);   /* 2, 3 missing */
  /* 3 comes before it is asked for: no longer missing. */
  EXPECT_EQ (t.onPacket (3, &past), NackTracker::Arrival::Late);
  EXPECT_EQ (t.takePending (0), (std::vector<uint16_t> {65534, 65535, 0, 2}));
  EXPECT_FALSE (t.hasPending ());
  EXPECT_TRUE (t.takePending (0).empty ());
  EXPECT_EQ (t.onPacket (0, &past), NackTracker::Arrival::Retransmission);
  /* A second copy is nothing new. */
  EXPECT_EQ (t.onPacket (0, &past), NackTracker::Arrival::Old);
  EXPECT_EQ (t.onPacket (4, &past), NackTracker::Arrival::Old);
  EXPECT_EQ (t.onPacket (65535, &past), NackTracker::Arrival::Retransmission);
  EXPECT_FALSE (t.hasPending ());
}

TEST (NackTracker, APacketAskedForThatDoesNotComeBackInTimeIsPastRepair)
{
  NackTracker t;
  bool past = false;
  t.onPacket (10, &past);
  t.onPacket (12, &past);   /* 11 missing */
  EXPECT_EQ (t.takePending (1000000), (std::vector<uint16_t> {11}));
  t.onPacket (14, &past);   /* 13 missing */
  EXPECT_EQ (t.takePending (1100000), (std::vector<uint16_t> {13}));
  EXPECT_EQ (t.expire (1000000 + NackTracker::kRepairTimeoutUs), 0u);
  EXPECT_EQ (t.expire (1000001 + NackTracker::kRepairTimeoutUs), 1u);
  /* 11 is given up on: a copy now is nothing new; 13 still counts. */
  EXPECT_EQ (t.onPacket (11, &past), NackTracker::Arrival::Old);
  EXPECT_EQ (t.onPacket (13, &past), NackTracker::Arrival::Retransmission);
  EXPECT_EQ (t.expire (10000000), 0u);
}

TEST (NackTracker, AHoleTooWideIsPastRepair)
{
  NackTracker t;
  bool past = false;
  t.onPacket (100, &past);
  t.onPacket (103, &past);
  EXPECT_FALSE (past);
  EXPECT_EQ (t.pending (), 2u);
  t.onPacket (static_cast<uint16_t> (104 + NackTracker::kMaxGap + 1), &past);
  EXPECT_TRUE (past);
  EXPECT_FALSE (t.hasPending ());
  /* Many small holes, never asked for: the list stays bounded. */
  uint16_t s = 1000;
  t.onPacket (s, &past);
  bool overflowed = false;
  for (int i = 0; i < 200; i++) {
    s = static_cast<uint16_t> (s + 2);
    t.onPacket (s, &past);
    overflowed |= past;
  }
  EXPECT_TRUE (overflowed);
  EXPECT_EQ (t.pending (), NackTracker::kMaxPending);
}

TEST (RtpSourceStats, ARetransmissionFillsItsHoleWithoutCountingAsReorderedOrLate)
{
  RtpSourceStats s (1, 90000, 100000);
  s.onPacket (10, 0, 1000000, 1000);
  s.onPacket (12, 6000, 1066666, 1000);
  EXPECT_EQ (s.lost (), 1u);
  /* Asked for and sent again half a second after its media time. */
  s.onRetransmission (1000);
  EXPECT_EQ (s.lost (), 0u);
  EXPECT_EQ (s.received (), 3u);
  EXPECT_EQ (s.expected (), 3u);
  EXPECT_EQ (s.retransmissions (), 1u);
  EXPECT_EQ (s.reordered (), 0u);
  EXPECT_EQ (s.late (), 0u);
}

TEST (Summary, SlowViewersAreReportedApartFromTheDeliveryFigures)
{
  std::vector<ViewerResult> v (3);
  for (auto &r : v) {
    r.connected = true;
    r.joinMs = 30;
    r.mediaSeconds = 10;
  }
  v[0].packets = 1000;
  v[0].expected = 1000;
  v[1].packets = 998;
  v[1].expected = 1000;
  v[1].lost = 2;
  v[2].slow = true;
  v[2].packets = 600;
  v[2].expected = 1000;
  v[2].lost = 400;
  v[2].slowDroppedRate = 380;
  v[2].slowDroppedLoss = 20;
  v[2].nacksSent = 90;
  v[2].packetsNacked = 400;
  v[2].retransmissions = 30;
  v[2].plisSent = 9;
  RunInfo run;
  run.viewersRequested = 3;
  const Summary s = summarize (v, run);
  EXPECT_EQ (s.viewers, 3u);
  EXPECT_EQ (s.connected, 3u);
  EXPECT_EQ (s.viewerSeconds, 30);
  /* Delivery: the normal viewers alone. */
  EXPECT_EQ (s.packets, 1998u);
  EXPECT_EQ (s.expected, 2000u);
  EXPECT_EQ (s.lost, 2u);
  EXPECT_DOUBLE_EQ (s.receivedPercent, 99.9);
  EXPECT_DOUBLE_EQ (s.worstReceivedPercent, 99.8);
  EXPECT_EQ (s.slow.viewers, 1u);
  EXPECT_EQ (s.slow.connected, 1u);
  EXPECT_EQ (s.slow.packets, 600u);
  EXPECT_DOUBLE_EQ (s.slow.receivedPercent, 60);
  EXPECT_DOUBLE_EQ (s.slow.worstReceivedPercent, 60);
  EXPECT_EQ (s.slow.nacksSent, 90u);
  EXPECT_EQ (s.slow.packetsNacked, 400u);
  EXPECT_EQ (s.slow.retransmissions, 30u);
  EXPECT_EQ (s.slow.plisSent, 9u);
  EXPECT_NE (formatTable (s).find ("slow viewers"), std::string::npos);

  const std::string text = formatJson (s, &v);
  JsonParser *parser = json_parser_new ();
  ASSERT_TRUE (json_parser_load_from_data (parser, text.c_str (), -1, nullptr)) << text;
  JsonObject *root = json_node_get_object (json_parser_get_root (parser));
  EXPECT_DOUBLE_EQ (json_object_get_double_member (root, "worstReceivedPercent"), 99.8);
  JsonObject *slow = json_object_get_object_member (root, "slow");
  ASSERT_NE (slow, nullptr);
  EXPECT_EQ (json_object_get_int_member (slow, "viewers"), 1);
  EXPECT_EQ (json_object_get_int_member (slow, "retransmissions"), 30);
  EXPECT_EQ (json_object_get_int_member (slow, "droppedByRate"), 380);
  JsonArray *viewers = json_object_get_array_member (root, "viewerResults");
  EXPECT_FALSE (json_object_has_member (json_array_get_object_element (viewers, 0), "slow"));
  JsonObject *third = json_array_get_object_element (viewers, 2);
  EXPECT_TRUE (json_object_get_boolean_member (third, "slow"));
  EXPECT_EQ (json_object_get_int_member (third, "nacksSent"), 90);
  g_object_unref (parser);

  /* Without slow viewers, no slow section. */
  v.pop_back ();
  EXPECT_EQ (formatJson (summarize (v, run), nullptr).find ("\"slow\""), std::string::npos);
}
