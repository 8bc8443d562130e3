#include "xdn-rtp-rewriter.h"

namespace xdn {

RtpRewriter::RtpRewriter (uint8_t payloadType, uint32_t ssrc)
    : pt_ (payloadType & 0x7f), ssrc_ (ssrc)
{
}

static uint16_t
read16 (const uint8_t *p)
{
  return static_cast<uint16_t> ((p[0] << 8) | p[1]);
}

static uint32_t
read32 (const uint8_t *p)
{
  return (uint32_t (p[0]) << 24) | (uint32_t (p[1]) << 16) | (uint32_t (p[2]) << 8) | p[3];
}

static void
write16 (uint8_t *p, uint16_t v)
{
  p[0] = v >> 8;
  p[1] = v & 0xff;
}

static void
write32 (uint8_t *p, uint32_t v)
{
  p[0] = v >> 24;
  p[1] = (v >> 16) & 0xff;
  p[2] = (v >> 8) & 0xff;
  p[3] = v & 0xff;
}

bool
RtpRewriter::rewrite (uint8_t *packet, size_t size)
{
  if (size < 12 || (packet[0] >> 6) != 2)
    return false;

  uint16_t seq = read16 (packet + 2);
  uint32_t ts = read32 (packet + 4);
  uint32_t in_ssrc = read32 (packet + 8);

  if (started_ && (resync_ || in_ssrc != inSsrc_)) {
    /* Continue one packet after the last one sent; the timestamp moves on
     * by one tick so that it never goes backwards. */
    seqOffset_ = static_cast<uint16_t> (lastOutSeq_ + 1 - seq);
    tsOffset_ = lastOutTs_ + 1 - ts;
  }
  resync_ = false;
  started_ = true;
  inSsrc_ = in_ssrc;

  lastOutSeq_ = static_cast<uint16_t> (seq + seqOffset_);
  lastOutTs_ = ts + tsOffset_;
  packet[1] = (packet[1] & 0x80) | pt_;
  write16 (packet + 2, lastOutSeq_);
  write32 (packet + 4, lastOutTs_);
  write32 (packet + 8, ssrc_);
  return true;
}

}  // namespace xdn
