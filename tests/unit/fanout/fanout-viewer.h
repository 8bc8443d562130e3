/* A WebRTC viewer built in the test from the fan-out's own building blocks:
 * its offer (written by hand in the format browsers use), ICE as the
 * controlling agent (STUN Binding requests with USE-CANDIDATE through
 * StunBuilder), a DTLS client (DtlsSession), SRTP unprotect and SRTCP
 * protect (SrtpContext). It records every packet it receives and can send
 * RTCP feedback (NACK, PLI, FIR, REMB, BYE, receiver reports).
 *
 * One UDP socket on 127.0.0.1; not thread-safe (one thread drives it). */
#pragma once

#include "xdn-fanout-addr.h"
#include "xdn-fanout-bytes.h"
#include "xdn-fanout-dtls.h"
#include "xdn-fanout-rtcp.h"
#include "xdn-fanout-srtp.h"
#include "xdn-fanout-stun.h"

#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <vector>

namespace fanouttest {

using namespace xdn::fanout;

inline std::shared_ptr<DtlsContext>
viewerDtlsContext ()
{
  static auto ctx = DtlsContext::create (DtlsCertificate::generate ());
  return ctx;
}

struct ReceivedRtp {
  uint8_t pt = 0;
  bool marker = false;
  uint16_t seq = 0;
  uint32_t ts = 0;
  uint32_t ssrc = 0;
  std::vector<uint8_t> payload;
  /* The header extension: its profile (0xBEDE: one-byte form), and the
   * transport-wide sequence number if an element with the negotiated id
   * carries it (-1: none). */
  bool extension = false;
  uint16_t extensionProfile = 0;
  int transportSeq = -1;
  size_t extensionSize = 0;  /* bytes of extension elements (after the 4-byte head) */
  size_t wireSize = 0;       /* SRTP packet as received */
};

struct ReceivedSr {
  uint32_t ssrc = 0;
  uint64_t ntp = 0;
  uint32_t rtpTs = 0;
  uint32_t packets = 0;
  uint32_t octets = 0;
  std::chrono::steady_clock::time_point at;
};

struct OfferOptions {
  bool video = true;
  bool audio = true;
  bool bundle = true;
  bool rtcpMux = true;
  std::string setup = "actpass";
  /* H.264 types as Chromium lists them, VP8 first. */
  bool h264 = true;
  bool vp8 = true;
  bool feedback = true;        /* nack, nack pli, ccm fir, goog-remb, transport-cc */
  bool transportWideCc = true; /* a=extmap:3 of the transport-wide sequence number */
  bool fingerprint = true;
  /* The rtx types (RFC 4588, apt=) Chromium lists after each video type.
   * Without them the viewer gets retransmissions as the original packets. */
  bool rtx = true;
};

class TestViewer {
public:
  TestViewer ()
  {
    openSocket ();
    ufrag_ = "vw" + std::to_string (local_.port ());
    pwd_ = "viewerPasswordOf24Chars" + std::to_string (local_.port () % 10);
  }
  ~TestViewer ()
  {
    if (fd_ >= 0)
      close (fd_);
  }

  /* The viewer's address changes (a NAT rebinding): a new local port, the
   * old one closed. */
  void moveToNewPort ()
  {
    close (fd_);
    openSocket ();
  }
  TestViewer (const TestViewer &) = delete;
  TestViewer &operator= (const TestViewer &) = delete;

  const SockAddr &localAddress () const { return local_; }
  int fd () const { return fd_; }

  /* An offer in Chromium's format (recvonly transceivers, BUNDLE, the
   * usual payload types). */
  std::string offer (const OfferOptions &o = {}) const
  {
    std::ostringstream s;
    const std::string fb = o.feedback
        ? "a=rtcp-fb:%d goog-remb\r\na=rtcp-fb:%d transport-cc\r\na=rtcp-fb:%d ccm fir\r\n"
          "a=rtcp-fb:%d nack\r\na=rtcp-fb:%d nack pli\r\n" : "";
    auto feedback = [&] (int pt) {
      std::string out = fb;
      size_t p;
      while ((p = out.find ("%d")) != std::string::npos)
        out.replace (p, 2, std::to_string (pt));
      return out;
    };
    auto transport = [&] (const std::string &mid) {
      std::ostringstream t;
      t << "c=IN IP4 0.0.0.0\r\n"
        << "a=rtcp:9 IN IP4 0.0.0.0\r\n"
        << "a=ice-ufrag:" << ufrag_ << "\r\n"
        << "a=ice-pwd:" << pwd_ << "\r\n"
        << "a=ice-options:trickle\r\n";
      if (o.fingerprint)
        t << "a=fingerprint:" << viewerDtlsContext ()->certificate ().fingerprint ().toString ()
          << "\r\n";
      t << "a=setup:" << o.setup << "\r\n"
        << "a=mid:" << mid << "\r\n"
        << "a=extmap:1 urn:ietf:params:rtp-hdrext:toffset\r\n"
        << (o.transportWideCc ? "a=extmap:3 http://www.ietf.org/id/"
            "draft-holmer-rmcat-transport-wide-cc-extensions-01\r\n" : "")
        << "a=recvonly\r\n";
      if (o.rtcpMux)
        t << "a=rtcp-mux\r\n";
      t << "a=rtcp-rsize\r\n";
      return t.str ();
    };
    s << "v=0\r\n"
      << "o=- 4611731400430051336 2 IN IP4 127.0.0.1\r\n"
      << "s=-\r\n"
      << "t=0 0\r\n";
    std::vector<std::string> mids;
    if (o.video)
      mids.push_back ("0");
    if (o.audio)
      mids.push_back (o.video ? "1" : "0");
    if (o.bundle) {
      s << "a=group:BUNDLE";
      for (const auto &m : mids)
        s << " " << m;
      s << "\r\n";
    }
    s << "a=extmap-allow-mixed\r\n"
      << "a=msid-semantic: WMS\r\n";
    if (o.video) {
      auto rtx = [&o] (int pt, int apt) {
        return o.rtx ? "a=rtpmap:" + std::to_string (pt) + " rtx/90000\r\na=fmtp:"
            + std::to_string (pt) + " apt=" + std::to_string (apt) + "\r\n" : std::string ();
      };
      auto types = [&o] (std::vector<int> pts) {
        std::string out;
        for (size_t i = 0; i < pts.size (); i++)
          if (o.rtx || i % 2 == 0)  /* every other one is an rtx type */
            out += " " + std::to_string (pts[i]);
        return out;
      };
      s << "m=video 9 UDP/TLS/RTP/SAVPF";
      if (o.vp8)
        s << types ({96, 97});
      if (o.h264)
        s << types ({102, 103, 104, 105, 106, 107, 108, 109, 127, 125});
      s << types ({116, 117}) << " 118\r\n" << transport ("0");
      if (o.vp8)
        s << "a=rtpmap:96 VP8/90000\r\n" << feedback (96) << rtx (97, 96);
      if (o.h264)
        s << "a=rtpmap:102 H264/90000\r\n" << feedback (102)
          << "a=fmtp:102 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42001f\r\n"
          << rtx (103, 102)
          << "a=rtpmap:104 H264/90000\r\n" << feedback (104)
          << "a=fmtp:104 level-asymmetry-allowed=1;packetization-mode=0;profile-level-id=42001f\r\n"
          << rtx (105, 104)
          << "a=rtpmap:106 H264/90000\r\n" << feedback (106)
          << "a=fmtp:106 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f\r\n"
          << rtx (107, 106)
          << "a=rtpmap:108 H264/90000\r\n" << feedback (108)
          << "a=fmtp:108 level-asymmetry-allowed=1;packetization-mode=0;profile-level-id=42e01f\r\n"
          << rtx (109, 108)
          << "a=rtpmap:127 H264/90000\r\n" << feedback (127)
          << "a=fmtp:127 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=4d001f\r\n"
          << rtx (125, 127);
      s << "a=rtpmap:116 red/90000\r\n" << rtx (117, 116)
        << "a=rtpmap:118 ulpfec/90000\r\n";
    }
    if (o.audio) {
      s << "m=audio 9 UDP/TLS/RTP/SAVPF 111 63 9 0 8 13 110 126\r\n"
        << transport (o.video ? "1" : "0")
        << "a=rtpmap:111 opus/48000/2\r\n"
        << "a=rtcp-fb:111 transport-cc\r\n"
        << "a=fmtp:111 minptime=10;useinbandfec=1\r\n"
        << "a=rtpmap:63 red/48000/2\r\na=fmtp:63 111/111\r\n"
        << "a=rtpmap:9 G722/8000\r\n"
        << "a=rtpmap:0 PCMU/8000\r\n"
        << "a=rtpmap:8 PCMA/8000\r\n"
        << "a=rtpmap:13 CN/8000\r\n"
        << "a=rtpmap:110 telephone-event/48000\r\n"
        << "a=rtpmap:126 telephone-event/8000\r\n";
    }
    return s.str ();
  }

  /* Reads the answer: the server's credentials, fingerprint, first host
   * candidate and, per accepted m-line, payload type and SSRC. */
  bool applyAnswer (const std::string &answer)
  {
    std::istringstream in (answer);
    std::string line, kind;
    int port = -1;
    while (std::getline (in, line)) {
      if (!line.empty () && line.back () == '\r')
        line.pop_back ();
      auto value = [&line] (const char *prefix) -> std::optional<std::string> {
        if (line.rfind (prefix, 0) == 0)
          return line.substr (std::strlen (prefix));
        return std::nullopt;
      };
      if (auto m = value ("m=")) {
        std::istringstream ms (*m);
        int p, pt;
        std::string proto;
        ms >> kind >> p >> proto >> pt;
        port = p;
        if (p != 0)
          payloadTypes_[kind] = pt;
      } else if (auto u = value ("a=ice-ufrag:")) {
        serverUfrag_ = *u;
      } else if (auto pw = value ("a=ice-pwd:")) {
        serverPwd_ = *pw;
      } else if (auto f = value ("a=fingerprint:")) {
        serverFingerprint_ = DtlsFingerprint::parse (*f);
      } else if (auto c = value ("a=candidate:")) {
        std::istringstream cs (*c);
        std::string foundation, proto, address, typ, type;
        int component, cport;
        uint32_t priority;
        cs >> foundation >> component >> proto >> priority >> address >> cport >> typ >> type;
        candidates.push_back (address + ":" + std::to_string (cport));
        if (!server_.valid ())
          server_ = SockAddr::parse (address, static_cast<uint16_t> (cport));
      } else if (auto e = value ("a=extmap:")) {
        if (e->find ("transport-wide-cc") != std::string::npos)
          transportCcExtId_ = std::stoi (*e);
      } else if (auto rm = value ("a=rtpmap:")) {
        if (port != 0 && rm->find (" rtx/") != std::string::npos)
          rtxPayloadTypes_[kind] = std::stoi (*rm);
      } else if (auto fid = value ("a=ssrc-group:FID ")) {
        /* the media SSRC, then its RTX SSRC (RFC 4588 8.7) */
        std::istringstream fs (*fid);
        uint32_t media = 0, rtx = 0;
        if (port != 0 && (fs >> media >> rtx)) {
          ssrcs_[kind] = media;
          rtxSsrcs_[kind] = rtx;
        }
      } else if (auto ss = value ("a=ssrc:")) {
        if (port != 0 && ss->find (" cname:") != std::string::npos) {
          const auto ssrc = static_cast<uint32_t> (std::stoul (ss->substr (0, ss->find (' '))));
          if (!rtxSsrcs_.count (kind))  /* else a=ssrc-group:FID named it */
            ssrcs_[kind] = ssrc;
        }
      }
    }
    return !serverUfrag_.empty () && !serverPwd_.empty () && serverFingerprint_ && server_.valid ();
  }

  int payloadType (const std::string &kind) const { return valueOr (payloadTypes_, kind, -1); }
  uint32_t ssrc (const std::string &kind) const { return valueOr (ssrcs_, kind, 0u); }
  /* The answer's RTX payload type and SSRC for @kind (RFC 4588); -1 / 0:
   * none. */
  int rtxPayloadType (const std::string &kind) const
  {
    return valueOr (rtxPayloadTypes_, kind, -1);
  }
  uint32_t rtxSsrc (const std::string &kind) const { return valueOr (rtxSsrcs_, kind, 0u); }
  const std::string &serverUfrag () const { return serverUfrag_; }
  /* The answer's extmap id of the transport-wide sequence number; 0: none. */
  int transportCcExtId () const { return transportCcExtId_; }

  /* A Binding request as a controlling full agent sends it. */
  std::vector<uint8_t> bindingRequest (bool useCandidate = true, const std::string *password = nullptr)
  {
    uint8_t buf[512];
    std::array<uint8_t, 12> txid;
    for (auto &b : txid)
      b = static_cast<uint8_t> (rand ());
    sentTxids_.insert (txid);
    StunBuilder b (buf, sizeof (buf), kStunMethodBinding, StunClass::Request, txid);
    b.addString (stunattr::Username, serverUfrag_ + ":" + ufrag_);
    b.addU32 (stunattr::Priority, 0x6e7f1eff);
    b.addU64 (stunattr::IceControlling, 0x1122334455667788ull);
    if (useCandidate)
      b.addFlag (stunattr::UseCandidate);
    b.addIntegrity (password ? *password : serverPwd_);
    b.addFingerprint ();
    return std::vector<uint8_t> (buf, buf + b.size ());
  }

  void sendRaw (const uint8_t *data, size_t size)
  {
    sendto (fd_, data, size, 0, server_.sa (), server_.length);
  }
  void sendRaw (const std::vector<uint8_t> &d) { sendRaw (d.data (), d.size ()); }

  /* ICE (until a success response authenticated with the server's
   * password), then DTLS as client, then SRTP keys. */
  bool connect (std::chrono::milliseconds timeout = std::chrono::milliseconds (5000))
  {
    const auto end = std::chrono::steady_clock::now () + timeout;
    auto nextCheck = std::chrono::steady_clock::now ();
    while (!iceOk_ && std::chrono::steady_clock::now () < end) {
      if (std::chrono::steady_clock::now () >= nextCheck) {
        sendRaw (bindingRequest ());
        nextCheck = std::chrono::steady_clock::now () + std::chrono::milliseconds (100);
      }
      pump (std::chrono::milliseconds (20));
    }
    if (!iceOk_)
      return false;
    dtls_ = std::make_unique<DtlsSession> (viewerDtlsContext (), DtlsRole::Client,
        *serverFingerprint_, [this] (const uint8_t *d, size_t n) { sendRaw (d, n); });
    dtls_->start ();
    while (dtls_->state () == DtlsState::Handshaking && std::chrono::steady_clock::now () < end) {
      pump (std::chrono::milliseconds (20));
      if (auto t = dtls_->nextTimeout (); t && *t <= std::chrono::steady_clock::now ())
        dtls_->onTimeout ();
    }
    if (dtls_->state () != DtlsState::Connected)
      return false;
    const DtlsSrtpKeys &keys = *dtls_->srtpKeys ();
    srtpReady_ = keys.initInbound (in_) && keys.initOutbound (out_);
    return srtpReady_;
  }

  bool connected () const { return dtls_ && dtls_->state () == DtlsState::Connected; }
  /* Frees the client's OpenSSL state (SRTP keys kept), as the server does
   * once the viewer's SRTCP authenticates. */
  void releaseDtls ()
  {
    if (dtls_)
      dtls_->releaseHandshakeState ();
  }

  /* Reads whatever arrives for @d. */
  void pump (std::chrono::milliseconds d)
  {
    const auto end = std::chrono::steady_clock::now () + d;
    for (;;) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds> (
          end - std::chrono::steady_clock::now ()).count ();
      pollfd p {fd_, POLLIN, 0};
      if (poll (&p, 1, left > 0 ? int (left) : 0) <= 0)
        return;
      uint8_t buf[4096];
      for (;;) {
        ssize_t n = recv (fd_, buf, sizeof (buf), MSG_DONTWAIT);
        if (n <= 0)
          break;
        handle (buf, static_cast<size_t> (n));
      }
    }
  }

  template <typename Pred>
  bool pumpUntil (Pred pred, std::chrono::milliseconds timeout)
  {
    const auto end = std::chrono::steady_clock::now () + timeout;
    while (!pred ()) {
      if (std::chrono::steady_clock::now () >= end)
        return false;
      pump (std::chrono::milliseconds (10));
    }
    return true;
  }

  /* Protects and sends one (compound) RTCP packet. */
  bool sendRtcp (const uint8_t *plain, size_t size)
  {
    std::vector<uint8_t> buf (plain, plain + size);
    buf.resize (size + SrtpContext::kMaxTrailer);
    size_t out = 0;
    if (out_.protectRtcp (buf.data (), size, buf.size (), out) != SrtpStatus::Ok)
      return false;
    sendRaw (buf.data (), out);
    return true;
  }
  bool sendNack (uint32_t mediaSsrc, std::vector<uint16_t> seqs)
  {
    uint8_t b[1500];
    size_t n = rtcpWriteNack (b, sizeof (b), kOwnSsrc, mediaSsrc, seqs.data (),
        static_cast<unsigned> (seqs.size ()));
    return n && sendRtcp (b, n);
  }
  bool sendPli (uint32_t mediaSsrc)
  {
    uint8_t b[64];
    size_t n = rtcpWritePli (b, sizeof (b), kOwnSsrc, mediaSsrc);
    return n && sendRtcp (b, n);
  }
  bool sendReceiverReport (uint32_t mediaSsrc, uint8_t fractionLost, uint32_t jitter)
  {
    uint8_t b[128];
    RtcpReportBlock rb;
    rb.ssrc = mediaSsrc;
    rb.fractionLost = fractionLost;
    rb.jitter = jitter;
    size_t n = rtcpWriteReceiverReport (b, sizeof (b), kOwnSsrc, &rb, 1);
    return n && sendRtcp (b, n);
  }

  std::vector<ReceivedRtp> received;
  std::vector<ReceivedSr> senderReports;
  std::vector<std::string> candidates;
  bool byeReceived = false;
  int stunReplies = 0;
  int stunErrors = 0;
  int rtpAuthFailures = 0;
  /* Output sequence numbers to drop once when they arrive (simulated loss). */
  std::set<uint16_t> dropOnce;

  static constexpr uint32_t kOwnSsrc = 0x7e57;

  size_t count (const std::string &kind) const
  {
    size_t n = 0;
    for (const auto &r : received)
      if (r.pt == payloadType (kind))
        n++;
    return n;
  }

private:
  void openSocket ()
  {
    fd_ = socket (AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    SockAddr local = SockAddr::parse ("127.0.0.1", 0);
    bind (fd_, local.sa (), local.length);
    int size = 4 * 1024 * 1024;
    setsockopt (fd_, SOL_SOCKET, SO_RCVBUF, &size, sizeof (size));
    sockaddr_storage ss {};
    socklen_t len = sizeof (ss);
    getsockname (fd_, reinterpret_cast<sockaddr *> (&ss), &len);
    local_ = SockAddr::fromSockaddr (reinterpret_cast<sockaddr *> (&ss), len);
  }

  void handle (uint8_t *data, size_t n)
  {
    const uint8_t b0 = data[0];
    if (b0 <= 3) {
      StunMessage m;
      if (stunParse (data, n, m) != StunParseError::None)
        return;
      if (!sentTxids_.count (m.transactionId))
        return;
      stunReplies++;
      if (m.cls == StunClass::SuccessResponse && stunCheckIntegrity (m, serverPwd_))
        iceOk_ = true;
      else if (m.cls == StunClass::ErrorResponse)
        stunErrors++;
    } else if (b0 >= 20 && b0 <= 63) {
      if (dtls_)
        dtls_->feed (data, n);
    } else if (b0 >= 128 && b0 <= 191 && srtpReady_) {
      size_t plain = 0;
      if (rtcpLooksLike (data, n)) {
        if (in_.unprotectRtcp (data, n, plain) != SrtpStatus::Ok)
          return;
        for (size_t pos = 0; pos + 4 <= plain;) {
          const uint8_t *p = data + pos;
          const size_t len = (size_t (rd16 (p + 2)) + 1) * 4;
          if (pos + len > plain)
            break;
          if (p[1] == 200 && len >= 28) {
            ReceivedSr sr;
            sr.ssrc = rd32 (p + 4);
            sr.ntp = rd64 (p + 8);
            sr.rtpTs = rd32 (p + 16);
            sr.packets = rd32 (p + 20);
            sr.octets = rd32 (p + 24);
            sr.at = std::chrono::steady_clock::now ();
            senderReports.push_back (sr);
          } else if (p[1] == 203) {
            byeReceived = true;
          }
          pos += len;
        }
        return;
      }
      /* a packet lost on the way never reaches SRTP (its replay window) */
      if (n >= 12 && dropOnce.erase (rd16 (data + 2)))
        return;
      if (in_.unprotectRtp (data, n, plain) != SrtpStatus::Ok) {
        rtpAuthFailures++;
        return;
      }
      ReceivedRtp r;
      r.pt = data[1] & 0x7f;
      r.marker = data[1] & 0x80;
      r.seq = rd16 (data + 2);
      r.ts = rd32 (data + 4);
      r.ssrc = rd32 (data + 8);
      r.wireSize = n;
      size_t header = 12 + 4 * (data[0] & 0x0f);
      if ((data[0] & 0x10) && plain >= header + 4) {
        r.extension = true;
        r.extensionProfile = rd16 (data + header);
        const size_t end = header + 4 + 4 * size_t (rd16 (data + header + 2));
        r.extensionSize = end - header - 4;
        /* RFC 8285 4.2: one-byte elements (ID, L = length - 1), 0 is padding */
        for (size_t i = header + 4; r.extensionProfile == 0xBEDE && i < end && i < plain;) {
          if (data[i] == 0) {
            i++;
            continue;
          }
          const int id = data[i] >> 4;
          const size_t len = (data[i] & 0x0f) + 1u;
          if (id == 15 || i + 1 + len > end)
            break;
          if (id == transportCcExtId_ && len == 2)
            r.transportSeq = rd16 (data + i + 1);
          i += 1 + len;
        }
        header = end;
      }
      if (plain >= header)
        r.payload.assign (data + header, data + plain);
      received.push_back (std::move (r));
    }
  }

  int fd_ = -1;
  SockAddr local_;
  SockAddr server_;
  std::string ufrag_, pwd_;
  std::string serverUfrag_, serverPwd_;
  std::optional<DtlsFingerprint> serverFingerprint_;
  /* @map's value for @kind, @none when the answer had none. */
  template <typename T>
  static T valueOr (const std::map<std::string, T> &map, const std::string &kind, T none)
  {
    auto it = map.find (kind);
    return it == map.end () ? none : it->second;
  }

  std::map<std::string, int> payloadTypes_;
  std::map<std::string, uint32_t> ssrcs_;
  std::map<std::string, int> rtxPayloadTypes_;
  std::map<std::string, uint32_t> rtxSsrcs_;
  std::set<std::array<uint8_t, 12>> sentTxids_;
  int transportCcExtId_ = 0;
  bool iceOk_ = false;
  bool srtpReady_ = false;   /* stays set after DTLS closes: SRTP outlives it */
  std::unique_ptr<DtlsSession> dtls_;
  SrtpContext in_, out_;
};

/* RTP packets as a payloader makes them: H.264 single NAL units (IDR 0x65
 * for keyframes, 0x41 otherwise; @marker: the last packet of its picture)
 * or Opus. */
inline std::vector<uint8_t>
h264Packet (uint16_t seq, uint32_t ts, uint32_t ssrc, bool keyframe, size_t payload = 1000,
    bool marker = false)
{
  std::vector<uint8_t> p (12 + payload);
  p[0] = 0x80;
  p[1] = marker ? 0x80 | 96 : 96;
  wr16 (p.data () + 2, seq);
  wr32 (p.data () + 4, ts);
  wr32 (p.data () + 8, ssrc);
  p[12] = keyframe ? 0x65 : 0x41;
  for (size_t i = 1; i < payload; i++)
    p[12 + i] = static_cast<uint8_t> (seq + i);
  return p;
}

inline std::vector<uint8_t>
opusPacket (uint16_t seq, uint32_t ts, uint32_t ssrc, size_t payload = 80)
{
  std::vector<uint8_t> p (12 + payload);
  p[0] = 0x80;
  p[1] = 111;
  wr16 (p.data () + 2, seq);
  wr32 (p.data () + 4, ts);
  wr32 (p.data () + 8, ssrc);
  for (size_t i = 0; i < payload; i++)
    p[12 + i] = static_cast<uint8_t> (seq * 3 + i);
  return p;
}

}  // namespace fanouttest
