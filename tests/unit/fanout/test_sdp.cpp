/* The fan-out's SDP: offers as Chromium and webrtcbin write them, the
 * ICE-lite answer, codec matching, and offers it must refuse. */
#include <gtest/gtest.h>

#include "fanout-test-util.h"
#include "fanout-viewer.h"
#include "xdn-fanout-sdp.h"

#include <regex>

using namespace xdn::fanout;
using fanouttest::OfferOptions;
using fanouttest::TestViewer;

namespace {

TrackCodec
h264Track (uint32_t id = 0, const std::string &profile = "42e01f", int mode = 1)
{
  TrackCodec t;
  t.trackId = id;
  t.kind = MediaKind::Video;
  t.encodingName = "H264";
  t.clockRate = 90000;
  t.profileLevelId = profile;
  t.packetizationMode = mode;
  return t;
}

TrackCodec
vp8Track (uint32_t id = 0)
{
  TrackCodec t;
  t.trackId = id;
  t.kind = MediaKind::Video;
  t.encodingName = "VP8";
  t.clockRate = 90000;
  return t;
}

TrackCodec
opusTrack (uint32_t id = 1)
{
  TrackCodec t;
  t.trackId = id;
  t.kind = MediaKind::Audio;
  t.encodingName = "OPUS";
  t.clockRate = 48000;
  t.channels = 2;
  return t;
}

SdpAnswerParams
params (std::vector<std::string> addresses = {"127.0.0.1"})
{
  SdpAnswerParams p;
  p.iceUfrag = "srvUfrag1234";
  p.icePwd = "serverPasswordOf24Chars1";
  p.fingerprint = "sha-256 " + std::string ("AB:") + "CD:EF";
  p.addresses = std::move (addresses);
  p.port = 40000;
  p.cname = "cnameOfViewer";
  static uint32_t next = 1000;
  p.newSsrc = [] { return next++; };
  return p;
}

std::string
chromiumOffer (const OfferOptions &o = {})
{
  static TestViewer viewer;  /* only writes the text */
  return viewer.offer (o);
}

size_t
countLines (const std::string &text, const std::string &prefix)
{
  size_t n = 0, pos = 0;
  while ((pos = text.find ("\r\n" + prefix, pos)) != std::string::npos) {
    n++;
    pos += 2;
  }
  return n;
}

bool
has (const std::string &text, const std::string &line)
{
  return text.find ("\r\n" + line + "\r\n") != std::string::npos;
}

/* The offer webrtcbin 1.22 makes for recvonly H.264/VP8 video and Opus
 * audio with bundle-policy max-bundle (audio is bundle-only, port 0). */
const char *kWebrtcbinOffer =
    "v=0\r\n"
    "o=- 2354144685536127330 0 IN IP4 0.0.0.0\r\n"
    "s=-\r\n"
    "t=0 0\r\n"
    "a=ice-options:trickle\r\n"
    "a=group:BUNDLE video0 audio1\r\n"
    "m=video 9 UDP/TLS/RTP/SAVPF 96 97\r\n"
    "c=IN IP4 0.0.0.0\r\n"
    "a=setup:actpass\r\n"
    "a=ice-ufrag:ghBWe4x2g+nT6FuzvB46iDLJmIUr6qNF\r\n"
    "a=ice-pwd:XTljYFoPxLu3arCNYG5RSjpKQZO0S4MO\r\n"
    "a=rtcp-mux\r\n"
    "a=rtcp-rsize\r\n"
    "a=recvonly\r\n"
    "a=rtpmap:96 H264/90000\r\n"
    "a=rtcp-fb:96 nack\r\n"
    "a=rtcp-fb:96 nack pli\r\n"
    "a=rtcp-fb:96 ccm fir\r\n"
    "a=rtcp-fb:96 transport-cc\r\n"
    "a=fmtp:96 packetization-mode=1;profile-level-id=42e01f\r\n"
    "a=rtpmap:97 VP8/90000\r\n"
    "a=rtcp-fb:97 nack pli\r\n"
    "a=rtcp-fb:97 ccm fir\r\n"
    "a=rtcp-fb:97 transport-cc\r\n"
    "a=mid:video0\r\n"
    "a=fingerprint:sha-256 8E:D0:18:5C:AE:7E:B4:CF:92:5F:04:5E:7A:90:D4:B8:E9:20:F8:73:F1:98:5D:37:60:A6:72:4E:AA:42:DF:CC\r\n"
    "a=rtcp-mux-only\r\n"
    "m=audio 0 UDP/TLS/RTP/SAVPF 111\r\n"
    "c=IN IP4 0.0.0.0\r\n"
    "a=setup:actpass\r\n"
    "a=ice-ufrag:ghBWe4x2g+nT6FuzvB46iDLJmIUr6qNF\r\n"
    "a=ice-pwd:XTljYFoPxLu3arCNYG5RSjpKQZO0S4MO\r\n"
    "a=bundle-only\r\n"
    "a=rtcp-mux\r\n"
    "a=rtcp-rsize\r\n"
    "a=recvonly\r\n"
    "a=rtpmap:111 OPUS/48000/2\r\n"
    "a=rtcp-fb:111 transport-cc\r\n"
    "a=mid:audio1\r\n"
    "a=fingerprint:sha-256 8E:D0:18:5C:AE:7E:B4:CF:92:5F:04:5E:7A:90:D4:B8:E9:20:F8:73:F1:98:5D:37:60:A6:72:4E:AA:42:DF:CC\r\n"
    "a=rtcp-mux-only\r\n";

}  // namespace

TEST (FanoutSdp, ReadsChromiumOfferCodecsFeedbackAndTransport)
{
  std::string error;
  auto offer = sdpParseOffer (chromiumOffer (), &error);
  ASSERT_TRUE (offer) << error;
  ASSERT_EQ (offer->media.size (), 2u);
  EXPECT_EQ (offer->bundle, (std::vector<std::string> {"0", "1"}));
  const SdpMediaOffer &v = offer->media[0];
  EXPECT_EQ (v.media, "video");
  EXPECT_EQ (v.mid, "0");
  EXPECT_EQ (v.direction, SdpDirection::RecvOnly);
  EXPECT_TRUE (v.rtcpMux);
  EXPECT_TRUE (v.rtcpRsize);
  EXPECT_EQ (v.setup, "actpass");
  EXPECT_FALSE (v.iceUfrag.empty ());
  EXPECT_EQ (v.fingerprint.rfind ("sha-256 ", 0), 0u);
  ASSERT_EQ (v.codecs.size (), 15u);
  const SdpCodecOffer &h = v.codecs[2];
  EXPECT_EQ (h.payloadType, 102);
  EXPECT_EQ (h.encodingName, "H264");
  EXPECT_EQ (h.clockRate, 90000u);
  EXPECT_EQ (h.fmtpParameter ("profile-level-id").value_or (""), "42001f");
  EXPECT_EQ (h.fmtpParameter ("packetization-mode").value_or (""), "1");
  EXPECT_EQ (h.feedback.size (), 5u);
  const SdpCodecOffer &rtx = v.codecs[3];
  EXPECT_EQ (rtx.payloadType, 103);
  EXPECT_EQ (rtx.encodingName, "rtx");
  EXPECT_EQ (rtx.fmtpParameter ("apt").value_or (""), "102");
  EXPECT_EQ (SdpAnswerer::matchRtx (v, 102), 103);
  EXPECT_EQ (SdpAnswerer::matchRtx (v, 106), 107);
  EXPECT_EQ (SdpAnswerer::matchRtx (v, 118), -1);
  const SdpCodecOffer &opus = offer->media[1].codecs[0];
  EXPECT_EQ (opus.encodingName, "opus");
  EXPECT_EQ (opus.channels, 2u);
  EXPECT_EQ (opus.fmtp, "minptime=10;useinbandfec=1");
}

TEST (FanoutSdp, H264ProfilesAreToldApart)
{
  EXPECT_EQ (h264ProfileFromId ("42e01f"), H264Profile::ConstrainedBaseline);
  EXPECT_EQ (h264ProfileFromId ("42C01F"), H264Profile::ConstrainedBaseline);
  EXPECT_EQ (h264ProfileFromId ("4d801f"), H264Profile::ConstrainedBaseline);
  EXPECT_EQ (h264ProfileFromId ("42001f"), H264Profile::Baseline);
  EXPECT_EQ (h264ProfileFromId ("4d001f"), H264Profile::Main);
  EXPECT_EQ (h264ProfileFromId ("640c1f"), H264Profile::ConstrainedHigh);
  EXPECT_EQ (h264ProfileFromId ("64001f"), H264Profile::High);
  EXPECT_EQ (h264ProfileFromId ("f4001f"), H264Profile::Other);
  EXPECT_EQ (h264ProfileFromId ("42e0"), H264Profile::Unknown);
  EXPECT_EQ (h264ProfileFromId ("zze01f"), H264Profile::Unknown);
}

TEST (FanoutSdp, AnswersChromiumOfferAsIceLitePassiveSendonly)
{
  std::string error;
  OfferOptions noRtx;  /* RTX: RtxOfTheAcceptedVideoTypeIsAnsweredWithItsOwnSsrc */
  noRtx.rtx = false;
  auto n = SdpAnswerer ({h264Track (), opusTrack ()}).answer (chromiumOffer (noRtx), params (),
      &error);
  ASSERT_TRUE (n) << error;
  const std::string &a = n->answer;
  ASSERT_EQ (n->accepted.size (), 2u);
  /* Constrained Baseline stream: 106 (42e01f, mode 1), not 102 (Baseline)
   * nor 108 (mode 0). */
  EXPECT_EQ (n->accepted[0].payloadType, 106);
  EXPECT_EQ (n->accepted[0].kind, MediaKind::Video);
  EXPECT_EQ (n->accepted[0].mid, "0");
  EXPECT_EQ (n->accepted[1].payloadType, 111);
  EXPECT_EQ (n->accepted[1].kind, MediaKind::Audio);
  EXPECT_NE (n->accepted[0].ssrc, n->accepted[1].ssrc);
  EXPECT_TRUE (n->accepted[0].nack && n->accepted[0].pli && n->accepted[0].fir &&
      n->accepted[0].remb && n->accepted[0].transportCc);
  EXPECT_FALSE (n->accepted[1].nack);
  EXPECT_TRUE (n->accepted[1].transportCc);

  EXPECT_EQ (a.rfind ("v=0\r\n", 0), 0u);
  EXPECT_TRUE (has (a, "a=ice-lite"));
  EXPECT_TRUE (has (a, "a=group:BUNDLE 0 1"));
  EXPECT_TRUE (has (a, "m=video 40000 UDP/TLS/RTP/SAVPF 106"));
  EXPECT_TRUE (has (a, "m=audio 40000 UDP/TLS/RTP/SAVPF 111"));
  EXPECT_EQ (countLines (a, "a=setup:passive"), 2u);
  EXPECT_EQ (countLines (a, "a=sendonly"), 2u);
  EXPECT_EQ (countLines (a, "a=ice-ufrag:srvUfrag1234"), 2u);
  EXPECT_EQ (countLines (a, "a=ice-pwd:serverPasswordOf24Chars1"), 2u);
  EXPECT_EQ (countLines (a, "a=fingerprint:sha-256 AB:CD:EF"), 2u);
  EXPECT_EQ (countLines (a, "a=rtcp-mux"), 2u);
  EXPECT_TRUE (has (a, "a=rtpmap:106 H264/90000"));
  EXPECT_TRUE (has (a, "a=fmtp:106 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f"));
  for (const char *fb : {"nack", "nack pli", "ccm fir", "goog-remb", "transport-cc"})
    EXPECT_TRUE (has (a, std::string ("a=rtcp-fb:106 ") + fb)) << fb;
  EXPECT_TRUE (has (a, "a=rtpmap:111 opus/48000/2"));
  EXPECT_TRUE (has (a, "a=fmtp:111 minptime=10;useinbandfec=1"));
  EXPECT_TRUE (has (a, "a=rtcp-fb:111 transport-cc"));
  EXPECT_FALSE (has (a, "a=rtcp-fb:111 nack"));
  /* no rtx offered: none answered */
  EXPECT_EQ (a.find ("rtx"), std::string::npos);
  EXPECT_EQ (a.find ("ssrc-group"), std::string::npos);
  EXPECT_EQ (n->accepted[0].rtxSsrc, 0u);
  EXPECT_TRUE (has (a, "a=ssrc:" + std::to_string (n->accepted[0].ssrc) + " cname:cnameOfViewer"));
  EXPECT_EQ (countLines (a, "a=candidate:1 1 udp 2130706431 127.0.0.1 40000 typ host"), 2u);
  EXPECT_EQ (countLines (a, "a=candidate:"), 2u);
  EXPECT_EQ (countLines (a, "a=end-of-candidates"), 2u);
  /* The viewer's transport */
  EXPECT_EQ (n->remoteUfrag.substr (0, 2), "vw");
  EXPECT_EQ (n->remoteFingerprint.rfind ("sha-256 ", 0), 0u);
  /* What we answer reads back as SDP */
  std::string again;
  auto back = sdpParseOffer (a, &again);
  ASSERT_TRUE (back) << again;
  EXPECT_EQ (back->media.size (), 2u);
  EXPECT_TRUE (back->iceLite);
}

TEST (FanoutSdp, RtxOfTheAcceptedVideoTypeIsAnsweredWithItsOwnSsrc)
{
  std::string error;
  auto n = SdpAnswerer ({h264Track (), opusTrack ()}).answer (chromiumOffer (), params (),
      &error);
  ASSERT_TRUE (n) << error;
  ASSERT_EQ (n->accepted.size (), 2u);
  const SdpAcceptedMedia &video = n->accepted[0];
  EXPECT_EQ (video.payloadType, 106);
  EXPECT_EQ (video.rtxPayloadType, 107);
  EXPECT_EQ (video.rtxClockRate, 90000u);
  EXPECT_NE (video.rtxSsrc, 0u);
  EXPECT_NE (video.rtxSsrc, video.ssrc);
  EXPECT_NE (video.rtxSsrc, n->accepted[1].ssrc);
  EXPECT_EQ (n->accepted[1].rtxSsrc, 0u);

  const std::string &a = n->answer;
  const std::string media = std::to_string (video.ssrc);
  const std::string rtx = std::to_string (video.rtxSsrc);
  EXPECT_TRUE (has (a, "m=video 40000 UDP/TLS/RTP/SAVPF 106 107"));
  EXPECT_TRUE (has (a, "m=audio 40000 UDP/TLS/RTP/SAVPF 111"));
  EXPECT_TRUE (has (a, "a=rtpmap:107 rtx/90000"));
  EXPECT_TRUE (has (a, "a=fmtp:107 apt=106"));
  EXPECT_EQ (countLines (a, "a=rtpmap:"), 3u) << "only the rtx of the accepted type";
  EXPECT_TRUE (has (a, "a=ssrc-group:FID " + media + " " + rtx));
  EXPECT_EQ (countLines (a, "a=ssrc-group:"), 1u);
  EXPECT_TRUE (has (a, "a=ssrc:" + rtx + " cname:cnameOfViewer"));
  EXPECT_TRUE (has (a, "a=ssrc:" + rtx + " msid:xdn xdn-video0"));
  EXPECT_TRUE (has (a, "a=ssrc:" + media + " msid:xdn xdn-video0"));
  /* No feedback for the rtx type: it is for the media type. */
  EXPECT_EQ (a.find ("a=rtcp-fb:107"), std::string::npos);

  /* The answer reads back with the pair. */
  auto back = sdpParseOffer (a, &error);
  ASSERT_TRUE (back) << error;
  ASSERT_EQ (back->media[0].codecs.size (), 2u);
  EXPECT_EQ (SdpAnswerer::matchRtx (back->media[0], 106), 107);
  /* A viewer of it reads the media and RTX SSRCs from the answer. */
  TestViewer v;
  v.applyAnswer (a);  /* false: params () has no real fingerprint; the SSRCs are read */
  EXPECT_EQ (v.ssrc ("video"), video.ssrc);
  EXPECT_EQ (v.rtxSsrc ("video"), video.rtxSsrc);
  EXPECT_EQ (v.rtxPayloadType ("video"), 107);
  EXPECT_EQ (v.rtxSsrc ("audio"), 0u);
}

TEST (FanoutSdp, RtxIsNotAnsweredWithoutNackForAnUnacceptedTypeOrForAudio)
{
  const SdpAnswerer answerer ({h264Track (), opusTrack ()});
  std::string error;
  auto noRtxFor = [&] (const std::string &offer) {
    auto n = answerer.answer (offer, params (), &error);
    EXPECT_TRUE (n) << error;
    if (!n)
      return false;
    for (const auto &m : n->accepted)
      if (m.rtxSsrc != 0)
        return false;
    return n->answer.find ("rtx") == std::string::npos &&
        n->answer.find ("ssrc-group") == std::string::npos;
  };
  auto replaced = [] (std::string text, const std::string &from, const std::string &to) {
    const size_t at = text.find (from);
    EXPECT_NE (at, std::string::npos) << from;
    if (at != std::string::npos)
      text.replace (at, from.size (), to);
    return text;
  };
  const std::string offer = chromiumOffer ();

  /* Without NACK there is nothing to retransmit. */
  OfferOptions noFeedback;
  noFeedback.feedback = false;
  EXPECT_TRUE (noRtxFor (chromiumOffer (noFeedback)));
  /* The rtx types name 96, 102, 104, 108, 127, 116 but not the accepted 106. */
  EXPECT_TRUE (noRtxFor (replaced (offer, "a=fmtp:107 apt=106\r\n", "")));
  EXPECT_TRUE (noRtxFor (replaced (offer, "a=fmtp:107 apt=106", "a=fmtp:107 apt=108")));
  /* Unreadable: not a number, a number out of range, no rtpmap, a zero rate. */
  EXPECT_TRUE (noRtxFor (replaced (offer, "a=fmtp:107 apt=106", "a=fmtp:107 apt=106x")));
  EXPECT_TRUE (noRtxFor (replaced (offer, "a=fmtp:107 apt=106", "a=fmtp:107 apt=4294967402")));
  EXPECT_TRUE (noRtxFor (replaced (offer, "a=rtpmap:107 rtx/90000\r\n", "")));
  EXPECT_TRUE (noRtxFor (replaced (offer, "a=rtpmap:107 rtx/90000", "a=rtpmap:107 rtx/0")));
  /* An rtx type that says it repairs itself. */
  EXPECT_TRUE (noRtxFor (replaced (replaced (offer, "a=fmtp:107 apt=106", "a=fmtp:107 apt=107"),
      "a=fmtp:106 ", "a=fmtp:106 apt=106;")));

  /* Audio with NACK and an rtx type for Opus: not answered (video only). */
  std::string audio = replaced (offer, "SAVPF 111 63", "SAVPF 111 112 63");
  audio = replaced (audio, "a=rtcp-fb:111 transport-cc\r\n",
      "a=rtcp-fb:111 transport-cc\r\na=rtcp-fb:111 nack\r\n"
      "a=rtpmap:112 rtx/48000\r\na=fmtp:112 apt=111\r\n");
  auto n = answerer.answer (audio, params (), &error);
  ASSERT_TRUE (n) << error;
  ASSERT_EQ (n->accepted.size (), 2u);
  EXPECT_TRUE (n->accepted[1].nack);
  EXPECT_EQ (n->accepted[1].rtxSsrc, 0u);
  EXPECT_EQ (n->answer.find ("a=rtpmap:112"), std::string::npos);
  EXPECT_NE (n->accepted[0].rtxSsrc, 0u) << "the video's is still answered";
}

TEST (FanoutSdp, BaselineIsAcceptedForAConstrainedBaselineStreamWhenNothingCloser)
{
  std::string offer = chromiumOffer ();
  /* only the Baseline (42001f) types remain */
  for (const char *pt : {"106", "108", "127"})
    offer = std::regex_replace (offer, std::regex (std::string ("a=rtpmap:") + pt + " H264"),
        std::string ("a=rtpmap:") + pt + " H999");
  std::string error;
  auto n = SdpAnswerer ({h264Track ()}).answer (offer, params (), &error);
  ASSERT_TRUE (n) << error;
  EXPECT_EQ (n->accepted[0].payloadType, 102);
}

TEST (FanoutSdp, ModeOneStreamNeverGetsAModeZeroPayloadType)
{
  std::string offer = chromiumOffer ();
  for (const char *pt : {"102", "106", "127"})
    offer = std::regex_replace (offer, std::regex (std::string ("a=rtpmap:") + pt + " H264"),
        std::string ("a=rtpmap:") + pt + " H999");
  /* only 104 and 108 (packetization-mode 0) are left */
  std::string error;
  auto n = SdpAnswerer ({h264Track ()}).answer (offer, params (), &error);
  EXPECT_FALSE (n);
  EXPECT_NE (error.find ("no offered codec matches the stream's H264"), std::string::npos) << error;
}

TEST (FanoutSdp, HighProfileStreamNeedsAHighOffer)
{
  std::string error;
  auto n = SdpAnswerer ({h264Track (0, "64001f")}).answer (chromiumOffer (OfferOptions {true, false}),
      params (), &error);
  EXPECT_FALSE (n);
  EXPECT_NE (error.find ("no offered codec matches the stream's H264"), std::string::npos) << error;
}

TEST (FanoutSdp, Vp8TrackGetsTheOfferedVp8Type)
{
  std::string error;
  auto n = SdpAnswerer ({vp8Track (), opusTrack ()}).answer (chromiumOffer (), params (), &error);
  ASSERT_TRUE (n) << error;
  EXPECT_EQ (n->accepted[0].payloadType, 96);
  EXPECT_TRUE (has (n->answer, "a=rtpmap:96 VP8/90000"));
}

TEST (FanoutSdp, FeedbackOnlyWhenOffered)
{
  OfferOptions o;
  o.feedback = false;
  std::string error;
  auto n = SdpAnswerer ({h264Track (), opusTrack ()}).answer (chromiumOffer (o), params (), &error);
  ASSERT_TRUE (n) << error;
  EXPECT_EQ (n->answer.find ("a=rtcp-fb:106"), std::string::npos);
  EXPECT_FALSE (n->accepted[0].nack || n->accepted[0].pli || n->accepted[0].remb);
}

TEST (FanoutSdp, MediaWithoutATrackIsRejectedAndLeftOutOfBundle)
{
  std::string error;
  auto n = SdpAnswerer ({h264Track ()}).answer (chromiumOffer (), params (), &error);
  ASSERT_TRUE (n) << error;
  ASSERT_EQ (n->accepted.size (), 1u);
  EXPECT_TRUE (has (n->answer, "a=group:BUNDLE 0"));
  EXPECT_TRUE (has (n->answer, "m=audio 0 UDP/TLS/RTP/SAVPF 111"));
  EXPECT_TRUE (has (n->answer, "a=mid:1"));
  EXPECT_EQ (countLines (n->answer, "a=candidate:"), 1u);
}

TEST (FanoutSdp, DataChannelMLineIsRejected)
{
  std::string offer = chromiumOffer ();
  offer = std::regex_replace (offer, std::regex ("a=group:BUNDLE 0 1"), "a=group:BUNDLE 0 1 2");
  offer += "m=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\nc=IN IP4 0.0.0.0\r\n"
      "a=mid:2\r\na=sctp-port:5000\r\n";
  std::string error;
  auto n = SdpAnswerer ({h264Track (), opusTrack ()}).answer (offer, params (), &error);
  ASSERT_TRUE (n) << error;
  EXPECT_EQ (n->accepted.size (), 2u);
  EXPECT_TRUE (has (n->answer, "m=application 0 UDP/DTLS/SCTP 0"));
  EXPECT_TRUE (has (n->answer, "a=group:BUNDLE 0 1"));
}

TEST (FanoutSdp, OffersThatCannotBeServedAreRefusedWithTheReason)
{
  auto refuse = [] (const std::string &offer, const std::string &expect) {
    std::string error;
    auto n = SdpAnswerer ({h264Track (), opusTrack ()}).answer (offer, params (), &error);
    EXPECT_FALSE (n) << offer;
    EXPECT_NE (error.find (expect), std::string::npos) << "error: " << error;
  };
  OfferOptions passive;
  passive.setup = "passive";
  refuse (chromiumOffer (passive), "a=setup:passive");
  OfferOptions noFp;
  noFp.fingerprint = false;
  refuse (chromiumOffer (noFp), "no a=fingerprint");
  OfferOptions noMux;
  noMux.rtcpMux = false;
  refuse (chromiumOffer (noMux), "rtcp-mux");
  refuse (std::regex_replace (chromiumOffer (), std::regex ("a=ice-pwd:[^\r]*"), "a=ice-pwd:short"),
      "ice-pwd");
  refuse (std::regex_replace (chromiumOffer (), std::regex ("a=ice-ufrag:[^\r]*"), ""),
      "ice-ufrag");
}

TEST (FanoutSdp, IceLiteOffererIsRefused)
{
  std::string offer = chromiumOffer ();
  offer.insert (offer.find ("a=group"), "a=ice-lite\r\n");
  std::string error;
  EXPECT_FALSE (SdpAnswerer ({h264Track ()}).answer (offer, params (), &error));
  EXPECT_NE (error.find ("ICE-lite"), std::string::npos) << error;
}

TEST (FanoutSdp, WithoutBundleOnlyTheFirstServableMLineIsAccepted)
{
  OfferOptions o;
  o.bundle = false;
  std::string error;
  auto n = SdpAnswerer ({h264Track (), opusTrack ()}).answer (chromiumOffer (o), params (), &error);
  ASSERT_TRUE (n) << error;
  ASSERT_EQ (n->accepted.size (), 1u);
  EXPECT_EQ (n->accepted[0].kind, MediaKind::Video);
  EXPECT_EQ (n->answer.find ("a=group:BUNDLE"), std::string::npos);
  EXPECT_TRUE (has (n->answer, "m=audio 0 UDP/TLS/RTP/SAVPF 111"));
}

TEST (FanoutSdp, CandidatesForEveryConfiguredAddressAndNoOther)
{
  std::string error;
  auto n = SdpAnswerer ({h264Track ()}).answer (chromiumOffer (OfferOptions {true, false}),
      params ({"127.0.0.1", "::1"}), &error);
  ASSERT_TRUE (n) << error;
  EXPECT_TRUE (has (n->answer, "a=candidate:1 1 udp 2130706431 127.0.0.1 40000 typ host"));
  EXPECT_TRUE (has (n->answer, "a=candidate:2 1 udp 2130706175 ::1 40000 typ host"));
  EXPECT_EQ (countLines (n->answer, "a=candidate:"), 2u);
  EXPECT_TRUE (has (n->answer, "c=IN IP4 127.0.0.1"));
}

TEST (FanoutSdp, AnswersWebrtcbinOfferWithBundleOnlyAudio)
{
  std::string error;
  auto n = SdpAnswerer ({h264Track (), opusTrack ()}).answer (kWebrtcbinOffer, params (), &error);
  ASSERT_TRUE (n) << error;
  ASSERT_EQ (n->accepted.size (), 2u);
  EXPECT_EQ (n->accepted[0].payloadType, 96);
  EXPECT_EQ (n->accepted[1].payloadType, 111);
  EXPECT_EQ (n->accepted[1].mid, "audio1");
  EXPECT_TRUE (has (n->answer, "a=group:BUNDLE video0 audio1"));
  EXPECT_TRUE (has (n->answer, "a=rtpmap:111 OPUS/48000/2"));
  EXPECT_TRUE (has (n->answer, "a=rtcp-fb:96 ccm fir"));
  EXPECT_FALSE (has (n->answer, "a=rtcp-fb:96 goog-remb"));
  EXPECT_EQ (n->remoteUfrag, "ghBWe4x2g+nT6FuzvB46iDLJmIUr6qNF");
}

TEST (FanoutSdp, HostileOffersAreRefusedWithoutHarm)
{
  const SdpAnswerer answerer ({h264Track (), opusTrack ()});
  auto refused = [&answerer] (const std::string &offer) {
    std::string error;
    auto n = answerer.answer (offer, params (), &error);
    return !n && !error.empty ();
  };
  EXPECT_TRUE (refused (""));
  EXPECT_TRUE (refused ("v=0\r\n"));
  EXPECT_TRUE (refused ("hello"));
  EXPECT_TRUE (refused (std::string (kSdpMaxSize + 1, 'a')));
  EXPECT_TRUE (refused ("v=0\r\na=" + std::string (kSdpMaxLineLength + 1, 'x') + "\r\n"));
  std::string many = "v=0\r\n";
  for (int i = 0; i < 40; i++)
    many += "m=video 9 UDP/TLS/RTP/SAVPF 96\r\n";
  EXPECT_TRUE (refused (many));
  EXPECT_TRUE (refused ("v=0\r\nm=video 99999999999 UDP/TLS/RTP/SAVPF 96\r\n"));
  EXPECT_TRUE (refused ("v=0\r\nm=video\r\n"));
  EXPECT_TRUE (refused ("v=0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\na=rtpmap:96 H264/99999999999999\r\n"
                        "a=rtcp-mux\r\n"));

  /* Mutations of a valid offer: answered or refused, never a crash. */
  const std::string base = chromiumOffer ();
  fanouttest::Rng rng (7);
  for (int i = 0; i < 3000; i++) {
    std::string m = base;
    const int edits = 1 + static_cast<int> (rng.below (8));
    for (int e = 0; e < edits && !m.empty (); e++) {
      const size_t at = rng.below (m.size ());
      switch (rng.below (4)) {
        case 0: m[at] = static_cast<char> (rng.byte ()); break;
        case 1: m.erase (at, rng.below (40)); break;
        case 2: m.insert (at, std::string (rng.below (20), static_cast<char> (rng.byte ()))); break;
        case 3: m.resize (at); break;
      }
    }
    std::string error;
    auto n = answerer.answer (m, params (), &error);
    if (!n) {
      EXPECT_FALSE (error.empty ());
    }
  }
}

namespace {

const std::string kTwccUri =
    "http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01";

/* The text of m-section @index (from its m= line to the next). */
std::string
section (const std::string &sdp, size_t index)
{
  size_t pos = 0;
  for (size_t i = 0; i <= index; i++) {
    pos = sdp.find ("\r\nm=", pos);
    if (pos == std::string::npos)
      return "";
    pos += 2;
  }
  const size_t end = sdp.find ("\r\nm=", pos);
  return "\r\n" + sdp.substr (pos, end == std::string::npos ? std::string::npos : end - pos + 2);
}

}  // namespace

TEST (FanoutSdp, TransportWideCcExtmapIsEchoedWithTheOfferedIdPerMedia)
{
  /* Chromium's offer, with audio's extension under another id (RFC 8285
   * lets each m-section have its own). */
  std::string offer = chromiumOffer ();
  const size_t audio = offer.find ("m=audio");
  const size_t at = offer.find ("a=extmap:3 " + kTwccUri, audio);
  ASSERT_NE (at, std::string::npos);
  offer.replace (at, 11, "a=extmap:7 ");
  std::string error;
  auto n = SdpAnswerer ({h264Track (), opusTrack ()}).answer (offer, params (), &error);
  ASSERT_TRUE (n) << error;
  ASSERT_EQ (n->accepted.size (), 2u);
  EXPECT_EQ (n->accepted[0].transportCcExtId, 3);
  EXPECT_EQ (n->accepted[1].transportCcExtId, 7);
  const std::string video = section (n->answer, 0), sound = section (n->answer, 1);
  EXPECT_TRUE (has (video, "a=extmap:3 " + kTwccUri));
  EXPECT_TRUE (has (video, "a=rtcp-fb:106 transport-cc"));
  EXPECT_TRUE (has (sound, "a=extmap:7 " + kTwccUri));
  EXPECT_TRUE (has (sound, "a=rtcp-fb:111 transport-cc"));
  /* toffset was offered too: the fan-out does not write it */
  EXPECT_EQ (countLines (n->answer, "a=extmap:"), 2u);
  EXPECT_EQ (n->answer.find ("toffset"), std::string::npos);
}

TEST (FanoutSdp, NoExtmapWithoutTheExtensionOrTransportCcFeedback)
{
  std::string error;
  OfferOptions noExt;
  noExt.transportWideCc = false;
  auto n = SdpAnswerer ({h264Track (), opusTrack ()}).answer (chromiumOffer (noExt), params (),
      &error);
  ASSERT_TRUE (n) << error;
  EXPECT_EQ (n->answer.find ("a=extmap"), std::string::npos);
  EXPECT_EQ (n->accepted[0].transportCcExtId, 0);
  EXPECT_TRUE (n->accepted[0].transportCc);  /* the feedback is still agreed on */

  /* the extension without rtcp-fb transport-cc: nobody would read it */
  OfferOptions noFeedback;
  noFeedback.feedback = false;
  std::string offer = chromiumOffer (noFeedback);
  for (size_t p; (p = offer.find ("a=rtcp-fb:111 transport-cc\r\n")) != std::string::npos;)
    offer.erase (p, 28);
  n = SdpAnswerer ({h264Track (), opusTrack ()}).answer (offer, params (), &error);
  ASSERT_TRUE (n) << error;
  EXPECT_EQ (n->answer.find ("a=extmap"), std::string::npos);
  EXPECT_EQ (n->accepted[0].transportCcExtId, 0);
  EXPECT_EQ (n->accepted[1].transportCcExtId, 0);
}

TEST (FanoutSdp, TransportWideCcExtmapTheViewerCannotReceiveOrTooLargeIsNotNegotiated)
{
  auto answerFor = [] (const std::string &extmap) {
    std::string offer = chromiumOffer ();
    for (size_t p; (p = offer.find ("a=extmap:3 " + kTwccUri)) != std::string::npos;)
      offer.replace (p, 11 + kTwccUri.size (), extmap);
    std::string error;
    return SdpAnswerer ({h264Track (), opusTrack ()}).answer (offer, params (), &error);
  };
  auto n = answerFor ("a=extmap:3/sendonly " + kTwccUri);
  ASSERT_TRUE (n);
  EXPECT_EQ (n->accepted[0].transportCcExtId, 0);
  n = answerFor ("a=extmap:20 " + kTwccUri);  /* two-byte form only */
  ASSERT_TRUE (n);
  EXPECT_EQ (n->accepted[0].transportCcExtId, 0);
  n = answerFor ("a=extmap:0 " + kTwccUri);
  ASSERT_TRUE (n);
  EXPECT_EQ (n->accepted[0].transportCcExtId, 0);
  n = answerFor ("a=extmap:5/recvonly " + kTwccUri);
  ASSERT_TRUE (n);
  EXPECT_EQ (n->accepted[0].transportCcExtId, 5);
  EXPECT_TRUE (has (n->answer, "a=extmap:5 " + kTwccUri));
  n = answerFor ("a=extmap:x " + kTwccUri);
  ASSERT_TRUE (n);
  EXPECT_EQ (n->accepted[0].transportCcExtId, 0);
}

TEST (FanoutSdp, SessionLevelExtmapAppliesToEveryMedia)
{
  OfferOptions o;
  o.transportWideCc = false;
  std::string offer = chromiumOffer (o);
  const size_t at = offer.find ("a=msid-semantic");
  ASSERT_NE (at, std::string::npos);
  offer.insert (at, "a=extmap:9 " + kTwccUri + "\r\n");
  std::string error;
  auto n = SdpAnswerer ({h264Track (), opusTrack ()}).answer (offer, params (), &error);
  ASSERT_TRUE (n) << error;
  EXPECT_EQ (n->accepted[0].transportCcExtId, 9);
  EXPECT_EQ (n->accepted[1].transportCcExtId, 9);
}
