/* What xdn-loadtest counts and how it adds it up: per RTP source
 * (sequence gaps, late packets, jitter, the receiver report block), per
 * viewer (a ViewerResult), and over the run (a Summary printed as a table
 * and written as JSON). Plain C++ over numbers: unit-tested without a
 * network. */
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace xdn::loadtest {

/* Nearest-rank percentile (p in 0..100) of @values; 0 when empty. Sorts a
 * copy. */
double percentile (std::vector<double> values, double p);

/* One RTP source as a viewer receives it. Sequence numbers are extended
 * as RFC 3550 A.1 does: a step forward of less than kMaxDropout is new
 * (wraps counted), a step back of less than kMaxMisorder is a late
 * arrival that fills a gap; anything else restarts the count (the sender
 * restarted its numbering), the packets expected so far kept. */
class RtpSourceStats {
public:
  static constexpr uint16_t kMaxDropout = 3000;
  static constexpr uint16_t kMaxMisorder = 100;

  RtpSourceStats () = default;
  RtpSourceStats (uint32_t ssrc, uint32_t clockRate, int64_t lateThresholdUs)
      : ssrc_ (ssrc), clockRate_ (clockRate ? clockRate : 90000),
        lateThresholdUs_ (lateThresholdUs) {}

  /* One authenticated packet. @arrivalUs: monotonic microseconds. Returns
   * true when the packet counts as late: its transit time (arrival minus
   * the media time of its RTP timestamp) exceeds the smallest transit
   * seen on this source by more than the threshold. */
  bool onPacket (uint16_t seq, uint32_t timestamp, int64_t arrivalUs, size_t bytes);
  /* A packet that was missing, sent again on our NACK (the caller knows
   * it was asked for): it fills its hole, and is neither late nor
   * reordered, nor part of transit and jitter (its send time is not its
   * media time). */
  void onRetransmission (size_t bytes);

  uint32_t ssrc () const { return ssrc_; }
  uint32_t clockRate () const { return clockRate_; }
  uint64_t received () const { return received_; }
  uint64_t bytes () const { return bytes_; }
  uint64_t expected () const;
  /* expected - received, never negative. */
  uint64_t lost () const;
  uint64_t late () const { return late_; }
  uint64_t reordered () const { return reordered_; }
  uint64_t duplicates () const { return duplicates_; }
  uint64_t restarts () const { return restarts_; }
  uint64_t retransmissions () const { return retransmissions_; }
  /* Highest sequence number with its wrap count (RR "extended highest"). */
  uint32_t extendedHighest () const { return static_cast<uint32_t> (maxExt_); }
  /* RFC 3550 interarrival jitter, in RTP timestamp units. */
  uint32_t jitter () const { return static_cast<uint32_t> (jitter_); }
  double jitterMs () const { return jitter_ * 1000.0 / clockRate_; }

  /* The loss figures of an RTCP report block since the previous call
   * (RFC 3550 6.4.1, A.3): fraction lost (8 bits) and cumulative lost
   * (24 bits, clamped). */
  void reportBlockLoss (uint8_t &fractionLost, int32_t &cumulativeLost);

private:
  uint32_t ssrc_ = 0;
  uint32_t clockRate_ = 90000;
  int64_t lateThresholdUs_ = 100000;

  bool started_ = false;
  uint16_t maxSeq_ = 0;
  uint64_t cycles_ = 0;
  uint64_t baseExt_ = 0;
  uint64_t maxExt_ = 0;
  uint64_t expectedBefore_ = 0;  /* packets expected before a restart */
  uint64_t received_ = 0;
  uint64_t bytes_ = 0;
  uint64_t late_ = 0;
  uint64_t reordered_ = 0;
  uint64_t duplicates_ = 0;
  uint64_t restarts_ = 0;
  uint64_t retransmissions_ = 0;

  /* Transit: arrival minus media time, in microseconds. */
  uint32_t lastTs_ = 0;
  int64_t extTs_ = 0;
  bool haveMinTransit_ = false;
  int64_t minTransitUs_ = 0;
  double jitter_ = 0;
  int64_t firstArrivalUs_ = 0;   /* arrival times are taken from here (no overflow) */
  int64_t lastTransitTicks_ = 0;

  uint64_t expectedPrior_ = 0;
  uint64_t receivedPrior_ = 0;
};

/* Why a viewer did not make it (or stopped). */
enum class FailPhase { None, Setup, Whep, Ice, Dtls, Media };
const char *failPhaseName (FailPhase p);

/* Everything the report needs from one viewer. */
struct ViewerResult {
  uint32_t index = 0;
  bool publisher = false;    /* a WHIP publisher (the figures below marked so) */
  bool connected = false;    /* media arrived (a publisher: DTLS done, sending) */
  bool vanished = false;     /* left on purpose without a word (--vanish) */
  bool slow = false;         /* behind an emulated slow link (--slow) */
  FailPhase failPhase = FailPhase::None;
  /* A short, stable description to group failures by ("404", "timeout",
   * "stopped"), and the full message of this viewer. */
  std::string failKind;
  std::string failReason;
  int httpStatus = 0;

  /* Milliseconds from the WHEP POST; < 0 when the step was not reached. */
  double answerMs = -1;
  double iceMs = -1;
  double dtlsMs = -1;
  double joinMs = -1;        /* first authenticated media packet */

  uint64_t packets = 0;      /* authenticated RTP packets */
  uint64_t bytes = 0;        /* their SRTP size */
  uint64_t expected = 0;
  uint64_t lost = 0;
  uint64_t late = 0;
  uint64_t authFailures = 0; /* SRTP/SRTCP packets that failed authentication */
  uint64_t replayed = 0;     /* packets received twice (SRTP replay check) */
  uint64_t rtcpReceived = 0;
  uint64_t rtcpSent = 0;
  double jitterMs = 0;       /* largest of its sources */
  double mediaSeconds = 0;   /* from first media to the end (or until it stopped) */
  /* The same span on the engine's clock (steady microseconds; 0: none),
   * for the steady-state window. */
  int64_t mediaFromUs = 0;
  int64_t mediaToUs = 0;

  /* publisher: sent, and what the server's receiver reports said */
  uint64_t packetsSent = 0;
  uint64_t bytesSent = 0;
  int64_t serverReportedLost = 0;   /* cumulative, summed over its sources */
  double serverFractionLostMax = 0; /* highest fraction lost in a report, 0..1 */
  uint64_t receiverReports = 0;
  uint64_t plisReceived = 0;        /* PLI and FIR */
  uint64_t nacksReceived = 0;

  /* slow viewers: what the link dropped, and how they asked for repair */
  uint64_t slowDroppedRate = 0;     /* datagrams over the token bucket */
  uint64_t slowDroppedLoss = 0;     /* random loss */
  uint64_t nacksSent = 0;           /* generic NACK messages */
  uint64_t packetsNacked = 0;       /* sequence numbers they asked for */
  uint64_t retransmissions = 0;     /* asked-for packets that arrived */
  uint64_t plisSent = 0;            /* PLIs for video past repair (the first one excluded) */

  bool sampled = false;
  uint64_t framesDecoded = 0;
  uint64_t framesUnreadable = 0;
  std::vector<double> latenciesMs;
  std::string sampleError;   /* why its pictures could not be decoded */
};

/* A datagram read later than this after the kernel received it counts as
 * lagged (the load test fell behind). */
constexpr double kLagThresholdMs = 20;

struct RunInfo {
  std::string url;
  std::string whipUrl;
  unsigned viewersRequested = 0;
  unsigned publishersRequested = 0;
  double rampPerSecond = 0;
  double durationS = 0;      /* hold time after the ramp */
  double elapsedS = 0;       /* measured window: first start to the end */
  bool interrupted = false;
  /* CPU over the measured window, milliseconds; < 0 when not measured. */
  double cpuMs = -1;         /* the whole load-test process */
  double networkCpuMs = -1;  /* its network threads only (no sampled decoding) */
  double serverCpuMs = -1;   /* --server-pid, read from /proc */
  int serverPid = 0;
  double rssMb = -1;
  std::string sourceError;   /* the publishers' stream could not start */         /* the load test's resident memory at the end */
  /* The server's CPU rate before the first viewer (ms per second), which
   * serverCpuMs and steadyServerCpuMs have already been reduced by; < 0
   * when not measured. */
  double serverIdleMsPerS = -1;
  /* How long datagrams waited in the kernel before the load test read
   * them: when it falls behind, late packets and latency are partly its
   * own. */
  uint64_t datagramsRead = 0;
  uint64_t datagramsLagged = 0;  /* read more than kLagThresholdMs after arrival */
  double readLagMaxMs = 0;
  /* Steady state: from the moment every viewer had joined (or failed) to
   * the end; no joins in it. < 0 when it never began. */
  double steadyS = -1;
  int64_t steadyFromUs = 0;
  int64_t steadyToUs = 0;
  double steadyCpuMs = -1;
  double steadyNetworkCpuMs = -1;
  double steadyServerCpuMs = -1;
};

struct FailureGroup {
  std::string role;          /* viewer, publisher */
  std::string phase;
  std::string kind;
  unsigned count = 0;
  std::string example;
};

struct Summary {
  RunInfo run;
  unsigned viewers = 0;      /* started */
  unsigned connected = 0;    /* received media */
  unsigned failed = 0;       /* never connected, or stopped receiving */
  unsigned vanished = 0;     /* left on purpose (--vanish), not failures */
  std::vector<FailureGroup> failures;  /* most frequent first */
  double joinP50Ms = 0, joinP95Ms = 0, joinMaxMs = 0;
  /* Delivery: normal viewers only (not --slow ones). */
  uint64_t packets = 0, bytes = 0, expected = 0, lost = 0, late = 0;
  uint64_t authFailures = 0, replayed = 0;
  double lossPercent = 0;
  double latePercent = 0;
  /* Received of expected, over them all and of the worst connected one
   * (100 when none). */
  double receivedPercent = 100;
  double worstReceivedPercent = 100;
  /* Viewers behind an emulated slow link (--slow), apart. */
  struct Slow {
    unsigned viewers = 0, connected = 0, failed = 0;
    uint64_t packets = 0, expected = 0, lost = 0;
    uint64_t droppedRate = 0, droppedLoss = 0;
    uint64_t nacksSent = 0, packetsNacked = 0, retransmissions = 0, plisSent = 0;
    double receivedPercent = 100, worstReceivedPercent = 100;
  } slow;
  /* Mean of each connected viewer's bytes / media seconds, bits per second;
   * and the lowest. */
  double bitrateMeanBps = 0, bitrateMinBps = 0;
  double viewerSeconds = 0;
  /* Sampled viewers' latency stamps. */
  unsigned sampledViewers = 0;
  uint64_t framesDecoded = 0, framesRead = 0, framesUnreadable = 0;
  double latencyP50Ms = 0, latencyP95Ms = 0, latencyMaxMs = 0;
  std::string sampleError;   /* the first sampled viewer's decoding error */
  /* CPU per viewer-second (milliseconds of CPU for each second one viewer
   * received media); < 0 when not measured. */
  double cpuPerViewerSecondMs = -1;
  double networkCpuPerViewerSecondMs = -1;
  double serverCpuPerViewerSecondMs = -1;
  /* The same over the steady-state window only. */
  double laggedPercent = 0;
  /* Publishers */
  unsigned publishers = 0, publishersConnected = 0, publishersFailed = 0;
  double publishJoinP50Ms = 0, publishJoinP95Ms = 0;
  uint64_t packetsSent = 0, bytesSent = 0;
  int64_t serverReportedLost = 0;
  double serverLossPercent = 0;      /* reported lost / sent */
  double serverFractionLostMax = 0;
  uint64_t plisReceived = 0, nacksReceived = 0;
  double sendBitrateMeanBps = 0;
  double steadyViewerSeconds = 0;
  double steadyCpuPerViewerSecondMs = -1;
  double steadyNetworkCpuPerViewerSecondMs = -1;
  double steadyServerCpuPerViewerSecondMs = -1;
};

Summary summarize (const std::vector<ViewerResult> &viewers, const RunInfo &run);

/* The report for a terminal: a few aligned lines. */
std::string formatTable (const Summary &s);
/* The summary and, when @viewers is given, one object per viewer. */
std::string formatJson (const Summary &s, const std::vector<ViewerResult> *viewers);

}  // namespace xdn::loadtest
