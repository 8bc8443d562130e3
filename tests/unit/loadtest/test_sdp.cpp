#include "sdp.h"

#include <gtest/gtest.h>

#include <random>

using namespace xdn::loadtest;

namespace {

/* What xdn-node (webrtcbin) answered to the load test's offer. */
const char kNodeAnswer[] =
    "v=0\r\n"
    "o=- 1 2 IN IP4 0.0.0.0\r\n"
    "s=-\r\n"
    "t=0 0\r\n"
    "a=group:BUNDLE 0 1\r\n"
    "m=video 9 UDP/TLS/RTP/SAVPF 96\r\n"
    "c=IN IP4 0.0.0.0\r\n"
    "a=ice-ufrag:AyJV+/F7GegA+3jmyqL0eo2/+s4NX3xN\r\n"
    "a=ice-pwd:AeBrXwgt45StWk4/r8K/u1dRX7Fj/pzq\r\n"
    "a=mid:0\r\n"
    "a=rtcp-mux\r\n"
    "a=setup:passive\r\n"
    "a=rtpmap:96 H264/90000\r\n"
    "a=rtcp-fb:96 nack pli\r\n"
    "a=fmtp:96 packetization-mode=1;level-asymmetry-allowed=1\r\n"
    "a=ssrc:3661128534 msid:user3522361230@host-d556d1d1 webrtctransceiver4\r\n"
    "a=ssrc:3661128534 cname:user3522361230@host-d556d1d1\r\n"
    "a=sendonly\r\n"
    "a=fingerprint:sha-256 4C:F1:2C:52:C0:93:E5:64:F6:10:90:6D:D1:14:7A:7D:E3:D7:F0:9C:69:CD:06:"
    "45:6C:3A:E0:38:FA:B3:E3:BE\r\n"
    "a=candidate:1 1 UDP 2015363327 127.0.0.1 44736 typ host\r\n"
    "m=audio 9 UDP/TLS/RTP/SAVPF 111\r\n"
    "c=IN IP4 0.0.0.0\r\n"
    "a=ice-ufrag:AyJV+/F7GegA+3jmyqL0eo2/+s4NX3xN\r\n"
    "a=ice-pwd:AeBrXwgt45StWk4/r8K/u1dRX7Fj/pzq\r\n"
    "a=mid:1\r\n"
    "a=rtcp-mux\r\n"
    "a=setup:passive\r\n"
    "a=rtpmap:111 OPUS/48000/2\r\n"
    "a=ssrc:3340359048 cname:user3522361230@host-d556d1d1\r\n"
    "a=sendonly\r\n"
    "a=fingerprint:sha-256 4C:F1:2C:52:C0:93:E5:64:F6:10:90:6D:D1:14:7A:7D:E3:D7:F0:9C:69:CD:06:"
    "45:6C:3A:E0:38:FA:B3:E3:BE\r\n";

std::string
replaceAll (std::string s, const std::string &from, const std::string &to)
{
  for (size_t at = s.find (from); at != std::string::npos; at = s.find (from, at + to.size ()))
    s.replace (at, from.size (), to);
  return s;
}

}  // namespace

TEST (SdpAnswer, ReadsANodeAnswer)
{
  SdpAnswer a;
  std::string error;
  ASSERT_TRUE (parseAnswer (kNodeAnswer, a, &error)) << error;
  EXPECT_EQ (a.iceUfrag, "AyJV+/F7GegA+3jmyqL0eo2/+s4NX3xN");
  EXPECT_EQ (a.icePwd, "AeBrXwgt45StWk4/r8K/u1dRX7Fj/pzq");
  EXPECT_EQ (a.setup, "passive");
  EXPECT_EQ (a.fingerprint.substr (0, 14), "sha-256 4C:F1:");
  EXPECT_TRUE (a.rtcpMux);
  EXPECT_FALSE (a.iceLite);
  ASSERT_EQ (a.candidates.size (), 1u);
  EXPECT_EQ (a.candidates[0].address, "127.0.0.1");
  EXPECT_EQ (a.candidates[0].port, 44736);
  EXPECT_EQ (a.candidates[0].transport, "udp");
  EXPECT_EQ (a.candidates[0].type, "host");
  EXPECT_EQ (a.candidates[0].priority, 2015363327u);
  ASSERT_EQ (a.media.size (), 2u);
  EXPECT_EQ (a.media[0].kind, "video");
  EXPECT_EQ (a.media[0].direction, "sendonly");
  EXPECT_EQ (a.media[0].payloadTypes, std::vector<int> ({96}));
  EXPECT_EQ (a.media[0].ssrcs, std::vector<uint32_t> ({3661128534u}));
  EXPECT_EQ (a.media[1].ssrcs, std::vector<uint32_t> ({3340359048u}));
  ASSERT_NE (a.codec (96), nullptr);
  EXPECT_EQ (a.codec (96)->name, "H264");
  EXPECT_EQ (a.codec (96)->clockRate, 90000u);
  EXPECT_EQ (a.codec (111)->name, "OPUS");
  EXPECT_EQ (a.codec (111)->clockRate, 48000u);
  EXPECT_EQ (a.kindOf (96), "video");
  EXPECT_EQ (a.kindOf (111), "audio");
  EXPECT_EQ (a.kindOf (97), "");
}

TEST (SdpAnswer, SessionLevelCredentialsAndIceLite)
{
  const std::string sdp =
      "v=0\no=- 1 1 IN IP4 192.0.2.1\ns=-\nt=0 0\na=ice-lite\n"
      "a=ice-ufrag:sess\na=ice-pwd:sessionpasswordsessionpw\n"
      "a=fingerprint:sha-256 AA:BB\na=setup:passive\n"
      "m=video 40000 UDP/TLS/RTP/SAVPF 102\nc=IN IP4 192.0.2.1\n"
      "a=rtpmap:102 VP8/90000\na=candidate:0 1 udp 100 192.0.2.1 40000 typ host\n";
  SdpAnswer a;
  std::string error;
  ASSERT_TRUE (parseAnswer (sdp, a, &error)) << error;  /* \n line ends too */
  EXPECT_TRUE (a.iceLite);
  EXPECT_EQ (a.iceUfrag, "sess");
  EXPECT_EQ (a.icePwd, "sessionpasswordsessionpw");
  EXPECT_EQ (a.codec (102)->name, "VP8");
}

TEST (SdpAnswer, MediaLevelCredentialsWinOverSessionLevel)
{
  const std::string sdp = replaceAll (kNodeAnswer, "t=0 0\r\n",
      "t=0 0\r\na=ice-ufrag:session\r\na=ice-pwd:sessionpwd\r\n");
  SdpAnswer a;
  ASSERT_TRUE (parseAnswer (sdp, a, nullptr));
  EXPECT_EQ (a.iceUfrag, "AyJV+/F7GegA+3jmyqL0eo2/+s4NX3xN");
}

TEST (SdpAnswer, WithoutCandidateLinesUsesTheConnectionAddress)
{
  std::string sdp = replaceAll (kNodeAnswer, "a=candidate:1 1 UDP 2015363327 127.0.0.1 44736 typ host\r\n", "");
  sdp = replaceAll (sdp, "m=video 9 UDP/TLS/RTP/SAVPF 96\r\nc=IN IP4 0.0.0.0",
      "m=video 50000 UDP/TLS/RTP/SAVPF 96\r\nc=IN IP4 198.51.100.7");
  SdpAnswer a;
  std::string error;
  ASSERT_TRUE (parseAnswer (sdp, a, &error)) << error;
  ASSERT_EQ (a.candidates.size (), 1u);
  EXPECT_EQ (a.candidates[0].address, "198.51.100.7");
  EXPECT_EQ (a.candidates[0].port, 50000);
}

TEST (SdpAnswer, DuplicateCandidatesAcrossBundledLinesCountOnce)
{
  const std::string sdp = replaceAll (kNodeAnswer, "a=rtpmap:111 OPUS/48000/2\r\n",
      "a=rtpmap:111 OPUS/48000/2\r\na=candidate:1 1 UDP 2015363327 127.0.0.1 44736 typ host\r\n"
      "a=candidate:2 1 TCP 1015363327 127.0.0.1 9 typ host tcptype active\r\n");
  SdpAnswer a;
  ASSERT_TRUE (parseAnswer (sdp, a, nullptr));
  ASSERT_EQ (a.candidates.size (), 2u);
  EXPECT_EQ (a.candidates[1].transport, "tcp");
}

TEST (SdpAnswer, RefusesAnswersItCannotUseAndSaysWhy)
{
  struct Case {
    std::string sdp;
    const char *why;
  } cases[] = {
    {"", "v=0"},
    {"<html>404</html>", "v=0"},
    {replaceAll (kNodeAnswer, "a=ice-ufrag:AyJV+/F7GegA+3jmyqL0eo2/+s4NX3xN\r\n", ""), "ice-ufrag"},
    {replaceAll (kNodeAnswer, "a=ice-pwd:AeBrXwgt45StWk4/r8K/u1dRX7Fj/pzq\r\n", ""), "ice-pwd"},
    {replaceAll (kNodeAnswer, "a=fingerprint:", "a=x-fingerprint:"), "fingerprint"},
    {replaceAll (kNodeAnswer, "a=setup:passive", "a=setup:active"), "setup:active"},
    {replaceAll (kNodeAnswer, "a=candidate:1 1 UDP 2015363327 127.0.0.1 44736 typ host\r\n", ""),
        "candidate"},
    {replaceAll (replaceAll (kNodeAnswer, "m=video 9", "m=video 0"), "m=audio 9", "m=audio 0"),
        "rejected"},
    {"v=0\r\ns=-\r\n", "no m= line"},
    {"v=0\r\nm=video\r\n", "malformed m= line"},
    {"v=0\r\nm=video 70000 RTP/AVP 96\r\n", "bad port"},
  };
  for (const auto &c : cases) {
    SdpAnswer a;
    std::string error;
    EXPECT_FALSE (parseAnswer (c.sdp, a, &error)) << c.sdp;
    EXPECT_NE (error.find (c.why), std::string::npos) << "error: " << error << ", wanted " << c.why;
  }
}

TEST (SdpCandidate, ParsesAndRefuses)
{
  SdpCandidate c;
  ASSERT_TRUE (parseCandidate ("candidate:842163049 1 udp 1677729535 203.0.113.9 61664 typ srflx "
      "raddr 10.0.0.2 rport 61664 generation 0", c));
  EXPECT_EQ (c.type, "srflx");
  EXPECT_EQ (c.port, 61664);
  ASSERT_TRUE (parseCandidate ("1 1 UDP 2015363327 ::1 5000 typ host", c));
  EXPECT_EQ (c.address, "::1");
  EXPECT_FALSE (parseCandidate ("1 1 udp 100 127.0.0.1 0 typ host", c));       /* port 0 */
  EXPECT_FALSE (parseCandidate ("1 1 udp 100 127.0.0.1 65536 typ host", c));   /* port */
  EXPECT_FALSE (parseCandidate ("1 1 udp -5 127.0.0.1 5000 typ host", c));     /* priority */
  EXPECT_FALSE (parseCandidate ("1 1 udp 100 127.0.0.1 5000 host", c));        /* no typ */
  EXPECT_FALSE (parseCandidate ("garbage", c));
}

TEST (SdpOffer, RecvonlyBundleWithOurCredentialsAndActiveSetup)
{
  OfferParams p;
  p.iceUfrag = "ufrag123";
  p.icePwd = "passwordpasswordpassword";
  p.fingerprint = "sha-256 AA:BB";
  p.candidateAddress = "127.0.0.1";
  p.candidatePort = 40000;
  const std::string offer = buildOffer (p);
  for (const char *line : {"v=0\r\n", "a=group:BUNDLE 0 1\r\n", "m=video 9 UDP/TLS/RTP/SAVPF 96 98\r\n",
           "m=audio 9 UDP/TLS/RTP/SAVPF 111\r\n", "a=ice-ufrag:ufrag123\r\n",
           "a=ice-pwd:passwordpasswordpassword\r\n", "a=fingerprint:sha-256 AA:BB\r\n",
           "a=setup:active\r\n", "a=recvonly\r\n", "a=rtcp-mux\r\n", "a=rtpmap:96 H264/90000\r\n",
           "packetization-mode=1;profile-level-id=42e01f", "a=rtcp-fb:96 nack pli\r\n",
           "a=rtpmap:111 opus/48000/2\r\n",
           "a=candidate:1 1 udp 2130706431 127.0.0.1 40000 typ host\r\n"})
    EXPECT_NE (offer.find (line), std::string::npos) << line;
  EXPECT_EQ (offer.find ("a=sendrecv"), std::string::npos);
  /* Only a viewer that NACKs (--slow) offers generic NACK. */
  EXPECT_EQ (offer.find ("nack\r\n"), std::string::npos);
  p.nack = true;
  const std::string nacking = buildOffer (p);
  EXPECT_NE (nacking.find ("a=rtcp-fb:96 nack\r\na=rtcp-fb:96 nack pli\r\n"), std::string::npos);
  EXPECT_NE (nacking.find ("a=rtcp-fb:98 nack\r\n"), std::string::npos);
  p.nack = false;

  p.candidateAddress.clear ();
  p.audio = false;
  const std::string videoOnly = buildOffer (p);
  EXPECT_NE (videoOnly.find ("a=group:BUNDLE 0\r\n"), std::string::npos);
  EXPECT_EQ (videoOnly.find ("m=audio"), std::string::npos);
  EXPECT_EQ (videoOnly.find ("a=candidate"), std::string::npos);
}

TEST (SdpOffer, PublisherOfferIsSendonlyH264AndOpusWithItsSsrcs)
{
  OfferParams p;
  p.iceUfrag = "ufrag123";
  p.icePwd = "passwordpasswordpassword";
  p.fingerprint = "sha-256 AA:BB";
  p.publish = true;
  p.videoSsrc = 1234;
  p.audioSsrc = 5678;
  p.cname = "pub";
  const std::string offer = buildOffer (p);
  for (const char *line : {"m=video 9 UDP/TLS/RTP/SAVPF 96\r\n", "a=sendonly\r\n",
           "a=ssrc:1234 cname:pub\r\n", "a=ssrc:5678 cname:pub\r\n", "a=setup:active\r\n",
           "a=rtpmap:111 opus/48000/2\r\n"})
    EXPECT_NE (offer.find (line), std::string::npos) << line;
  EXPECT_EQ (offer.find ("a=recvonly"), std::string::npos);
  EXPECT_EQ (offer.find ("VP8"), std::string::npos);
}

TEST (SdpAnswer, SurvivesTruncatedAndMutatedAnswers)
{
  const std::string base = kNodeAnswer;
  std::mt19937 rng (1);
  SdpAnswer a;
  std::string error;
  for (size_t n = 0; n <= base.size (); n++)
    parseAnswer (base.substr (0, n), a, &error);
  for (int i = 0; i < 5000; i++) {
    std::string m = base;
    for (int k = 0; k < 1 + int (rng () % 8); k++)
      m[rng () % m.size ()] = static_cast<char> (rng ());
    if (parseAnswer (m, a, &error)) {
      EXPECT_FALSE (a.iceUfrag.empty ());
      EXPECT_FALSE (a.candidates.empty ());
    } else {
      EXPECT_FALSE (error.empty ());
    }
  }
}
