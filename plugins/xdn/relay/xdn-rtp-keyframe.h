/* Does this RTP packet start a keyframe?
 *
 * Plain C++ (no element state): the hub asks it for every packet of a video
 * track so that a subscriber which joins late, or lost packets, starts again
 * on a picture the decoder can use. Truncated and malformed packets return
 * false; the parser never reads outside the bytes it was given. */
#pragma once

#include <gst/gst.h>

#include <cstddef>
#include <cstdint>

namespace xdn::relay {

/* Video codecs whose keyframes the detector recognises. Tracks of any other
 * codec are never held back waiting for a keyframe. */
enum class VideoCodec { Unknown, H264, VP8 };

/* From the `encoding-name` of application/x-rtp caps (case-insensitive). */
VideoCodec videoCodecFromEncodingName (const char *encoding_name);

/* H.264 RTP payload (RFC 6184): a single NAL unit of type 7 (SPS) or 5 (IDR),
 * a STAP-A (24) that aggregates one, or the first fragment (S bit) of an FU-A
 * (28) carrying one. */
bool h264PayloadStartsKeyframe (const uint8_t *payload, size_t size);

/* VP8 RTP payload (RFC 7741): the payload descriptor has S=1 and partition
 * index 0, and the VP8 frame header after it has P (inverse key frame) = 0. */
bool vp8PayloadStartsKeyframe (const uint8_t *payload, size_t size);

/* Whole RTP packet in contiguous memory: parses the fixed header, CSRCs,
 * header extension and padding, then looks at the payload. */
bool rtpPacketStartsKeyframe (VideoCodec codec, const uint8_t *packet, size_t size);

/* Same for a GstBuffer holding one RTP packet. Reads only the few bytes it
 * needs (gst_buffer_extract), so buffers made of several memories (header
 * + payload, as payloaders make them) are never merged or copied. */
bool rtpBufferStartsKeyframe (VideoCodec codec, GstBuffer *buffer);

}  // namespace xdn::relay
