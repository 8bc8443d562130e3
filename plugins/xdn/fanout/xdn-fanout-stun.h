/* STUN messages (RFC 8489, formerly RFC 5389) as ICE uses them (RFC 8445):
 * parsing with every length checked against the datagram, MESSAGE-INTEGRITY
 * (HMAC-SHA1 with the short-term password) and FINGERPRINT (CRC-32 xor
 * 0x5354554e), and a builder for the responses an ICE-lite agent sends.
 *
 * Parsing never allocates and never reads outside [data, data + size): a
 * datagram from anyone on the internet goes through it. The parsed message
 * is a view into the datagram; keep the datagram alive while using it. */
#pragma once

#include "xdn-fanout-addr.h"
#include "xdn-fanout-hmac.h"

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>

namespace xdn::fanout {

constexpr uint32_t kStunMagicCookie = 0x2112A442;
constexpr size_t kStunHeaderSize = 20;
constexpr uint32_t kStunFingerprintXor = 0x5354554e;

constexpr uint16_t kStunMethodBinding = 0x001;

enum class StunClass : uint8_t {
  Request = 0,
  Indication = 1,
  SuccessResponse = 2,
  ErrorResponse = 3,
};

namespace stunattr {
constexpr uint16_t MappedAddress = 0x0001;
constexpr uint16_t Username = 0x0006;
constexpr uint16_t MessageIntegrity = 0x0008;
constexpr uint16_t ErrorCode = 0x0009;
constexpr uint16_t UnknownAttributes = 0x000A;
constexpr uint16_t Realm = 0x0014;
constexpr uint16_t Nonce = 0x0015;
constexpr uint16_t MessageIntegritySha256 = 0x001C;
constexpr uint16_t XorMappedAddress = 0x0020;
constexpr uint16_t Priority = 0x0024;
constexpr uint16_t UseCandidate = 0x0025;
constexpr uint16_t Software = 0x8022;
constexpr uint16_t Fingerprint = 0x8028;
constexpr uint16_t IceControlled = 0x8029;
constexpr uint16_t IceControlling = 0x802A;
}  // namespace stunattr

/* Why a datagram was refused as a STUN message. */
enum class StunParseError {
  None,
  TooShort,            /* fewer than 20 bytes */
  NotStun,             /* first two bits not 0 (RTP, DTLS, ...) */
  BadMagicCookie,
  BadLength,           /* header length not a multiple of 4 or not the datagram's */
  AttributeOverrun,    /* an attribute runs past the end of the message */
  BadAttributeValue,   /* a known attribute with the wrong size or content */
  MisplacedAttribute,  /* FINGERPRINT not last, or a bad MESSAGE-INTEGRITY position */
};

const char *stunParseErrorName (StunParseError e);

/* Comprehension-required attributes (type < 0x8000) this code does not
 * know, reported in a 420 response. Only the first few are kept. */
constexpr size_t kStunMaxUnknown = 8;

struct StunMessage {
  uint16_t method = 0;
  StunClass cls = StunClass::Request;
  std::array<uint8_t, 12> transactionId {};

  /* The whole message (a view into the parsed datagram). */
  const uint8_t *data = nullptr;
  size_t size = 0;

  std::optional<std::string_view> username;
  std::optional<uint32_t> priority;
  std::optional<uint64_t> iceControlling;  /* tie-breaker */
  std::optional<uint64_t> iceControlled;   /* tie-breaker */
  bool useCandidate = false;
  std::optional<SockAddr> xorMappedAddress;
  std::optional<uint16_t> errorCode;       /* 300-699 */
  std::string_view errorReason;

  /* Offsets of the attribute headers from the start of the message; 0 when
   * absent (an attribute never starts at 0). */
  size_t integrityOffset = 0;
  size_t fingerprintOffset = 0;

  std::array<uint16_t, kStunMaxUnknown> unknownRequired {};
  size_t unknownRequiredCount = 0;
};

/* Cheap first look, for demultiplexing a port that also carries DTLS and
 * RTP (RFC 7983): 20 bytes or more, first two bits 0, the magic cookie. */
bool stunLooksLike (const uint8_t *data, size_t size);

/* Parses one STUN message filling the whole datagram. Only the first
 * instance of each attribute counts (RFC 8489 14); attributes after
 * MESSAGE-INTEGRITY other than FINGERPRINT are ignored; FINGERPRINT must be
 * last. Does not check MESSAGE-INTEGRITY or FINGERPRINT values: see below. */
StunParseError stunParse (const uint8_t *data, size_t size, StunMessage &out);

/* True when the message has a FINGERPRINT and it matches. */
bool stunCheckFingerprint (const StunMessage &msg);

/* True when the message has a MESSAGE-INTEGRITY and it is the HMAC-SHA1 of
 * the message up to it under @key (for ICE: the password of the agent the
 * request is addressed to, as is). Compared in constant time. */
bool stunCheckIntegrity (const StunMessage &msg, std::string_view key);
/* The same with a key already set in @keyed (kept per viewer: no key
 * schedule and no allocation per request). */
bool stunCheckIntegrity (const StunMessage &msg, HmacSha1 &keyed);

/* Splits an ICE USERNAME "receiverUfrag:senderUfrag" at its first colon.
 * False when there is no colon or either side is empty. */
bool stunSplitUsername (std::string_view username, std::string_view &local,
    std::string_view &remote);

/* CRC-32 (ISO-HDLC, as zlib's crc32) of @size bytes. */
uint32_t stunCrc32 (const uint8_t *data, size_t size);

/* Writes one STUN message into a caller's buffer. Every add* returns false
 * and leaves the builder failed (ok () false) once the buffer is too small;
 * MESSAGE-INTEGRITY and FINGERPRINT go last, in that order. */
class StunBuilder {
public:
  StunBuilder (uint8_t *buffer, size_t capacity, uint16_t method, StunClass cls,
      const std::array<uint8_t, 12> &transactionId);

  bool addBytes (uint16_t type, const void *value, size_t length);
  bool addString (uint16_t type, std::string_view value)
  {
    return addBytes (type, value.data (), value.size ());
  }
  bool addU32 (uint16_t type, uint32_t value);
  bool addU64 (uint16_t type, uint64_t value);
  bool addFlag (uint16_t type) { return addBytes (type, nullptr, 0); }
  bool addXorAddress (uint16_t type, const SockAddr &address);
  /* ERROR-CODE: @code 300-699 and its reason phrase. */
  bool addErrorCode (uint16_t code, std::string_view reason);
  bool addUnknownAttributes (const uint16_t *types, size_t count);
  /* MESSAGE-INTEGRITY over everything added so far, keyed with @key. */
  bool addIntegrity (std::string_view key);
  bool addIntegrity (HmacSha1 &keyed);
  bool addFingerprint ();

  bool ok () const { return ok_; }
  /* Size of the message so far (header included); 0 once failed. */
  size_t size () const { return ok_ ? size_ : 0; }

private:
  uint8_t *attributeSlot (uint16_t type, size_t length);
  void setLength (size_t bodyLength);

  uint8_t *buf_;
  size_t capacity_;
  size_t size_ = 0;
  bool ok_ = true;
  std::array<uint8_t, 12> transactionId_;
};

}  // namespace xdn::fanout
