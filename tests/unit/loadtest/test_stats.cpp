#include "stats.h"

#include <json-glib/json-glib.h>

#include <gtest/gtest.h>

using namespace xdn::loadtest;

namespace {

/* Packets @seqs of a 90 kHz source, 30 per second, each arriving at its
 * media time (plus @delayUs for the ones listed in @delayed). */
void
feed (RtpSourceStats &s, const std::vector<uint16_t> &seqs, uint32_t tsStart = 1000)
{
  for (uint16_t seq : seqs) {
    const uint16_t step = static_cast<uint16_t> (seq - seqs.front ());
    const int64_t arrival = 1000000 + int64_t (step) * 33333;
    s.onPacket (seq, tsStart + uint32_t (step) * 3000, arrival, 1000);
  }
}

std::vector<uint16_t>
range (uint16_t from, unsigned count)
{
  std::vector<uint16_t> v;
  for (unsigned i = 0; i < count; i++)
    v.push_back (static_cast<uint16_t> (from + i));
  return v;
}

}  // namespace

TEST (Percentile, NearestRank)
{
  std::vector<double> v;
  EXPECT_EQ (percentile (v, 50), 0);
  for (int i = 10; i >= 1; i--)
    v.push_back (i);
  EXPECT_EQ (percentile (v, 50), 5);
  EXPECT_EQ (percentile (v, 95), 10);
  EXPECT_EQ (percentile (v, 100), 10);
  EXPECT_EQ (percentile (v, 0), 1);
  EXPECT_EQ (percentile ({7}, 95), 7);
}

TEST (RtpSourceStats, InOrderPacketsLoseNothing)
{
  RtpSourceStats s (1, 90000, 100000);
  feed (s, range (100, 200));
  EXPECT_EQ (s.received (), 200u);
  EXPECT_EQ (s.expected (), 200u);
  EXPECT_EQ (s.lost (), 0u);
  EXPECT_EQ (s.bytes (), 200000u);
  EXPECT_EQ (s.late (), 0u);
  EXPECT_EQ (s.jitter (), 0u);
}

TEST (RtpSourceStats, GapsCountAsLost)
{
  RtpSourceStats s (1, 90000, 100000);
  auto seqs = range (0, 100);
  seqs.erase (seqs.begin () + 50, seqs.begin () + 53);  /* 50, 51, 52 lost */
  seqs.erase (seqs.begin () + 10);                        /* 10 lost */
  feed (s, seqs);
  EXPECT_EQ (s.received (), 96u);
  EXPECT_EQ (s.expected (), 100u);
  EXPECT_EQ (s.lost (), 4u);
  uint8_t fraction;
  int32_t cumulative;
  s.reportBlockLoss (fraction, cumulative);
  EXPECT_EQ (fraction, (4 << 8) / 100);
  EXPECT_EQ (cumulative, 4);
  /* The next report covers only what came since. */
  s.onPacket (100, 1000 + 100 * 3000, 1000000 + 100 * 33333, 1000);
  s.reportBlockLoss (fraction, cumulative);
  EXPECT_EQ (fraction, 0);
  EXPECT_EQ (cumulative, 4);
}

TEST (RtpSourceStats, SequenceWrapIsNoLoss)
{
  RtpSourceStats s (1, 90000, 100000);
  feed (s, range (65500, 100));  /* 65500 .. 65535, 0 .. 63 */
  EXPECT_EQ (s.expected (), 100u);
  EXPECT_EQ (s.lost (), 0u);
  EXPECT_EQ (s.extendedHighest (), 65536u + 63u);
}

TEST (RtpSourceStats, ReorderedPacketFillsItsGap)
{
  RtpSourceStats s (1, 90000, 100000);
  feed (s, {1, 2, 4, 3, 5, 6});
  EXPECT_EQ (s.received (), 6u);
  EXPECT_EQ (s.lost (), 0u);
  EXPECT_EQ (s.reordered (), 1u);
}

TEST (RtpSourceStats, ReorderedAcrossTheWrap)
{
  RtpSourceStats s (1, 90000, 100000);
  feed (s, {65534, 0, 65535, 1});
  EXPECT_EQ (s.received (), 4u);
  EXPECT_EQ (s.expected (), 4u);
  EXPECT_EQ (s.lost (), 0u);
}

TEST (RtpSourceStats, DuplicateIsNotCounted)
{
  RtpSourceStats s (1, 90000, 100000);
  feed (s, {1, 2, 2, 3});
  EXPECT_EQ (s.received (), 3u);
  EXPECT_EQ (s.duplicates (), 1u);
  EXPECT_EQ (s.lost (), 0u);
}

TEST (RtpSourceStats, RestartedNumberingKeepsWhatWasExpected)
{
  RtpSourceStats s (1, 90000, 100000);
  feed (s, range (10, 50));
  feed (s, range (40000, 50), 500000);
  EXPECT_EQ (s.restarts (), 1u);
  EXPECT_EQ (s.received (), 100u);
  EXPECT_EQ (s.expected (), 100u);
  EXPECT_EQ (s.lost (), 0u);
}

TEST (RtpSourceStats, LateIsTransitBeyondTheSmallestByTheThreshold)
{
  RtpSourceStats s (1, 48000, 100000);
  /* 20 ms audio packets; packet 5 arrives 150 ms after its time, packet 8
   * 90 ms after (under the threshold). */
  for (uint16_t i = 0; i < 20; i++) {
    int64_t arrival = 5000000 + int64_t (i) * 20000;
    if (i == 5)
      arrival += 150000;
    if (i == 8)
      arrival += 90000;
    s.onPacket (i, 4294967000u + uint32_t (i) * 960, arrival, 100);  /* timestamps wrap */
  }
  EXPECT_EQ (s.late (), 1u);
  EXPECT_GT (s.jitterMs (), 0);
}

TEST (RtpSourceStats, AnEarlyPacketLowersTheBaseline)
{
  RtpSourceStats s (1, 90000, 100000);
  /* The first packets were held 300 ms (a join burst); the rest are on
   * time, so they are not late, and none before them counted as late. */
  for (uint16_t i = 0; i < 30; i++) {
    int64_t arrival = 1000000 + int64_t (i) * 33333 + (i < 3 ? 300000 - i * 33333 : 0);
    s.onPacket (i, uint32_t (i) * 3000, arrival, 1000);
  }
  EXPECT_EQ (s.late (), 0u);
}

TEST (Summary, GroupsFailuresAndAddsUpFigures)
{
  std::vector<ViewerResult> v (5);
  for (uint32_t i = 0; i < 3; i++) {
    v[i].index = i;
    v[i].connected = true;
    v[i].joinMs = 100 + i * 100;      /* 100, 200, 300 */
    v[i].packets = 1000;
    v[i].expected = 1000 + i;         /* lost 0, 1, 2 */
    v[i].lost = i;
    v[i].late = i;
    v[i].bytes = 125000 * (i + 1);    /* 1, 2, 3 Mbit over 1 s */
    v[i].mediaSeconds = 1;
    v[i].mediaFromUs = 1000000;
    v[i].mediaToUs = 2000000;
    v[i].authFailures = 1;
  }
  v[2].sampled = true;
  v[2].framesDecoded = 4;
  v[2].framesUnreadable = 1;
  v[2].latenciesMs = {10, 20, 30};
  v[3].failPhase = FailPhase::Whep;
  v[3].failKind = "404";
  v[3].failReason = "WHEP POST answered 404: not live";
  v[4].failPhase = FailPhase::Whep;
  v[4].failKind = "404";
  v[4].failReason = "WHEP POST answered 404: not live";
  std::vector<ViewerResult> more = v;
  more[0].failPhase = FailPhase::Ice;
  more[0].failKind = "timeout";
  more[0].failReason = "ice: no answer";

  RunInfo run;
  run.url = "http://x/whep/a";
  run.viewersRequested = 5;
  run.cpuMs = 30;
  run.networkCpuMs = 15;
  run.serverCpuMs = 300;
  run.serverPid = 42;
  run.steadyS = 0.5;
  run.steadyFromUs = 1500000;
  run.steadyToUs = 2000000;
  run.steadyCpuMs = 3;
  Summary s = summarize (more, run);
  EXPECT_EQ (s.viewers, 5u);
  EXPECT_EQ (s.connected, 3u);
  EXPECT_EQ (s.failed, 3u);
  ASSERT_EQ (s.failures.size (), 2u);
  EXPECT_EQ (s.failures[0].phase, "whep");  /* most frequent first */
  EXPECT_EQ (s.failures[0].kind, "404");
  EXPECT_EQ (s.failures[0].count, 2u);
  EXPECT_EQ (s.failures[0].example, "WHEP POST answered 404: not live");
  EXPECT_EQ (s.failures[1].phase, "ice");
  EXPECT_EQ (s.failures[1].count, 1u);

  s = summarize (v, run);
  EXPECT_EQ (s.failed, 2u);
  EXPECT_EQ (s.joinP50Ms, 200);
  EXPECT_EQ (s.joinP95Ms, 300);
  EXPECT_EQ (s.packets, 3000u);
  EXPECT_EQ (s.expected, 3003u);
  EXPECT_EQ (s.lost, 3u);
  EXPECT_NEAR (s.lossPercent, 100.0 * 3 / 3003, 1e-9);
  EXPECT_NEAR (s.latePercent, 0.1, 1e-9);
  EXPECT_EQ (s.authFailures, 3u);
  EXPECT_DOUBLE_EQ (s.bitrateMeanBps, 2e6);
  EXPECT_DOUBLE_EQ (s.bitrateMinBps, 1e6);
  EXPECT_EQ (s.sampledViewers, 1u);
  EXPECT_EQ (s.framesRead, 3u);
  EXPECT_EQ (s.framesDecoded, 4u);
  EXPECT_EQ (s.latencyP50Ms, 20);
  EXPECT_EQ (s.latencyP95Ms, 30);
  EXPECT_DOUBLE_EQ (s.viewerSeconds, 3);
  EXPECT_DOUBLE_EQ (s.cpuPerViewerSecondMs, 10);
  EXPECT_DOUBLE_EQ (s.networkCpuPerViewerSecondMs, 5);
  EXPECT_DOUBLE_EQ (s.serverCpuPerViewerSecondMs, 100);
  /* Steady window: the last half second of each viewer's second. */
  EXPECT_DOUBLE_EQ (s.steadyViewerSeconds, 1.5);
  EXPECT_DOUBLE_EQ (s.steadyCpuPerViewerSecondMs, 2);
  EXPECT_LT (s.steadyServerCpuPerViewerSecondMs, 0);  /* not measured */

  const std::string table = formatTable (s);
  for (const char *part : {"5 started", "3 connected", "2 failed", "whep 404", "2 x  WHEP POST answered 404",
           "p50 200 ms", "3 lost of 3003", "loss 0.100 %", "auth failures", "mean 2.00 Mbit/s",
           "p50 20.0 ms", "loadtest CPU", "server CPU", "pid 42"})
    EXPECT_NE (table.find (part), std::string::npos) << part << "\n" << table;
}

TEST (Summary, JsonCarriesTheFiguresAndNullForWhatWasNotMeasured)
{
  std::vector<ViewerResult> v (1);
  v[0].connected = true;
  v[0].joinMs = 50;
  v[0].packets = 10;
  v[0].expected = 10;
  v[0].mediaSeconds = 2;
  v[0].answerMs = 20;
  RunInfo run;
  run.url = "http://x/\"quoted\"";
  run.viewersRequested = 1;
  Summary s = summarize (v, run);
  const std::string text = formatJson (s, &v);
  JsonParser *parser = json_parser_new ();
  GError *err = nullptr;
  ASSERT_TRUE (json_parser_load_from_data (parser, text.c_str (), -1, &err)) << text;
  JsonObject *root = json_node_get_object (json_parser_get_root (parser));
  EXPECT_STREQ (json_object_get_string_member (root, "url"), "http://x/\"quoted\"");
  EXPECT_EQ (json_object_get_int_member (root, "connected"), 1);
  EXPECT_EQ (json_object_get_int_member (root, "packets"), 10);
  JsonObject *join = json_object_get_object_member (root, "joinMs");
  EXPECT_EQ (json_object_get_double_member (join, "p50"), 50);
  JsonObject *cpu = json_object_get_object_member (root, "cpu");
  EXPECT_TRUE (json_object_get_null_member (cpu, "loadtestMs"));
  EXPECT_FALSE (json_object_has_member (cpu, "serverPid"));
  JsonArray *viewers = json_object_get_array_member (root, "viewerResults");
  ASSERT_EQ (json_array_get_length (viewers), 1u);
  JsonObject *first = json_array_get_object_element (viewers, 0);
  EXPECT_EQ (json_object_get_double_member (first, "answerMs"), 20);
  EXPECT_TRUE (json_object_get_null_member (first, "iceMs"));
  g_object_unref (parser);

  EXPECT_EQ (formatJson (s, nullptr).find ("viewerResults"), std::string::npos);
}
