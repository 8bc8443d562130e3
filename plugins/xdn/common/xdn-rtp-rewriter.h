/* Per-viewer RTP header rewriting: the stream's packets are payloaded once
 * at ingest and shared; each viewer gets its own payload type (as
 * negotiated), SSRC, and sequence numbers / timestamps that stay continuous
 * when the source behind it changes (new publisher, another variant).
 * Plain C++ so that every delivery path can use it. */
#pragma once

#include <cstddef>
#include <cstdint>

namespace xdn {

class RtpRewriter {
public:
  /* @payloadType: 0-127; @ssrc: the viewer's SSRC for this track. */
  RtpRewriter (uint8_t payloadType, uint32_t ssrc);

  /* Rewrites the RTP header of @packet in place. Returns false (and leaves
   * the packet untouched) when it is not a valid RTP packet. */
  bool rewrite (uint8_t *packet, size_t size);

  /* The next packet starts a new source (other SSRC, unrelated sequence
   * numbers and timestamps): keep the output continuous across it. */
  void sourceChanged () { resync_ = true; }

  uint8_t payloadType () const { return pt_; }
  uint32_t ssrc () const { return ssrc_; }

private:
  uint8_t pt_;
  uint32_t ssrc_;
  bool started_ = false;
  bool resync_ = false;
  uint32_t inSsrc_ = 0;
  uint16_t seqOffset_ = 0;   /* out = in + offset (mod 2^16) */
  uint32_t tsOffset_ = 0;    /* out = in + offset (mod 2^32) */
  uint16_t lastOutSeq_ = 0;
  uint32_t lastOutTs_ = 0;
};

}  // namespace xdn
