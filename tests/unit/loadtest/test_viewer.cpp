/* One viewer against an ICE-lite server made of the fan-out's parts (the
 * kind of server the edge's fan-out element will be), over loopback UDP:
 * ICE with nomination, DTLS, SRTP counting, RTCP, and the failures a
 * viewer reports. */
#include "viewer.h"

#include "xdn-fanout-ice-lite.h"

#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <random>

#include <gtest/gtest.h>

using namespace xdn::fanout;
using namespace xdn::loadtest;

namespace {

int
udpSocket (SockAddr &bound)
{
  int fd = socket (AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  SockAddr any = SockAddr::parse ("127.0.0.1", 0);
  EXPECT_EQ (bind (fd, any.sa (), any.length), 0);
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  getsockname (fd, reinterpret_cast<sockaddr *> (&ss), &len);
  bound = SockAddr::fromSockaddr (reinterpret_cast<sockaddr *> (&ss), len);
  return fd;
}

/* Reads one datagram; false when none is waiting. */
bool
receive (int fd, std::vector<uint8_t> &data, SockAddr &from)
{
  data.resize (2048);
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  ssize_t n = recvfrom (fd, data.data (), data.size (), 0, reinterpret_cast<sockaddr *> (&ss), &len);
  if (n < 0)
    return false;
  data.resize (static_cast<size_t> (n));
  from = SockAddr::fromSockaddr (reinterpret_cast<sockaddr *> (&ss), len);
  return true;
}

void
wr16 (uint8_t *p, uint16_t v)
{
  p[0] = static_cast<uint8_t> (v >> 8);
  p[1] = static_cast<uint8_t> (v);
}

void
wr32 (uint8_t *p, uint32_t v)
{
  p[0] = static_cast<uint8_t> (v >> 24);
  p[1] = static_cast<uint8_t> (v >> 16);
  p[2] = static_cast<uint8_t> (v >> 8);
  p[3] = static_cast<uint8_t> (v);
}

/* An ICE-lite, DTLS-server, SRTP-sending peer on a loopback socket. */
struct FakeServer {
  SockAddr address;
  int fd = -1;
  std::shared_ptr<DtlsContext> dtlsContext;
  IceLiteCredentials credentials{"srvufrag", "serverpasswordserverpass"};
  std::string viewerFingerprint;
  bool answerIce = true;
  std::unique_ptr<DtlsSession> dtls;
  SockAddr peer;
  bool useCandidateSeen = false;
  unsigned checks = 0;
  SrtpContext out, in;
  bool keyed = false;
  unsigned rtcpPackets = 0, receiverReports = 0, plis = 0, byes = 0;
  uint32_t pliMediaSsrc = 0;

  explicit FakeServer (std::shared_ptr<DtlsContext> ctx) : dtlsContext (std::move (ctx))
  {
    fd = udpSocket (address);
  }
  ~FakeServer () { close (fd); }

  std::string answer (const std::string &fingerprint) const
  {
    return "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=ice-lite\r\n"
           "a=group:BUNDLE 0 1\r\n"
           "m=video 9 UDP/TLS/RTP/SAVPF 96\r\nc=IN IP4 0.0.0.0\r\n"
           "a=ice-ufrag:" + credentials.ufrag + "\r\na=ice-pwd:" + credentials.pwd + "\r\n"
           "a=fingerprint:" + fingerprint + "\r\na=setup:passive\r\na=mid:0\r\na=sendonly\r\n"
           "a=rtcp-mux\r\na=rtpmap:96 H264/90000\r\na=ssrc:1111 cname:x\r\n"
           "a=candidate:1 1 udp 2130706431 127.0.0.1 " + std::to_string (address.port ()) +
           " typ host\r\n"
           "m=audio 9 UDP/TLS/RTP/SAVPF 111\r\nc=IN IP4 0.0.0.0\r\na=mid:1\r\na=sendonly\r\n"
           "a=rtcp-mux\r\na=rtpmap:111 opus/48000/2\r\na=ssrc:2222 cname:x\r\n";
  }

  void poll ()
  {
    std::vector<uint8_t> d;
    SockAddr from;
    while (receive (fd, d, from)) {
      if (d.empty ())
        continue;
      if (d[0] <= 3) {
        checks++;
        if (!answerIce)
          continue;
        uint8_t reply[512];
        BindingResult r = iceLiteHandleRequest (d.data (), d.size (), from,
            [this] (std::string_view u) { return u == credentials.ufrag ? &credentials : nullptr; },
            reply, sizeof reply);
        if (r.authenticated && r.useCandidate) {
          useCandidateSeen = true;
          peer = from;
        }
        if (r.action == BindingAction::Reply)
          sendto (fd, reply, r.replySize, 0, from.sa (), from.length);
      } else if (d[0] >= 20 && d[0] <= 63) {
        if (!dtls) {
          dtls = std::make_unique<DtlsSession> (dtlsContext, DtlsRole::Server,
              *DtlsFingerprint::parse (viewerFingerprint), [this, from] (const uint8_t *p, size_t n) {
                sendto (fd, p, n, 0, from.sa (), from.length);
              });
        }
        dtls->feed (d.data (), d.size ());
        if (dtls->state () == DtlsState::Connected && !keyed) {
          keyed = dtls->srtpKeys ()->initOutbound (out) && dtls->srtpKeys ()->initInbound (in);
        }
      } else if (d[0] >= 128 && d[0] <= 191 && keyed) {
        size_t plain = 0;
        if (in.unprotectRtcp (d.data (), d.size (), plain) != SrtpStatus::Ok)
          continue;
        rtcpPackets++;
        for (size_t off = 0; off + 4 <= plain;) {
          const size_t len = ((size_t (d[off + 2]) << 8 | d[off + 3]) + 1) * 4;
          if (d[off + 1] == 201)
            receiverReports++;
          if (d[off + 1] == 206 && (d[off] & 0x1f) == 1) {
            plis++;
            pliMediaSsrc = uint32_t (d[off + 8]) << 24 | uint32_t (d[off + 9]) << 16 |
                uint32_t (d[off + 10]) << 8 | d[off + 11];
          }
          if (d[off + 1] == 203)
            byes++;
          off += len;
        }
      }
    }
    if (dtls) {
      auto due = dtls->nextTimeout ();
      if (due && *due <= std::chrono::steady_clock::now ())
        dtls->onTimeout ();
    }
  }

  /* One SRTP packet; @tamper flips a payload bit after protecting it. */
  std::vector<uint8_t> rtp (int pt, uint16_t seq, uint32_t ts, uint32_t ssrc, bool tamper = false)
  {
    std::vector<uint8_t> p (12 + 200 + SrtpContext::kMaxTrailer, 0xab);
    p[0] = 0x80;
    p[1] = static_cast<uint8_t> (pt);
    wr16 (&p[2], seq);
    wr32 (&p[4], ts);
    wr32 (&p[8], ssrc);
    size_t n = 0;
    EXPECT_EQ (out.protectRtp (p.data (), 212, p.size (), n), SrtpStatus::Ok);
    p.resize (n);
    if (tamper)
      p[20] ^= 1;
    return p;
  }

  void send (const std::vector<uint8_t> &p)
  {
    sendto (fd, p.data (), p.size (), 0, peer.sa (), peer.length);
  }
};

struct ViewerRig {
  std::mt19937_64 rng{7};
  std::shared_ptr<DtlsContext> viewerCtx =
      DtlsContext::create (DtlsCertificate::generate ());
  std::shared_ptr<DtlsContext> serverCtx =
      DtlsContext::create (DtlsCertificate::generate ());
  FakeServer server{serverCtx};
  SockAddr local;
  int fd = udpSocket (local);
  ViewerSettings settings;
  std::unique_ptr<Viewer> viewer;

  ~ViewerRig () { close (fd); }

  void start (const std::string &serverFingerprint)
  {
    viewer = std::make_unique<Viewer> (0, settings, viewerCtx, rng);
    const std::string offer = viewer->begin (fd, local, steadyNowUs ());
    EXPECT_NE (offer.find ("a=ice-ufrag:" + viewer->localUfrag ()), std::string::npos);
    server.viewerFingerprint = viewerCtx->certificate ().fingerprint ().toString ();
    viewer->onAnswer (server.answer (serverFingerprint), "http://127.0.0.1/sessions/1", 201,
        steadyNowUs ());
  }

  /* Runs both sides for @ms milliseconds or until @done. */
  template <typename Done>
  bool pump (int ms, Done done)
  {
    const int64_t until = steadyNowUs () + int64_t (ms) * 1000;
    while (steadyNowUs () < until) {
      if (done ())
        return true;
      pollfd fds[2] = {{fd, POLLIN, 0}, {server.fd, POLLIN, 0}};
      ::poll (fds, 2, 5);
      std::vector<uint8_t> d;
      SockAddr from;
      while (receive (fd, d, from))
        viewer->onDatagram (d.data (), d.size (), from, steadyNowUs ());
      server.poll ();
      if (steadyNowUs () >= viewer->nextWakeUs ())
        viewer->onTimer (steadyNowUs ());
    }
    return done ();
  }
};

}  // namespace

TEST (Viewer, JoinsAnIceLiteServerAndCountsWhatArrives)
{
  ViewerRig rig;
  rig.start (rig.serverCtx->certificate ().fingerprint ().toString ());
  ASSERT_TRUE (rig.pump (5000, [&] {
    return rig.viewer->state () == ViewerState::Connected && rig.server.keyed;
  })) << "state " << int (rig.viewer->state ()) << ": " << rig.viewer->result ().failReason;
  EXPECT_TRUE (rig.server.useCandidateSeen);

  /* Video 1000..1099 with 1010 and 1011 lost, 1020 tampered, 1030 twice;
   * audio 0..49. */
  for (uint16_t seq = 1000; seq < 1100; seq++) {
    if (seq < 1050)
      rig.server.send (rig.server.rtp (111, seq - 1000, 960u * (seq - 1000), 2222));
    if (seq == 1010 || seq == 1011)
      continue;
    auto p = rig.server.rtp (96, seq, 3000u * seq, 1111, seq == 1020);
    rig.server.send (p);
    if (seq == 1030)
      rig.server.send (p);
  }
  /* The first video packet asks for a report with a PLI. */
  ASSERT_TRUE (rig.pump (3000, [&] { return rig.server.plis > 0 && rig.viewer->result ().packets == 147; }))
      << "packets " << rig.viewer->result ().packets << ", PLIs " << rig.server.plis;
  EXPECT_EQ (rig.server.pliMediaSsrc, 1111u);
  EXPECT_GE (rig.server.receiverReports, 1u);

  /* Garbage from the server's address in every range of RFC 7983: no
   * crash, nothing counted; SRTP-looking junk fails authentication. */
  std::mt19937 junk (3);
  for (int i = 0; i < 400; i++) {
    std::vector<uint8_t> d (1 + junk () % 300);
    for (auto &b : d)
      b = static_cast<uint8_t> (junk ());
    const uint8_t firsts[] = {0x00, 0x01, 22, 23, 0x80, 0x90};
    d[0] = firsts[i % 6];
    if (d.size () > 1 && i % 2)
      d[1] = 96;  /* an RTP payload type, not RTCP */
    rig.server.send (d);
    if (i % 50 == 49)  /* within the socket's buffer */
      rig.pump (20, [] { return false; });
  }
  rig.server.send (rig.server.rtp (96, 1100, 3000u * 1100, 1111));
  ASSERT_TRUE (rig.pump (3000, [&] { return rig.viewer->result ().packets == 148; }))
      << rig.viewer->result ().packets << " auth " << rig.viewer->result ().authFailures << " replayed "
      << rig.viewer->result ().replayed << " state " << int (rig.viewer->state ()) << " "
      << rig.viewer->result ().failReason;
  EXPECT_GT (rig.viewer->result ().authFailures, 1u);

  rig.viewer->finish (steadyNowUs ());
  rig.pump (500, [&] { return rig.server.byes > 0; });
  EXPECT_EQ (rig.server.byes, 1u);

  const ViewerResult r = rig.viewer->result ();
  EXPECT_TRUE (r.connected);
  EXPECT_EQ (r.failPhase, FailPhase::None) << r.failReason;
  EXPECT_EQ (r.packets, 148u);
  EXPECT_EQ (r.expected, 151u);
  EXPECT_EQ (r.lost, 3u);  /* two never sent, one that failed authentication */
  EXPECT_EQ (r.replayed, 1u);
  /* The burst came at once (transit only falling); 1100 came at least
   * 160 ms after 1099, whose media time is 33 ms before its own. */
  EXPECT_EQ (r.late, 1u);
  EXPECT_GT (r.bytes, 148u * 212);
  EXPECT_GE (r.answerMs, 0);
  EXPECT_GE (r.iceMs, r.answerMs);
  EXPECT_GE (r.dtlsMs, r.iceMs);
  EXPECT_GE (r.joinMs, r.dtlsMs);
  EXPECT_GE (r.rtcpSent, 2u);
  EXPECT_EQ (rig.viewer->state (), ViewerState::Finished);
}

/* --verify-every 4: after the first media packet, three in four are
 * counted from their clear header and only every fourth is authenticated,
 * so a tampered packet counts as received unless its turn comes. */
TEST (Viewer, VerifyEveryKAuthenticatesOnePacketInK)
{
  ViewerRig rig;
  rig.settings.verifyEvery = 4;
  rig.start (rig.serverCtx->certificate ().fingerprint ().toString ());
  ASSERT_TRUE (rig.pump (5000, [&] {
    return rig.viewer->state () == ViewerState::Connected && rig.server.keyed;
  })) << rig.viewer->result ().failReason;

  /* 0 is checked (the first media), then 1, 2, 3 counted, 4 checked, ... */
  for (uint16_t seq = 0; seq < 40; seq++)
    rig.server.send (rig.server.rtp (96, seq, 3000u * seq, 1111, seq == 2 || seq == 8));
  ASSERT_TRUE (rig.pump (3000, [&] {
    const ViewerResult r = rig.viewer->result ();
    return r.packets + r.authFailures == 40;
  })) << rig.viewer->result ().packets;
  const ViewerResult r = rig.viewer->result ();
  EXPECT_EQ (r.packets, 39u);        /* 2 counted unchecked, 8 refused */
  EXPECT_EQ (r.authFailures, 1u);
  EXPECT_EQ (r.lost, 1u);
}

TEST (Viewer, UnansweredChecksFailInTheIcePhaseNamingTheCandidate)
{
  ViewerRig rig;
  rig.settings.connectTimeoutUs = 400000;
  rig.server.answerIce = false;
  rig.start (rig.serverCtx->certificate ().fingerprint ().toString ());
  ASSERT_TRUE (rig.pump (3000, [&] { return rig.viewer->failed (); }));
  const ViewerResult r = rig.viewer->result ();
  EXPECT_EQ (r.failPhase, FailPhase::Ice);
  EXPECT_EQ (r.failKind, "timeout");
  EXPECT_NE (r.failReason.find (rig.server.address.toString ()), std::string::npos) << r.failReason;
  EXPECT_GE (rig.server.checks, 2u);  /* retransmitted */
  EXPECT_FALSE (r.connected);
}

TEST (Viewer, AWrongServerFingerprintFailsTheDtlsPhase)
{
  ViewerRig rig;
  auto other = DtlsCertificate::generate ();
  rig.start (other->fingerprint ().toString ());
  ASSERT_TRUE (rig.pump (5000, [&] { return rig.viewer->failed (); }));
  const ViewerResult r = rig.viewer->result ();
  EXPECT_EQ (r.failPhase, FailPhase::Dtls);
  EXPECT_NE (r.failReason.find ("does not match"), std::string::npos) << r.failReason;
}

TEST (Viewer, NoMediaAfterDtlsFailsTheMediaPhase)
{
  ViewerRig rig;
  rig.settings.connectTimeoutUs = 1500000;
  rig.start (rig.serverCtx->certificate ().fingerprint ().toString ());
  ASSERT_TRUE (rig.pump (4000, [&] { return rig.viewer->failed (); }));
  const ViewerResult r = rig.viewer->result ();
  EXPECT_EQ (r.failPhase, FailPhase::Media);
  EXPECT_EQ (r.failKind, "timeout");
  EXPECT_GE (r.dtlsMs, 0);
}

TEST (Viewer, ARefusedPostKeepsTheStatusAndBody)
{
  ViewerRig rig;
  rig.viewer = std::make_unique<Viewer> (3, rig.settings, rig.viewerCtx, rig.rng);
  rig.viewer->begin (rig.fd, rig.local, steadyNowUs ());
  rig.viewer->onRefused (404, "{\"error\":\"stream 'x' is not live\"}\n", "", steadyNowUs ());
  const ViewerResult r = rig.viewer->result ();
  EXPECT_EQ (r.httpStatus, 404);
  EXPECT_EQ (r.failPhase, FailPhase::Whep);
  EXPECT_EQ (r.failKind, "404");
  EXPECT_EQ (r.failReason, "WHEP POST answered 404: {\"error\":\"stream 'x' is not live\"}");
  EXPECT_EQ (rig.viewer->nextWakeUs (), INT64_MAX);
}
