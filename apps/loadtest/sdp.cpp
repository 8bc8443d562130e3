#include "sdp.h"

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <sstream>

namespace xdn::loadtest {

std::string
buildOffer (const OfferParams &p)
{
  std::string mids;
  if (p.video)
    mids += " 0";
  if (p.audio)
    mids += p.video ? " 1" : " 0";
  std::ostringstream s;
  s << "v=0\r\n"
    << "o=- " << p.sessionId << " 2 IN IP4 127.0.0.1\r\n"
    << "s=-\r\n"
    << "t=0 0\r\n"
    << "a=group:BUNDLE" << mids << "\r\n"
    << "a=msid-semantic: WMS\r\n";

  std::string candidate;
  if (!p.candidateAddress.empty ()) {
    candidate = "a=candidate:1 1 udp 2130706431 " + p.candidateAddress + " " +
        std::to_string (p.candidatePort) + " typ host\r\n";
  }
  auto common = [&] (const std::string &mid) {
    s << "c=IN IP4 0.0.0.0\r\n"
      << "a=rtcp:9 IN IP4 0.0.0.0\r\n"
      << "a=ice-ufrag:" << p.iceUfrag << "\r\n"
      << "a=ice-pwd:" << p.icePwd << "\r\n"
      << "a=fingerprint:" << p.fingerprint << "\r\n"
      << "a=setup:active\r\n"
      << "a=mid:" << mid << "\r\n"
      << (p.publish ? "a=sendonly\r\n" : "a=recvonly\r\n")
      << "a=rtcp-mux\r\n"
      << "a=rtcp-rsize\r\n";
  };
  auto source = [&] (uint32_t ssrc, const char *track) {
    if (!p.publish || !ssrc)
      return;
    s << "a=msid:xdn-loadtest " << track << "\r\n"
      << "a=ssrc:" << ssrc << " cname:" << p.cname << "\r\n"
      << "a=ssrc:" << ssrc << " msid:xdn-loadtest " << track << "\r\n";
  };
  int mid = 0;
  if (p.video) {
    s << "m=video 9 UDP/TLS/RTP/SAVPF " << kOfferH264Pt;
    if (!p.publish)
      s << " " << kOfferVp8Pt;
    s << "\r\n";
    common (std::to_string (mid++));
    s << "a=rtpmap:" << kOfferH264Pt << " H264/90000\r\n";
    if (p.nack)
      s << "a=rtcp-fb:" << kOfferH264Pt << " nack\r\n";
    s << "a=rtcp-fb:" << kOfferH264Pt << " nack pli\r\n"
      << "a=rtcp-fb:" << kOfferH264Pt << " ccm fir\r\n"
      << "a=fmtp:" << kOfferH264Pt
      << " level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f\r\n";
    if (!p.publish) {
      s << "a=rtpmap:" << kOfferVp8Pt << " VP8/90000\r\n";
      if (p.nack)
        s << "a=rtcp-fb:" << kOfferVp8Pt << " nack\r\n";
      s << "a=rtcp-fb:" << kOfferVp8Pt << " nack pli\r\n"
        << "a=rtcp-fb:" << kOfferVp8Pt << " ccm fir\r\n";
    }
    source (p.videoSsrc, "video");
    s << candidate << (candidate.empty () ? "" : "a=end-of-candidates\r\n");
  }
  if (p.audio) {
    s << "m=audio 9 UDP/TLS/RTP/SAVPF " << kOfferOpusPt << "\r\n";
    common (std::to_string (mid++));
    s << "a=rtpmap:" << kOfferOpusPt << " opus/48000/2\r\n"
      << "a=fmtp:" << kOfferOpusPt << " minptime=10;useinbandfec=1\r\n";
    source (p.audioSsrc, "audio");
    if (!p.video)
      s << candidate << (candidate.empty () ? "" : "a=end-of-candidates\r\n");
  }
  return s.str ();
}

static std::string
lower (std::string s)
{
  for (char &c : s)
    c = static_cast<char> (std::tolower (static_cast<unsigned char> (c)));
  return s;
}

static std::string
upper (std::string s)
{
  for (char &c : s)
    c = static_cast<char> (std::toupper (static_cast<unsigned char> (c)));
  return s;
}

static std::vector<std::string>
splitSpaces (const std::string &s)
{
  std::vector<std::string> out;
  std::istringstream in (s);
  std::string w;
  while (in >> w)
    out.push_back (w);
  return out;
}

/* Parses all of @s as an unsigned number no larger than @max. */
static bool
parseUnsigned (const std::string &s, uint64_t max, uint64_t &out)
{
  if (s.empty () || s.size () > 20)
    return false;
  uint64_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '9')
      return false;
    v = v * 10 + static_cast<uint64_t> (c - '0');
    if (v > max)
      return false;
  }
  out = v;
  return true;
}

bool
parseCandidate (const std::string &value, SdpCandidate &out)
{
  std::string v = value;
  if (v.rfind ("candidate:", 0) == 0)
    v = v.substr (10);
  auto f = splitSpaces (v);
  /* foundation component transport priority address port "typ" type ... */
  if (f.size () < 8 || f[6] != "typ")
    return false;
  uint64_t component, priority, port;
  if (!parseUnsigned (f[1], 256, component) || !parseUnsigned (f[3], 0xffffffffu, priority) ||
      !parseUnsigned (f[5], 65535, port) || port == 0)
    return false;
  out.foundation = f[0];
  out.component = static_cast<int> (component);
  out.transport = lower (f[2]);
  out.priority = static_cast<uint32_t> (priority);
  out.address = f[4];
  out.port = static_cast<uint16_t> (port);
  out.type = lower (f[7]);
  return true;
}

const SdpCodec *
SdpAnswer::codec (int pt) const
{
  for (const auto &m : media) {
    auto it = m.codecs.find (pt);
    if (it != m.codecs.end () && !m.rejected ())
      return &it->second;
  }
  return nullptr;
}

std::string
SdpAnswer::kindOf (int pt) const
{
  for (const auto &m : media)
    if (!m.rejected () && std::find (m.payloadTypes.begin (), m.payloadTypes.end (), pt) !=
        m.payloadTypes.end ())
      return m.kind;
  return "";
}

bool
parseAnswer (const std::string &text, SdpAnswer &out, std::string *error)
{
  auto fail = [&] (const std::string &why) {
    if (error)
      *error = "bad SDP answer: " + why;
    return false;
  };
  out = SdpAnswer ();
  if (text.rfind ("v=0", 0) != 0)
    return fail ("it does not start with v=0");

  /* Session-level values, overridden by the first m-line that has its own. */
  std::string sessUfrag, sessPwd, sessFingerprint, sessSetup;
  std::string mediaUfrag, mediaPwd, mediaFingerprint, mediaSetup;
  std::string sessionConnection, firstMediaConnection;
  SdpMedia *current = nullptr;
  bool anyRtcpMux = false;

  std::istringstream in (text);
  std::string line;
  size_t lineNo = 0;
  while (std::getline (in, line)) {
    lineNo++;
    if (!line.empty () && line.back () == '\r')
      line.pop_back ();
    if (line.size () < 2 || line[1] != '=')
      continue;  /* blank or malformed lines are skipped, as browsers do */
    const char type = line[0];
    const std::string value = line.substr (2);
    if (type == 'm') {
      auto f = splitSpaces (value);
      if (f.size () < 3)
        return fail ("line " + std::to_string (lineNo) + ": malformed m= line");
      SdpMedia m;
      m.kind = f[0];
      uint64_t port;
      std::string portText = f[1].substr (0, f[1].find ('/'));
      if (!parseUnsigned (portText, 65535, port))
        return fail ("line " + std::to_string (lineNo) + ": bad port in m= line");
      m.port = static_cast<uint16_t> (port);
      for (size_t i = 3; i < f.size (); i++) {
        uint64_t pt;
        if (parseUnsigned (f[i], 127, pt))
          m.payloadTypes.push_back (static_cast<int> (pt));
      }
      out.media.push_back (std::move (m));
      current = &out.media.back ();
      continue;
    }
    if (type == 'c') {
      auto f = splitSpaces (value);
      std::string address = f.size () >= 3 ? f[2].substr (0, f[2].find ('/')) : "";
      if (!current)
        sessionConnection = address;
      else if (out.media.size () == 1)
        firstMediaConnection = address;
      continue;
    }
    if (type != 'a')
      continue;
    const size_t colon = value.find (':');
    const std::string name = value.substr (0, colon);
    const std::string arg = colon == std::string::npos ? "" : value.substr (colon + 1);
    if (name == "ice-ufrag") {
      if (!current) sessUfrag = arg;
      else if (mediaUfrag.empty ()) mediaUfrag = arg;
    } else if (name == "ice-pwd") {
      if (!current) sessPwd = arg;
      else if (mediaPwd.empty ()) mediaPwd = arg;
    } else if (name == "fingerprint") {
      if (!current) sessFingerprint = arg;
      else if (mediaFingerprint.empty ()) mediaFingerprint = arg;
    } else if (name == "setup") {
      if (!current) sessSetup = lower (arg);
      else if (mediaSetup.empty ()) mediaSetup = lower (arg);
    } else if (name == "ice-lite") {
      out.iceLite = true;
    } else if (name == "rtcp-mux") {
      anyRtcpMux = true;
    } else if (name == "candidate") {
      SdpCandidate c;
      if (parseCandidate (arg, c)) {
        bool dup = std::any_of (out.candidates.begin (), out.candidates.end (),
            [&] (const SdpCandidate &o) {
              return o.address == c.address && o.port == c.port && o.transport == c.transport &&
                  o.component == c.component;
            });
        if (!dup)
          out.candidates.push_back (c);
      }
    } else if (current && name == "mid") {
      current->mid = arg;
    } else if (current && (name == "sendonly" || name == "recvonly" || name == "sendrecv" ||
                   name == "inactive")) {
      current->direction = name;
    } else if (current && name == "rtpmap") {
      /* 96 H264/90000[/channels] */
      auto sp = arg.find (' ');
      uint64_t pt;
      if (sp == std::string::npos || !parseUnsigned (arg.substr (0, sp), 127, pt))
        continue;
      std::string enc = arg.substr (sp + 1);
      auto slash = enc.find ('/');
      SdpCodec &c = current->codecs[static_cast<int> (pt)];
      c.name = upper (enc.substr (0, slash));
      uint64_t rate = 0;
      if (slash != std::string::npos) {
        std::string r = enc.substr (slash + 1);
        r = r.substr (0, r.find ('/'));
        if (parseUnsigned (r, 10000000, rate))
          c.clockRate = static_cast<uint32_t> (rate);
      }
    } else if (current && name == "fmtp") {
      auto sp = arg.find (' ');
      uint64_t pt;
      if (sp != std::string::npos && parseUnsigned (arg.substr (0, sp), 127, pt))
        current->codecs[static_cast<int> (pt)].fmtp = arg.substr (sp + 1);
    } else if (current && name == "ssrc") {
      uint64_t ssrc;
      auto sp = arg.find (' ');
      if (parseUnsigned (arg.substr (0, sp), 0xffffffffu, ssrc) &&
          std::find (current->ssrcs.begin (), current->ssrcs.end (), ssrc) ==
              current->ssrcs.end ())
        current->ssrcs.push_back (static_cast<uint32_t> (ssrc));
    }
  }

  out.iceUfrag = !mediaUfrag.empty () ? mediaUfrag : sessUfrag;
  out.icePwd = !mediaPwd.empty () ? mediaPwd : sessPwd;
  out.fingerprint = !mediaFingerprint.empty () ? mediaFingerprint : sessFingerprint;
  out.setup = !mediaSetup.empty () ? mediaSetup : sessSetup;
  out.rtcpMux = anyRtcpMux;

  /* Static payload types without a=rtpmap. */
  for (auto &m : out.media)
    for (int pt : m.payloadTypes)
      if (!m.codecs.count (pt) && pt == 0)
        m.codecs[pt] = SdpCodec{"PCMU", 8000, ""};

  if (out.media.empty ())
    return fail ("no m= line");
  if (std::all_of (out.media.begin (), out.media.end (),
          [] (const SdpMedia &m) { return m.rejected () || m.direction == "inactive"; }))
    return fail ("every m= line is rejected or inactive (the server has nothing to send us)");
  if (out.iceUfrag.empty () || out.icePwd.empty ())
    return fail ("no a=ice-ufrag / a=ice-pwd");
  if (out.fingerprint.empty ())
    return fail ("no a=fingerprint");
  if (out.setup == "active")
    return fail ("a=setup:active answers our a=setup:active (one side must be the DTLS server)");

  if (out.candidates.empty ()) {
    /* No a=candidate: the address of c= and the first m-line's port. */
    const std::string &address = !firstMediaConnection.empty () ? firstMediaConnection
                                                                 : sessionConnection;
    if (!address.empty () && address != "0.0.0.0" && address != "::" && out.media[0].port > 9) {
      SdpCandidate c;
      c.foundation = "c";
      c.transport = "udp";
      c.address = address;
      c.port = out.media[0].port;
      c.type = "host";
      out.candidates.push_back (c);
    }
  }
  if (out.candidates.empty ())
    return fail ("no ICE candidate (no a=candidate and no address in c=)");
  return true;
}

}  // namespace xdn::loadtest
