/* One RTP packet of the stream as the fan-out shares it: immutable once
 * made, referenced (not copied) by every sending thread, the per-track
 * history and the viewers' queues, and copied only into a sending
 * thread's scratch buffer when it is rewritten and protected for one
 * viewer. Its bytes may lie in several segments (a payloader's header and
 * payload memories), so nothing has to be merged to share it.
 *
 * Plain C++: the element wraps a GstBuffer in a subclass that keeps the
 * buffer's memories mapped while the packet lives; tests make packets from
 * bytes. */
#pragma once

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <vector>

namespace xdn::fanout {

class Packet {
public:
  static constexpr size_t kMaxSegments = 4;
  /* The largest packet the fan-out sends (the RTP packet before SRTP's
   * trailer); larger ones are dropped when made. */
  static constexpr size_t kMaxSize = 1500;

  struct Segment {
    const uint8_t *data = nullptr;
    size_t size = 0;
  };

  virtual ~Packet () = default;
  Packet (const Packet &) = delete;
  Packet &operator= (const Packet &) = delete;

  uint32_t track () const { return track_; }
  size_t size () const { return size_; }
  /* Valid RTP (version 2, header within the packet) and not too large. */
  bool valid () const { return valid_; }
  uint16_t seq () const { return seq_; }
  uint32_t timestamp () const { return ts_; }
  uint32_t ssrc () const { return ssrc_; }
  /* The RTP marker bit: for video, the last packet of a picture. */
  bool marker () const { return marker_; }
  /* Bytes after the RTP header (CSRCs and extension included in the
   * header), padding included: the SR's octet count. */
  size_t payloadSize () const { return payloadSize_; }
  /* The fixed header with its CSRCs (where a header extension would
   * start), and the whole header (extension included). */
  size_t csrcEnd () const { return csrcEnd_; }
  size_t headerSize () const { return size_ - payloadSize_; }
  /* The source packet carries a header extension (X bit). */
  bool hasExtension () const { return extension_; }
  /* Starts a picture a decoder can start from (video only). */
  bool keyframe () const { return keyframe_; }
  /* When the packet's media was captured, on the steady clock (from the
   * buffer's running time): sender reports map RTP time to NTP with it. */
  std::chrono::steady_clock::time_point captureTime () const { return capture_; }
  /* When it reached the fan-out. */
  std::chrono::steady_clock::time_point arrivalTime () const { return arrival_; }

  /* Copies the whole packet to @out (size () bytes). */
  void copyTo (uint8_t *out) const;
  /* Copies @length bytes from @offset (within size ()) to @out. */
  void copyRange (uint8_t *out, size_t offset, size_t length) const;

protected:
  Packet () = default;
  /* Subclasses call this once their segments are set. */
  void init (uint32_t track, bool keyframe, std::chrono::steady_clock::time_point capture);
  void addSegment (const uint8_t *data, size_t size);

private:
  std::array<Segment, kMaxSegments> segments_ {};
  size_t segmentCount_ = 0;
  size_t size_ = 0;
  uint32_t track_ = 0;
  bool valid_ = false;
  bool keyframe_ = false;
  uint16_t seq_ = 0;
  uint32_t ts_ = 0;
  uint32_t ssrc_ = 0;
  bool marker_ = false;
  size_t payloadSize_ = 0;
  size_t csrcEnd_ = 0;
  bool extension_ = false;
  std::chrono::steady_clock::time_point capture_;
  std::chrono::steady_clock::time_point arrival_;
};

using PacketRef = std::shared_ptr<const Packet>;

/* A packet that owns a copy of its bytes (tests, and buffers of more than
 * kMaxSegments memories). */
PacketRef makeBytesPacket (uint32_t track, const uint8_t *data, size_t size, bool keyframe,
    std::chrono::steady_clock::time_point capture = std::chrono::steady_clock::now ());

/* The last packets of one track by sequence number, for NACK
 * retransmissions. Thread-safe: the streaming thread adds, sending
 * threads look up. */
class PacketHistory {
public:
  /* @capacity is rounded up to a power of two (at least 16). */
  explicit PacketHistory (size_t capacity);

  void add (PacketRef packet);
  /* The packet with input sequence number @seq of source @ssrc, if still
   * held and not older than @maxAge. */
  PacketRef find (uint16_t seq, uint32_t ssrc, std::chrono::steady_clock::duration maxAge) const;
  size_t capacity () const { return slots_.size (); }
  void clear ();

private:
  mutable std::mutex lock_;        /* protects slots_ */
  std::vector<PacketRef> slots_;   /* by seq & mask */
  size_t mask_;
};

}  // namespace xdn::fanout
