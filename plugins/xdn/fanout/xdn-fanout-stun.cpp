#include "xdn-fanout-stun.h"

#include "xdn-fanout-bytes.h"

#include <openssl/crypto.h>

#include <arpa/inet.h>

#include <cstring>

namespace xdn::fanout {

namespace {

/* RFC 8489 14.3: USERNAME is less than 509 bytes (513 allowed on receipt
 * for RFC 5389 peers). */
constexpr size_t kMaxUsername = 513;

constexpr size_t
padded (size_t n)
{
  return (n + 3) & ~size_t (3);
}

uint16_t
methodOf (uint16_t type)
{
  return static_cast<uint16_t> ((type & 0x000F) | ((type & 0x00E0) >> 1) | ((type & 0x3E00) >> 2));
}

StunClass
classOf (uint16_t type)
{
  return static_cast<StunClass> (((type & 0x0010) >> 4) | ((type & 0x0100) >> 7));
}

uint16_t
typeOf (uint16_t method, StunClass cls)
{
  unsigned c = static_cast<unsigned> (cls);
  return static_cast<uint16_t> ((method & 0x000F) | ((method & 0x0070) << 1) |
      ((method & 0x0F80) << 2) | ((c & 1) << 4) | ((c & 2) << 7));
}

/* XOR-MAPPED-ADDRESS value (RFC 8489 14.2). */
bool
parseXorAddress (const uint8_t *v, size_t len, const uint8_t *header, SockAddr &out)
{
  if (len < 4)
    return false;
  uint16_t port = rd16 (v + 2) ^ static_cast<uint16_t> (kStunMagicCookie >> 16);
  if (v[1] == 0x01 && len == 8) {
    sockaddr_in sin {};
    sin.sin_family = AF_INET;
    sin.sin_port = htons (port);
    uint8_t a[4];
    for (int i = 0; i < 4; i++)
      a[i] = v[4 + i] ^ header[4 + i];
    memcpy (&sin.sin_addr, a, 4);
    out = SockAddr::fromSockaddr (reinterpret_cast<sockaddr *> (&sin), sizeof (sin));
    return true;
  }
  if (v[1] == 0x02 && len == 20) {
    sockaddr_in6 sin6 {};
    sin6.sin6_family = AF_INET6;
    sin6.sin6_port = htons (port);
    uint8_t a[16];
    /* xor with the magic cookie then the transaction id: header[4..20) */
    for (int i = 0; i < 16; i++)
      a[i] = v[4 + i] ^ header[4 + i];
    memcpy (&sin6.sin6_addr, a, 16);
    out = SockAddr::fromSockaddr (reinterpret_cast<sockaddr *> (&sin6), sizeof (sin6));
    return true;
  }
  return false;
}

const uint32_t *
crcTable ()
{
  static const auto table = [] {
    std::array<uint32_t, 256> t {};
    for (uint32_t i = 0; i < 256; i++) {
      uint32_t c = i;
      for (int k = 0; k < 8; k++)
        c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
      t[i] = c;
    }
    return t;
  }();
  return table.data ();
}

}  // namespace

const char *
stunParseErrorName (StunParseError e)
{
  switch (e) {
    case StunParseError::None: return "none";
    case StunParseError::TooShort: return "too-short";
    case StunParseError::NotStun: return "not-stun";
    case StunParseError::BadMagicCookie: return "bad-magic-cookie";
    case StunParseError::BadLength: return "bad-length";
    case StunParseError::AttributeOverrun: return "attribute-overrun";
    case StunParseError::BadAttributeValue: return "bad-attribute-value";
    case StunParseError::MisplacedAttribute: return "misplaced-attribute";
  }
  return "unknown";
}

uint32_t
stunCrc32 (const uint8_t *data, size_t size)
{
  const uint32_t *t = crcTable ();
  uint32_t c = 0xFFFFFFFFu;
  for (size_t i = 0; i < size; i++)
    c = t[(c ^ data[i]) & 0xFF] ^ (c >> 8);
  return c ^ 0xFFFFFFFFu;
}

bool
stunLooksLike (const uint8_t *data, size_t size)
{
  return size >= kStunHeaderSize && (data[0] & 0xC0) == 0 && rd32 (data + 4) == kStunMagicCookie;
}

StunParseError
stunParse (const uint8_t *data, size_t size, StunMessage &out)
{
  out = StunMessage {};
  if (size < kStunHeaderSize)
    return StunParseError::TooShort;
  if ((data[0] & 0xC0) != 0)
    return StunParseError::NotStun;
  if (rd32 (data + 4) != kStunMagicCookie)
    return StunParseError::BadMagicCookie;
  size_t bodyLength = rd16 (data + 2);
  if (bodyLength % 4 != 0 || bodyLength + kStunHeaderSize != size)
    return StunParseError::BadLength;

  uint16_t type = rd16 (data);
  out.method = methodOf (type);
  out.cls = classOf (type);
  memcpy (out.transactionId.data (), data + 8, 12);
  out.data = data;
  out.size = size;

  size_t off = kStunHeaderSize;
  while (off < size) {
    if (size - off < 4)
      return StunParseError::AttributeOverrun;
    uint16_t atype = rd16 (data + off);
    size_t alen = rd16 (data + off + 2);
    if (padded (alen) > size - off - 4)
      return StunParseError::AttributeOverrun;
    const uint8_t *v = data + off + 4;

    if (out.fingerprintOffset != 0)
      return StunParseError::MisplacedAttribute;
    if (out.integrityOffset != 0 && atype != stunattr::Fingerprint) {
      /* RFC 8489 14.5: ignored after MESSAGE-INTEGRITY */
      off += 4 + padded (alen);
      continue;
    }

    switch (atype) {
      case stunattr::Username:
        if (alen > kMaxUsername)
          return StunParseError::BadAttributeValue;
        if (!out.username)
          out.username = std::string_view (reinterpret_cast<const char *> (v), alen);
        break;
      case stunattr::MessageIntegrity:
        if (alen != HmacSha1::kDigestSize)
          return StunParseError::BadAttributeValue;
        out.integrityOffset = off;
        break;
      case stunattr::Fingerprint:
        if (alen != 4)
          return StunParseError::BadAttributeValue;
        out.fingerprintOffset = off;
        break;
      case stunattr::Priority:
        if (alen != 4)
          return StunParseError::BadAttributeValue;
        if (!out.priority)
          out.priority = rd32 (v);
        break;
      case stunattr::IceControlling:
        if (alen != 8)
          return StunParseError::BadAttributeValue;
        if (!out.iceControlling)
          out.iceControlling = rd64 (v);
        break;
      case stunattr::IceControlled:
        if (alen != 8)
          return StunParseError::BadAttributeValue;
        if (!out.iceControlled)
          out.iceControlled = rd64 (v);
        break;
      case stunattr::UseCandidate:
        if (alen != 0)
          return StunParseError::BadAttributeValue;
        out.useCandidate = true;
        break;
      case stunattr::XorMappedAddress:
        if (!out.xorMappedAddress) {
          SockAddr a;
          if (!parseXorAddress (v, alen, data, a))
            return StunParseError::BadAttributeValue;
          out.xorMappedAddress = a;
        }
        break;
      case stunattr::ErrorCode: {
        if (alen < 4)
          return StunParseError::BadAttributeValue;
        unsigned cls = v[2] & 0x07, number = v[3];
        if (cls < 3 || cls > 6 || number > 99)
          return StunParseError::BadAttributeValue;
        if (!out.errorCode) {
          out.errorCode = static_cast<uint16_t> (cls * 100 + number);
          out.errorReason = std::string_view (reinterpret_cast<const char *> (v + 4), alen - 4);
        }
        break;
      }
      case stunattr::MappedAddress:
      case stunattr::UnknownAttributes:
      case stunattr::Realm:
      case stunattr::Nonce:
      case stunattr::MessageIntegritySha256:
        /* known, not used by ICE-lite with short-term credentials */
        break;
      default:
        if (atype < 0x8000 && out.unknownRequiredCount < kStunMaxUnknown)
          out.unknownRequired[out.unknownRequiredCount++] = atype;
        break;
    }
    off += 4 + padded (alen);
  }
  return StunParseError::None;
}

bool
stunCheckFingerprint (const StunMessage &msg)
{
  size_t off = msg.fingerprintOffset;
  if (off == 0 || msg.data == nullptr || off + 8 != msg.size)
    return false;
  uint32_t crc = stunCrc32 (msg.data, off) ^ kStunFingerprintXor;
  return crc == rd32 (msg.data + off + 4);
}

bool
stunCheckIntegrity (const StunMessage &msg, HmacSha1 &keyed)
{
  size_t off = msg.integrityOffset;
  if (off == 0 || msg.data == nullptr || off + 4 + HmacSha1::kDigestSize > msg.size)
    return false;
  /* The length in the header as if MESSAGE-INTEGRITY ended the message. */
  uint8_t header[kStunHeaderSize];
  memcpy (header, msg.data, kStunHeaderSize);
  wr16 (header + 2, static_cast<uint16_t> (off + 4 + HmacSha1::kDigestSize - kStunHeaderSize));
  uint8_t mac[HmacSha1::kDigestSize];
  keyed.begin ();
  keyed.update (header, sizeof (header));
  keyed.update (msg.data + kStunHeaderSize, off - kStunHeaderSize);
  keyed.finish (mac);
  return CRYPTO_memcmp (mac, msg.data + off + 4, sizeof (mac)) == 0;
}

bool
stunCheckIntegrity (const StunMessage &msg, std::string_view key)
{
  HmacSha1 h;
  h.setKey (reinterpret_cast<const uint8_t *> (key.data ()), key.size ());
  return stunCheckIntegrity (msg, h);
}

bool
stunSplitUsername (std::string_view username, std::string_view &local, std::string_view &remote)
{
  size_t colon = username.find (':');
  if (colon == std::string_view::npos || colon == 0 || colon + 1 == username.size ())
    return false;
  local = username.substr (0, colon);
  remote = username.substr (colon + 1);
  return true;
}

StunBuilder::StunBuilder (uint8_t *buffer, size_t capacity, uint16_t method, StunClass cls,
    const std::array<uint8_t, 12> &transactionId)
    : buf_ (buffer), capacity_ (capacity), transactionId_ (transactionId)
{
  if (buffer == nullptr || capacity < kStunHeaderSize || method > 0xFFF) {
    ok_ = false;
    return;
  }
  wr16 (buf_, typeOf (method, cls));
  wr16 (buf_ + 2, 0);
  wr32 (buf_ + 4, kStunMagicCookie);
  memcpy (buf_ + 8, transactionId.data (), 12);
  size_ = kStunHeaderSize;
}

void
StunBuilder::setLength (size_t bodyLength)
{
  wr16 (buf_ + 2, static_cast<uint16_t> (bodyLength));
}

uint8_t *
StunBuilder::attributeSlot (uint16_t type, size_t length)
{
  if (!ok_ || length > 0xFFFF || padded (length) + 4 > capacity_ - size_ ||
      size_ + 4 + padded (length) - kStunHeaderSize > 0xFFFF) {
    ok_ = false;
    return nullptr;
  }
  uint8_t *a = buf_ + size_;
  wr16 (a, type);
  wr16 (a + 2, static_cast<uint16_t> (length));
  memset (a + 4 + length, 0, padded (length) - length);
  size_ += 4 + padded (length);
  setLength (size_ - kStunHeaderSize);
  return a + 4;
}

bool
StunBuilder::addBytes (uint16_t type, const void *value, size_t length)
{
  uint8_t *v = attributeSlot (type, length);
  if (v == nullptr)
    return false;
  if (length > 0)
    memcpy (v, value, length);
  return true;
}

bool
StunBuilder::addU32 (uint16_t type, uint32_t value)
{
  uint8_t b[4];
  wr32 (b, value);
  return addBytes (type, b, sizeof (b));
}

bool
StunBuilder::addU64 (uint16_t type, uint64_t value)
{
  uint8_t b[8];
  wr64 (b, value);
  return addBytes (type, b, sizeof (b));
}

bool
StunBuilder::addXorAddress (uint16_t type, const SockAddr &address)
{
  uint8_t v[20] = {};
  size_t len;
  wr16 (v + 2, address.port () ^ static_cast<uint16_t> (kStunMagicCookie >> 16));
  uint8_t mask[16];
  wr32 (mask, kStunMagicCookie);
  memcpy (mask + 4, transactionId_.data (), 12);
  if (address.family () == AF_INET) {
    auto *sin = reinterpret_cast<const sockaddr_in *> (&address.storage);
    v[1] = 0x01;
    memcpy (v + 4, &sin->sin_addr, 4);
    len = 8;
  } else if (address.family () == AF_INET6) {
    auto *sin6 = reinterpret_cast<const sockaddr_in6 *> (&address.storage);
    v[1] = 0x02;
    memcpy (v + 4, &sin6->sin6_addr, 16);
    len = 20;
  } else {
    ok_ = false;
    return false;
  }
  for (size_t i = 4; i < len; i++)
    v[i] ^= mask[i - 4];
  return addBytes (type, v, len);
}

bool
StunBuilder::addErrorCode (uint16_t code, std::string_view reason)
{
  if (code < 300 || code > 699 || reason.size () > 763) {
    ok_ = false;
    return false;
  }
  uint8_t *v = attributeSlot (stunattr::ErrorCode, 4 + reason.size ());
  if (v == nullptr)
    return false;
  v[0] = 0;
  v[1] = 0;
  v[2] = static_cast<uint8_t> (code / 100);
  v[3] = static_cast<uint8_t> (code % 100);
  memcpy (v + 4, reason.data (), reason.size ());
  return true;
}

bool
StunBuilder::addUnknownAttributes (const uint16_t *types, size_t count)
{
  uint8_t *v = attributeSlot (stunattr::UnknownAttributes, count * 2);
  if (v == nullptr)
    return false;
  for (size_t i = 0; i < count; i++)
    wr16 (v + 2 * i, types[i]);
  return true;
}

bool
StunBuilder::addIntegrity (HmacSha1 &keyed)
{
  size_t start = size_;
  uint8_t *v = attributeSlot (stunattr::MessageIntegrity, HmacSha1::kDigestSize);
  if (v == nullptr)
    return false;
  /* The header length already counts this attribute, as RFC 8489 14.5 asks. */
  keyed.compute (buf_, start, v);
  return true;
}

bool
StunBuilder::addIntegrity (std::string_view key)
{
  HmacSha1 h;
  h.setKey (reinterpret_cast<const uint8_t *> (key.data ()), key.size ());
  return addIntegrity (h);
}

bool
StunBuilder::addFingerprint ()
{
  size_t start = size_;
  uint8_t *v = attributeSlot (stunattr::Fingerprint, 4);
  if (v == nullptr)
    return false;
  wr32 (v, stunCrc32 (buf_, start) ^ kStunFingerprintXor);
  return true;
}

}  // namespace xdn::fanout
