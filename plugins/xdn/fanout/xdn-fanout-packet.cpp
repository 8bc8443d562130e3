#include "xdn-fanout-packet.h"

#include "xdn-fanout-bytes.h"

#include <algorithm>
#include <cstring>
#include <utility>

namespace xdn::fanout {

void
Packet::addSegment (const uint8_t *data, size_t size)
{
  if (size == 0)
    return;
  if (segmentCount_ >= kMaxSegments) {
    valid_ = false;
    size_ = kMaxSize + 1;  /* marks it unusable */
    return;
  }
  segments_[segmentCount_++] = Segment {data, size};
  size_ += size;
}

void
Packet::copyTo (uint8_t *out) const
{
  for (size_t i = 0; i < segmentCount_; i++) {
    std::memcpy (out, segments_[i].data, segments_[i].size);
    out += segments_[i].size;
  }
}

void
Packet::copyRange (uint8_t *out, size_t offset, size_t length) const
{
  for (size_t i = 0; i < segmentCount_ && length > 0; i++) {
    const Segment &seg = segments_[i];
    if (offset >= seg.size) {
      offset -= seg.size;
      continue;
    }
    const size_t n = std::min (seg.size - offset, length);
    std::memcpy (out, seg.data + offset, n);
    out += n;
    length -= n;
    offset = 0;
  }
}

void
Packet::init (uint32_t track, bool keyframe, std::chrono::steady_clock::time_point capture)
{
  track_ = track;
  keyframe_ = keyframe;
  capture_ = capture;
  arrival_ = std::chrono::steady_clock::now ();
  valid_ = false;
  if (size_ < 12 || size_ > kMaxSize || segmentCount_ > kMaxSegments)
    return;
  /* The fixed header and what follows it, read across segments. */
  uint8_t head[12 + 15 * 4 + 4];
  size_t have = 0;
  for (size_t i = 0; i < segmentCount_ && have < sizeof (head); i++) {
    const size_t n = std::min (segments_[i].size, sizeof (head) - have);
    std::memcpy (head + have, segments_[i].data, n);
    have += n;
  }
  if ((head[0] >> 6) != 2)
    return;
  size_t headerSize = 12 + 4 * size_t (head[0] & 0x0f);
  const size_t csrcEnd = headerSize;
  if (head[0] & 0x10) {
    if (headerSize + 4 > have)
      return;
    headerSize += 4 + 4 * size_t (rd16 (head + headerSize + 2));
  }
  if (headerSize > size_)
    return;
  seq_ = rd16 (head + 2);
  ts_ = rd32 (head + 4);
  ssrc_ = rd32 (head + 8);
  marker_ = (head[1] & 0x80) != 0;
  payloadSize_ = size_ - headerSize;
  csrcEnd_ = csrcEnd;
  extension_ = (head[0] & 0x10) != 0;
  valid_ = true;
}

namespace {

class BytesPacket : public Packet {
public:
  BytesPacket (uint32_t track, const uint8_t *data, size_t size, bool keyframe,
      std::chrono::steady_clock::time_point capture)
      : bytes_ (data, data + size)
  {
    addSegment (bytes_.data (), bytes_.size ());
    init (track, keyframe, capture);
  }

private:
  std::vector<uint8_t> bytes_;
};

size_t
roundUpPow2 (size_t n)
{
  size_t p = 16;
  while (p < n && p < (size_t (1) << 16))
    p <<= 1;
  return p;
}

}  // namespace

PacketRef
makeBytesPacket (uint32_t track, const uint8_t *data, size_t size, bool keyframe,
    std::chrono::steady_clock::time_point capture)
{
  return std::make_shared<BytesPacket> (track, data, size, keyframe, capture);
}

PacketHistory::PacketHistory (size_t capacity)
    : slots_ (roundUpPow2 (capacity)), mask_ (slots_.size () - 1)
{
}

void
PacketHistory::add (PacketRef packet)
{
  if (!packet || !packet->valid ())
    return;
  const size_t slot = packet->seq () & mask_;
  PacketRef old;
  {
    std::lock_guard<std::mutex> l (lock_);
    old = std::exchange (slots_[slot], std::move (packet));
  }
  /* the old packet (maybe the last reference to a buffer) goes outside the lock */
}

PacketRef
PacketHistory::find (uint16_t seq, uint32_t ssrc, std::chrono::steady_clock::duration maxAge) const
{
  PacketRef p;
  {
    std::lock_guard<std::mutex> l (lock_);
    p = slots_[seq & mask_];
  }
  if (!p || p->seq () != seq || p->ssrc () != ssrc)
    return nullptr;
  if (std::chrono::steady_clock::now () - p->arrivalTime () > maxAge)
    return nullptr;
  return p;
}

void
PacketHistory::clear ()
{
  std::vector<PacketRef> old (slots_.size ());
  std::lock_guard<std::mutex> l (lock_);
  old.swap (slots_);
}

}  // namespace xdn::fanout
