/* RTCP as the fan-out reads it from viewers and writes it to them
 * (RFC 3550, RFC 4585 feedback, RFC 5104 FIR, REMB
 * draft-alvestrand-rmcat-remb, transport-wide congestion control
 * draft-holmer-rmcat-transport-wide-cc-extensions).
 *
 * The parser walks a compound packet (after SRTCP unprotect) and hands
 * each message to a visitor; it never allocates and never reads outside
 * the bytes it was given. The builders write into the caller's buffer and
 * return 0 when it is too small. */
#pragma once

#include <cstddef>
#include <cstdint>

namespace xdn::fanout {

namespace rtcptype {
constexpr uint8_t SenderReport = 200;
constexpr uint8_t ReceiverReport = 201;
constexpr uint8_t SourceDescription = 202;
constexpr uint8_t Bye = 203;
constexpr uint8_t App = 204;
constexpr uint8_t TransportFeedback = 205;   /* RTPFB */
constexpr uint8_t PayloadFeedback = 206;     /* PSFB */
}  // namespace rtcptype

/* Whether a datagram on a muxed port is RTCP (RFC 5761 4): the second
 * byte (marker bit and payload type) is 192-223. */
inline bool
rtcpLooksLike (const uint8_t *data, size_t size)
{
  return size >= 8 && (data[0] >> 6) == 2 && data[1] >= 192 && data[1] <= 223;
}

struct RtcpReportBlock {
  uint32_t ssrc = 0;            /* the source reported on (ours) */
  uint8_t fractionLost = 0;     /* /256 */
  int32_t cumulativeLost = 0;   /* 24-bit signed */
  uint32_t highestSeq = 0;      /* extended */
  uint32_t jitter = 0;          /* RTP timestamp units */
  uint32_t lastSr = 0;          /* middle 32 bits of the SR's NTP time */
  uint32_t delaySinceLastSr = 0;  /* 1/65536 s */
};

/* A transport-wide CC feedback message (RTPFB FMT 15,
 * draft-holmer-rmcat-transport-wide-cc-extensions-01 3.1). The parser hands
 * it on only when it is whole: its packet status chunks cover statusCount
 * packets with no reserved symbol, and the receive delta of every packet
 * reported received lies within the message. */
struct RtcpTransportCc {
  uint32_t senderSsrc = 0;
  uint32_t mediaSsrc = 0;
  uint16_t baseSeq = 0;
  uint16_t statusCount = 0;     /* packets reported on, from baseSeq */
  int32_t referenceTime = 0;    /* 64 ms units, 24-bit signed */
  uint8_t feedbackCount = 0;
  unsigned received = 0;        /* of statusCount, reported received */
  const uint8_t *chunks = nullptr;  /* status chunks then receive deltas */
  size_t size = 0;

  /* Calls @fn (uint16_t seq, bool received, int64_t arrivalUs) for each
   * packet from baseSeq on; arrivalUs (the reference time plus the receive
   * deltas so far, on the viewer's clock) is meaningful when received. */
  template <typename F> void forEach (F &&fn) const;
};

/* Checks a transport-cc message's chunks and deltas (@chunks: the bytes
 * after the fixed 8-byte FCI head) for @statusCount packets. Returns the
 * offset where the receive deltas start, or 0 when malformed; @received
 * gets the number of packets reported received. */
size_t rtcpTransportCcCheck (const uint8_t *chunks, size_t size, uint16_t statusCount,
    unsigned *received);

template <typename F>
void
RtcpTransportCc::forEach (F &&fn) const
{
  unsigned tmp = 0;
  size_t delta = rtcpTransportCcCheck (chunks, size, statusCount, &tmp);
  if (delta == 0)
    return;
  int64_t arrivalUs = int64_t (referenceTime) * 64000;
  uint16_t seq = baseSeq;
  unsigned left = statusCount;
  /* Already checked: every read below is within the message. */
  auto symbol = [&] (unsigned s) {
    if (s == 1) {
      arrivalUs += int64_t (chunks[delta]) * 250;
      delta += 1;
    } else if (s == 2) {
      arrivalUs += int64_t (int16_t ((chunks[delta] << 8) | chunks[delta + 1])) * 250;
      delta += 2;
    }
    fn (seq, s != 0, arrivalUs);
    seq++;
    left--;
  };
  for (size_t pos = 0; left > 0; pos += 2) {
    const unsigned chunk = (unsigned (chunks[pos]) << 8) | chunks[pos + 1];
    if (!(chunk & 0x8000)) {
      /* run length: 2-bit symbol, 13-bit length */
      const unsigned s = (chunk >> 13) & 3;
      for (unsigned n = chunk & 0x1fff; n > 0 && left > 0; n--)
        symbol (s);
    } else if (!(chunk & 0x4000)) {
      for (int bit = 13; bit >= 0 && left > 0; bit--)
        symbol ((chunk >> bit) & 1);
    } else {
      for (int sh = 12; sh >= 0 && left > 0; sh -= 2)
        symbol ((chunk >> sh) & 3);
    }
  }
}

/* Receives what a compound packet says. Default: ignore. */
class RtcpVisitor {
public:
  virtual ~RtcpVisitor () = default;
  virtual void onReportBlock (uint32_t senderSsrc, const RtcpReportBlock &block) {}
  /* One lost sequence number (a generic NACK's PID and BLP bits,
   * RFC 4585 6.2.1, expanded). */
  virtual void onNack (uint32_t senderSsrc, uint32_t mediaSsrc, uint16_t seq) {}
  virtual void onPli (uint32_t senderSsrc, uint32_t mediaSsrc) {}
  /* RFC 5104 4.3.1: one FCI entry (the SSRC asked for a decoder refresh). */
  virtual void onFir (uint32_t senderSsrc, uint32_t mediaSsrc, uint8_t seqNr) {}
  /* REMB: the receiver's estimate for the SSRCs listed. */
  virtual void onRemb (uint32_t senderSsrc, uint64_t bitrate, const uint8_t *ssrcs,
      unsigned count) {}
  /* Transport-wide CC feedback, checked whole (see RtcpTransportCc). */
  virtual void onTransportCc (const RtcpTransportCc &feedback) {}
  /* A feedback message of a known format whose contents do not hold
   * together (a transport-cc message with truncated chunks or deltas):
   * skipped. */
  virtual void onMalformed (uint8_t type, uint8_t format) {}
  virtual void onBye (uint32_t ssrc) {}
};

enum class RtcpParseStatus {
  Ok,
  Empty,       /* no bytes */
  BadVersion,  /* a message that is not version 2 */
  Truncated,   /* a length field runs past the end (messages before it were read) */
};

/* Walks every message of a compound packet; unknown message types and
 * feedback formats are skipped. At most kMaxNacks lost packets are
 * reported per call. */
RtcpParseStatus rtcpParse (const uint8_t *data, size_t size, RtcpVisitor &visitor);
constexpr unsigned kRtcpMaxNacksPerPacket = 512;

/* NTP time (RFC 5905): seconds since 1900 in the high 32 bits. */
uint64_t ntpFromUnixMicros (int64_t unixMicros);

/* A sender report (no report blocks) followed by an SDES with @cname
 * (RFC 3550 6.1 compound rules); returns its size or 0. */
size_t rtcpWriteSenderReport (uint8_t *out, size_t capacity, uint32_t ssrc, uint64_t ntp,
    uint32_t rtpTimestamp, uint32_t packets, uint32_t octets, const char *cname);

/* Receiver-side messages (for viewers in tests and load clients). */
size_t rtcpWriteReceiverReport (uint8_t *out, size_t capacity, uint32_t senderSsrc,
    const RtcpReportBlock *blocks, unsigned count);
/* Generic NACK for @seqs (any order; sorted from the first on, so that a
 * list across the wrap stays in order, duplicates merged), packed into as
 * few PID/BLP entries as they allow. 0 when @capacity is too small or
 * @count is 0; at most kRtcpMaxNacksPerPacket are read. */
size_t rtcpWriteNack (uint8_t *out, size_t capacity, uint32_t senderSsrc, uint32_t mediaSsrc,
    const uint16_t *seqs, unsigned count);
size_t rtcpWritePli (uint8_t *out, size_t capacity, uint32_t senderSsrc, uint32_t mediaSsrc);
size_t rtcpWriteFir (uint8_t *out, size_t capacity, uint32_t senderSsrc, uint32_t mediaSsrc,
    uint8_t seqNr);
size_t rtcpWriteRemb (uint8_t *out, size_t capacity, uint32_t senderSsrc, uint64_t bitrate,
    const uint32_t *ssrcs, unsigned count);
size_t rtcpWriteBye (uint8_t *out, size_t capacity, uint32_t ssrc);

}  // namespace xdn::fanout
