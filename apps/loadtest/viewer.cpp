#include "viewer.h"

#include "sampler.h"
#include "xdn-fanout-bytes.h"
#include "xdn-fanout-rtcp.h"
#include "xdn-fanout-stun.h"

#include <sys/socket.h>
#include <time.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>

namespace xdn::loadtest {

using namespace xdn::fanout;

namespace {

/* Check and nomination retransmissions; a lone host pair answers the
 * first. */
constexpr int64_t kCheckIntervalUs = 250000;
/* PRIORITY of our checks: a peer-reflexive candidate of component 1
 * (type preference 110, local preference 65535, RFC 8445 5.1.2.1). */
constexpr uint32_t kPrflxPriority = (110u << 24) | (65535u << 8) | (256u - 1u);
/* Candidates checked per viewer. */
constexpr size_t kMaxPairs = 8;
/* Slow viewers: at most one NACK message per this long, one PLI per
 * second. */
constexpr int64_t kNackIntervalUs = 20000;
constexpr int64_t kPliIntervalUs = 1000000;

constexpr char kIceChars[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

std::string
randomIceString (std::mt19937_64 &rng, size_t n)
{
  std::string s (n, 'a');
  for (auto &c : s)
    c = kIceChars[rng () % (sizeof kIceChars - 1)];
  return s;
}

std::string
seconds (int64_t us)
{
  char buf[32];
  std::snprintf (buf, sizeof buf, "%.1f s", static_cast<double> (us) / 1e6);
  return buf;
}

std::string
trimBody (const std::string &body)
{
  std::string out;
  for (char c : body.substr (0, 300))
    out += (c == '\r' || c == '\n') ? ' ' : c;
  while (!out.empty () && out.back () == ' ')
    out.pop_back ();
  if (body.size () > 300)
    out += "...";
  return out;
}

}  // namespace

int64_t
steadyUs (std::chrono::steady_clock::time_point t)
{
  return std::chrono::duration_cast<std::chrono::microseconds> (t.time_since_epoch ()).count ();
}

int64_t
steadyNowUs ()
{
  return steadyUs (std::chrono::steady_clock::now ());
}

Viewer::Viewer (uint32_t index, const ViewerSettings &settings,
    std::shared_ptr<DtlsContext> dtlsContext, std::mt19937_64 &rng, PeerRole role)
    : index_ (index), role_ (role), settings_ (settings), dtlsContext_ (std::move (dtlsContext)),
      rng_ (rng)
{
  result_.index = index;
  result_.publisher = role == PeerRole::Publish;
}

Viewer::~Viewer () = default;

void
Viewer::setSlow (double rateKbps, double lossPercent, uint64_t seed)
{
  slowLink_ = std::make_unique<SlowLink> (rateKbps, lossPercent, seed);
}

std::string
Viewer::begin (int fd, const SockAddr &local, int64_t nowUs)
{
  fd_ = fd;
  local_ = local;
  postUs_ = nowUs;
  state_ = ViewerState::Offering;
  localUfrag_ = randomIceString (rng_, 8);
  localPwd_ = randomIceString (rng_, 24);
  localKey_.setKey (reinterpret_cast<const uint8_t *> (localPwd_.data ()), localPwd_.size ());
  tieBreaker_ = rng_ ();
  ssrc_ = static_cast<uint32_t> (rng_ ()) | 1u;

  OfferParams p;
  p.iceUfrag = localUfrag_;
  p.icePwd = localPwd_;
  p.fingerprint = dtlsContext_->certificate ().fingerprint ().toString ();
  std::string address = local.toString ();
  address = address.substr (0, address.rfind (':'));
  if (!address.empty () && address.front () == '[')
    address = address.substr (1, address.size () - 2);
  if (address != "0.0.0.0" && address != "::") {
    p.candidateAddress = address;
    p.candidatePort = local.port ();
  }
  p.sessionId = rng_ () >> 2;
  p.nack = slow () && !publisher ();
  if (publisher ()) {
    videoOut_.ssrc = static_cast<uint32_t> (rng_ ());
    audioOut_.ssrc = static_cast<uint32_t> (rng_ ());
    videoOut_.seq = static_cast<uint16_t> (rng_ ());
    audioOut_.seq = static_cast<uint16_t> (rng_ ());
    videoOut_.tsOffset = static_cast<uint32_t> (rng_ ());
    audioOut_.tsOffset = static_cast<uint32_t> (rng_ ());
    p.publish = true;
    p.videoSsrc = videoOut_.ssrc;
    p.audioSsrc = audioOut_.ssrc;
    p.cname = "xdn-loadtest-publisher-" + std::to_string (index_);
  }
  return buildOffer (p);
}

void
Viewer::fail (FailPhase phase, const std::string &kind, const std::string &reason, int64_t nowUs)
{
  if (result_.failPhase != FailPhase::None)
    return;
  result_.failPhase = phase;
  result_.failKind = kind;
  result_.failReason = reason;
  if (state_ != ViewerState::Finished)
    state_ = ViewerState::Failed;
  if (endUs_ == 0)
    endUs_ = nowUs;
  if (sampler_)
    sampler_->stop ();
}

void
Viewer::onRefused (int status, const std::string &body, const std::string &error, int64_t nowUs)
{
  result_.httpStatus = status;
  if (state_ != ViewerState::Offering)
    return;
  const std::string what = publisher () ? "WHIP POST" : "WHEP POST";
  if (status == 0)
    fail (FailPhase::Whep, "error", what + " failed: " + error, nowUs);
  else
    fail (FailPhase::Whep, std::to_string (status),
        what + " answered " + std::to_string (status) + ": " + trimBody (body), nowUs);
}

void
Viewer::onAnswer (const std::string &sdp, const std::string &location, int status, int64_t nowUs)
{
  result_.httpStatus = status;
  location_ = location;
  if (state_ != ViewerState::Offering)
    return;
  result_.answerMs = static_cast<double> (nowUs - postUs_) / 1000.0;
  SdpAnswer answer;
  std::string error;
  if (!parseAnswer (sdp, answer, &error)) {
    fail (FailPhase::Whep, "bad answer", error, nowUs);
    return;
  }
  remoteFingerprint_ = DtlsFingerprint::parse (answer.fingerprint);
  if (!remoteFingerprint_) {
    fail (FailPhase::Dtls, "bad fingerprint",
        "the answer's a=fingerprint:" + answer.fingerprint + " cannot be read", nowUs);
    return;
  }
  remoteUfrag_ = answer.iceUfrag;
  remotePwd_ = answer.icePwd;
  remoteKey_.setKey (reinterpret_cast<const uint8_t *> (remotePwd_.data ()), remotePwd_.size ());

  std::vector<SdpCandidate> candidates = answer.candidates;
  std::stable_sort (candidates.begin (), candidates.end (),
      [] (const SdpCandidate &a, const SdpCandidate &b) { return a.priority > b.priority; });
  std::string skipped;
  for (const auto &c : candidates) {
    if (c.transport != "udp" || c.component != 1)
      continue;
    SockAddr a = SockAddr::parse (c.address, c.port);
    if (!a.valid () || a.family () != local_.family ()) {
      skipped += (skipped.empty () ? "" : ", ") + c.address + ":" + std::to_string (c.port);
      continue;
    }
    if (pairs_.size () < kMaxPairs) {
      pairs_.push_back (Pair{a, c.priority, false});
      candidatesText_ += (candidatesText_.empty () ? "" : ", ") + a.toString ();
    }
  }
  if (pairs_.empty ()) {
    fail (FailPhase::Ice, "no candidate", "no UDP candidate of the local address family in the "
        "answer" + (skipped.empty () ? std::string () : " (skipped: " + skipped + ")"), nowUs);
    return;
  }

  for (const auto &m : answer.media) {
    if (m.rejected ())
      continue;
    const bool video = m.kind == "video";
    for (int pt : m.payloadTypes) {
      auto it = m.codecs.find (pt);
      PayloadInfo info{pt, video, video ? 90000u : 48000u, ""};
      if (it != m.codecs.end ()) {
        if (it->second.clockRate)
          info.clockRate = it->second.clockRate;
        info.codec = it->second.name;
      }
      payloads_.push_back (info);
    }
    if (video)
      answerVideoSsrcs_.insert (answerVideoSsrcs_.end (), m.ssrcs.begin (), m.ssrcs.end ());
  }

  if (publisher ()) {
    for (const auto &p : payloads_) {
      if (p.video && p.codec == "H264" && videoOut_.pt < 0)
        videoOut_.pt = p.pt;
      if (!p.video && p.codec == "OPUS" && audioOut_.pt < 0)
        audioOut_.pt = p.pt;
    }
    if (videoOut_.pt < 0 && audioOut_.pt < 0) {
      fail (FailPhase::Whep, "bad answer", "the WHIP answer accepts neither H.264 nor Opus", nowUs);
      return;
    }
  }

  state_ = ViewerState::Checking;
  nextCheckUs_ = nowUs;
}

void
Viewer::sendTo (const SockAddr &to, const uint8_t *data, size_t size)
{
  if (fd_ < 0)
    return;
  /* A full socket buffer drops the datagram, as the network would. */
  (void) ::sendto (fd_, data, size, MSG_DONTWAIT, to.sa (), to.length);
}

void
Viewer::sendCheck (size_t pair, TxnKind kind)
{
  Txn &t = txns_[nextTxn_++ % txns_.size ()];
  t.used = true;
  t.pair = static_cast<uint8_t> (pair);
  t.kind = kind;
  for (auto &b : t.id)
    b = static_cast<uint8_t> (rng_ ());
  uint8_t buf[256];
  StunBuilder b (buf, sizeof buf, kStunMethodBinding, StunClass::Request, t.id);
  b.addString (stunattr::Username, remoteUfrag_ + ":" + localUfrag_);
  b.addU32 (stunattr::Priority, kPrflxPriority);
  b.addU64 (stunattr::IceControlling, tieBreaker_);
  if (kind == TxnKind::Nominate)
    b.addFlag (stunattr::UseCandidate);
  b.addIntegrity (remoteKey_);
  b.addFingerprint ();
  if (b.ok ())
    sendTo (pairs_[pair].remote, buf, b.size ());
}

bool
Viewer::onDatagram (uint8_t *data, size_t size, const SockAddr &from, int64_t nowUs,
    int64_t arrivalUs)
{
  if (size == 0 || state_ == ViewerState::Idle)
    return false;
  const uint8_t first = data[0];
  if (first >= 128 && first <= 191) {
    /* RTP or RTCP (RFC 7983, RFC 5761 4). Behind a slow link, what the
     * link drops is never seen. */
    if (slowLink_ && !slowLink_->admit (size, arrivalUs ? arrivalUs : nowUs))
      return false;
    if (size >= 8 && data[1] >= 192 && data[1] <= 223)
      handleSrtcp (data, size, nowUs);
    else
      handleSrtp (data, size, nowUs, arrivalUs ? arrivalUs : nowUs);
    const bool changed = timersChanged_;
    timersChanged_ = false;
    return changed || firstMediaUs_ == nowUs;
  }
  if (first <= 3) {
    handleStun (data, size, from, nowUs);
    return true;
  }
  if (first >= 20 && first <= 63) {
    handleDtls (data, size, nowUs);
    return true;
  }
  return false;
}

void
Viewer::handleStun (const uint8_t *data, size_t size, const SockAddr &from, int64_t nowUs)
{
  StunMessage msg;
  if (stunParse (data, size, msg) != StunParseError::None || msg.method != kStunMethodBinding ||
      !stunCheckFingerprint (msg))
    return;

  if (msg.cls == StunClass::Request) {
    /* The server's checks and keepalives: USERNAME "ours:theirs", signed
     * with our password. */
    std::string_view localPart, remotePart;
    if (!msg.username || !stunSplitUsername (*msg.username, localPart, remotePart) ||
        localPart != localUfrag_ || !stunCheckIntegrity (msg, localKey_))
      return;
    uint8_t buf[128];
    StunBuilder b (buf, sizeof buf, kStunMethodBinding, StunClass::SuccessResponse,
        msg.transactionId);
    b.addXorAddress (stunattr::XorMappedAddress, from);
    b.addIntegrity (localKey_);
    b.addFingerprint ();
    if (b.ok ())
      sendTo (from, buf, b.size ());
    return;
  }
  if (msg.cls != StunClass::SuccessResponse && msg.cls != StunClass::ErrorResponse)
    return;

  Txn *txn = nullptr;
  for (auto &t : txns_)
    if (t.used && t.id == msg.transactionId)
      txn = &t;
  if (!txn)
    return;
  const bool signedOk = msg.integrityOffset != 0 && stunCheckIntegrity (msg, remoteKey_);
  const size_t p = txn->pair;
  const TxnKind kind = txn->kind;
  if (msg.cls == StunClass::ErrorResponse) {
    txn->used = false;
    lastIceError_ = "check to " + pairs_[p].remote.toString () + " answered " +
        std::to_string (msg.errorCode.value_or (0)) + " " + std::string (msg.errorReason);
    return;
  }
  /* A success must be signed with the server's password and come from
   * the address the check went to (RFC 8445 7.2.5.2.1). */
  if (!signedOk || from != pairs_[p].remote)
    return;
  txn->used = false;

  switch (kind) {
    case TxnKind::Check:
      pairs_[p].succeeded = true;
      if (state_ == ViewerState::Checking && nominating_ < 0) {
        nominating_ = static_cast<int> (p);
        sendCheck (p, TxnKind::Nominate);
        nextCheckUs_ = nowUs + kCheckIntervalUs;
      }
      break;
    case TxnKind::Nominate:
      if (state_ != ViewerState::Checking)
        break;
      selected_ = static_cast<int> (p);
      result_.iceMs = static_cast<double> (nowUs - postUs_) / 1000.0;
      lastConsentOkUs_ = nowUs;
      nextConsentUs_ = nowUs + settings_.consentIntervalUs;
      nextCheckUs_ = INT64_MAX;
      state_ = ViewerState::Dtls;
      dtls_ = std::make_unique<DtlsSession> (dtlsContext_, DtlsRole::Client, *remoteFingerprint_,
          [this] (const uint8_t *d, size_t n) { sendTo (pairs_[selected_].remote, d, n); });
      dtls_->start ();
      dtlsStateChanged (nowUs);
      break;
    case TxnKind::Consent:
      lastConsentOkUs_ = nowUs;
      break;
  }
}

void
Viewer::handleDtls (const uint8_t *data, size_t size, int64_t nowUs)
{
  if (!dtls_)
    return;
  dtls_->feed (data, size);
  dtlsStateChanged (nowUs);
}

void
Viewer::dtlsStateChanged (int64_t nowUs)
{
  if (state_ != ViewerState::Dtls)
    return;
  switch (dtls_->state ()) {
    case DtlsState::Connected: {
      const auto &keys = dtls_->srtpKeys ();
      if (!keys || !keys->initInbound (srtpIn_) || !keys->initOutbound (srtpOut_)) {
        fail (FailPhase::Dtls, "keys", "dtls: cannot set up SRTP with the exported keys", nowUs);
        return;
      }
      srtpReady_ = true;
      result_.dtlsMs = static_cast<double> (nowUs - postUs_) / 1000.0;
      state_ = ViewerState::Connected;
      nextRtcpUs_ = nowUs;  /* a first report (and PLI) right away */
      if (publisher ()) {
        /* A publisher has joined once it can send. */
        firstMediaUs_ = lastMediaUs_ = nowUs;
        result_.connected = true;
        result_.joinMs = result_.dtlsMs;
      }
      break;
    }
    case DtlsState::Failed:
      fail (FailPhase::Dtls, "error", dtls_->error (), nowUs);
      break;
    case DtlsState::Closed:
      fail (FailPhase::Dtls, "closed", "dtls: the server closed the session during the handshake",
          nowUs);
      break;
    default:
      break;
  }
}

const Viewer::PayloadInfo *
Viewer::payload (int pt) const
{
  for (const auto &p : payloads_)
    if (p.pt == pt)
      return &p;
  return nullptr;
}

Viewer::Source *
Viewer::sourceFor (uint32_t ssrc, int pt, bool *isNew)
{
  *isNew = false;
  for (auto &s : sources_)
    if (s.stats.ssrc () == ssrc)
      return &s;
  if (sources_.size () >= 16)
    return nullptr;
  const PayloadInfo *info = payload (pt);
  Source s;
  s.video = info ? info->video : false;
  s.stats = RtpSourceStats (ssrc, info ? info->clockRate : 90000, settings_.lateThresholdUs);
  sources_.push_back (s);
  *isNew = true;
  return &sources_.back ();
}

uint32_t
Viewer::videoSsrc () const
{
  for (const auto &s : sources_)
    if (s.video)
      return s.stats.ssrc ();
  return answerVideoSsrcs_.empty () ? 0 : answerVideoSsrcs_.front ();
}

/* Whether an unprotected packet is usable; counts those that are not. */
bool
Viewer::accepted (SrtpStatus status)
{
  switch (status) {
    case SrtpStatus::Ok:
      return true;
    case SrtpStatus::AuthFail:
      result_.authFailures++;
      return false;
    case SrtpStatus::Replayed:
    case SrtpStatus::ReplayOld:
      result_.replayed++;
      return false;
    default:
      return false;
  }
}

void
Viewer::handleSrtp (uint8_t *data, size_t size, int64_t nowUs, int64_t arrivalUs)
{
  if (!counting_ || state_ == ViewerState::Failed || publisher ())
    return;
  if (!srtpReady_) {
    earlyPackets_++;
    return;
  }
  size_t plainSize = 0;
  /* Slow viewers authenticate every packet: the SRTP replay check is
   * what tells a second copy of a repaired packet from a new one. */
  if (size >= 12 + srtpIn_.rtpTrailer () && !sampled_ && !slowLink_ && firstMediaUs_ != 0 &&
      ++unverified_ < settings_.verifyEvery) {
    /* Counted from the clear header; the server's keys and the rollover
     * counter are checked on every K-th packet. */
    plainSize = size - srtpIn_.rtpTrailer ();
  } else {
    unverified_ = 0;
    if (!accepted (srtpIn_.unprotectRtp (data, size, plainSize)))
      return;
  }
  const int pt = data[1] & 0x7f;
  const uint16_t seq = rd16 (data + 2);
  const uint32_t ts = rd32 (data + 4);
  const uint32_t ssrc = rd32 (data + 8);
  bool isNew;
  Source *source = sourceFor (ssrc, pt, &isNew);
  if (!source)
    return;
  if (slowLink_ && source->video) {
    bool pastRepair = false;
    const NackTracker::Arrival arrival = source->nack.onPacket (seq, &pastRepair);
    if (arrival == NackTracker::Arrival::Retransmission) {
      /* Asked for and sent again: fills its hole, and is neither late
       * nor reordered. */
      source->stats.onRetransmission (size);
      result_.retransmissions++;
      lastMediaUs_ = nowUs;
      return;
    }
    const uint16_t behind = static_cast<uint16_t> (
        static_cast<uint16_t> (source->stats.extendedHighest ()) - seq);
    if (arrival == NackTracker::Arrival::Old && behind >= RtpSourceStats::kMaxMisorder) {
      /* A repair given up on that came after all, too far back for the
       * counting to take it as a late arrival (it would look like a new
       * numbering): not counted. */
      lastMediaUs_ = nowUs;
      return;
    }
    /* Asked for and not back in time: that frame is lost for good. */
    if (source->nack.expire (nowUs) > 0)
      pastRepair = true;
    if (pastRepair || source->nack.hasPending ())
      wantRepair (nowUs, pastRepair);
  }
  if (source->stats.onPacket (seq, ts, arrivalUs, size))
    result_.late++;
  lastMediaUs_ = nowUs;
  if (firstMediaUs_ == 0) {
    firstMediaUs_ = nowUs;
    result_.connected = true;
    result_.joinMs = static_cast<double> (nowUs - postUs_) / 1000.0;
    /* The server has our keys: OpenSSL's handshake state can go. */
    dtls_->releaseHandshakeState ();
  }
  if (source->video) {
    if (!pliSent_)
      nextRtcpUs_ = nowUs;  /* the PLI goes out with the next timer tick */
    if (sampled_) {
      if (!sampler_ && samplerError_.empty ()) {
        const PayloadInfo *info = payload (pt);
        const std::string codec = info && !info->codec.empty () ? info->codec : "H264";
        std::string why;
        if (!LatencySampler::available (codec, &why)) {
          samplerError_ = why;
        } else {
          sampler_ = std::make_unique<LatencySampler> (index_, codec, pt);
          if (!sampler_->start (&why)) {
            samplerError_ = why;
            sampler_.reset ();
          }
        }
      }
      if (sampler_)
        sampler_->push (data, plainSize);
    }
  }
}

void
Viewer::handleSrtcp (uint8_t *data, size_t size, int64_t nowUs)
{
  if (!srtpReady_ || !counting_)
    return;
  size_t plainSize = 0;
  if (!accepted (srtpIn_.unprotectRtcp (data, size, plainSize)))
    return;
  result_.rtcpReceived++;
  /* The server has our keys (a publisher hears nothing else from it). */
  if (dtls_ && !dtls_->released ())
    dtls_->releaseHandshakeState ();
  /* Walk the compound packet: sender reports (LSR / DLSR of our RR),
   * report blocks about what we publish, feedback. */
  size_t off = 0;
  while (off + 4 <= plainSize) {
    const size_t len = (static_cast<size_t> (rd16 (data + off + 2)) + 1) * 4;
    if (off + len > plainSize)
      break;
    const uint8_t type = data[off + 1];
    const uint8_t count = data[off] & 0x1f;
    if (type == 200 && len >= 28) {
      const uint32_t ssrc = rd32 (data + off + 4);
      for (auto &s : sources_)
        if (s.stats.ssrc () == ssrc) {
          s.lastSr = rd32 (data + off + 10);
          s.lastSrUs = nowUs;
        }
      if (publisher ())
        readReportBlocks (data + off + 28, std::min<size_t> (count, (len - 28) / 24));
    } else if (type == 201 && len >= 8 && publisher ()) {
      readReportBlocks (data + off + 8, std::min<size_t> (count, (len - 8) / 24));
    } else if (type == 205 && count == 1) {
      result_.nacksReceived++;
    } else if (type == 206 && (count == 1 || count == 4)) {
      result_.plisReceived++;
      keyframeRequested_ = true;
    }
    off += len;
  }
}

void
Viewer::readReportBlocks (const uint8_t *blocks, size_t count)
{
  bool any = false;
  for (size_t i = 0; i < count; i++) {
    const uint8_t *b = blocks + i * 24;
    const uint32_t ssrc = rd32 (b);
    OutSource *out = ssrc == videoOut_.ssrc ? &videoOut_ : ssrc == audioOut_.ssrc ? &audioOut_ : nullptr;
    if (!out)
      continue;
    any = true;
    out->fractionLost = b[4];
    int32_t lost = static_cast<int32_t> (rd32 (b + 4) & 0xffffff);
    if (lost & 0x800000)
      lost -= 0x1000000;
    out->cumulativeLost = lost;
    result_.serverFractionLostMax = std::max (result_.serverFractionLostMax, b[4] / 256.0);
  }
  if (any)
    result_.receiverReports++;
}

void
Viewer::sendMedia (bool video, const uint8_t *packet, size_t size)
{
  OutSource &out = video ? videoOut_ : audioOut_;
  if (!publisher () || state_ != ViewerState::Connected || !counting_ || out.pt < 0 || size < 12 ||
      size > 1500 || selected_ < 0)
    return;
  uint8_t buf[1500 + SrtpContext::kMaxTrailer];
  std::memcpy (buf, packet, size);
  buf[1] = static_cast<uint8_t> ((buf[1] & 0x80) | out.pt);
  wr16 (buf + 2, out.seq++);
  out.lastTs = rd32 (buf + 4) + out.tsOffset;
  wr32 (buf + 4, out.lastTs);
  wr32 (buf + 8, out.ssrc);
  size_t protectedSize = 0;
  if (srtpOut_.protectRtp (buf, size, sizeof buf, protectedSize) != SrtpStatus::Ok)
    return;
  sendTo (pairs_[selected_].remote, buf, protectedSize);
  out.packets++;
  out.octets += static_cast<uint32_t> (size - 12);
  result_.packetsSent++;
  result_.bytesSent += protectedSize;
}

void
Viewer::sendRtcp (int64_t nowUs, bool bye)
{
  if (!srtpReady_ || selected_ < 0)
    return;
  uint8_t buf[1024];
  size_t n = 0;
  if (publisher ()) {
    /* A sender report for the video we send (NTP time now, its RTP time
     * taken as the last packet's), then SDES and BYE under that SSRC. */
    ssrc_ = videoOut_.ssrc;
    timespec real{};
    clock_gettime (CLOCK_REALTIME, &real);
    const uint64_t ntpSeconds = static_cast<uint64_t> (real.tv_sec) + 2208988800u;
    const uint64_t ntpFraction = (static_cast<uint64_t> (real.tv_nsec) << 32) / 1000000000u;
    buf[0] = 0x80;
    buf[1] = 200;
    wr16 (buf + 2, 6);
    wr32 (buf + 4, videoOut_.ssrc);
    wr32 (buf + 8, static_cast<uint32_t> (ntpSeconds));
    wr32 (buf + 12, static_cast<uint32_t> (ntpFraction));
    wr32 (buf + 16, videoOut_.lastTs);
    wr32 (buf + 20, videoOut_.packets);
    wr32 (buf + 24, videoOut_.octets);
    n = 28;
  }
  /* RR with a block per source */
  const size_t blocks = publisher () ? 0 : std::min<size_t> (sources_.size (), 31);
  if (!publisher ()) {
    buf[0] = static_cast<uint8_t> (0x80 | blocks);
    buf[1] = 201;
    wr16 (buf + 2, static_cast<uint16_t> (1 + 6 * blocks));
    wr32 (buf + 4, ssrc_);
    n = 8;
  }
  for (size_t i = 0; i < blocks; i++) {
    Source &s = sources_[i];
    uint8_t fraction;
    int32_t cumulative;
    s.stats.reportBlockLoss (fraction, cumulative);
    wr32 (buf + n, s.stats.ssrc ());
    wr32 (buf + n + 4, static_cast<uint32_t> (fraction) << 24 |
        (static_cast<uint32_t> (cumulative) & 0xffffff));
    wr32 (buf + n + 8, s.stats.extendedHighest ());
    wr32 (buf + n + 12, s.stats.jitter ());
    wr32 (buf + n + 16, s.lastSr);
    const uint32_t dlsr = s.lastSrUs ? static_cast<uint32_t> ((nowUs - s.lastSrUs) * 65536 / 1000000)
                                     : 0;
    wr32 (buf + n + 20, dlsr);
    n += 24;
  }
  /* SDES with our CNAME */
  char cname[32];
  const int cnameLen = std::snprintf (cname, sizeof cname, "xdn-loadtest-%u", index_);
  const size_t sdesStart = n;
  buf[n] = 0x81;
  buf[n + 1] = 202;
  wr32 (buf + n + 4, ssrc_);
  n += 8;
  buf[n++] = 1;
  buf[n++] = static_cast<uint8_t> (cnameLen);
  std::memcpy (buf + n, cname, static_cast<size_t> (cnameLen));
  n += static_cast<size_t> (cnameLen);
  buf[n++] = 0;
  while ((n - sdesStart) % 4)
    buf[n++] = 0;
  wr16 (buf + sdesStart + 2, static_cast<uint16_t> ((n - sdesStart) / 4 - 1));
  /* PLI: once at the start, and every report until a sampled viewer has
   * decoded a picture */
  const uint32_t video = publisher () ? 0 : videoSsrc ();
  const bool wantPli = video && !bye &&
      (!pliSent_ || (sampler_ && sampler_->framesDecoded () == 0));
  if (wantPli) {
    n += rtcpWritePli (buf + n, sizeof buf - n, ssrc_, video);
    pliSent_ = true;
    lastPliUs_ = nowUs;
  }
  if (bye) {
    buf[n] = 0x81;
    buf[n + 1] = 203;
    wr16 (buf + n + 2, 1);
    wr32 (buf + n + 4, ssrc_);
    n += 8;
  }
  size_t out = 0;
  if (srtpOut_.protectRtcp (buf, n, sizeof buf, out) == SrtpStatus::Ok) {
    sendTo (pairs_[selected_].remote, buf, out);
    result_.rtcpSent++;
  }
}

void
Viewer::wantRepair (int64_t nowUs, bool pli)
{
  pliWanted_ |= pli;
  sendRepairRequests (nowUs);
  timersChanged_ = true;
}

void
Viewer::sendRepairRequests (int64_t nowUs)
{
  if (!srtpReady_ || selected_ < 0 || !counting_) {
    nextNackUs_ = nextPliUs_ = INT64_MAX;
    return;
  }
  uint8_t buf[1400 + SrtpContext::kMaxTrailer];
  size_t n = 0;
  uint64_t asked = 0;
  bool pending = false;
  /* One message with a NACK per video source, when the last is 20 ms
   * old. */
  if (nowUs - lastNackUs_ >= kNackIntervalUs) {
    for (auto &s : sources_) {
      if (!s.video || !s.nack.hasPending ())
        continue;
      /* Leaves room for a PLI; what does not fit waits for the next. */
      if (n + 12 + 4 * s.nack.pending () + 12 > 1400) {
        pending = true;
        continue;
      }
      const std::vector<uint16_t> seqs = s.nack.takePending (nowUs);
      const size_t len = rtcpWriteNack (buf + n, 1400 - n, ssrc_, s.stats.ssrc (), seqs.data (),
          static_cast<unsigned> (seqs.size ()));
      if (len == 0)
        continue;
      n += len;
      asked += seqs.size ();
    }
  } else {
    for (const auto &s : sources_)
      pending |= s.video && s.nack.hasPending ();
  }
  const uint32_t video = videoSsrc ();
  bool pli = false;
  if (pliWanted_ && video && nowUs - lastPliUs_ >= kPliIntervalUs) {
    n += rtcpWritePli (buf + n, sizeof buf - n, ssrc_, video);
    pli = true;
  }
  if (n > 0) {
    /* A reduced-size compound (rtcp-rsize, offered): feedback alone. */
    size_t out = 0;
    if (srtpOut_.protectRtcp (buf, n, sizeof buf, out) == SrtpStatus::Ok) {
      sendTo (pairs_[selected_].remote, buf, out);
      result_.rtcpSent++;
      if (asked) {
        result_.nacksSent++;
        result_.packetsNacked += asked;
        lastNackUs_ = nowUs;
      }
      if (pli) {
        result_.plisSent++;
        lastPliUs_ = nowUs;
        pliWanted_ = false;
      }
    }
  }
  nextNackUs_ = pending ? std::max (nowUs, lastNackUs_ + kNackIntervalUs) : INT64_MAX;
  nextPliUs_ = pliWanted_ ? std::max (nowUs, lastPliUs_ + kPliIntervalUs) : INT64_MAX;
}

void
Viewer::onTimer (int64_t nowUs)
{
  if (state_ == ViewerState::Idle || state_ == ViewerState::Finished ||
      state_ == ViewerState::Failed)
    return;
  const int64_t deadline = postUs_ + settings_.connectTimeoutUs;
  if (firstMediaUs_ == 0 && nowUs >= deadline) {
    const std::string limit = seconds (settings_.connectTimeoutUs);
    switch (state_) {
      case ViewerState::Offering:
        fail (FailPhase::Whep, "timeout", "no WHEP answer within " + limit, nowUs);
        break;
      case ViewerState::Checking:
        fail (FailPhase::Ice, "timeout", "ice: no answer to connectivity checks to " +
            candidatesText_ + " within " + limit + " of the POST" +
            (lastIceError_.empty () ? "" : " (last: " + lastIceError_ + ")"), nowUs);
        break;
      case ViewerState::Dtls:
        fail (FailPhase::Dtls, "timeout", "dtls: handshake not complete " + limit +
            " after the POST (ICE done at " + std::to_string (static_cast<int> (result_.iceMs)) +
            " ms)", nowUs);
        break;
      default:
        fail (FailPhase::Media, "timeout", "media: no SRTP packet within " + limit +
            " of the POST (DTLS done at " + std::to_string (static_cast<int> (result_.dtlsMs)) +
            " ms" + (earlyPackets_ ? ", " + std::to_string (earlyPackets_) +
                " packets before the keys" : "") + ")", nowUs);
        break;
    }
    return;
  }

  if (state_ == ViewerState::Checking && nowUs >= nextCheckUs_) {
    if (nominating_ >= 0) {
      sendCheck (static_cast<size_t> (nominating_), TxnKind::Nominate);
    } else {
      for (size_t i = 0; i < pairs_.size (); i++)
        sendCheck (i, TxnKind::Check);
    }
    nextCheckUs_ = nowUs + kCheckIntervalUs;
  }
  if (state_ == ViewerState::Dtls && dtls_) {
    auto due = dtls_->nextTimeout ();
    if (due && steadyUs (*due) <= nowUs) {
      dtls_->onTimeout ();
      dtlsStateChanged (nowUs);
    }
  }
  if (selected_ >= 0 && (state_ == ViewerState::Dtls || state_ == ViewerState::Connected)) {
    if (nowUs - lastConsentOkUs_ > settings_.consentTimeoutUs) {
      fail (FailPhase::Media, "consent", "ice: consent lost (no answer to consent checks for " +
          seconds (nowUs - lastConsentOkUs_) + ")", nowUs);
      return;
    }
    if (nowUs >= nextConsentUs_) {
      sendCheck (static_cast<size_t> (selected_), TxnKind::Consent);
      /* 4 to 6 s apart (RFC 7675 5.1), so that viewers do not beat together */
      const int64_t spread = settings_.consentIntervalUs / 5;
      nextConsentUs_ = nowUs + settings_.consentIntervalUs - spread +
          static_cast<int64_t> (rng_ () % static_cast<uint64_t> (2 * spread + 1));
    }
  }
  if (state_ == ViewerState::Connected) {
    if (!publisher () && firstMediaUs_ && nowUs - lastMediaUs_ > settings_.stallTimeoutUs) {
      uint64_t received = 0;
      for (const auto &s : sources_)
        received += s.stats.received ();
      fail (FailPhase::Media, "stopped", "media: nothing for " + seconds (nowUs - lastMediaUs_) +
          " after " + std::to_string (received) + " packets", nowUs);
      endUs_ = lastMediaUs_;
      return;
    }
    if (nowUs >= nextRtcpUs_) {
      sendRtcp (nowUs, false);
      nextRtcpUs_ = nowUs + settings_.rtcpIntervalUs;
    }
    if (nowUs >= nextNackUs_ || nowUs >= nextPliUs_)
      sendRepairRequests (nowUs);
  }
}

int64_t
Viewer::nextWakeUs () const
{
  if (state_ == ViewerState::Idle || state_ == ViewerState::Finished ||
      state_ == ViewerState::Failed)
    return INT64_MAX;
  int64_t t = INT64_MAX;
  if (firstMediaUs_ == 0)
    t = postUs_ + settings_.connectTimeoutUs;
  if (state_ == ViewerState::Checking)
    t = std::min (t, nextCheckUs_);
  if (state_ == ViewerState::Dtls && dtls_) {
    if (auto due = dtls_->nextTimeout ())
      t = std::min (t, steadyUs (*due));
  }
  if (selected_ >= 0)
    t = std::min (t, nextConsentUs_);
  if (state_ == ViewerState::Connected)
    t = std::min ({t, nextRtcpUs_, nextNackUs_, nextPliUs_});
  return t;
}

void
Viewer::finish (int64_t nowUs)
{
  if (state_ == ViewerState::Connected)
    sendRtcp (nowUs, true);
  counting_ = false;
  if (endUs_ == 0)
    endUs_ = nowUs;
  if (state_ != ViewerState::Failed)
    state_ = ViewerState::Finished;
  if (sampler_)
    sampler_->stop ();
}

void
Viewer::vanish (int64_t nowUs)
{
  if (state_ == ViewerState::Failed || state_ == ViewerState::Finished)
    return;
  result_.vanished = true;
  counting_ = false;
  endUs_ = nowUs;
  state_ = ViewerState::Finished;
  if (sampler_)
    sampler_->stop ();
}

ViewerResult
Viewer::result () const
{
  ViewerResult r = result_;
  double jitter = 0;
  for (const auto &s : sources_) {
    r.packets += s.stats.received ();
    r.bytes += s.stats.bytes ();
    r.expected += s.stats.expected ();
    r.lost += s.stats.lost ();
    jitter = std::max (jitter, s.stats.jitterMs ());
  }
  r.jitterMs = jitter;
  if (slowLink_) {
    r.slow = true;
    r.slowDroppedRate = slowLink_->droppedByRate ();
    r.slowDroppedLoss = slowLink_->droppedByLoss ();
  }
  if (firstMediaUs_) {
    int64_t end = endUs_ ? endUs_ : lastMediaUs_;
    if (result_.failKind == "stopped")
      end = lastMediaUs_;
    r.mediaSeconds = static_cast<double> (std::max<int64_t> (0, end - firstMediaUs_)) / 1e6;
    r.mediaFromUs = firstMediaUs_;
    r.mediaToUs = std::max (end, firstMediaUs_);
  }
  if (publisher ()) {
    /* A report may count duplicates as negative loss: none is 0 here. */
    r.serverReportedLost = std::max (0, videoOut_.cumulativeLost) +
        std::max (0, audioOut_.cumulativeLost);
    if (firstMediaUs_)
      r.mediaSeconds = static_cast<double> (std::max<int64_t> (0,
          (endUs_ ? endUs_ : steadyNowUs ()) - firstMediaUs_)) / 1e6;
  }
  r.sampled = sampled_;
  r.sampleError = samplerError_;
  if (sampler_ && r.sampleError.empty ())
    r.sampleError = sampler_->lastError ();
  if (sampler_) {
    r.framesDecoded = sampler_->framesDecoded ();
    r.framesUnreadable = sampler_->framesUnreadable ();
    r.latenciesMs = sampler_->latencies ();
  }
  return r;
}

}  // namespace xdn::loadtest
