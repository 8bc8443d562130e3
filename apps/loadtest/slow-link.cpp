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
