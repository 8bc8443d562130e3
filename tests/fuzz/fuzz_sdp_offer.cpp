/* Fuzz target: a WHEP offer, the body anyone may POST to the fan-out. Each
 * input goes to the SDP offer parser and, when it parses, to the answerer
 * for an H.264 + Opus stream. Nothing may crash, hang or read out of
 * bounds; an answer, when there is one, must name only accepted media.
 *
 * Built with libFuzzer (meson -Dfuzzing=true, clang):
 *   build/tests/fuzz/fuzz-sdp-offer corpus/
 * Otherwise fuzz_main.cpp drives it from seeded mutations of the offers
 * below (the unit-fuzz-sdp-offer test). */
#include "fuzz-seeds.h"
#include "xdn-fanout-sdp.h"

#include <cctype>
#include <charconv>
#include <cstdlib>
#include <set>
#include <string>
#include <string_view>

using namespace xdn::fanout;

namespace {

/* As Chromium writes a recvonly offer for video and audio. */
const char *kChromiumOffer =
    "v=0\r\n"
    "o=- 4611731400430051336 2 IN IP4 127.0.0.1\r\n"
    "s=-\r\n"
    "t=0 0\r\n"
    "a=group:BUNDLE 0 1\r\n"
    "a=extmap-allow-mixed\r\n"
    "a=msid-semantic: WMS\r\n"
    "m=video 9 UDP/TLS/RTP/SAVPF 96 97 102 103 127 125\r\n"
    "c=IN IP4 0.0.0.0\r\n"
    "a=rtcp:9 IN IP4 0.0.0.0\r\n"
    "a=candidate:1 1 udp 2113937151 127.0.0.1 50000 typ host generation 0\r\n"
    "a=ice-ufrag:Wq3f\r\n"
    "a=ice-pwd:Zt1y7Ox8rRkF0OgbHIJv6yQm\r\n"
    "a=ice-options:trickle\r\n"
    "a=fingerprint:sha-256 8E:D0:18:5C:AE:7E:B4:CF:92:5F:04:5E:7A:90:D4:B8:E9:20:F8:73:F1:98:5D:37:60:A6:72:4E:AA:42:DF:CC\r\n"
    "a=setup:actpass\r\n"
    "a=mid:0\r\n"
    "a=extmap:1 urn:ietf:params:rtp-hdrext:toffset\r\n"
    "a=extmap:3 http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01\r\n"
    "a=recvonly\r\n"
    "a=rtcp-mux\r\n"
    "a=rtcp-rsize\r\n"
    "a=rtpmap:96 VP8/90000\r\n"
    "a=rtcp-fb:96 goog-remb\r\n"
    "a=rtcp-fb:96 transport-cc\r\n"
    "a=rtcp-fb:96 ccm fir\r\n"
    "a=rtcp-fb:96 nack\r\n"
    "a=rtcp-fb:96 nack pli\r\n"
    "a=rtpmap:97 rtx/90000\r\n"
    "a=fmtp:97 apt=96\r\n"
    "a=rtpmap:102 H264/90000\r\n"
    "a=rtcp-fb:102 transport-cc\r\n"
    "a=rtcp-fb:102 nack\r\n"
    "a=rtcp-fb:102 nack pli\r\n"
    "a=fmtp:102 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42001f\r\n"
    "a=rtpmap:103 rtx/90000\r\n"
    "a=fmtp:103 apt=102\r\n"
    "a=rtpmap:127 H264/90000\r\n"
    "a=rtcp-fb:127 nack\r\n"
    "a=fmtp:127 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f\r\n"
    "a=rtpmap:125 rtx/90000\r\n"
    "a=fmtp:125 apt=127\r\n"
    "m=audio 9 UDP/TLS/RTP/SAVPF 111 63\r\n"
    "c=IN IP4 0.0.0.0\r\n"
    "a=ice-ufrag:Wq3f\r\n"
    "a=ice-pwd:Zt1y7Ox8rRkF0OgbHIJv6yQm\r\n"
    "a=fingerprint:sha-256 8E:D0:18:5C:AE:7E:B4:CF:92:5F:04:5E:7A:90:D4:B8:E9:20:F8:73:F1:98:5D:37:60:A6:72:4E:AA:42:DF:CC\r\n"
    "a=setup:actpass\r\n"
    "a=mid:1\r\n"
    "a=extmap:3 http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01\r\n"
    "a=recvonly\r\n"
    "a=rtcp-mux\r\n"
    "a=rtpmap:111 opus/48000/2\r\n"
    "a=rtcp-fb:111 transport-cc\r\n"
    "a=fmtp:111 minptime=10;useinbandfec=1\r\n"
    "a=rtpmap:63 red/48000/2\r\n"
    "a=fmtp:63 111/111\r\n";

/* As webrtcbin writes one: session-level nothing, bundle-only audio. */
const char *kWebrtcbinOffer =
    "v=0\r\n"
    "o=- 2354144685536127330 0 IN IP4 0.0.0.0\r\n"
    "s=-\r\n"
    "t=0 0\r\n"
    "a=ice-options:trickle\r\n"
    "a=group:BUNDLE video0 audio1\r\n"
    "m=video 9 UDP/TLS/RTP/SAVPF 96\r\n"
    "c=IN IP4 0.0.0.0\r\n"
    "a=setup:actpass\r\n"
    "a=ice-ufrag:ghBWe4x2g+nT6FuzvB46iDLJmIUr6qNF\r\n"
    "a=ice-pwd:XTljYFoPxLu3arCNYG5RSjpKQZO0S4MO\r\n"
    "a=rtcp-mux\r\n"
    "a=recvonly\r\n"
    "a=rtpmap:96 H264/90000\r\n"
    "a=rtcp-fb:96 nack pli\r\n"
    "a=fmtp:96 packetization-mode=1;profile-level-id=42e01f\r\n"
    "a=mid:video0\r\n"
    "a=fingerprint:sha-256 8E:D0:18:5C:AE:7E:B4:CF:92:5F:04:5E:7A:90:D4:B8:E9:20:F8:73:F1:98:5D:37:60:A6:72:4E:AA:42:DF:CC\r\n"
    "m=audio 0 UDP/TLS/RTP/SAVPF 111\r\n"
    "c=IN IP4 0.0.0.0\r\n"
    "a=bundle-only\r\n"
    "a=recvonly\r\n"
    "a=rtpmap:111 OPUS/48000/2\r\n"
    "a=mid:audio1\r\n";

const SdpAnswerer &
answerer ()
{
  static const SdpAnswerer a = [] {
    TrackCodec video;
    video.trackId = 0;
    video.kind = MediaKind::Video;
    video.encodingName = "H264";
    video.clockRate = 90000;
    video.profileLevelId = "42e01f";
    video.packetizationMode = 1;
    TrackCodec audio;
    audio.trackId = 1;
    audio.kind = MediaKind::Audio;
    audio.encodingName = "OPUS";
    audio.clockRate = 48000;
    audio.channels = 2;
    return SdpAnswerer ({video, audio});
  }();
  return a;
}

SdpAnswerParams
answerParams ()
{
  SdpAnswerParams p;
  p.iceUfrag = "srvUfrag1234";
  p.icePwd = "serverPasswordOf24Chars1";
  p.fingerprint = "sha-256 AB:CD:EF";
  p.addresses = {"127.0.0.1"};
  p.port = 40000;
  p.cname = "fuzz";
  p.newSsrc = [n = 1000u] () mutable { return n++; };
  return p;
}

}  // namespace

std::vector<std::vector<uint8_t>>
fuzzSeeds ()
{
  std::vector<std::vector<uint8_t>> seeds;
  for (const char *offer : {kChromiumOffer, kWebrtcbinOffer}) {
    const std::string_view s (offer);
    seeds.emplace_back (s.begin (), s.end ());
  }
  return seeds;
}

extern "C" int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  const std::string_view text (reinterpret_cast<const char *> (data), size);
  std::string error;
  const auto offer = sdpParseOffer (text, &error);
  if (!offer)
    return 0;
  const auto n = answerer ().answer (*offer, answerParams (), &error);
  if (!n)
    return 0;
  /* What the answer accepts is what the offer had: the m-line and its
   * payload type, and an rtx type only for a video type with NACK, offered
   * as rtx with apt= that type, under an SSRC of its own. */
  std::set<uint32_t> ssrcs;
  for (const auto &m : n->accepted) {
    if (m.index >= offer->media.size () || offer->media[m.index].media != mediaKindName (m.kind))
      std::abort ();
    const SdpMediaOffer &media = offer->media[m.index];
    const auto offered = [&media] (int pt) -> const SdpCodecOffer * {
      for (const auto &c : media.codecs)
        if (c.payloadType == pt)
          return &c;
      return nullptr;
    };
    if (!offered (m.payloadType) || m.ssrc == 0 || !ssrcs.insert (m.ssrc).second)
      std::abort ();
    if (m.rtxSsrc == 0)
      continue;
    const SdpCodecOffer *rtx = offered (m.rtxPayloadType);
    if (m.kind != MediaKind::Video || !m.nack || !rtx || m.rtxPayloadType == m.payloadType ||
        !ssrcs.insert (m.rtxSsrc).second)
      std::abort ();
    std::string name = rtx->encodingName;
    for (char &ch : name)
      ch = static_cast<char> (std::tolower (static_cast<unsigned char> (ch)));
    const std::string apt = rtx->fmtpParameter ("apt").value_or ("");
    int aptValue = -1;
    const auto r = std::from_chars (apt.data (), apt.data () + apt.size (), aptValue);
    if (name != "rtx" || r.ec != std::errc () || r.ptr != apt.data () + apt.size () ||
        aptValue != m.payloadType || rtx->clockRate != m.rtxClockRate)
      std::abort ();
  }
  return 0;
}
