/* The SDP side of the fan-out: reading a viewer's offer (a browser's, a
 * webrtcbin's, a load client's) and writing the ICE-lite answer that serves
 * the stream's tracks to it (RFC 8866 SDP, RFC 8829 JSEP, RFC 8839 ICE,
 * RFC 8842 DTLS, RFC 8843 BUNDLE, RFC 4588 RTX).
 *
 * The offer is text from the network (a WHEP POST body): the parser bounds
 * its size, the number of lines and m-lines, and never trusts a number it
 * reads. Plain C++, no GStreamer types: the element turns its pads' caps
 * into TrackCodec values. */
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace xdn::fanout {

enum class MediaKind { Audio, Video };

const char *mediaKindName (MediaKind kind);

/* One track the fan-out serves, as its RTP caps describe it. */
struct TrackCodec {
  uint32_t trackId = 0;
  MediaKind kind = MediaKind::Video;
  std::string encodingName;      /* "H264", "VP8", "OPUS" (any case) */
  uint32_t clockRate = 0;
  unsigned channels = 0;         /* audio; 0 when the caps do not say */
  /* H.264 only: from the caps' profile-level-id (may be empty) and
   * packetization-mode (RFC 6184 8.1: 0 when absent). */
  std::string profileLevelId;
  int packetizationMode = 0;
};

/* H.264 profiles as RFC 6184 8.1 / RFC 7742 tell them apart by
 * profile_idc and the constraint flags of profile-level-id. */
enum class H264Profile {
  Unknown,
  ConstrainedBaseline,
  Baseline,
  Main,
  Extended,
  ConstrainedHigh,
  High,
  Other,
};

/* "42e01f" -> ConstrainedBaseline; Unknown for text that is not 6 hex
 * digits. */
H264Profile h264ProfileFromId (std::string_view profileLevelId);

/* One payload type of an offered m-line. */
struct SdpCodecOffer {
  int payloadType = -1;
  std::string encodingName;            /* as written ("H264", "opus") */
  uint32_t clockRate = 0;
  unsigned channels = 0;               /* 0 when not written */
  std::string fmtp;                    /* the a=fmtp value, "" if none */
  std::vector<std::string> feedback;   /* a=rtcp-fb values for this type or "*" */

  /* A parameter of fmtp ("packetization-mode"), nullopt when absent. */
  std::optional<std::string> fmtpParameter (std::string_view name) const;
};

enum class SdpDirection { SendRecv, SendOnly, RecvOnly, Inactive };

/* The transport-wide sequence number header extension
 * (draft-holmer-rmcat-transport-wide-cc-extensions-01 2): the only one the
 * fan-out writes. */
constexpr const char *kTransportWideCcUri =
    "http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01";

/* One a=extmap of an m-line (RFC 8285 8). */
struct SdpExtmap {
  int id = 0;                          /* 1-255 as offered */
  SdpDirection direction = SdpDirection::SendRecv;  /* the offerer's; sendrecv when not written */
  std::string uri;
};

struct SdpMediaOffer {
  std::string media;                   /* "video", "audio", "application", ... */
  uint16_t port = 0;
  std::string proto;                   /* "UDP/TLS/RTP/SAVPF" */
  std::string mid;
  SdpDirection direction = SdpDirection::SendRecv;
  bool rtcpMux = false;
  bool rtcpRsize = false;
  bool bundleOnly = false;
  std::string iceUfrag;                /* this m-line's, else the session's */
  std::string icePwd;
  std::string fingerprint;             /* "sha-256 AB:CD:..." */
  std::string setup;                   /* "actpass", "active", "passive", "" */
  std::vector<SdpCodecOffer> codecs;   /* in the m-line's order */
  std::vector<SdpExtmap> extmaps;      /* the m-line's, then the session's */

  /* The id of the extension @uri the offerer can receive, or 0. */
  int extmapId (std::string_view uri) const;
};

struct SdpOffer {
  std::vector<SdpMediaOffer> media;
  std::vector<std::string> bundle;     /* mids of a=group:BUNDLE, in order */
  bool iceLite = false;
};

/* Limits on what an offer may hold. */
constexpr size_t kSdpMaxSize = 64 * 1024;
constexpr size_t kSdpMaxLineLength = 4096;
constexpr size_t kSdpMaxMedia = 16;
constexpr size_t kSdpMaxCodecsPerMedia = 64;
constexpr size_t kSdpMaxFeedbackPerCodec = 16;
constexpr size_t kSdpMaxExtmaps = 32;       /* per m-line, and at session level */

/* Reads an offer. nullopt and @error set when it is not SDP this code can
 * read (too large, no v=0, a line too long, too many m-lines, an m-line
 * that is not "m=KIND PORT PROTO FMT..."). Attributes it does not know are
 * skipped; a=rtpmap / a=fmtp / a=rtcp-fb for types the m-line does not list
 * are ignored. */
std::optional<SdpOffer> sdpParseOffer (std::string_view text, std::string *error);

/* One m-line of the answer that carries a track. */
struct SdpAcceptedMedia {
  size_t index = 0;              /* m-line number in the offer */
  std::string mid;
  uint32_t trackId = 0;
  MediaKind kind = MediaKind::Video;
  uint8_t payloadType = 0;       /* the viewer's, from its offer */
  uint32_t ssrc = 0;             /* ours, for this viewer and track */
  uint32_t clockRate = 0;
  std::string encodingName;      /* as the offer wrote it */
  bool nack = false;             /* rtcp-fb the answer agreed on */
  bool pli = false;
  bool fir = false;
  bool remb = false;
  bool transportCc = false;
  /* The RFC 8285 one-byte header extension id (1-14) of the transport-wide
   * sequence number, echoed from the offer; 0: not negotiated (needs the
   * extmap and rtcp-fb transport-cc in the offer). */
  uint8_t transportCcExtId = 0;
  /* RFC 4588 retransmission: the offer's rtx payload type whose apt= is
   * payloadType (video with NACK only) and our RTX SSRC, announced with
   * a=ssrc-group:FID; rtxSsrc 0: no RTX, retransmissions go out as the
   * original packets. */
  uint8_t rtxPayloadType = 0;
  uint32_t rtxClockRate = 0;     /* as the offer's rtpmap wrote it */
  uint32_t rtxSsrc = 0;
};

/* What the answerer needs besides the offer. */
struct SdpAnswerParams {
  std::string iceUfrag;            /* ours, for this viewer */
  std::string icePwd;
  std::string fingerprint;         /* ours: "sha-256 4A:AD:..." */
  /* Host candidates: every address the port is reachable on, one port. */
  std::vector<std::string> addresses;
  uint16_t port = 0;
  std::string cname;               /* RTCP CNAME of the viewer's sources */
  std::string streamId = "xdn";    /* a=msid stream id */
  uint64_t sessionId = 1;          /* o= line */
  /* Draws the SSRC for each accepted m-line, and the RTX SSRC of each
   * that has one (must give distinct, non-zero values). */
  std::function<uint32_t ()> newSsrc;
};

struct SdpNegotiation {
  std::string answer;
  std::vector<SdpAcceptedMedia> accepted;
  /* The viewer's transport: ICE credentials and DTLS fingerprint of the
   * (first) accepted m-line. */
  std::string remoteUfrag;
  std::string remotePwd;
  std::string remoteFingerprint;
};

/* Makes answers for a set of tracks: one m-line per offered media the
 * tracks can serve (codec matched against the track), others rejected with
 * port 0. Stateless apart from the tracks; one instance per add-viewer. */
class SdpAnswerer {
public:
  explicit SdpAnswerer (std::vector<TrackCodec> tracks) : tracks_ (std::move (tracks)) {}

  /* nullopt and @error set (a sentence for a user) when the offer cannot be
   * served: unreadable, no media we can serve, missing or unusable ICE
   * credentials, fingerprint or DTLS role, an ICE-lite offerer. */
  std::optional<SdpNegotiation> answer (std::string_view offerText,
      const SdpAnswerParams &params, std::string *error) const;
  std::optional<SdpNegotiation> answer (const SdpOffer &offer, const SdpAnswerParams &params,
      std::string *error) const;

  /* The offered payload type @track's codec matches best in @media, or -1.
   * H.264: same packetization-mode and profile (an exact profile first,
   * then Baseline for a Constrained Baseline stream); others: encoding name
   * and clock rate. */
  static int matchCodec (const TrackCodec &track, const SdpMediaOffer &media);

  /* The offered rtx payload type (RFC 4588 8.6) whose apt= is @pt, or -1;
   * the first one when the offer lists several. */
  static int matchRtx (const SdpMediaOffer &media, int pt);

private:
  std::vector<TrackCodec> tracks_;
};

}  // namespace xdn::fanout
