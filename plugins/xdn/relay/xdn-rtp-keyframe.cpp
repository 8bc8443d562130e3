#include "xdn-rtp-keyframe.h"

#include <algorithm>

namespace xdn::relay {

namespace {

constexpr uint8_t kH264Idr = 5;
constexpr uint8_t kH264Sps = 7;
constexpr uint8_t kH264StapA = 24;
constexpr uint8_t kH264FuA = 28;

constexpr size_t kRtpFixedHeader = 12;

/* Enough payload bytes for every decision above: a VP8 descriptor is at most
 * 6 bytes, and an H.264 STAP-A keyframe starts with SPS/IDR in practice; a
 * STAP-A whose keyframe NAL lies further than this is not recognised. */
constexpr size_t kPayloadPeek = 256;

bool
isKeyframeNal (uint8_t nal_type)
{
  return nal_type == kH264Sps || nal_type == kH264Idr;
}

/* Where the payload of an RTP packet lies, from its first bytes. */
struct RtpLayout {
  size_t payloadOffset = 0;
  size_t payloadSize = 0;
};

}  // namespace

VideoCodec
videoCodecFromEncodingName (const char *encoding_name)
{
  if (!encoding_name)
    return VideoCodec::Unknown;
  if (g_ascii_strcasecmp (encoding_name, "H264") == 0)
    return VideoCodec::H264;
  if (g_ascii_strcasecmp (encoding_name, "VP8") == 0)
    return VideoCodec::VP8;
  return VideoCodec::Unknown;
}

bool
h264PayloadStartsKeyframe (const uint8_t *payload, size_t size)
{
  if (!payload || size < 1)
    return false;
  const uint8_t type = payload[0] & 0x1f;
  if (type >= 1 && type <= 23)
    return isKeyframeNal (type);
  if (type == kH264StapA) {
    /* [STAP-A header] then { 16-bit size, NAL unit }* */
    size_t pos = 1;
    while (pos + 2 < size) {
      const size_t nal_size = (size_t (payload[pos]) << 8) | payload[pos + 1];
      pos += 2;
      if (nal_size == 0 || pos >= size)
        break;
      if (isKeyframeNal (payload[pos] & 0x1f))
        return true;
      pos += nal_size;
    }
    return false;
  }
  if (type == kH264FuA) {
    if (size < 2)
      return false;
    const uint8_t fu_header = payload[1];
    const bool start = (fu_header & 0x80) != 0;
    return start && isKeyframeNal (fu_header & 0x1f);
  }
  return false;
}

bool
vp8PayloadStartsKeyframe (const uint8_t *payload, size_t size)
{
  if (!payload || size < 1)
    return false;
  const uint8_t b0 = payload[0];
  const bool extended = (b0 & 0x80) != 0;
  const bool start = (b0 & 0x10) != 0;
  const uint8_t partition = b0 & 0x07;
  if (!start || partition != 0)
    return false;

  size_t pos = 1;
  if (extended) {
    if (pos >= size)
      return false;
    const uint8_t x = payload[pos++];
    const bool has_picture_id = (x & 0x80) != 0;
    const bool has_tl0picidx = (x & 0x40) != 0;
    const bool has_tid = (x & 0x20) != 0;
    const bool has_keyidx = (x & 0x10) != 0;
    if (has_picture_id) {
      if (pos >= size)
        return false;
      /* M bit: 15-bit picture id in two bytes, else 7 bits in one. */
      pos += (payload[pos] & 0x80) ? 2 : 1;
    }
    if (has_tl0picidx)
      pos += 1;
    if (has_tid || has_keyidx)
      pos += 1;
  }
  if (pos >= size)
    return false;
  /* VP8 frame tag: bit 0 is P, the inverse key frame flag. */
  return (payload[pos] & 0x01) == 0;
}

static bool
payloadStartsKeyframe (VideoCodec codec, const uint8_t *payload, size_t size)
{
  switch (codec) {
    case VideoCodec::H264:
      return h264PayloadStartsKeyframe (payload, size);
    case VideoCodec::VP8:
      return vp8PayloadStartsKeyframe (payload, size);
    case VideoCodec::Unknown:
      break;
  }
  return false;
}

/* Parses the RTP header from @head (the first @head_size bytes of a packet of
 * @total bytes). @ext_header reads 4 bytes at an offset (for the extension
 * length) and @last_byte gives the final byte (for padding). */
template <typename ReadAt, typename LastByte>
static bool
parseRtpLayout (const uint8_t *head, size_t head_size, size_t total,
    ReadAt read_at, LastByte last_byte, RtpLayout &out)
{
  if (head_size < kRtpFixedHeader || total < kRtpFixedHeader)
    return false;
  if ((head[0] >> 6) != 2)
    return false;
  const bool padding = (head[0] & 0x20) != 0;
  const bool extension = (head[0] & 0x10) != 0;
  const size_t csrc_count = head[0] & 0x0f;
  size_t offset = kRtpFixedHeader + 4 * csrc_count;
  if (extension) {
    uint8_t ext[4];
    if (offset + 4 > total || !read_at (offset, ext, 4))
      return false;
    const size_t ext_words = (size_t (ext[2]) << 8) | ext[3];
    offset += 4 + 4 * ext_words;
  }
  if (offset > total)
    return false;
  size_t end = total;
  if (padding) {
    const size_t pad = last_byte ();
    if (pad == 0 || pad > end - offset)
      return false;
    end -= pad;
  }
  out.payloadOffset = offset;
  out.payloadSize = end - offset;
  return true;
}

bool
rtpPacketStartsKeyframe (VideoCodec codec, const uint8_t *packet, size_t size)
{
  if (!packet || codec == VideoCodec::Unknown)
    return false;
  RtpLayout layout;
  auto read_at = [&] (size_t off, uint8_t *dst, size_t n) {
    if (off + n > size)
      return false;
    std::copy (packet + off, packet + off + n, dst);
    return true;
  };
  auto last_byte = [&] { return packet[size - 1]; };
  if (!parseRtpLayout (packet, size, size, read_at, last_byte, layout))
    return false;
  return payloadStartsKeyframe (codec, packet + layout.payloadOffset,
      layout.payloadSize);
}

bool
rtpBufferStartsKeyframe (VideoCodec codec, GstBuffer *buffer)
{
  if (!buffer || codec == VideoCodec::Unknown)
    return false;
  const size_t total = gst_buffer_get_size (buffer);
  uint8_t head[kRtpFixedHeader];
  if (gst_buffer_extract (buffer, 0, head, sizeof head) != sizeof head)
    return false;
  RtpLayout layout;
  auto read_at = [&] (size_t off, uint8_t *dst, size_t n) {
    return gst_buffer_extract (buffer, off, dst, n) == n;
  };
  auto last_byte = [&] {
    uint8_t b = 0;
    gst_buffer_extract (buffer, total - 1, &b, 1);
    return b;
  };
  if (!parseRtpLayout (head, sizeof head, total, read_at, last_byte, layout))
    return false;
  uint8_t payload[kPayloadPeek];
  const size_t n = std::min (layout.payloadSize, kPayloadPeek);
  if (gst_buffer_extract (buffer, layout.payloadOffset, payload, n) != n)
    return false;
  return payloadStartsKeyframe (codec, payload, n);
}

}  // namespace xdn::relay
