/* Helpers shared by the fan-out unit tests. */
#pragma once

#include <cctype>
#include <cstdint>
#include <string>
#include <vector>

namespace fanouttest {

/* "00 01 a1 47" (any whitespace) -> bytes. */
inline std::vector<uint8_t>
hex (const std::string &text)
{
  std::vector<uint8_t> out;
  int nibble = -1;
  for (char ch : text) {
    if (std::isspace (static_cast<unsigned char> (ch)))
      continue;
    int v = std::isdigit (static_cast<unsigned char> (ch)) ? ch - '0'
        : std::tolower (static_cast<unsigned char> (ch)) - 'a' + 10;
    if (nibble < 0) {
      nibble = v;
    } else {
      out.push_back (static_cast<uint8_t> (nibble << 4 | v));
      nibble = -1;
    }
  }
  return out;
}

inline std::string
toHex (const uint8_t *p, size_t n)
{
  static const char *digits = "0123456789abcdef";
  std::string s;
  for (size_t i = 0; i < n; i++) {
    s += digits[p[i] >> 4];
    s += digits[p[i] & 15];
  }
  return s;
}

inline std::string
toHex (const std::vector<uint8_t> &v)
{
  return toHex (v.data (), v.size ());
}

/* RFC 3711 Appendix B.2: AES-CM's test key and session salt, and the
 * first and last 48 bytes of the keystream's 65282 blocks from the counter
 * block of SSRC 0 and index 0. */
namespace rfc3711b2 {
constexpr const char *kKey = "2B7E151628AED2A6ABF7158809CF4F3C";
constexpr const char *kSalt = "F0F1F2F3F4F5F6F7F8F9FAFBFCFD";
constexpr size_t kLength = 1044512;
constexpr const char *kHead =
    "e03ead0935c95e80e166b16dd92b4eb4d23513162b02d0f72a43a2fe4a5f97ab"
    "41e95b3bb0a2e8dd477901e4fca894c0";
constexpr const char *kTail =
    "ec8cdf7398607cb0f2d21675ea9ea1e4362b7c3c6773516318a077d7fc5073ae"
    "6a2cc3787889374fbeb4c81b17ba6c44";
}  // namespace rfc3711b2

/* A deterministic byte source for the tests (xorshift64*). */
class Rng {
public:
  explicit Rng (uint64_t seed) : s_ (seed ? seed : 1) {}
  uint64_t next ()
  {
    s_ ^= s_ >> 12;
    s_ ^= s_ << 25;
    s_ ^= s_ >> 27;
    return s_ * 2685821657736338717ull;
  }
  uint8_t byte () { return static_cast<uint8_t> (next () >> 56); }
  size_t below (size_t n) { return static_cast<size_t> (next () % n); }
  void fill (uint8_t *p, size_t n)
  {
    for (size_t i = 0; i < n; i++)
      p[i] = byte ();
  }

private:
  uint64_t s_;
};

/* An RTP packet: version 2, @csrcs CSRCs, an optional one-word RFC 8285
 * extension, @payload bytes of pattern. */
inline std::vector<uint8_t>
rtpPacket (uint16_t seq, uint32_t ts, uint32_t ssrc, size_t payload, uint8_t pt = 96,
    int csrcs = 0, bool extension = false, uint8_t fill = 0)
{
  std::vector<uint8_t> p;
  p.push_back (static_cast<uint8_t> (0x80 | (extension ? 0x10 : 0) | csrcs));
  p.push_back (pt);
  p.push_back (static_cast<uint8_t> (seq >> 8));
  p.push_back (static_cast<uint8_t> (seq));
  for (int i = 3; i >= 0; i--)
    p.push_back (static_cast<uint8_t> (ts >> (8 * i)));
  for (int i = 3; i >= 0; i--)
    p.push_back (static_cast<uint8_t> (ssrc >> (8 * i)));
  for (int c = 0; c < csrcs; c++)
    for (int i = 0; i < 4; i++)
      p.push_back (static_cast<uint8_t> (0x10 * c + i));
  if (extension) {
    const uint8_t ext[] = {0xBE, 0xDE, 0x00, 0x01, 0x10, 0xAA, 0x00, 0x00};
    p.insert (p.end (), ext, ext + sizeof (ext));
  }
  for (size_t i = 0; i < payload; i++)
    p.push_back (static_cast<uint8_t> (fill + i * 7 + (seq & 0xff)));
  return p;
}

/* An RTCP compound-looking packet: a sender report of @ssrc plus filler. */
inline std::vector<uint8_t>
rtcpPacket (uint32_t ssrc, size_t extraWords, uint8_t fill = 0)
{
  size_t words = 6 + extraWords;  /* SR without report blocks is 7 words */
  std::vector<uint8_t> p;
  p.push_back (0x80);
  p.push_back (200);
  p.push_back (static_cast<uint8_t> (words >> 8));
  p.push_back (static_cast<uint8_t> (words));
  for (int i = 3; i >= 0; i--)
    p.push_back (static_cast<uint8_t> (ssrc >> (8 * i)));
  for (size_t i = 0; i < 4 * words; i++)
    p.push_back (static_cast<uint8_t> (fill + i * 13));
  return p;
}

/* A transport-cc feedback message (RTPFB FMT 15) written byte by byte:
 * the chunks and receive deltas exactly as given, zero padding to 32 bits
 * and the length field to match (or @lengthWords when >= 0, to lie). */
struct TransportCcMessage {
  uint32_t senderSsrc = 0x7e57;
  uint32_t mediaSsrc = 0;
  uint16_t baseSeq = 0;
  uint16_t statusCount = 0;
  int32_t referenceTime = 0;       /* 64 ms units */
  uint8_t feedbackCount = 0;
  std::vector<uint16_t> chunks;
  std::vector<uint8_t> deltas;     /* 1 byte (small) or 2 (large) per received packet */
  int lengthWords = -1;

  /* Chunk writers (draft-holmer-rmcat-transport-wide-cc-extensions-01 3.1.3, 3.1.4). */
  static uint16_t run (unsigned symbol, unsigned length)
  {
    return static_cast<uint16_t> ((symbol & 3) << 13 | (length & 0x1fff));
  }
  /* 14 one-bit symbols, first one in the most significant bit */
  static uint16_t vector1 (const std::vector<int> &symbols)
  {
    uint16_t c = 0x8000;
    for (size_t i = 0; i < symbols.size () && i < 14; i++)
      c |= static_cast<uint16_t> ((symbols[i] & 1) << (13 - i));
    return c;
  }
  /* 7 two-bit symbols */
  static uint16_t vector2 (const std::vector<int> &symbols)
  {
    uint16_t c = 0xc000;
    for (size_t i = 0; i < symbols.size () && i < 7; i++)
      c |= static_cast<uint16_t> ((symbols[i] & 3) << (12 - 2 * i));
    return c;
  }
  void small (uint8_t quarterMs) { deltas.push_back (quarterMs); }
  void large (int16_t quarterMs)
  {
    deltas.push_back (static_cast<uint8_t> (uint16_t (quarterMs) >> 8));
    deltas.push_back (static_cast<uint8_t> (quarterMs & 0xff));
  }

  std::vector<uint8_t> bytes () const
  {
    std::vector<uint8_t> p (20);
    auto w16 = [&p] (size_t at, uint16_t v) {
      p[at] = static_cast<uint8_t> (v >> 8);
      p[at + 1] = static_cast<uint8_t> (v);
    };
    auto w32 = [&] (size_t at, uint32_t v) {
      w16 (at, static_cast<uint16_t> (v >> 16));
      w16 (at + 2, static_cast<uint16_t> (v));
    };
    p[0] = 0x80 | 15;
    p[1] = 205;
    w32 (4, senderSsrc);
    w32 (8, mediaSsrc);
    w16 (12, baseSeq);
    w16 (14, statusCount);
    const uint32_t ref = static_cast<uint32_t> (referenceTime) & 0xffffff;
    p[16] = static_cast<uint8_t> (ref >> 16);
    p[17] = static_cast<uint8_t> (ref >> 8);
    p[18] = static_cast<uint8_t> (ref);
    p[19] = feedbackCount;
    for (uint16_t c : chunks) {
      p.push_back (static_cast<uint8_t> (c >> 8));
      p.push_back (static_cast<uint8_t> (c));
    }
    p.insert (p.end (), deltas.begin (), deltas.end ());
    while (p.size () % 4)
      p.push_back (0);
    w16 (2, static_cast<uint16_t> (lengthWords >= 0 ? lengthWords : int (p.size () / 4) - 1));
    return p;
  }
};

}  // namespace fanouttest
