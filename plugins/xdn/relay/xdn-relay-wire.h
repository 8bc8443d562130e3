/* The relay wire format: messages carried by an SRT link between nodes.
 *
 * Every SRT message (live mode, one message per SRT packet) starts with a
 * 4-byte header:
 *
 *   byte 0     version (kVersion = 1)
 *   byte 1     kind (Kind)
 *   bytes 2-3  track id, big endian (0 when the kind is not about a track)
 *
 * then the body of that kind. A message longer than the link's payload size
 * travels as Fragment messages, reassembled by the receiver. The format is
 * documented for operators and other implementations in
 * docs/relay-protocol.md; keep the two in step.
 *
 * Plain C++17 over byte buffers (no sockets, no GObject), so that it is
 * unit-tested on its own. Parsing never reads outside the bytes it is given
 * and bounds everything it accepts. */
#pragma once

#include <gst/gst.h>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "xdn-relay-transport.h"

namespace xdn::relay::wire {

constexpr uint8_t kVersion = 1;
constexpr size_t kHeaderSize = 4;
/* Fragment body before the bytes it carries: message id, index, count. */
constexpr size_t kFragmentHeaderSize = 6;
/* Largest whole message (reassembled), header included. */
constexpr size_t kMaxMessageSize = 64 * 1024;
/* Largest SRT live payload (SRT_LIVE_MAX_PLSIZE): receive buffers hold one. */
constexpr size_t kMaxPayloadSize = 1456;
/* Smallest payload size a sender may fragment for. */
constexpr size_t kMinPayloadSize = kHeaderSize + kFragmentHeaderSize + 64;
/* Tracks in one description. */
constexpr size_t kMaxTracks = 256;
/* Track ids the header can carry. */
constexpr guint kMaxTrackId = 0xffff;

enum class Kind : uint8_t {
  Rtp = 1,              /* upstream -> downstream: body = one RTP packet */
  Description = 2,      /* upstream -> downstream: body = JSON stream description */
  TrackEnd = 3,         /* upstream -> downstream: the track ended; no body */
  StreamEnd = 4,        /* upstream -> downstream: the stream ended; no body */
  KeyframeRequest = 5,  /* downstream -> upstream: keyframe wanted on the track; no body */
  Fragment = 6,         /* either way: one piece of a longer message */
};

const char *kindName (Kind kind);

enum class Error {
  None,
  Truncated,     /* shorter than its header or than its kind needs */
  BadVersion,    /* version byte is not kVersion */
  UnknownKind,   /* kind byte this version does not define */
  Oversized,     /* longer than kMaxMessageSize */
  BadBody,       /* body malformed for its kind (RTP that is not RTP, ...) */
  BadFragment,   /* fragment fields inconsistent, or a fragment inside a fragment */
};

const char *errorName (Error error);

/* One parsed message: a view into the bytes given to parseMessage(). */
struct Message {
  Kind kind = Kind::Rtp;
  guint16 track = 0;
  const uint8_t *body = nullptr;
  size_t bodySize = 0;
};

inline void
writeHeader (uint8_t *out, Kind kind, guint16 track)
{
  out[0] = kVersion;
  out[1] = static_cast<uint8_t> (kind);
  out[2] = uint8_t (track >> 8);
  out[3] = uint8_t (track & 0xff);
}

/* Parses one whole message. Bodies of kinds without one may carry extra
 * bytes (later extensions): they are ignored. */
Error parseMessage (const uint8_t *data, size_t size, Message &out);

/* Calls @emit with each fragment of the whole message @data (header
 * included), each at most @payload_size bytes. @message_id tells this
 * message's fragments from the next one's. False if the message is too big
 * (kMaxMessageSize), @payload_size too small (kMinPayloadSize), or @emit
 * returned false (the remaining fragments are not made). */
bool fragmentMessage (const uint8_t *data, size_t size, size_t payload_size,
    guint16 message_id, const std::function<bool (const uint8_t *, size_t)> &emit);

/* Reassembles fragmented messages of one link. Fragments of one message
 * come in order, one message after the other (other, unfragmented messages
 * may come in between); a missing fragment loses that message only. */
class Reassembler {
public:
  enum class Result { Incomplete, Complete, Error };

  /* @body, @size: the body of one Fragment message. On Complete, @out holds
   * the whole message (header included, not yet parsed). */
  Result feed (const uint8_t *body, size_t size, std::vector<uint8_t> &out, Error &error);
  /* Messages abandoned because a fragment was missing. */
  guint64 abandoned () const { return abandoned_; }
  void reset ();

private:
  void abandon ();

  bool active_ = false;
  guint16 id_ = 0;
  guint16 next_ = 0;
  guint16 count_ = 0;
  std::vector<uint8_t> data_;
  guint64 abandoned_ = 0;
};

/* The stream description: what a downstream node needs to make its pads. */
struct Description {
  std::string stream;
  std::vector<TrackDescription> tracks;
};

/* JSON text: {"stream":"live/a","tracks":[{"id":0,"kind":"video",
 * "caps":"application/x-rtp, media=(string)video, ..."}, ...]}. */
std::string encodeDescription (const std::string &stream,
    const std::vector<TrackDescription> &tracks);

/* False, with @error saying why, on malformed JSON, a missing or mistyped
 * field, a track id out of range or given twice, caps that do not parse or
 * are not application/x-rtp, or more than kMaxTracks tracks. Unknown fields
 * are ignored; "kind" is informative (the caps' media field decides). */
bool decodeDescription (const char *text, size_t size, Description &out, std::string &error);

}  // namespace xdn::relay::wire
