/* One load-test viewer: a WHEP session driven from the engine's thread.
 * It owns one UDP socket (the engine polls it), does full ICE as the
 * controlling agent (checks to the answer's candidates, regular
 * nomination with USE-CANDIDATE, consent every ~5 s), DTLS as the client,
 * SRTP unprotect and counting, and RTCP receiver reports (with a PLI at
 * the start) protected as SRTCP. No thread and no blocking call: the
 * engine feeds it datagrams, answers and timer ticks. */
#pragma once

#include "sdp.h"
#include "slow-link.h"
#include "stats.h"

#include "xdn-fanout-addr.h"
#include "xdn-fanout-dtls.h"
#include "xdn-fanout-hmac.h"
#include "xdn-fanout-srtp.h"

#include <array>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <vector>

namespace xdn::loadtest {

class LatencySampler;

/* Times are steady_clock microseconds (the DTLS session's clock). */
int64_t steadyUs (std::chrono::steady_clock::time_point t);
int64_t steadyNowUs ();

struct ViewerSettings {
  int64_t connectTimeoutUs = 15000000;  /* POST to first media */
  int64_t stallTimeoutUs = 5000000;     /* no media this long: stopped */
  int64_t lateThresholdUs = 100000;
  int64_t rtcpIntervalUs = 1000000;
  int64_t consentIntervalUs = 5000000;
  int64_t consentTimeoutUs = 30000000;
  /* Unsampled viewers authenticate and decrypt one SRTP packet in this
   * many, and count the others from their clear RTP header. */
  unsigned verifyEvery = 1;
};

enum class ViewerState {
  Idle,       /* not started */
  Offering,   /* WHEP POST in flight */
  Checking,   /* ICE checks */
  Dtls,       /* DTLS handshake */
  Connected,  /* SRTP keys; media counted once it arrives */
  Finished,   /* counting stopped (end of run) */
  Failed,
};

/* A viewer plays (WHEP); a publisher sends (WHIP) the shared test stream
 * the engine hands it packet by packet. Both do the same ICE, DTLS and
 * RTCP. */
enum class PeerRole { Play, Publish };

class Viewer {
public:
  Viewer (uint32_t index, const ViewerSettings &settings,
      std::shared_ptr<fanout::DtlsContext> dtlsContext, std::mt19937_64 &rng,
      PeerRole role = PeerRole::Play);
  ~Viewer ();
  Viewer (const Viewer &) = delete;
  Viewer &operator= (const Viewer &) = delete;

  uint32_t index () const { return index_; }
  bool publisher () const { return role_ == PeerRole::Publish; }
  /* Joined (media arrived) or failed: nothing left to wait for. */
  bool settled () const { return firstMediaUs_ != 0 || failed (); }
  /* When its first media packet arrived (0: not yet). */
  int64_t firstMediaUs () const { return firstMediaUs_; }
  ViewerState state () const { return state_; }
  bool failed () const { return state_ == ViewerState::Failed || result_.failPhase != FailPhase::None; }

  /* The socket is bound; returns the offer to POST. */
  std::string begin (int fd, const fanout::SockAddr &local, int64_t nowUs);
  int fd () const { return fd_; }
  /* Decode this viewer's video and read its latency stamps (the decoder
   * starts with the first video packet). */
  void setSampled (bool sampled) { sampled_ = sampled; }
  bool sampled () const { return sampled_; }
  /* Puts this viewer behind an emulated slow link (before begin): what
   * arrives passes a token bucket of @rateKbps and random loss of
   * @lossPercent (seeded by @seed) before anything else sees it, and the
   * viewer NACKs the holes in its video and asks for a keyframe (PLI, at
   * most one a second) when they are past repair. */
  void setSlow (double rateKbps, double lossPercent, uint64_t seed);
  bool slow () const { return slowLink_ != nullptr; }
  LatencySampler *sampler () const { return sampler_.get (); }

  /* The WHEP answer (201) arrived. */
  void onAnswer (const std::string &sdp, const std::string &location, int status, int64_t nowUs);
  /* The WHEP POST failed: an HTTP status other than 201 (with its body) or
   * a transport error. */
  void onRefused (int status, const std::string &body, const std::string &error, int64_t nowUs);
  const std::string &location () const { return location_; }
  /* Could not even start (no socket). */
  void failSetup (const std::string &reason, int64_t nowUs)
  {
    fail (FailPhase::Setup, "socket", reason, nowUs);
  }

  /* One datagram from @from. @arrivalUs: when the kernel received it
   * (any clock, used only for transit and jitter; 0: @nowUs), so that the
   * load test's own delays do not count as the server's. Returns true when
   * the timers may have changed (the engine asks nextWakeUs again). */
  bool onDatagram (uint8_t *data, size_t size, const fanout::SockAddr &from, int64_t nowUs,
      int64_t arrivalUs = 0);
  /* A timer is due (called at or after nextWakeUs). */
  void onTimer (int64_t nowUs);
  /* When onTimer is due next; INT64_MAX for never. */
  int64_t nextWakeUs () const;

  /* Publishers: sends one packet of the shared stream (@video or audio)
   * under this publisher's SSRC, sequence numbers and timestamp offset,
   * once DTLS is up. */
  void sendMedia (bool video, const uint8_t *packet, size_t size);
  /* Publishers: whether the server asked for a keyframe (PLI, FIR) since
   * the last call. */
  bool takeKeyframeRequest ()
  {
    const bool r = keyframeRequested_;
    keyframeRequested_ = false;
    return r;
  }

  /* End of the measured window: stop counting, send a last RTCP report
   * with BYE. */
  void finish (int64_t nowUs);
  /* Leaves without a word (no RTCP BYE, no DELETE: the engine closes the
   * socket), as a viewer whose network or tab went away; for testing how
   * a server times viewers out. */
  void vanish (int64_t nowUs);
  bool vanished () const { return result_.vanished; }

  ViewerResult result () const;

  /* Credentials and role, for tests. */
  const std::string &localUfrag () const { return localUfrag_; }
  const std::string &localPwd () const { return localPwd_; }

private:
  enum class TxnKind : uint8_t { Check, Nominate, Consent };
  struct Txn {
    std::array<uint8_t, 12> id {};
    uint8_t pair = 0;
    TxnKind kind = TxnKind::Check;
    bool used = false;
  };
  struct Pair {
    fanout::SockAddr remote;
    uint32_t priority = 0;
    bool succeeded = false;
  };
  struct PayloadInfo {
    int pt;
    bool video;
    uint32_t clockRate;
    std::string codec;
  };
  struct Source {
    RtpSourceStats stats;
    bool video = false;
    /* Last sender report from this SSRC: NTP middle 32 bits, arrival. */
    uint32_t lastSr = 0;
    int64_t lastSrUs = 0;
    /* Slow viewers' video: the holes to NACK. */
    NackTracker nack;
  };

  void fail (FailPhase phase, const std::string &kind, const std::string &reason, int64_t nowUs);
  void sendTo (const fanout::SockAddr &to, const uint8_t *data, size_t size);
  void sendCheck (size_t pair, TxnKind kind);
  void handleStun (const uint8_t *data, size_t size, const fanout::SockAddr &from, int64_t nowUs);
  void handleDtls (const uint8_t *data, size_t size, int64_t nowUs);
  bool accepted (fanout::SrtpStatus status);
  void handleSrtp (uint8_t *data, size_t size, int64_t nowUs, int64_t arrivalUs);
  void handleSrtcp (uint8_t *data, size_t size, int64_t nowUs);
  void dtlsStateChanged (int64_t nowUs);
  void sendRtcp (int64_t nowUs, bool bye);
  /* Slow viewers: NACKs for the holes not asked for yet, and the PLI
   * that is wanted, as far as their rate limits allow now. */
  void sendRepairRequests (int64_t nowUs);
  void wantRepair (int64_t nowUs, bool pli);
  Source *sourceFor (uint32_t ssrc, int pt, bool *isNew);
  const PayloadInfo *payload (int pt) const;
  uint32_t videoSsrc () const;

  void readReportBlocks (const uint8_t *blocks, size_t count);

  uint32_t index_;
  PeerRole role_;
  ViewerSettings settings_;
  std::shared_ptr<fanout::DtlsContext> dtlsContext_;
  std::mt19937_64 &rng_;
  ViewerState state_ = ViewerState::Idle;
  ViewerResult result_;

  int fd_ = -1;
  fanout::SockAddr local_;
  std::string location_;
  int64_t postUs_ = 0;
  int64_t endUs_ = 0;

  /* ICE */
  std::string localUfrag_, localPwd_, remoteUfrag_, remotePwd_;
  fanout::HmacSha1 localKey_;   /* signs our answers, checks the server's requests */
  fanout::HmacSha1 remoteKey_;  /* signs our requests, checks the server's answers */
  uint64_t tieBreaker_ = 0;
  std::vector<Pair> pairs_;
  std::array<Txn, 8> txns_ {};
  size_t nextTxn_ = 0;
  int nominating_ = -1;
  int selected_ = -1;
  int64_t nextCheckUs_ = INT64_MAX;
  int64_t nextConsentUs_ = INT64_MAX;
  int64_t lastConsentOkUs_ = 0;
  std::string lastIceError_;
  std::string candidatesText_;  /* for error messages */

  /* DTLS and SRTP */
  std::optional<fanout::DtlsFingerprint> remoteFingerprint_;
  std::unique_ptr<fanout::DtlsSession> dtls_;
  fanout::SrtpContext srtpIn_;
  fanout::SrtpContext srtpOut_;
  bool srtpReady_ = false;

  /* Media */
  std::vector<PayloadInfo> payloads_;
  std::vector<uint32_t> answerVideoSsrcs_;
  std::vector<Source> sources_;
  uint32_t ssrc_ = 0;           /* ours, for RTCP */
  bool counting_ = true;
  int64_t firstMediaUs_ = 0;
  unsigned unverified_ = 0;  /* packets counted without authentication since the last check */
  int64_t lastMediaUs_ = 0;
  int64_t nextRtcpUs_ = INT64_MAX;
  bool pliSent_ = false;
  uint64_t earlyPackets_ = 0;   /* SRTP before our keys */
  /* Publishing */
  struct OutSource {
    uint32_t ssrc = 0;
    int pt = -1;
    uint16_t seq = 0;
    uint32_t tsOffset = 0;
    uint32_t lastTs = 0;
    uint32_t packets = 0;
    uint32_t octets = 0;
    /* From the server's latest report block about it. */
    int32_t cumulativeLost = 0;
    uint8_t fractionLost = 0;
  };
  OutSource videoOut_, audioOut_;
  bool keyframeRequested_ = false;

  /* --slow: the link, and when NACKs and PLIs may go next. */
  std::unique_ptr<SlowLink> slowLink_;
  int64_t lastNackUs_ = INT64_MIN / 2;
  int64_t nextNackUs_ = INT64_MAX;
  bool pliWanted_ = false;
  int64_t lastPliUs_ = INT64_MIN / 2;
  int64_t nextPliUs_ = INT64_MAX;
  bool timersChanged_ = false;  /* by a datagram: the engine asks nextWakeUs again */

  bool sampled_ = false;
  std::unique_ptr<LatencySampler> sampler_;
  std::string samplerError_;
};

}  // namespace xdn::loadtest
