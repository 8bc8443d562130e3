#include "xdn-fanout-rtcp.h"

#include "xdn-fanout-bytes.h"

#include <algorithm>
#include <cstring>

namespace xdn::fanout {

RtcpParseStatus
rtcpParse (const uint8_t *data, size_t size, RtcpVisitor &v)
{
  if (size == 0)
    return RtcpParseStatus::Empty;
  unsigned nacks = 0;
  size_t pos = 0;
  while (pos < size) {
    if (size - pos < 4)
      return RtcpParseStatus::Truncated;
    const uint8_t *p = data + pos;
    if ((p[0] >> 6) != 2)
      return RtcpParseStatus::BadVersion;
    const unsigned count = p[0] & 0x1f;
    const uint8_t type = p[1];
    const size_t length = (size_t (rd16 (p + 2)) + 1) * 4;
    if (length > size - pos)
      return RtcpParseStatus::Truncated;
    pos += length;
    /* The body, without padding for the last message (P bit). */
    size_t body = length;
    if ((p[0] & 0x20) && pos == size) {
      const uint8_t pad = p[length - 1];
      if (pad == 0 || pad > length - 4)
        return RtcpParseStatus::Truncated;
      body -= pad;
    }

    switch (type) {
      case rtcptype::SenderReport:
      case rtcptype::ReceiverReport:{
        const size_t head = type == rtcptype::SenderReport ? 28 : 8;
        if (body < head)
          break;
        const uint32_t sender = rd32 (p + 4);
        for (unsigned i = 0; i < count && head + (i + 1) * 24 <= body; i++) {
          const uint8_t *b = p + head + i * 24;
          RtcpReportBlock rb;
          rb.ssrc = rd32 (b);
          rb.fractionLost = b[4];
          int32_t lost = (int32_t (b[5]) << 16) | (int32_t (b[6]) << 8) | b[7];
          if (lost & 0x800000)
            lost -= 0x1000000;
          rb.cumulativeLost = lost;
          rb.highestSeq = rd32 (b + 8);
          rb.jitter = rd32 (b + 12);
          rb.lastSr = rd32 (b + 16);
          rb.delaySinceLastSr = rd32 (b + 20);
          v.onReportBlock (sender, rb);
        }
        break;
      }
      case rtcptype::Bye:
        for (unsigned i = 0; i < count && 4 + (i + 1) * 4 <= body; i++)
          v.onBye (rd32 (p + 4 + i * 4));
        break;
      case rtcptype::TransportFeedback:{
        if (body < 12)
          break;
        const uint32_t sender = rd32 (p + 4);
        const uint32_t media = rd32 (p + 8);
        if (count == 1) {
          for (size_t off = 12; off + 4 <= body; off += 4) {
            const uint16_t pid = rd16 (p + off);
            const uint16_t blp = rd16 (p + off + 2);
            if (nacks++ < kRtcpMaxNacksPerPacket)
              v.onNack (sender, media, pid);
            for (int bit = 0; bit < 16; bit++)
              if ((blp >> bit) & 1)
                if (nacks++ < kRtcpMaxNacksPerPacket)
                  v.onNack (sender, media, static_cast<uint16_t> (pid + bit + 1));
          }
        } else if (count == 15) {
          RtcpTransportCc fb;
          fb.senderSsrc = sender;
          fb.mediaSsrc = media;
          if (body < 22) {
            v.onMalformed (type, 15);
            break;
          }
          fb.baseSeq = rd16 (p + 12);
          fb.statusCount = rd16 (p + 14);
          int32_t ref = (int32_t (p[16]) << 16) | (int32_t (p[17]) << 8) | p[18];
          if (ref & 0x800000)
            ref -= 0x1000000;
          fb.referenceTime = ref;
          fb.feedbackCount = p[19];
          fb.chunks = p + 20;
          fb.size = body - 20;
          if (rtcpTransportCcCheck (fb.chunks, fb.size, fb.statusCount, &fb.received) == 0)
            v.onMalformed (type, 15);
          else
            v.onTransportCc (fb);
        }
        break;
      }
      case rtcptype::PayloadFeedback:{
        if (body < 12)
          break;
        const uint32_t sender = rd32 (p + 4);
        const uint32_t media = rd32 (p + 8);
        if (count == 1) {
          v.onPli (sender, media);
        } else if (count == 4) {
          for (size_t off = 12; off + 8 <= body; off += 8)
            v.onFir (sender, rd32 (p + off), p[off + 4]);
        } else if (count == 15 && body >= 20 && std::memcmp (p + 12, "REMB", 4) == 0) {
          const unsigned n = p[16];
          const unsigned exp = p[17] >> 2;
          const uint64_t mantissa = (uint64_t (p[17] & 3) << 16) | (uint64_t (p[18]) << 8) | p[19];
          const unsigned listed = static_cast<unsigned> (std::min<size_t> (n, (body - 20) / 4));
          const uint64_t bitrate = exp > 46 ? UINT64_MAX : mantissa << exp;
          v.onRemb (sender, bitrate, p + 20, listed);
        }
        break;
      }
      default:
        break;
    }
  }
  return RtcpParseStatus::Ok;
}

size_t
rtcpTransportCcCheck (const uint8_t *chunks, size_t size, uint16_t statusCount,
    unsigned *received)
{
  /* At least one packet; the chunks then the deltas they announce, all
   * within @size. */
  if (statusCount == 0)
    return 0;
  size_t pos = 0, deltaBytes = 0;
  unsigned left = statusCount, got = 0;
  auto take = [&] (unsigned s, unsigned n) {
    if (s == 1)
      deltaBytes += n;
    else if (s == 2)
      deltaBytes += 2 * size_t (n);
    if (s != 0)
      got += n;
    left -= n;
  };
  while (left > 0) {
    if (size - pos < 2)
      return 0;
    const unsigned chunk = (unsigned (chunks[pos]) << 8) | chunks[pos + 1];
    pos += 2;
    if (!(chunk & 0x8000)) {
      const unsigned s = (chunk >> 13) & 3;
      const unsigned run = chunk & 0x1fff;
      if (s == 3 || run == 0)
        return 0;
      take (s, std::min (run, left));
    } else if (!(chunk & 0x4000)) {
      for (int bit = 13; bit >= 0 && left > 0; bit--)
        take ((chunk >> bit) & 1, 1);
    } else {
      for (int sh = 12; sh >= 0 && left > 0; sh -= 2) {
        const unsigned s = (chunk >> sh) & 3;
        if (s == 3)
          return 0;
        take (s, 1);
      }
    }
  }
  if (deltaBytes > size - pos)
    return 0;
  if (received)
    *received = got;
  return pos;
}

uint64_t
ntpFromUnixMicros (int64_t unixMicros)
{
  constexpr uint64_t kNtpUnixOffset = 2208988800ull;  /* 1900 -> 1970 */
  const uint64_t secs = uint64_t (unixMicros / 1000000) + kNtpUnixOffset;
  const uint64_t frac = (uint64_t (unixMicros % 1000000) << 32) / 1000000;
  return (secs << 32) | frac;
}

namespace {

void
header (uint8_t *p, unsigned count, uint8_t type, size_t bytes)
{
  p[0] = static_cast<uint8_t> (0x80 | (count & 0x1f));
  p[1] = type;
  wr16 (p + 2, static_cast<uint16_t> (bytes / 4 - 1));
}

}  // namespace

size_t
rtcpWriteSenderReport (uint8_t *out, size_t capacity, uint32_t ssrc, uint64_t ntp,
    uint32_t rtpTimestamp, uint32_t packets, uint32_t octets, const char *cname)
{
  const size_t cnameLength = cname ? std::min<size_t> (std::strlen (cname), 255) : 0;
  /* SDES chunk: SSRC, CNAME item (2 + length), END, padded to 32 bits */
  const size_t chunk = (4 + 2 + cnameLength + 1 + 3) & ~size_t (3);
  const size_t total = 28 + 4 + chunk;
  if (capacity < total)
    return 0;
  header (out, 0, rtcptype::SenderReport, 28);
  wr32 (out + 4, ssrc);
  wr64 (out + 8, ntp);
  wr32 (out + 16, rtpTimestamp);
  wr32 (out + 20, packets);
  wr32 (out + 24, octets);
  uint8_t *s = out + 28;
  header (s, 1, rtcptype::SourceDescription, 4 + chunk);
  std::memset (s + 4, 0, chunk);
  wr32 (s + 4, ssrc);
  s[8] = 1;  /* CNAME */
  s[9] = static_cast<uint8_t> (cnameLength);
  if (cnameLength)
    std::memcpy (s + 10, cname, cnameLength);
  return total;
}

size_t
rtcpWriteReceiverReport (uint8_t *out, size_t capacity, uint32_t senderSsrc,
    const RtcpReportBlock *blocks, unsigned count)
{
  count = std::min (count, 31u);
  const size_t total = 8 + 24 * size_t (count);
  if (capacity < total)
    return 0;
  header (out, count, rtcptype::ReceiverReport, total);
  wr32 (out + 4, senderSsrc);
  for (unsigned i = 0; i < count; i++) {
    uint8_t *b = out + 8 + i * 24;
    wr32 (b, blocks[i].ssrc);
    b[4] = blocks[i].fractionLost;
    const uint32_t lost = static_cast<uint32_t> (blocks[i].cumulativeLost) & 0xffffff;
    b[5] = static_cast<uint8_t> (lost >> 16);
    b[6] = static_cast<uint8_t> (lost >> 8);
    b[7] = static_cast<uint8_t> (lost);
    wr32 (b + 8, blocks[i].highestSeq);
    wr32 (b + 12, blocks[i].jitter);
    wr32 (b + 16, blocks[i].lastSr);
    wr32 (b + 20, blocks[i].delaySinceLastSr);
  }
  return total;
}

size_t
rtcpWriteNack (uint8_t *out, size_t capacity, uint32_t senderSsrc, uint32_t mediaSsrc,
    const uint16_t *seqs, unsigned count)
{
  if (count == 0 || capacity < 16)
    return 0;
  /* Distances from the first, so that a list across the wrap stays in
   * order; duplicates merged. */
  uint16_t d[kRtcpMaxNacksPerPacket];
  count = std::min (count, kRtcpMaxNacksPerPacket);
  const uint16_t first = seqs[0];
  for (unsigned i = 0; i < count; i++)
    d[i] = static_cast<uint16_t> (seqs[i] - first);
  std::sort (d, d + count);
  count = static_cast<unsigned> (std::unique (d, d + count) - d);
  size_t pos = 12;
  unsigned i = 0;
  while (i < count) {
    if (pos + 4 > capacity)
      return 0;
    const uint16_t pid = d[i++];
    uint16_t blp = 0;
    for (; i < count && d[i] - pid <= 16; i++)
      blp = static_cast<uint16_t> (blp | (1u << (d[i] - pid - 1)));
    wr16 (out + pos, static_cast<uint16_t> (first + pid));
    wr16 (out + pos + 2, blp);
    pos += 4;
  }
  header (out, 1, rtcptype::TransportFeedback, pos);
  wr32 (out + 4, senderSsrc);
  wr32 (out + 8, mediaSsrc);
  return pos;
}

size_t
rtcpWritePli (uint8_t *out, size_t capacity, uint32_t senderSsrc, uint32_t mediaSsrc)
{
  if (capacity < 12)
    return 0;
  header (out, 1, rtcptype::PayloadFeedback, 12);
  wr32 (out + 4, senderSsrc);
  wr32 (out + 8, mediaSsrc);
  return 12;
}

size_t
rtcpWriteFir (uint8_t *out, size_t capacity, uint32_t senderSsrc, uint32_t mediaSsrc,
    uint8_t seqNr)
{
  if (capacity < 20)
    return 0;
  header (out, 4, rtcptype::PayloadFeedback, 20);
  wr32 (out + 4, senderSsrc);
  wr32 (out + 8, 0);
  wr32 (out + 12, mediaSsrc);
  out[16] = seqNr;
  out[17] = out[18] = out[19] = 0;
  return 20;
}

size_t
rtcpWriteRemb (uint8_t *out, size_t capacity, uint32_t senderSsrc, uint64_t bitrate,
    const uint32_t *ssrcs, unsigned count)
{
  count = std::min (count, 255u);
  const size_t total = 20 + 4 * size_t (count);
  if (capacity < total)
    return 0;
  unsigned exp = 0;
  while ((bitrate >> exp) > 0x3ffff)
    exp++;
  const uint32_t mantissa = static_cast<uint32_t> (bitrate >> exp);
  header (out, 15, rtcptype::PayloadFeedback, total);
  wr32 (out + 4, senderSsrc);
  wr32 (out + 8, 0);
  std::memcpy (out + 12, "REMB", 4);
  out[16] = static_cast<uint8_t> (count);
  out[17] = static_cast<uint8_t> ((exp << 2) | (mantissa >> 16));
  out[18] = static_cast<uint8_t> (mantissa >> 8);
  out[19] = static_cast<uint8_t> (mantissa);
  for (unsigned i = 0; i < count; i++)
    wr32 (out + 20 + 4 * i, ssrcs[i]);
  return total;
}

size_t
rtcpWriteBye (uint8_t *out, size_t capacity, uint32_t ssrc)
{
  if (capacity < 8)
    return 0;
  header (out, 1, rtcptype::Bye, 8);
  wr32 (out + 4, ssrc);
  return 8;
}

}  // namespace xdn::fanout
