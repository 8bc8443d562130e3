#include "xdn-fanout-sdp.h"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <set>
#include <sstream>

namespace xdn::fanout {

const char *
mediaKindName (MediaKind kind)
{
  return kind == MediaKind::Audio ? "audio" : "video";
}

namespace {

std::string
upper (std::string_view s)
{
  std::string out (s);
  for (char &c : out)
    c = static_cast<char> (std::toupper (static_cast<unsigned char> (c)));
  return out;
}

bool
iequals (std::string_view a, std::string_view b)
{
  if (a.size () != b.size ())
    return false;
  for (size_t i = 0; i < a.size (); i++)
    if (std::tolower (static_cast<unsigned char> (a[i])) !=
        std::tolower (static_cast<unsigned char> (b[i])))
      return false;
  return true;
}

std::string_view
trim (std::string_view s)
{
  while (!s.empty () && (s.front () == ' ' || s.front () == '\t'))
    s.remove_prefix (1);
  while (!s.empty () && (s.back () == ' ' || s.back () == '\t' || s.back () == '\r'))
    s.remove_suffix (1);
  return s;
}

/* Splits on runs of spaces. */
std::vector<std::string_view>
tokens (std::string_view s)
{
  std::vector<std::string_view> out;
  size_t i = 0;
  while (i < s.size ()) {
    while (i < s.size () && s[i] == ' ')
      i++;
    size_t j = i;
    while (j < s.size () && s[j] != ' ')
      j++;
    if (j > i)
      out.push_back (s.substr (i, j - i));
    i = j;
  }
  return out;
}

template <typename T>
bool
parseNumber (std::string_view s, T &out)
{
  if (s.empty ())
    return false;
  auto r = std::from_chars (s.data (), s.data () + s.size (), out);
  return r.ec == std::errc () && r.ptr == s.data () + s.size ();
}

/* "96 H264/90000" or "111 opus/48000/2". */
bool
parseRtpmap (std::string_view value, int &pt, std::string &name, uint32_t &rate,
    unsigned &channels)
{
  auto sp = value.find (' ');
  if (sp == std::string_view::npos || !parseNumber (value.substr (0, sp), pt))
    return false;
  std::string_view rest = trim (value.substr (sp + 1));
  auto s1 = rest.find ('/');
  if (s1 == std::string_view::npos)
    return false;
  name = std::string (rest.substr (0, s1));
  std::string_view after = rest.substr (s1 + 1);
  auto s2 = after.find ('/');
  channels = 0;
  if (s2 != std::string_view::npos) {
    if (!parseNumber (after.substr (s2 + 1), channels))
      channels = 0;
    after = after.substr (0, s2);
  }
  return !name.empty () && parseNumber (after, rate);
}

/* "PT rest" for fmtp / rtcp-fb; pt -2 for "*". */
bool
splitPt (std::string_view value, int &pt, std::string_view &rest)
{
  auto sp = value.find (' ');
  std::string_view p = sp == std::string_view::npos ? value : value.substr (0, sp);
  rest = sp == std::string_view::npos ? std::string_view () : trim (value.substr (sp + 1));
  if (p == "*") {
    pt = -2;
    return true;
  }
  return parseNumber (p, pt);
}

SdpCodecOffer *
findCodec (SdpMediaOffer &m, int pt)
{
  for (auto &c : m.codecs)
    if (c.payloadType == pt)
      return &c;
  return nullptr;
}

bool
iceCharsOk (std::string_view s)
{
  /* ice-char = ALPHA / DIGIT / "+" / "/" (RFC 8839 9.1) */
  for (char c : s)
    if (!std::isalnum (static_cast<unsigned char> (c)) && c != '+' && c != '/')
      return false;
  return true;
}

/* "3 URI", "3/recvonly URI [attributes]" (RFC 8285 8). */
bool
parseExtmap (std::string_view value, SdpExtmap &out)
{
  auto t = tokens (value);
  if (t.size () < 2)
    return false;
  std::string_view id = t[0];
  out.direction = SdpDirection::SendRecv;
  if (auto slash = id.find ('/'); slash != std::string_view::npos) {
    std::string_view dir = id.substr (slash + 1);
    id = id.substr (0, slash);
    if (dir == "sendonly")
      out.direction = SdpDirection::SendOnly;
    else if (dir == "recvonly")
      out.direction = SdpDirection::RecvOnly;
    else if (dir == "inactive")
      out.direction = SdpDirection::Inactive;
    else if (dir != "sendrecv")
      return false;
  }
  if (!parseNumber (id, out.id) || out.id < 1 || out.id > 255)
    return false;
  out.uri = std::string (t[1]);
  return true;
}

}  // namespace

int
SdpMediaOffer::extmapId (std::string_view uri) const
{
  for (const auto &e : extmaps)
    if (e.uri == uri && (e.direction == SdpDirection::SendRecv ||
        e.direction == SdpDirection::RecvOnly))
      return e.id;
  return 0;
}

std::optional<std::string>
SdpCodecOffer::fmtpParameter (std::string_view name) const
{
  std::string_view rest (fmtp);
  while (!rest.empty ()) {
    auto semi = rest.find (';');
    std::string_view item = trim (rest.substr (0, semi));
    rest = semi == std::string_view::npos ? std::string_view () : rest.substr (semi + 1);
    auto eq = item.find ('=');
    if (eq == std::string_view::npos)
      continue;
    if (iequals (trim (item.substr (0, eq)), name))
      return std::string (trim (item.substr (eq + 1)));
  }
  return std::nullopt;
}

H264Profile
h264ProfileFromId (std::string_view id)
{
  if (id.size () != 6)
    return H264Profile::Unknown;
  unsigned v = 0;
  auto r = std::from_chars (id.data (), id.data () + 6, v, 16);
  if (r.ec != std::errc () || r.ptr != id.data () + 6)
    return H264Profile::Unknown;
  const unsigned idc = v >> 16;
  const unsigned iop = (v >> 8) & 0xff;
  if ((idc == 0x42 && (iop & 0x40)) || (idc == 0x4d && (iop & 0x80)) ||
      (idc == 0x58 && (iop & 0xc0) == 0xc0))
    return H264Profile::ConstrainedBaseline;
  if (idc == 0x42 || (idc == 0x58 && (iop & 0x80)))
    return H264Profile::Baseline;
  if (idc == 0x58)
    return H264Profile::Extended;
  if (idc == 0x4d)
    return H264Profile::Main;
  if (idc == 0x64)
    return (iop & 0x0c) == 0x0c ? H264Profile::ConstrainedHigh : H264Profile::High;
  return H264Profile::Other;
}

std::optional<SdpOffer>
sdpParseOffer (std::string_view text, std::string *error)
{
  auto fail = [error] (std::string why) -> std::optional<SdpOffer> {
    if (error)
      *error = std::move (why);
    return std::nullopt;
  };
  if (text.size () > kSdpMaxSize)
    return fail ("offer larger than " + std::to_string (kSdpMaxSize) + " bytes");

  SdpOffer offer;
  /* Session-level transport attributes, copied into m-lines without their own. */
  std::string sessionUfrag, sessionPwd, sessionFingerprint, sessionSetup;
  /* rtcp-fb for "*", per m-line, merged at the end */
  std::vector<std::vector<std::string>> starFeedback;
  std::vector<SdpExtmap> sessionExtmaps;
  bool sawVersion = false;
  size_t lineNo = 0;

  size_t pos = 0;
  while (pos < text.size ()) {
    size_t nl = text.find ('\n', pos);
    std::string_view line = text.substr (pos, nl == std::string_view::npos ? std::string_view::npos
        : nl - pos);
    pos = nl == std::string_view::npos ? text.size () : nl + 1;
    if (!line.empty () && line.back () == '\r')
      line.remove_suffix (1);
    lineNo++;
    if (line.size () > kSdpMaxLineLength)
      return fail ("line " + std::to_string (lineNo) + " is longer than "
          + std::to_string (kSdpMaxLineLength) + " characters");
    if (line.empty ())
      continue;
    if (line.size () < 2 || line[1] != '=')
      return fail ("line " + std::to_string (lineNo) + " is not \"x=value\"");
    const char type = line[0];
    std::string_view value = line.substr (2);

    if (!sawVersion) {
      if (type != 'v' || trim (value) != "0")
        return fail ("not SDP: the first line is not v=0");
      sawVersion = true;
      continue;
    }

    if (type == 'm') {
      if (offer.media.size () >= kSdpMaxMedia)
        return fail ("more than " + std::to_string (kSdpMaxMedia) + " m-lines");
      auto t = tokens (value);
      if (t.size () < 4)
        return fail ("m-line " + std::to_string (offer.media.size ()) + " is not \"m=KIND PORT PROTO FMT...\"");
      SdpMediaOffer m;
      m.media = std::string (t[0]);
      std::string_view port = t[1].substr (0, t[1].find ('/'));
      unsigned portValue = 0;
      if (!parseNumber (port, portValue) || portValue > 65535)
        return fail ("m-line " + std::to_string (offer.media.size ()) + " has a bad port");
      m.port = static_cast<uint16_t> (portValue);
      m.proto = std::string (t[2]);
      for (size_t i = 3; i < t.size (); i++) {
        int pt;
        if (!parseNumber (t[i], pt) || pt < 0 || pt > 127)
          continue;  /* non-RTP formats (data channels) */
        if (m.codecs.size () >= kSdpMaxCodecsPerMedia)
          break;
        if (findCodec (m, pt))
          continue;
        SdpCodecOffer c;
        c.payloadType = pt;
        m.codecs.push_back (std::move (c));
      }
      offer.media.push_back (std::move (m));
      starFeedback.emplace_back ();
      continue;
    }
    if (type != 'a')
      continue;

    auto colon = value.find (':');
    std::string_view name = value.substr (0, colon);
    std::string_view attr = colon == std::string_view::npos ? std::string_view ()
        : trim (value.substr (colon + 1));
    SdpMediaOffer *m = offer.media.empty () ? nullptr : &offer.media.back ();

    if (!m) {
      if (name == "group") {
        auto t = tokens (attr);
        if (!t.empty () && t[0] == "BUNDLE" && offer.bundle.empty ())
          for (size_t i = 1; i < t.size () && i <= kSdpMaxMedia; i++)
            offer.bundle.emplace_back (t[i]);
      } else if (name == "ice-lite") {
        offer.iceLite = true;
      } else if (name == "ice-ufrag") {
        sessionUfrag = std::string (attr);
      } else if (name == "ice-pwd") {
        sessionPwd = std::string (attr);
      } else if (name == "fingerprint") {
        sessionFingerprint = std::string (attr);
      } else if (name == "setup") {
        sessionSetup = std::string (attr);
      } else if (name == "extmap") {
        SdpExtmap e;
        if (sessionExtmaps.size () < kSdpMaxExtmaps && parseExtmap (attr, e))
          sessionExtmaps.push_back (std::move (e));
      }
      continue;
    }

    if (name == "rtpmap") {
      int pt;
      std::string codec;
      uint32_t rate;
      unsigned channels;
      if (parseRtpmap (attr, pt, codec, rate, channels))
        if (SdpCodecOffer *c = findCodec (*m, pt)) {
          c->encodingName = codec;
          c->clockRate = rate;
          c->channels = channels;
        }
    } else if (name == "fmtp") {
      int pt;
      std::string_view rest;
      if (splitPt (attr, pt, rest))
        if (SdpCodecOffer *c = findCodec (*m, pt))
          c->fmtp = std::string (rest);
    } else if (name == "rtcp-fb") {
      int pt;
      std::string_view rest;
      if (splitPt (attr, pt, rest) && !rest.empty ()) {
        std::string fb;
        for (auto tok : tokens (rest))
          fb += (fb.empty () ? "" : " ") + std::string (tok);
        if (pt == -2) {
          if (starFeedback.back ().size () < kSdpMaxFeedbackPerCodec)
            starFeedback.back ().push_back (fb);
        } else if (SdpCodecOffer *c = findCodec (*m, pt)) {
          if (c->feedback.size () < kSdpMaxFeedbackPerCodec)
            c->feedback.push_back (fb);
        }
      }
    } else if (name == "extmap") {
      SdpExtmap e;
      if (m->extmaps.size () < kSdpMaxExtmaps && parseExtmap (attr, e))
        m->extmaps.push_back (std::move (e));
    } else if (name == "mid") {
      m->mid = std::string (attr);
    } else if (name == "sendrecv") {
      m->direction = SdpDirection::SendRecv;
    } else if (name == "sendonly") {
      m->direction = SdpDirection::SendOnly;
    } else if (name == "recvonly") {
      m->direction = SdpDirection::RecvOnly;
    } else if (name == "inactive") {
      m->direction = SdpDirection::Inactive;
    } else if (name == "rtcp-mux") {
      m->rtcpMux = true;
    } else if (name == "rtcp-rsize") {
      m->rtcpRsize = true;
    } else if (name == "bundle-only") {
      m->bundleOnly = true;
    } else if (name == "ice-ufrag") {
      m->iceUfrag = std::string (attr);
    } else if (name == "ice-pwd") {
      m->icePwd = std::string (attr);
    } else if (name == "fingerprint") {
      m->fingerprint = std::string (attr);
    } else if (name == "setup") {
      m->setup = std::string (attr);
    }
  }
  if (!sawVersion)
    return fail ("not SDP: empty");

  for (size_t i = 0; i < offer.media.size (); i++) {
    SdpMediaOffer &m = offer.media[i];
    if (m.iceUfrag.empty ())
      m.iceUfrag = sessionUfrag;
    if (m.icePwd.empty ())
      m.icePwd = sessionPwd;
    if (m.fingerprint.empty ())
      m.fingerprint = sessionFingerprint;
    if (m.setup.empty ())
      m.setup = sessionSetup;
    /* RFC 8285 6: a session-level extmap applies to every m-line (one of
     * the m-line's own with the same id wins). */
    for (const auto &e : sessionExtmaps)
      if (std::none_of (m.extmaps.begin (), m.extmaps.end (),
              [&e] (const SdpExtmap &x) { return x.id == e.id; }))
        m.extmaps.push_back (e);
    for (auto &c : m.codecs)
      for (const auto &fb : starFeedback[i])
        if (c.feedback.size () < kSdpMaxFeedbackPerCodec &&
            std::find (c.feedback.begin (), c.feedback.end (), fb) == c.feedback.end ())
          c.feedback.push_back (fb);
  }
  return offer;
}

int
SdpAnswerer::matchCodec (const TrackCodec &track, const SdpMediaOffer &media)
{
  const std::string name = upper (track.encodingName);
  if (name == "H264") {
    const H264Profile ours = h264ProfileFromId (track.profileLevelId);
    int best = -1, bestScore = 0;
    for (const auto &c : media.codecs) {
      if (upper (c.encodingName) != "H264" || c.clockRate != 90000)
        continue;
      int mode = 0;
      if (auto m = c.fmtpParameter ("packetization-mode"))
        if (!parseNumber (std::string_view (*m), mode))
          continue;
      if (mode != track.packetizationMode)
        continue;
      /* RFC 6184 8.1: no profile-level-id means 42000A (Baseline) */
      const H264Profile theirs =
          h264ProfileFromId (c.fmtpParameter ("profile-level-id").value_or ("42000a"));
      int score = 0;
      if (ours == H264Profile::Unknown)
        score = theirs == H264Profile::ConstrainedBaseline ? 2 : 1;
      else if (theirs == ours)
        score = 3;
      else if ((ours == H264Profile::ConstrainedBaseline && theirs == H264Profile::Baseline) ||
          (ours == H264Profile::ConstrainedHigh && theirs == H264Profile::High))
        score = 2;  /* a decoder of the larger profile decodes the constrained one */
      if (score > bestScore) {
        best = c.payloadType;
        bestScore = score;
      }
    }
    return best;
  }
  for (const auto &c : media.codecs) {
    if (upper (c.encodingName) != name)
      continue;
    if (track.clockRate != 0 && c.clockRate != track.clockRate)
      continue;
    return c.payloadType;
  }
  return -1;
}

int
SdpAnswerer::matchRtx (const SdpMediaOffer &media, int pt)
{
  for (const auto &c : media.codecs) {
    if (c.payloadType == pt || !iequals (c.encodingName, "rtx") || c.clockRate == 0)
      continue;
    int apt = -1;
    if (auto a = c.fmtpParameter ("apt"))
      if (!parseNumber (std::string_view (*a), apt))
        continue;
    if (apt == pt)
      return c.payloadType;
  }
  return -1;
}

std::optional<SdpNegotiation>
SdpAnswerer::answer (std::string_view offerText, const SdpAnswerParams &params,
    std::string *error) const
{
  auto offer = sdpParseOffer (offerText, error);
  if (!offer)
    return std::nullopt;
  return answer (*offer, params, error);
}

std::optional<SdpNegotiation>
SdpAnswerer::answer (const SdpOffer &offer, const SdpAnswerParams &params,
    std::string *error) const
{
  auto fail = [error] (std::string why) -> std::optional<SdpNegotiation> {
    if (error)
      *error = std::move (why);
    return std::nullopt;
  };
  if (offer.iceLite)
    return fail ("the offer is ICE-lite too (a=ice-lite): one side must be a full ICE agent");
  if (offer.media.empty ())
    return fail ("the offer has no m-line");

  std::vector<TrackCodec> tracks = tracks_;
  std::sort (tracks.begin (), tracks.end (),
      [] (const TrackCodec &a, const TrackCodec &b) { return a.trackId < b.trackId; });
  std::vector<bool> used (tracks.size (), false);

  const bool bundled = !offer.bundle.empty ();
  auto inBundle = [&offer] (const std::string &mid) {
    return !mid.empty () &&
        std::find (offer.bundle.begin (), offer.bundle.end (), mid) != offer.bundle.end ();
  };

  SdpNegotiation result;
  std::vector<std::string> why;  /* why m-lines were not served, for the error */
  std::set<uint32_t> ssrcs;
  std::set<std::string> mids;

  for (size_t i = 0; i < offer.media.size (); i++) {
    const SdpMediaOffer &m = offer.media[i];
    const std::string label = "m-line " + std::to_string (i) + " (" + m.media + ")";
    MediaKind kind;
    if (m.media == "video")
      kind = MediaKind::Video;
    else if (m.media == "audio")
      kind = MediaKind::Audio;
    else {
      why.push_back (label + ": not audio or video");
      continue;
    }
    if (m.proto != "UDP/TLS/RTP/SAVPF" && m.proto != "UDP/TLS/RTP/SAVP") {
      why.push_back (label + ": transport " + m.proto + " is not DTLS-SRTP");
      continue;
    }
    if (m.port == 0 && !m.bundleOnly) {
      why.push_back (label + ": disabled by the offer (port 0)");
      continue;
    }
    if (m.direction != SdpDirection::RecvOnly && m.direction != SdpDirection::SendRecv) {
      why.push_back (label + ": the viewer does not receive on it");
      continue;
    }
    if (!m.rtcpMux) {
      why.push_back (label + ": no a=rtcp-mux (RTP and RTCP share one port here)");
      continue;
    }
    if (bundled && !inBundle (m.mid)) {
      why.push_back (label + ": not in the offer's BUNDLE group");
      continue;
    }
    if (!bundled && !result.accepted.empty ()) {
      why.push_back (label + ": the offer does not BUNDLE and one transport serves one m-line");
      continue;
    }
    if (!m.mid.empty () && mids.count (m.mid)) {
      why.push_back (label + ": mid " + m.mid + " used twice");
      continue;
    }

    int pt = -1;
    size_t trackIndex = 0;
    for (size_t t = 0; t < tracks.size () && pt < 0; t++) {
      if (used[t] || tracks[t].kind != kind)
        continue;
      pt = matchCodec (tracks[t], m);
      trackIndex = t;
    }
    if (pt < 0) {
      std::string ours;
      for (size_t t = 0; t < tracks.size (); t++)
        if (tracks[t].kind == kind && !used[t])
          ours += (ours.empty () ? "" : ", ") + upper (tracks[t].encodingName);
      why.push_back (label + (ours.empty () ? ": the stream has no " + m.media + " track left"
          : ": no offered codec matches the stream's " + ours));
      continue;
    }

    /* The transport comes from the first accepted m-line (the BUNDLE's). */
    if (result.accepted.empty ()) {
      if (m.iceUfrag.size () < 4 || m.iceUfrag.size () > 256 || !iceCharsOk (m.iceUfrag))
        return fail ("the offer's a=ice-ufrag is missing or not 4-256 ICE characters");
      if (m.icePwd.size () < 22 || m.icePwd.size () > 256 || !iceCharsOk (m.icePwd))
        return fail ("the offer's a=ice-pwd is missing or not 22-256 ICE characters");
      if (m.fingerprint.empty ())
        return fail ("the offer has no a=fingerprint");
      if (m.setup == "passive")
        return fail ("the offer's DTLS role is a=setup:passive; this answer is passive and "
            "needs a=setup:active or actpass");
      if (!m.setup.empty () && m.setup != "active" && m.setup != "actpass")
        return fail ("the offer's a=setup:" + m.setup + " is not active, passive or actpass");
      result.remoteUfrag = m.iceUfrag;
      result.remotePwd = m.icePwd;
      result.remoteFingerprint = m.fingerprint;
    }

    used[trackIndex] = true;
    const TrackCodec &track = tracks[trackIndex];
    const SdpCodecOffer *codec = nullptr;
    for (const auto &c : m.codecs)
      if (c.payloadType == pt)
        codec = &c;

    SdpAcceptedMedia a;
    a.index = i;
    a.mid = m.mid;
    a.trackId = track.trackId;
    a.kind = kind;
    a.payloadType = static_cast<uint8_t> (pt);
    a.clockRate = codec->clockRate;
    a.encodingName = codec->encodingName;
    for (const auto &fb : codec->feedback) {
      if (fb == "nack")
        a.nack = true;
      else if (fb == "nack pli")
        a.pli = true;
      else if (fb == "ccm fir")
        a.fir = true;
      else if (fb == "goog-remb")
        a.remb = true;
      else if (fb == "transport-cc")
        a.transportCc = true;
    }
    /* The transport-wide sequence number goes in a one-byte header
     * (ids 1-14); an offer that only has a two-byte id for it gets none. */
    if (a.transportCc)
      if (const int ext = m.extmapId (kTransportWideCcUri); ext >= 1 && ext <= 14)
        a.transportCcExtId = static_cast<uint8_t> (ext);
    auto drawSsrc = [&params, &ssrcs, i] (uint32_t fallback) -> uint32_t {
      uint32_t ssrc = 0;
      for (int tries = 0; tries < 64 && (ssrc == 0 || ssrcs.count (ssrc)); tries++)
        ssrc = params.newSsrc ? params.newSsrc () : static_cast<uint32_t> (fallback + i);
      if (ssrc == 0 || ssrcs.count (ssrc))
        return 0;
      ssrcs.insert (ssrc);
      return ssrc;
    };
    a.ssrc = drawSsrc (0x10000);
    if (a.ssrc == 0)
      return fail ("could not draw a distinct SSRC");
    /* RTX (RFC 4588) only answers NACKs, so only with NACK; and only for
     * video, as browsers offer it. */
    if (kind == MediaKind::Video && a.nack)
      if (const int rtx = matchRtx (m, pt); rtx >= 0) {
        a.rtxPayloadType = static_cast<uint8_t> (rtx);
        for (const auto &c : m.codecs)
          if (c.payloadType == rtx)
            a.rtxClockRate = c.clockRate;
        a.rtxSsrc = drawSsrc (0x20000);
        if (a.rtxSsrc == 0)
          return fail ("could not draw a distinct SSRC");
      }
    if (!m.mid.empty ())
      mids.insert (m.mid);
    result.accepted.push_back (std::move (a));
  }

  if (result.accepted.empty ()) {
    std::string msg = "no m-line of the offer can be served";
    for (size_t i = 0; i < why.size (); i++)
      msg += (i == 0 ? ": " : "; ") + why[i];
    return fail (msg);
  }
  if (params.addresses.empty ())
    return fail ("no local address to announce");

  /* Write the answer. */
  const std::string &first = params.addresses.front ();
  auto ipVersion = [] (const std::string &a) {
    return a.find (':') != std::string::npos ? "IP6" : "IP4";
  };
  std::ostringstream o;
  o << "v=0\r\n"
    << "o=- " << params.sessionId << " 2 IN " << ipVersion (first) << " " << first << "\r\n"
    << "s=-\r\n"
    << "t=0 0\r\n"
    << "a=ice-lite\r\n";
  if (bundled) {
    o << "a=group:BUNDLE";
    for (const auto &mid : offer.bundle)
      for (const auto &a : result.accepted)
        if (a.mid == mid)
          o << " " << mid;
    o << "\r\n";
  }
  o << "a=msid-semantic: WMS " << params.streamId << "\r\n";

  size_t next = 0;
  for (size_t i = 0; i < offer.media.size (); i++) {
    const SdpMediaOffer &m = offer.media[i];
    const SdpAcceptedMedia *a = next < result.accepted.size () && result.accepted[next].index == i
        ? &result.accepted[next++] : nullptr;
    if (!a) {
      /* Rejected: port 0, the first offered format, the mid kept (JSEP 5.3.1). */
      o << "m=" << m.media << " 0 " << m.proto << " "
        << (m.codecs.empty () ? std::string ("0") : std::to_string (m.codecs.front ().payloadType))
        << "\r\n"
        << "c=IN IP4 0.0.0.0\r\n";
      if (!m.mid.empty ())
        o << "a=mid:" << m.mid << "\r\n";
      o << "a=inactive\r\n";
      continue;
    }
    const SdpCodecOffer *codec = nullptr;
    for (const auto &c : m.codecs)
      if (c.payloadType == a->payloadType)
        codec = &c;
    const std::string trackName = params.streamId + "-" + mediaKindName (a->kind)
        + std::to_string (a->trackId);
    o << "m=" << m.media << " " << params.port << " " << m.proto << " "
      << int (a->payloadType);
    if (a->rtxSsrc)
      o << " " << int (a->rtxPayloadType);
    o << "\r\n"
      << "c=IN " << ipVersion (first) << " " << first << "\r\n"
      << "a=ice-ufrag:" << params.iceUfrag << "\r\n"
      << "a=ice-pwd:" << params.icePwd << "\r\n"
      << "a=fingerprint:" << params.fingerprint << "\r\n"
      << "a=setup:passive\r\n";
    if (!a->mid.empty ())
      o << "a=mid:" << a->mid << "\r\n";
    o << "a=sendonly\r\n"
      << "a=rtcp-mux\r\n";
    if (m.rtcpRsize)
      o << "a=rtcp-rsize\r\n";
    /* Only the extension the fan-out writes (RFC 8285 6: the answer may
     * leave out any offered). */
    if (a->transportCcExtId)
      o << "a=extmap:" << int (a->transportCcExtId) << " " << kTransportWideCcUri << "\r\n";
    o << "a=rtpmap:" << int (a->payloadType) << " " << codec->encodingName << "/"
      << codec->clockRate;
    if (codec->channels)
      o << "/" << codec->channels;
    o << "\r\n";
    const int pt = a->payloadType;
    if (a->nack)
      o << "a=rtcp-fb:" << pt << " nack\r\n";
    if (a->pli)
      o << "a=rtcp-fb:" << pt << " nack pli\r\n";
    if (a->fir)
      o << "a=rtcp-fb:" << pt << " ccm fir\r\n";
    if (a->remb)
      o << "a=rtcp-fb:" << pt << " goog-remb\r\n";
    if (a->transportCc)
      o << "a=rtcp-fb:" << pt << " transport-cc\r\n";
    if (!codec->fmtp.empty ())
      o << "a=fmtp:" << pt << " " << codec->fmtp << "\r\n";
    if (a->rtxSsrc)
      o << "a=rtpmap:" << int (a->rtxPayloadType) << " rtx/" << a->rtxClockRate << "\r\n"
        << "a=fmtp:" << int (a->rtxPayloadType) << " apt=" << pt << "\r\n";
    o << "a=msid:" << params.streamId << " " << trackName << "\r\n";
    /* RFC 5576 4.2 / RFC 4588 8.7: the RTX stream pairs with the media
     * stream by SSRC. */
    if (a->rtxSsrc)
      o << "a=ssrc-group:FID " << a->ssrc << " " << a->rtxSsrc << "\r\n";
    o << "a=ssrc:" << a->ssrc << " cname:" << params.cname << "\r\n"
      << "a=ssrc:" << a->ssrc << " msid:" << params.streamId << " " << trackName << "\r\n";
    if (a->rtxSsrc)
      o << "a=ssrc:" << a->rtxSsrc << " cname:" << params.cname << "\r\n"
        << "a=ssrc:" << a->rtxSsrc << " msid:" << params.streamId << " " << trackName << "\r\n";
    /* Host candidates (RFC 8839 5.1): priority = 2^24 * 126 (host)
     * + 2^8 * local preference + (256 - component 1). */
    uint32_t localPreference = 65535;
    unsigned foundation = 1;
    for (const auto &address : params.addresses) {
      const uint32_t priority = (126u << 24) | (localPreference << 8) | 255u;
      o << "a=candidate:" << foundation++ << " 1 udp " << priority << " " << address << " "
        << params.port << " typ host\r\n";
      localPreference = localPreference > 0 ? localPreference - 1 : 0;
    }
    o << "a=end-of-candidates\r\n";
  }
  result.answer = o.str ();
  return result;
}

}  // namespace xdn::fanout
