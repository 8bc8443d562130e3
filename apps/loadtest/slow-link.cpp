#include "slow-link.h"

#include "xdn-fanout-bytes.h"

#include <algorithm>

namespace xdn::loadtest {

using fanout::wr16;
using fanout::wr32;

namespace {

/* The largest datagram the link must be able to pass at all. */
constexpr double kMaxDatagram = 1500;

}  // namespace

/* --------------------------------------------------------- TokenBucket */

TokenBucket::TokenBucket (double rateBitsPerS, double depthBytes)
    : bytesPerUs_ (std::max (0.0, rateBitsPerS) / 8.0 / 1e6), depth_ (std::max (0.0, depthBytes)),
      tokens_ (depth_)
{
}

bool
TokenBucket::admit (size_t bytes, int64_t nowUs)
{
  /* A clock that steps back refills nothing (and is the new reference). */
  if (started_ && nowUs > lastUs_)
    tokens_ = std::min (depth_, tokens_ + static_cast<double> (nowUs - lastUs_) * bytesPerUs_);
  lastUs_ = nowUs;
  started_ = true;
  const double need = static_cast<double> (bytes);
  if (tokens_ < need)
    return false;
  tokens_ -= need;
  return true;
}

/* ------------------------------------------------------------ SlowLink */

SlowLink::SlowLink (double rateKbps, double lossPercent, uint64_t seed)
    : bucket_ (rateKbps * 1000.0,
          std::max (kMaxDatagram, rateKbps * 1000.0 / 8.0 * static_cast<double> (kDepthUs) / 1e6)),
      loss_ (std::clamp (lossPercent, 0.0, 100.0) / 100.0), rng_ (seed)
{
}

bool
SlowLink::admit (size_t bytes, int64_t nowUs)
{
  if (!bucket_.admit (bytes, nowUs)) {
    droppedByRate_++;
    return false;
  }
  /* 53 random bits: uniform in [0, 1). */
  if (loss_ > 0 && static_cast<double> (rng_ () >> 11) * 0x1.0p-53 < loss_) {
    droppedByLoss_++;
    return false;
  }
  return true;
}

/* ------------------------------------------------------------- NACK */

size_t
buildGenericNack (uint8_t *out, size_t capacity, uint32_t senderSsrc, uint32_t mediaSsrc,
    const uint16_t *seqs, size_t count)
{
  if (count == 0 || capacity < 12)
    return 0;
  /* In order from the first one on: distances from it, modulo 2^16. */
  const uint16_t first = seqs[0];
  std::vector<uint16_t> d (seqs, seqs + count);
  for (auto &s : d)
    s = static_cast<uint16_t> (s - first);
  std::sort (d.begin (), d.end ());
  d.erase (std::unique (d.begin (), d.end ()), d.end ());

  size_t n = 12;
  size_t i = 0;
  while (i < d.size ()) {
    const uint16_t pid = d[i];
    uint16_t blp = 0;
    for (i++; i < d.size () && d[i] - pid <= 16; i++)
      blp = static_cast<uint16_t> (blp | (1u << (d[i] - pid - 1)));
    if (n + 4 > capacity)
      return 0;
    wr16 (out + n, static_cast<uint16_t> (first + pid));
    wr16 (out + n + 2, blp);
    n += 4;
  }
  out[0] = 0x80 | 1;  /* V=2, FMT 1: generic NACK */
  out[1] = 205;       /* RTPFB */
  wr16 (out + 2, static_cast<uint16_t> (n / 4 - 1));
  wr32 (out + 4, senderSsrc);
  wr32 (out + 8, mediaSsrc);
  return n;
}

/* ---------------------------------------------------------- NackTracker */

NackTracker::Arrival
NackTracker::onPacket (uint16_t seq, bool *pastRepair)
{
  *pastRepair = false;
  if (!started_) {
    started_ = true;
    highest_ = seq;
    return Arrival::InOrder;
  }
  const uint16_t delta = static_cast<uint16_t> (seq - highest_);
  if (delta == 0)
    return Arrival::Old;
  if (delta < kMaxDropout) {
    const uint16_t gap = static_cast<uint16_t> (delta - 1);
    if (gap > kMaxGap) {
      /* Too much at once to ask for one by one: a keyframe repairs it. */
      pending_.clear ();
      *pastRepair = true;
    } else {
      for (uint16_t i = 1; i < delta; i++)
        pending_.push_back (static_cast<uint16_t> (highest_ + i));
      if (pending_.size () > kMaxPending) {
        pending_.erase (pending_.begin (), pending_.end () - kMaxPending);
        *pastRepair = true;
      }
    }
    highest_ = seq;
    return Arrival::InOrder;
  }
  if (delta >= 65536 - kMaxDropout) {
    /* Behind the highest: a hole being filled, or a duplicate. */
    auto a = std::find_if (asked_.begin (), asked_.end (),
        [seq] (const Asked &x) { return x.seq == seq; });
    if (a != asked_.end ()) {
      asked_.erase (a);
      return Arrival::Retransmission;
    }
    auto p = std::find (pending_.begin (), pending_.end (), seq);
    if (p != pending_.end ()) {
      pending_.erase (p);
      return Arrival::Late;
    }
    return Arrival::Old;
  }
  /* A new numbering: what was missing is moot. */
  pending_.clear ();
  asked_.clear ();
  highest_ = seq;
  return Arrival::InOrder;
}

std::vector<uint16_t>
NackTracker::takePending (int64_t nowUs)
{
  std::vector<uint16_t> out;
  out.swap (pending_);
  for (uint16_t s : out) {
    asked_.push_back (Asked {s, nowUs});
    if (asked_.size () > kMaxAsked)
      asked_.pop_front ();
  }
  return out;
}

size_t
NackTracker::expire (int64_t nowUs)
{
  size_t n = 0;
  while (!asked_.empty () && nowUs - asked_.front ().atUs > kRepairTimeoutUs) {
    asked_.pop_front ();
    n++;
  }
  return n;
}

}  // namespace xdn::loadtest
