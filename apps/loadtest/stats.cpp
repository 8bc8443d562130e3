#include "stats.h"

#include "json.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <sstream>
#include <tuple>

namespace xdn::loadtest {

double
percentile (std::vector<double> values, double p)
{
  if (values.empty ())
    return 0;
  std::sort (values.begin (), values.end ());
  double rank = std::ceil (p / 100.0 * static_cast<double> (values.size ()));
  size_t i = rank < 1 ? 0 : static_cast<size_t> (rank) - 1;
  return values[std::min (i, values.size () - 1)];
}

/* ------------------------------------------------------ RtpSourceStats */

bool
RtpSourceStats::onPacket (uint16_t seq, uint32_t timestamp, int64_t arrivalUs, size_t bytes)
{
  if (!started_) {
    started_ = true;
    maxSeq_ = seq;
    cycles_ = 0;
    baseExt_ = maxExt_ = seq;
    lastTs_ = timestamp;
    extTs_ = 0;
  } else {
    const uint16_t delta = static_cast<uint16_t> (seq - maxSeq_);
    if (delta == 0) {
      duplicates_++;
      return false;
    }
    if (delta < kMaxDropout) {
      if (seq < maxSeq_)
        cycles_ += 65536;
      maxSeq_ = seq;
      maxExt_ = cycles_ + seq;
    } else if (delta >= 65536 - kMaxMisorder) {
      reordered_++;  /* late arrival: it fills a gap counted as lost so far */
    } else {
      /* A jump: the sender restarted its numbering. */
      restarts_++;
      expectedBefore_ += maxExt_ - baseExt_ + 1;
      maxSeq_ = seq;
      baseExt_ = maxExt_ = cycles_ + seq;
    }
    extTs_ += static_cast<int32_t> (timestamp - lastTs_);
    lastTs_ = timestamp;
  }
  received_++;
  bytes_ += bytes;

  /* Transit in microseconds relative to the first packet's media time. */
  const int64_t mediaUs = extTs_ * 1000000 / static_cast<int64_t> (clockRate_);
  const int64_t transitUs = arrivalUs - mediaUs;
  bool late = false;
  if (!haveMinTransit_ || transitUs < minTransitUs_) {
    haveMinTransit_ = true;
    minTransitUs_ = transitUs;
  } else if (transitUs - minTransitUs_ > lateThresholdUs_) {
    late = true;
    late_++;
  }

  /* RFC 3550 6.4.1 jitter, in timestamp units. */
  if (received_ == 1)
    firstArrivalUs_ = arrivalUs;
  const int64_t transitTicks = (arrivalUs - firstArrivalUs_) * static_cast<int64_t> (clockRate_) /
      1000000 - extTs_;
  if (received_ > 1) {
    int64_t d = transitTicks - lastTransitTicks_;
    if (d < 0)
      d = -d;
    jitter_ += (static_cast<double> (d) - jitter_) / 16.0;
  }
  lastTransitTicks_ = transitTicks;
  return late;
}

void
RtpSourceStats::onRetransmission (size_t bytes)
{
  if (!started_)
    return;
  received_++;
  bytes_ += bytes;
  retransmissions_++;
}

uint64_t
RtpSourceStats::expected () const
{
  if (!started_)
    return 0;
  return expectedBefore_ + (maxExt_ - baseExt_ + 1);
}

uint64_t
RtpSourceStats::lost () const
{
  const uint64_t e = expected ();
  return e > received_ ? e - received_ : 0;
}

void
RtpSourceStats::reportBlockLoss (uint8_t &fractionLost, int32_t &cumulativeLost)
{
  const uint64_t e = expected ();
  const uint64_t expectedInterval = e - std::min (e, expectedPrior_);
  const uint64_t receivedInterval = received_ - std::min (received_, receivedPrior_);
  expectedPrior_ = e;
  receivedPrior_ = received_;
  const int64_t lostInterval = static_cast<int64_t> (expectedInterval) -
      static_cast<int64_t> (receivedInterval);
  fractionLost = (expectedInterval == 0 || lostInterval <= 0)
      ? 0 : static_cast<uint8_t> (std::min<int64_t> (255,
            (lostInterval << 8) / static_cast<int64_t> (expectedInterval)));
  const int64_t cumulative = static_cast<int64_t> (e) - static_cast<int64_t> (received_);
  cumulativeLost = static_cast<int32_t> (std::clamp<int64_t> (cumulative, -0x800000, 0x7fffff));
}

/* ------------------------------------------------------------ summary */

const char *
failPhaseName (FailPhase p)
{
  switch (p) {
    case FailPhase::None: return "";
    case FailPhase::Setup: return "setup";
    case FailPhase::Whep: return "whep";
    case FailPhase::Ice: return "ice";
    case FailPhase::Dtls: return "dtls";
    case FailPhase::Media: return "media";
  }
  return "";
}

Summary
summarize (const std::vector<ViewerResult> &viewers, const RunInfo &run)
{
  Summary s;
  s.run = run;
  std::vector<double> joins, latencies, bitrates, publishJoins, sendBitrates;
  std::map<std::tuple<bool, std::string, std::string>, size_t> groupIndex;
  for (const auto &v : viewers) {
    if (v.failPhase != FailPhase::None) {
      const std::string phase = v.publisher && v.failPhase == FailPhase::Whep
          ? "whip" : failPhaseName (v.failPhase);
      auto key = std::make_tuple (v.publisher, phase, v.failKind);
      auto it = groupIndex.find (key);
      if (it == groupIndex.end ()) {
        groupIndex[key] = s.failures.size ();
        s.failures.push_back (FailureGroup{v.publisher ? "publisher" : "viewer",
            std::get<1> (key), std::get<2> (key), 1, v.failReason});
      } else {
        s.failures[it->second].count++;
      }
    }
    if (v.publisher) {
      s.publishers++;
      s.publishersConnected += v.connected;
      s.publishersFailed += v.failPhase != FailPhase::None;
      if (v.joinMs >= 0)
        publishJoins.push_back (v.joinMs);
      s.packetsSent += v.packetsSent;
      s.bytesSent += v.bytesSent;
      s.serverReportedLost += v.serverReportedLost;
      s.serverFractionLostMax = std::max (s.serverFractionLostMax, v.serverFractionLostMax);
      s.plisReceived += v.plisReceived;
      s.nacksReceived += v.nacksReceived;
      if (v.connected && v.mediaSeconds > 0)
        sendBitrates.push_back (static_cast<double> (v.bytesSent) * 8.0 / v.mediaSeconds);
      continue;
    }
    s.viewers++;
    if (v.connected)
      s.connected++;
    if (v.vanished)
      s.vanished++;
    if (v.failPhase != FailPhase::None)
      s.failed++;
    if (v.joinMs >= 0)
      joins.push_back (v.joinMs);
    s.authFailures += v.authFailures;
    s.viewerSeconds += v.mediaSeconds;
    if (run.steadyS > 0 && v.mediaFromUs) {
      const int64_t from = std::max (v.mediaFromUs, run.steadyFromUs);
      const int64_t to = std::min (v.mediaToUs, run.steadyToUs);
      if (to > from)
        s.steadyViewerSeconds += static_cast<double> (to - from) / 1e6;
    }
    /* Received of expected; a viewer that expected nothing has received
     * nothing either (counted apart as not connected). */
    const double received = v.expected
        ? 100.0 * static_cast<double> (std::min (v.packets, v.expected)) /
            static_cast<double> (v.expected)
        : 0;
    if (v.slow) {
      /* Delivery behind a slow link is its own figure: the link's loss
       * is not the server's. */
      s.slow.viewers++;
      s.slow.connected += v.connected;
      s.slow.failed += v.failPhase != FailPhase::None;
      s.slow.packets += v.packets;
      s.slow.expected += v.expected;
      s.slow.lost += v.lost;
      s.slow.droppedRate += v.slowDroppedRate;
      s.slow.droppedLoss += v.slowDroppedLoss;
      s.slow.nacksSent += v.nacksSent;
      s.slow.packetsNacked += v.packetsNacked;
      s.slow.retransmissions += v.retransmissions;
      s.slow.plisSent += v.plisSent;
      if (v.connected)
        s.slow.worstReceivedPercent = std::min (s.slow.worstReceivedPercent, received);
      continue;
    }
    if (v.connected)
      s.worstReceivedPercent = std::min (s.worstReceivedPercent, received);
    s.packets += v.packets;
    s.bytes += v.bytes;
    s.expected += v.expected;
    s.lost += v.lost;
    s.late += v.late;
    s.replayed += v.replayed;
    if (v.connected && v.mediaSeconds > 0)
      bitrates.push_back (static_cast<double> (v.bytes) * 8.0 / v.mediaSeconds);
    if (v.sampled) {
      s.sampledViewers++;
      s.framesDecoded += v.framesDecoded;
      s.framesRead += v.latenciesMs.size ();
      s.framesUnreadable += v.framesUnreadable;
      latencies.insert (latencies.end (), v.latenciesMs.begin (), v.latenciesMs.end ());
      if (s.sampleError.empty () && !v.sampleError.empty ())
        s.sampleError = v.sampleError;
    }
  }
  std::stable_sort (s.failures.begin (), s.failures.end (),
      [] (const FailureGroup &a, const FailureGroup &b) { return a.count > b.count; });
  s.joinP50Ms = percentile (joins, 50);
  s.joinP95Ms = percentile (joins, 95);
  s.joinMaxMs = percentile (joins, 100);
  if (s.expected > 0) {
    s.lossPercent = 100.0 * static_cast<double> (s.lost) / static_cast<double> (s.expected);
  }
  if (s.expected > 0)
    s.receivedPercent = 100.0 * static_cast<double> (std::min (s.packets, s.expected)) /
        static_cast<double> (s.expected);
  if (s.slow.expected > 0)
    s.slow.receivedPercent = 100.0 * static_cast<double> (std::min (s.slow.packets,
        s.slow.expected)) / static_cast<double> (s.slow.expected);
  if (s.packets > 0)
    s.latePercent = 100.0 * static_cast<double> (s.late) / static_cast<double> (s.packets);
  if (!bitrates.empty ()) {
    double sum = 0;
    for (double b : bitrates)
      sum += b;
    s.bitrateMeanBps = sum / static_cast<double> (bitrates.size ());
    s.bitrateMinBps = *std::min_element (bitrates.begin (), bitrates.end ());
  }
  s.publishJoinP50Ms = percentile (publishJoins, 50);
  s.publishJoinP95Ms = percentile (publishJoins, 95);
  if (s.packetsSent > 0)
    s.serverLossPercent = 100.0 * static_cast<double> (std::max<int64_t> (0, s.serverReportedLost)) /
        static_cast<double> (s.packetsSent);
  if (!sendBitrates.empty ()) {
    double sum = 0;
    for (double b : sendBitrates)
      sum += b;
    s.sendBitrateMeanBps = sum / static_cast<double> (sendBitrates.size ());
  }
  if (run.datagramsRead)
    s.laggedPercent = 100.0 * static_cast<double> (run.datagramsLagged) /
        static_cast<double> (run.datagramsRead);
  s.latencyP50Ms = percentile (latencies, 50);
  s.latencyP95Ms = percentile (latencies, 95);
  s.latencyMaxMs = percentile (latencies, 100);
  if (s.viewerSeconds > 0) {
    if (run.cpuMs >= 0)
      s.cpuPerViewerSecondMs = run.cpuMs / s.viewerSeconds;
    if (run.networkCpuMs >= 0)
      s.networkCpuPerViewerSecondMs = run.networkCpuMs / s.viewerSeconds;
    if (run.serverCpuMs >= 0)
      s.serverCpuPerViewerSecondMs = run.serverCpuMs / s.viewerSeconds;
  }
  if (s.steadyViewerSeconds > 0) {
    if (run.steadyCpuMs >= 0)
      s.steadyCpuPerViewerSecondMs = run.steadyCpuMs / s.steadyViewerSeconds;
    if (run.steadyNetworkCpuMs >= 0)
      s.steadyNetworkCpuPerViewerSecondMs = run.steadyNetworkCpuMs / s.steadyViewerSeconds;
    if (run.steadyServerCpuMs >= 0)
      s.steadyServerCpuPerViewerSecondMs = run.steadyServerCpuMs / s.steadyViewerSeconds;
  }
  return s;
}

static std::string
fmt (const char *format, double v)
{
  char buf[64];
  std::snprintf (buf, sizeof buf, format, v);
  return buf;
}

static std::string
bitrateText (double bps)
{
  if (bps >= 1e6)
    return fmt ("%.2f Mbit/s", bps / 1e6);
  return fmt ("%.0f kbit/s", bps / 1e3);
}

std::string
formatTable (const Summary &s)
{
  std::ostringstream o;
  auto row = [&] (const std::string &name, const std::string &value) {
    o << "  " << name << std::string (name.size () < 22 ? 22 - name.size () : 1, ' ') << value
      << "\n";
  };
  o << "xdn-loadtest: " << (s.run.url.empty () ? s.run.whipUrl : s.run.url)
    << (s.run.interrupted ? "  [interrupted]" : "") << "\n";
  if (s.publishers > 0) {
    row ("publishers", std::to_string (s.publishers) + " started to " + s.run.whipUrl + ", " +
        std::to_string (s.publishersConnected) + " connected, " +
        std::to_string (s.publishersFailed) + " failed");
    row ("  sent", std::to_string (s.packetsSent) + " packets, mean " +
        bitrateText (s.sendBitrateMeanBps) + " each" + fmt (", join p50 %.0f ms", s.publishJoinP50Ms) +
        " (POST to DTLS)");
    row ("  server reports", std::to_string (s.serverReportedLost) + " lost" +
        fmt (" (%.3f %% of sent)", s.serverLossPercent) +
        fmt (", worst fraction lost %.1f %%", 100 * s.serverFractionLostMax) + ", " +
        std::to_string (s.plisReceived) + " PLI/FIR, " + std::to_string (s.nacksReceived) + " NACK");
  }
  const bool viewers = s.viewers > 0 || s.publishers == 0;
  if (viewers)
    row ("viewers", std::to_string (s.viewers) + " started (" +
        std::to_string (s.run.viewersRequested) + " asked), " + std::to_string (s.connected) +
        " connected, " + std::to_string (s.failed) + " failed" +
        (s.vanished ? ", " + std::to_string (s.vanished) + " vanished on purpose" : ""));
  for (const auto &f : s.failures)
    row ("  " + std::string (f.role == "publisher" ? "publisher " : "") + f.phase + " " + f.kind,
        std::to_string (f.count) + " x  " + f.example);
  row ("window", fmt ("%.1f s", s.run.elapsedS) + fmt (" (ramp %.0f/s", s.run.rampPerSecond) +
      fmt (", hold %.0f s)", s.run.durationS) + fmt (", %.0f viewer-seconds", s.viewerSeconds));
  if (viewers) {
    if (s.connected > 0)
      row ("join time", fmt ("p50 %.0f ms", s.joinP50Ms) + fmt (", p95 %.0f ms", s.joinP95Ms) +
          fmt (", max %.0f ms", s.joinMaxMs) + " (POST to first media packet)");
    else
      row ("join time", "- (no viewer received media)");
    row ("packets", std::to_string (s.packets) + " received, " + std::to_string (s.lost) +
        " lost of " + std::to_string (s.expected) + fmt (" (loss %.3f %%)", s.lossPercent) +
        (s.slow.viewers ? ", slow viewers apart" : ""));
    row ("received", fmt ("%.3f %% of expected", s.receivedPercent) +
        fmt (", worst viewer %.3f %%", s.worstReceivedPercent));
    row ("late", std::to_string (s.late) + fmt (" (%.3f %%)", s.latePercent));
    row ("auth failures", std::to_string (s.authFailures) + " (replayed " +
        std::to_string (s.replayed) + ")");
    row ("bitrate per viewer", "mean " + bitrateText (s.bitrateMeanBps) + ", min " +
        bitrateText (s.bitrateMinBps));
  }
  if (s.slow.viewers > 0) {
    row ("slow viewers", std::to_string (s.slow.viewers) + " (" + std::to_string (s.slow.connected) +
        " connected, " + std::to_string (s.slow.failed) + " failed), link dropped " +
        std::to_string (s.slow.droppedRate) + " over the rate and " +
        std::to_string (s.slow.droppedLoss) + " at random");
    row ("  repair", std::to_string (s.slow.nacksSent) + " NACKs for " +
        std::to_string (s.slow.packetsNacked) + " packets, " +
        std::to_string (s.slow.retransmissions) + " retransmissions received, " +
        std::to_string (s.slow.plisSent) + " PLIs");
    row ("  received", std::to_string (s.slow.packets) + " of " + std::to_string (s.slow.expected) +
        fmt (" (%.2f %%)", s.slow.receivedPercent) +
        fmt (", worst slow viewer %.2f %%", s.slow.worstReceivedPercent));
  }
  if (s.sampledViewers > 0)
    row ("latency (sampled)", std::to_string (s.sampledViewers) + " viewers, " +
        std::to_string (s.framesRead) + " stamps read of " + std::to_string (s.framesDecoded) +
        " frames" + fmt (", p50 %.1f ms", s.latencyP50Ms) + fmt (", p95 %.1f ms", s.latencyP95Ms) +
        fmt (", max %.1f ms", s.latencyMaxMs) +
        (s.sampleError.empty () ? "" : "  [" + s.sampleError + "]"));
  /* CPU: ms of CPU per viewer-second, steady state first (no joins),
   * then over the whole window (joins included). */
  auto cpuText = [&] (double steady, double whole) {
    std::string t;
    if (steady >= 0)
      t += fmt ("%.3f ms per viewer-second steady", steady) + fmt (" (%.0f s)", s.run.steadyS) + ", ";
    t += fmt ("%.3f over the whole window", whole);
    return t;
  };
  if (s.cpuPerViewerSecondMs >= 0) {
    row ("loadtest CPU", cpuText (s.steadyCpuPerViewerSecondMs, s.cpuPerViewerSecondMs));
    if (s.networkCpuPerViewerSecondMs >= 0 && (s.sampledViewers > 0 || s.publishers > 0))
      row ("  network threads", cpuText (s.steadyNetworkCpuPerViewerSecondMs,
          s.networkCpuPerViewerSecondMs) + " (no decoding or encoding)");
  }
  if (s.run.rssMb >= 0)
    row ("loadtest memory", fmt ("RSS %.1f MB", s.run.rssMb));
  if (s.run.datagramsRead)
    row ("loadtest lag", fmt ("max %.1f ms", s.run.readLagMaxMs) + fmt (", %.3f %% of datagrams read ",
        s.laggedPercent) + fmt ("more than %.0f ms after they arrived", kLagThresholdMs) +
        (s.laggedPercent > 1 ? "  [the load test fell behind: add CPU or lower --viewers]" : ""));
  if (s.serverCpuPerViewerSecondMs >= 0)
    row ("server CPU", cpuText (s.steadyServerCpuPerViewerSecondMs, s.serverCpuPerViewerSecondMs) +
        " (pid " + std::to_string (s.run.serverPid) +
        (s.run.serverIdleMsPerS >= 0 ? fmt (", idle %.1f ms/s subtracted", s.run.serverIdleMsPerS) : "") +
        ")");
  return o.str ();
}

static void
add (JsonBuilder *b, const char *name, uint64_t v)
{
  json::member (b, name, static_cast<gint64> (v));
}

/* A figure that may not have been measured (< 0): null then. */
static void
measured (JsonBuilder *b, const char *name, double v)
{
  json_builder_set_member_name (b, name);
  if (v < 0)
    json_builder_add_null_value (b);
  else
    json_builder_add_double_value (b, v);
}

std::string
formatJson (const Summary &s, const std::vector<ViewerResult> *viewers)
{
  JsonBuilder *b = json_builder_new ();
  json_builder_begin_object (b);
  json::member (b, "url", s.run.url);
  json::member (b, "interrupted", s.run.interrupted);
  json::member (b, "viewersRequested", static_cast<gint64> (s.run.viewersRequested));
  json::member (b, "rampPerSecond", s.run.rampPerSecond);
  json::member (b, "durationS", s.run.durationS);
  json::member (b, "elapsedS", s.run.elapsedS);
  json::member (b, "viewers", static_cast<gint64> (s.viewers));
  json::member (b, "connected", static_cast<gint64> (s.connected));
  json::member (b, "failed", static_cast<gint64> (s.failed));
  json::member (b, "vanished", static_cast<gint64> (s.vanished));
  json_builder_set_member_name (b, "failures");
  json_builder_begin_array (b);
  for (const auto &f : s.failures) {
    json_builder_begin_object (b);
    json::member (b, "role", f.role);
    json::member (b, "phase", f.phase);
    json::member (b, "kind", f.kind);
    json::member (b, "count", static_cast<gint64> (f.count));
    json::member (b, "example", f.example);
    json_builder_end_object (b);
  }
  json_builder_end_array (b);
  if (s.publishers > 0) {
    json_builder_set_member_name (b, "publishers");
    json_builder_begin_object (b);
    json::member (b, "url", s.run.whipUrl);
    json::member (b, "started", static_cast<gint64> (s.publishers));
    json::member (b, "connected", static_cast<gint64> (s.publishersConnected));
    json::member (b, "failed", static_cast<gint64> (s.publishersFailed));
    json::member (b, "joinP50Ms", s.publishJoinP50Ms);
    json::member (b, "joinP95Ms", s.publishJoinP95Ms);
    add (b, "packetsSent", s.packetsSent);
    add (b, "bytesSent", s.bytesSent);
    json::member (b, "sendBitrateMeanBps", s.sendBitrateMeanBps);
    json::member (b, "serverReportedLost", static_cast<gint64> (s.serverReportedLost));
    json::member (b, "serverLossPercent", s.serverLossPercent);
    json::member (b, "serverFractionLostMax", s.serverFractionLostMax);
    add (b, "plisReceived", s.plisReceived);
    add (b, "nacksReceived", s.nacksReceived);
    json_builder_end_object (b);
  }
  json_builder_set_member_name (b, "joinMs");
  json_builder_begin_object (b);
  measured (b, "p50", s.connected ? s.joinP50Ms : -1);
  measured (b, "p95", s.connected ? s.joinP95Ms : -1);
  measured (b, "max", s.connected ? s.joinMaxMs : -1);
  json_builder_end_object (b);
  add (b, "packets", s.packets);
  add (b, "bytes", s.bytes);
  add (b, "expected", s.expected);
  add (b, "lost", s.lost);
  json::member (b, "lossPercent", s.lossPercent);
  add (b, "late", s.late);
  json::member (b, "latePercent", s.latePercent);
  json::member (b, "receivedPercent", s.receivedPercent);
  json::member (b, "worstReceivedPercent", s.worstReceivedPercent);
  add (b, "authFailures", s.authFailures);
  add (b, "replayed", s.replayed);
  json::member (b, "bitrateMeanBps", s.bitrateMeanBps);
  json::member (b, "bitrateMinBps", s.bitrateMinBps);
  json::member (b, "viewerSeconds", s.viewerSeconds);
  if (s.slow.viewers > 0) {
    json_builder_set_member_name (b, "slow");
    json_builder_begin_object (b);
    json::member (b, "viewers", static_cast<gint64> (s.slow.viewers));
    json::member (b, "connected", static_cast<gint64> (s.slow.connected));
    json::member (b, "failed", static_cast<gint64> (s.slow.failed));
    add (b, "packets", s.slow.packets);
    add (b, "expected", s.slow.expected);
    add (b, "lost", s.slow.lost);
    json::member (b, "receivedPercent", s.slow.receivedPercent);
    json::member (b, "worstReceivedPercent", s.slow.worstReceivedPercent);
    add (b, "droppedByRate", s.slow.droppedRate);
    add (b, "droppedByLoss", s.slow.droppedLoss);
    add (b, "nacksSent", s.slow.nacksSent);
    add (b, "packetsNacked", s.slow.packetsNacked);
    add (b, "retransmissions", s.slow.retransmissions);
    add (b, "plisSent", s.slow.plisSent);
    json_builder_end_object (b);
  }
  json_builder_set_member_name (b, "readLag");
  json_builder_begin_object (b);
  add (b, "datagrams", s.run.datagramsRead);
  add (b, "lagged", s.run.datagramsLagged);
  json::member (b, "laggedPercent", s.laggedPercent);
  json::member (b, "thresholdMs", kLagThresholdMs);
  json::member (b, "maxMs", s.run.readLagMaxMs);
  json_builder_end_object (b);
  json_builder_set_member_name (b, "latency");
  json_builder_begin_object (b);
  json::member (b, "sampledViewers", static_cast<gint64> (s.sampledViewers));
  add (b, "framesDecoded", s.framesDecoded);
  add (b, "framesRead", s.framesRead);
  add (b, "framesUnreadable", s.framesUnreadable);
  json::member (b, "p50Ms", s.latencyP50Ms);
  json::member (b, "p95Ms", s.latencyP95Ms);
  json::member (b, "maxMs", s.latencyMaxMs);
  if (!s.sampleError.empty ())
    json::member (b, "error", s.sampleError);
  json_builder_end_object (b);
  json_builder_set_member_name (b, "cpu");
  json_builder_begin_object (b);
  measured (b, "loadtestRssMb", s.run.rssMb);
  measured (b, "loadtestMs", s.run.cpuMs);
  measured (b, "loadtestNetworkMs", s.run.networkCpuMs);
  measured (b, "loadtestMsPerViewerSecond", s.cpuPerViewerSecondMs);
  measured (b, "loadtestNetworkMsPerViewerSecond", s.networkCpuPerViewerSecondMs);
  measured (b, "steadyS", s.run.steadyS);
  json::member (b, "steadyViewerSeconds", s.steadyViewerSeconds);
  measured (b, "loadtestSteadyMsPerViewerSecond", s.steadyCpuPerViewerSecondMs);
  measured (b, "loadtestNetworkSteadyMsPerViewerSecond", s.steadyNetworkCpuPerViewerSecondMs);
  if (s.run.serverPid) {
    json::member (b, "serverPid", static_cast<gint64> (s.run.serverPid));
    measured (b, "serverIdleMsPerSecond", s.run.serverIdleMsPerS);
    measured (b, "serverMs", s.run.serverCpuMs);
    measured (b, "serverMsPerViewerSecond", s.serverCpuPerViewerSecondMs);
    measured (b, "serverSteadyMsPerViewerSecond", s.steadyServerCpuPerViewerSecondMs);
  }
  json_builder_end_object (b);

  if (viewers) {
    json_builder_set_member_name (b, "viewerResults");
    json_builder_begin_array (b);
    for (const auto &v : *viewers) {
      json_builder_begin_object (b);
      json::member (b, "index", static_cast<gint64> (v.index));
      if (v.publisher) {
        json::member (b, "publisher", true);
        add (b, "packetsSent", v.packetsSent);
        add (b, "bytesSent", v.bytesSent);
        json::member (b, "serverReportedLost", static_cast<gint64> (v.serverReportedLost));
        add (b, "receiverReports", v.receiverReports);
        add (b, "plisReceived", v.plisReceived);
        add (b, "nacksReceived", v.nacksReceived);
      }
      json::member (b, "connected", v.connected);
      if (v.vanished)
        json::member (b, "vanished", true);
      if (v.slow) {
        json::member (b, "slow", true);
        add (b, "droppedByRate", v.slowDroppedRate);
        add (b, "droppedByLoss", v.slowDroppedLoss);
        add (b, "nacksSent", v.nacksSent);
        add (b, "packetsNacked", v.packetsNacked);
        add (b, "retransmissions", v.retransmissions);
        add (b, "plisSent", v.plisSent);
      }
      if (v.failPhase != FailPhase::None) {
        json::member (b, "failPhase", v.publisher && v.failPhase == FailPhase::Whep
            ? "whip" : failPhaseName (v.failPhase));
        json::member (b, "failKind", v.failKind);
        json::member (b, "failReason", v.failReason);
      }
      if (v.httpStatus)
        json::member (b, "httpStatus", static_cast<gint64> (v.httpStatus));
      measured (b, "answerMs", v.answerMs);
      measured (b, "iceMs", v.iceMs);
      measured (b, "dtlsMs", v.dtlsMs);
      measured (b, "joinMs", v.joinMs);
      add (b, "packets", v.packets);
      add (b, "bytes", v.bytes);
      add (b, "expected", v.expected);
      add (b, "lost", v.lost);
      add (b, "late", v.late);
      add (b, "authFailures", v.authFailures);
      add (b, "replayed", v.replayed);
      add (b, "rtcpReceived", v.rtcpReceived);
      add (b, "rtcpSent", v.rtcpSent);
      json::member (b, "jitterMs", v.jitterMs);
      json::member (b, "mediaSeconds", v.mediaSeconds);
      if (v.sampled) {
        json::member (b, "sampled", true);
        add (b, "framesDecoded", v.framesDecoded);
        add (b, "framesRead", v.latenciesMs.size ());
        add (b, "framesUnreadable", v.framesUnreadable);
        json::member (b, "latencyP50Ms", percentile (v.latenciesMs, 50));
        json::member (b, "latencyP95Ms", percentile (v.latenciesMs, 95));
        if (!v.sampleError.empty ())
          json::member (b, "sampleError", v.sampleError);
      }
      json_builder_end_object (b);
    }
    json_builder_end_array (b);
  }
  json_builder_end_object (b);
  std::string out = json::toString (b, true);
  g_object_unref (b);
  return out;
}

}  // namespace xdn::loadtest
