/* Latency statistics of xdnlatencymeter: counts of read and unreadable
 * frames, and the distribution of the latencies read. Not thread-safe: the
 * owner serialises access. */
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>

namespace xdn {

struct LatencySummary {
  uint64_t framesRead = 0;
  uint64_t framesUnreadable = 0;
  /* Percentiles over the last `window` latencies; min, max and mean over
   * every frame read. All 0 when no frame was read. */
  double p50Ms = 0;
  double p95Ms = 0;
  double maxMs = 0;
  double minMs = 0;
  double meanMs = 0;
};

class LatencyStats {
public:
  explicit LatencyStats (size_t window = 10000) : window_ (window ? window : 1) {}

  void addRead (double latencyMs);
  void addUnreadable () { unreadable_++; }
  /* Keeps the newest samples when the window shrinks. */
  void setWindow (size_t window);
  size_t window () const { return window_; }
  void reset ();

  uint64_t framesRead () const { return read_; }
  uint64_t framesUnreadable () const { return unreadable_; }
  /* Nearest-rank percentiles; costs O(window). */
  LatencySummary summary () const;

private:
  size_t window_;
  std::deque<double> recent_;
  uint64_t read_ = 0;
  uint64_t unreadable_ = 0;
  double sum_ = 0;
  double min_ = 0;
  double max_ = 0;
};

}  // namespace xdn
