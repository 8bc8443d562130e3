/* SRTP and SRTCP (RFC 3711) on OpenSSL: AES_CM_128_HMAC_SHA1_80 and _32
 * (RFC 3711, RFC 5764) and AEAD_AES_128_GCM (RFC 7714), with the key
 * derivation of RFC 3711 4.3 (key derivation rate 0, as DTLS-SRTP keys
 * are used), the rollover counter of each SSRC kept across sequence number
 * wraps, and replay windows on the receiving side.
 *
 * Its output is bit for bit that of libsrtp 2 given the same keys and
 * packets (the unit tests compare them), so a viewer's libsrtp (Chromium's,
 * GStreamer's) reads it. Packets are processed in place and nothing is
 * allocated per packet: the AES contexts and HMAC key schedules are made
 * once, at init. */
#pragma once

#include "xdn-fanout-hmac.h"

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <vector>

namespace xdn::fanout {

/* The DTLS-SRTP protection profile ids (RFC 5764 4.1.2, RFC 7714 14.2). */
enum class SrtpProfile : uint16_t {
  AesCm128HmacSha1_80 = 0x0001,
  AesCm128HmacSha1_32 = 0x0002,
  AeadAes128Gcm = 0x0007,
};

struct SrtpProfileParams {
  const char *name;          /* as in DTLS-SRTP: "SRTP_AES128_CM_SHA1_80" */
  size_t masterKeyLength;    /* 16 */
  size_t masterSaltLength;   /* 14, 12 for GCM */
  size_t rtpTagLength;       /* 10, 4, 16 */
  size_t rtcpTagLength;      /* 10 (also for _32: RFC 5764 4.1.2), 16 */
  bool aead;
};

/* nullptr for an id this code does not implement. */
const SrtpProfileParams *srtpProfileParams (SrtpProfile profile);
std::optional<SrtpProfile> srtpProfileFromId (uint16_t id);

enum class SrtpStatus {
  Ok,
  NotReady,       /* init () not called or failed */
  BadPacket,      /* too short, not version 2, header longer than the packet */
  NoRoom,         /* capacity < size + trailer */
  AuthFail,       /* tag mismatch (or GCM tag) */
  ReplayOld,      /* index older than the replay window */
  Replayed,       /* index already received */
  TooManySsrcs,   /* more than kMaxSsrcs sources on one context */
  IndexExhausted, /* SRTCP index or ROC would wrap: rekey needed */
  CryptoError,    /* OpenSSL refused (should not happen) */
};

const char *srtpStatusName (SrtpStatus s);

/* Key derivation labels, RFC 3711 4.3.2. */
namespace srtplabel {
constexpr uint8_t RtpEncryption = 0x00;
constexpr uint8_t RtpAuth = 0x01;
constexpr uint8_t RtpSalt = 0x02;
constexpr uint8_t RtcpEncryption = 0x03;
constexpr uint8_t RtcpAuth = 0x04;
constexpr uint8_t RtcpSalt = 0x05;
}  // namespace srtplabel

/* RFC 3711 4.3.1 with key derivation rate 0: @outLength bytes for @label
 * from a 16-byte master key and a master salt of up to 14 bytes (a 12-byte
 * GCM salt is padded with zeros on the right, RFC 7714 11). */
bool srtpDeriveKey (const uint8_t *masterKey, size_t masterKeyLength, const uint8_t *masterSalt,
    size_t masterSaltLength, uint8_t label, uint8_t *out, size_t outLength);

/* The AES-CM counter block of RFC 3711 4.1.1 for a 14-byte session salt,
 * an SSRC and a 48-bit packet index. */
void srtpAesCmIv (const uint8_t salt[14], uint32_t ssrc, uint64_t index, uint8_t iv[16]);

/* AES-128 in counter mode from counter block @iv, in place (one-shot: it
 * makes its own OpenSSL context). */
bool srtpAesCtr (const uint8_t key[16], const uint8_t iv[16], uint8_t *data, size_t length);

/* One direction of one DTLS-SRTP association: every SSRC shares the keys
 * (like libsrtp's ssrc_any_outbound / ssrc_any_inbound), each SSRC has its
 * own rollover counter, SRTCP index and replay windows. Not thread-safe:
 * one thread at a time (the element's sending thread for protect). */
class SrtpContext {
public:
  /* Most bytes protect* adds: SRTCP with GCM (16-byte tag, 4-byte index). */
  static constexpr size_t kMaxTrailer = 20;
  /* Sources on one context; a viewer has a few (video, audio, RTX). */
  static constexpr size_t kMaxSsrcs = 64;
  /* Replay window, as libsrtp's default. */
  static constexpr uint64_t kReplayWindow = 128;

  SrtpContext ();
  ~SrtpContext ();
  SrtpContext (const SrtpContext &) = delete;
  SrtpContext &operator= (const SrtpContext &) = delete;

  /* Master key and salt of the lengths srtpProfileParams gives. Derives the
   * session keys; false on an unknown profile or an OpenSSL failure. May be
   * called again to rekey (state of every SSRC is dropped). */
  bool init (SrtpProfile profile, const uint8_t *masterKey, const uint8_t *masterSalt);
  bool ready () const { return params_ != nullptr; }
  SrtpProfile profile () const { return profile_; }
  size_t rtpTrailer () const;
  size_t rtcpTrailer () const;

  /* Protect in place: @packet holds @size bytes and has room for
   * @capacity; on Ok, @outSize is the SRTP size (size + rtpTrailer ()).
   * Sending an index again (a retransmission under the same SSRC) is
   * allowed and produces the same bytes as the first time. */
  SrtpStatus protectRtp (uint8_t *packet, size_t size, size_t capacity, size_t &outSize)
  {
    return protectRtp (packet, size, capacity, outSize, nullptr);
  }
  /* The same, but with an HMAC-SHA1 profile the tag is left to @auth when
   * it is given: filled in (auth->key set; null with AES-GCM, whose tag is
   * done), its computation (HmacSha1::many) is the caller's, before the
   * packet goes out and while this context lives. The fan-out
   * authenticates a packet for many viewers at once that way. */
  SrtpStatus protectRtp (uint8_t *packet, size_t size, size_t capacity, size_t &outSize,
      HmacSha1::Job *auth);
  /* SRTCP: always encrypted (E flag set), index counted per sender SSRC. */
  SrtpStatus protectRtcp (uint8_t *packet, size_t size, size_t capacity, size_t &outSize);

  /* Verify and decrypt in place; on Ok, @outSize is the plain size. A
   * packet that fails leaves the context's state as it was (its own bytes
   * are undefined then: GCM decrypts before it checks the tag). */
  SrtpStatus unprotectRtp (uint8_t *packet, size_t size, size_t &outSize);
  SrtpStatus unprotectRtcp (uint8_t *packet, size_t size, size_t &outSize);

  /* The rollover counter and highest sequence number seen for @ssrc. */
  std::optional<uint32_t> rolloverCounter (uint32_t ssrc) const;
  size_t ssrcCount () const { return streams_.size (); }

private:
  /* Indices received: bit i stands for (highest - i). */
  struct ReplayWindow {
    uint64_t bits[2] = {0, 0};
    bool has (uint64_t back) const { return (bits[back / 64] >> (back % 64)) & 1; }
    void set (uint64_t back) { bits[back / 64] |= uint64_t (1) << (back % 64); }
    void shift (uint64_t n);
  };

  struct Stream {
    uint32_t ssrc = 0;
    /* RTP: highest packet index (ROC << 16 | SEQ), libsrtp's rdbx index */
    uint64_t rtpIndex = 0;
    ReplayWindow rtpWindow;
    /* SRTCP: last index sent, or highest received */
    uint32_t rtcpIndex = 0;
    bool rtcpSeen = false;
    ReplayWindow rtcpWindow;
  };
  struct SessionKeys;

  HmacSha1::Job rtpAuthJob (const uint8_t *p, size_t size, uint32_t roc, uint8_t *tag,
      size_t tagLength) const;
  Stream *findStream (uint32_t ssrc);
  const Stream *findStream (uint32_t ssrc) const;
  Stream *addStream (uint32_t ssrc);
  void release ();

  SrtpProfile profile_ = SrtpProfile::AesCm128HmacSha1_80;
  const SrtpProfileParams *params_ = nullptr;
  std::unique_ptr<SessionKeys> rtp_;
  std::unique_ptr<SessionKeys> rtcp_;
  std::vector<Stream> streams_;
};

}  // namespace xdn::fanout
