/* The codecs OpenXDN speaks over WebRTC, as RTP caps for webrtcbin's
 * codec-preferences: H.264 (packetization-mode 1, constrained baseline
 * announced unless the stream says otherwise) and VP8 video, Opus audio,
 * each with the RTCP feedback a viewer needs to ask for keyframes and
 * retransmissions (nack, nack pli, ccm fir). */
#pragma once

#include <gst/gst.h>
#include <gst/sdp/sdp.h>

#include <string>

namespace xdn {

enum class RtpCodec { None, H264, VP8, Opus };

/* Fixed payload types of the offers. */
constexpr int kPayloadH264 = 96;
constexpr int kPayloadVP8 = 97;
constexpr int kPayloadOpus = 111;

/* Which codec a media caps structure (video/x-h264, video/x-vp8,
 * audio/x-opus) or an RTP caps structure (encoding-name) carries. */
RtpCodec codecFromMediaCaps (const GstCaps *caps);
RtpCodec codecFromRtpCaps (const GstCaps *caps);

const char *codecName (RtpCodec codec);
int codecPayloadType (RtpCodec codec);
bool codecIsVideo (RtpCodec codec);

/* application/x-rtp caps for @codec at its payload type, feedback
 * included. Transfer full. */
GstCaps *rtpCapsForCodec (RtpCodec codec);

/* Ensures every H.264 format of @sdp says packetization-mode=1 and has a
 * profile-level-id (42e01f when the stream gave none), as servers and
 * browsers expect. */
void completeH264Fmtp (GstSDPMessage *sdp);

}  // namespace xdn
