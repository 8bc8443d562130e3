/* What the node serves (H.264 constrained baseline with packetization-mode
 * 1, or VP8; Opus) and how to pick it out of an offer's m-line. */
#pragma once

#include <gst/gst.h>
#include <gst/sdp/sdp.h>

#include <string>

namespace xdn {

/* Picks the first format of @media the node accepts and returns its caps
 * (application/x-rtp with payload, clock-rate, encoding-name, fmtp fields
 * and rtcp-fb flags), or nullptr. @encodingName narrows the choice to one
 * codec ("H264", "VP8", "OPUS"); empty accepts any the node serves for the
 * media's kind. */
GstCaps *chooseOfferedCodec (const GstSDPMedia *media, const std::string &encodingName);

/* The encoding name in RTP caps ("H264"), upper-case, or "". */
std::string encodingNameOf (const GstCaps *caps);

/* Replaces @from with @to in the connection address of every a=candidate
 * line (1:1 NAT: announce a public address for a local one). */
std::string announceAddress (const std::string &sdp, const std::string &from,
    const std::string &to);

}  // namespace xdn
