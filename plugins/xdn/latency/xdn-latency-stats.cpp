#include "xdn-latency-stats.h"

#include <algorithm>
#include <cmath>
#include <vector>

namespace xdn {

void
LatencyStats::addRead (double latencyMs)
{
  if (read_ == 0) {
    min_ = max_ = latencyMs;
  } else {
    min_ = std::min (min_, latencyMs);
    max_ = std::max (max_, latencyMs);
  }
  read_++;
  sum_ += latencyMs;
  recent_.push_back (latencyMs);
  while (recent_.size () > window_)
    recent_.pop_front ();
}

void
LatencyStats::setWindow (size_t window)
{
  window_ = window ? window : 1;
  while (recent_.size () > window_)
    recent_.pop_front ();
}

void
LatencyStats::reset ()
{
  recent_.clear ();
  read_ = unreadable_ = 0;
  sum_ = min_ = max_ = 0;
}

static double
nearestRank (std::vector<double> &sorted, double percent)
{
  const size_t n = sorted.size ();
  size_t rank = static_cast<size_t> (std::ceil (percent / 100.0 * n));
  rank = std::clamp<size_t> (rank, 1, n);
  std::nth_element (sorted.begin (), sorted.begin () + (rank - 1), sorted.end ());
  return sorted[rank - 1];
}

LatencySummary
LatencyStats::summary () const
{
  LatencySummary s;
  s.framesRead = read_;
  s.framesUnreadable = unreadable_;
  if (read_ == 0)
    return s;
  std::vector<double> samples (recent_.begin (), recent_.end ());
  s.p50Ms = nearestRank (samples, 50);
  s.p95Ms = nearestRank (samples, 95);
  s.minMs = min_;
  s.maxMs = max_;
  s.meanMs = sum_ / static_cast<double> (read_);
  return s;
}

}  // namespace xdn
