/* The SDP a load-test viewer sends and reads: a minimal recvonly offer
 * (H.264 and VP8 video, Opus audio, BUNDLE, rtcp-mux, our ICE credentials,
 * a=setup:active and our DTLS fingerprint) and the parts of a WHEP answer
 * it needs (ICE credentials and candidates, the DTLS fingerprint and role,
 * payload types, SSRCs). Plain text in and out: no GStreamer types. */
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace xdn::loadtest {

struct OfferParams {
  std::string iceUfrag;
  std::string icePwd;
  std::string fingerprint;        /* "sha-256 4A:AD:..." */
  /* Our host candidate, announced in the offer (empty address: none). */
  std::string candidateAddress;
  uint16_t candidatePort = 0;
  bool video = true;
  bool audio = true;
  uint64_t sessionId = 1;
  /* A WHIP publisher's offer: sendonly H.264 (no VP8) and Opus with these
   * SSRCs; a viewer's (false): recvonly. */
  bool publish = false;
  uint32_t videoSsrc = 0;
  uint32_t audioSsrc = 0;
  std::string cname;
  /* A viewer that sends generic NACKs (a slow one): offers "nack" on its
   * video besides "nack pli", or the server would not answer them. */
  bool nack = false;
};

/* Payload types we offer. */
constexpr int kOfferH264Pt = 96;
constexpr int kOfferVp8Pt = 98;
constexpr int kOfferOpusPt = 111;

std::string buildOffer (const OfferParams &p);

struct SdpCandidate {
  std::string foundation;
  int component = 1;
  std::string transport;     /* lower case: "udp", "tcp" */
  uint32_t priority = 0;
  std::string address;
  uint16_t port = 0;
  std::string type;          /* host, srflx, prflx, relay */
};

struct SdpCodec {
  std::string name;          /* upper case: H264, VP8, OPUS */
  uint32_t clockRate = 0;
  std::string fmtp;
};

struct SdpMedia {
  std::string kind;          /* video, audio, application */
  std::string mid;
  uint16_t port = 0;         /* 0: rejected */
  std::string direction;     /* sendonly, recvonly, sendrecv, inactive */
  std::vector<int> payloadTypes;
  std::map<int, SdpCodec> codecs;
  std::vector<uint32_t> ssrcs;
  bool rejected () const { return port == 0; }
};

struct SdpAnswer {
  std::string iceUfrag;
  std::string icePwd;
  std::string fingerprint;   /* "sha-256 4A:..." as written */
  std::string setup;         /* active, passive, actpass */
  bool iceLite = false;
  bool rtcpMux = false;
  /* Candidates of every m-line (BUNDLE: usually only the first has them),
   * without duplicates, in the answer's order; when the answer has no
   * a=candidate, one host candidate from the first m-line's c= and port. */
  std::vector<SdpCandidate> candidates;
  std::vector<SdpMedia> media;

  /* The codec of @pt in any m-line, or nullptr. */
  const SdpCodec *codec (int pt) const;
  /* "video" or "audio" for @pt, "" if no m-line lists it. */
  std::string kindOf (int pt) const;
};

/* Reads a WHEP answer. False with @error saying what is missing or wrong
 * (no v=0, no ICE credentials, no fingerprint, no usable m-line, ...). */
bool parseAnswer (const std::string &text, SdpAnswer &out, std::string *error);

/* One a=candidate value ("candidate:" prefix optional). */
bool parseCandidate (const std::string &value, SdpCandidate &out);

}  // namespace xdn::loadtest
