/* A viewer behind a slow link (--slow): the link itself (a token bucket
 * and random loss applied to what arrives), and what such a viewer does
 * about the holes it sees: generic NACKs (RFC 4585 6.2.1) for the missing
 * sequence numbers of its video, and a PLI when the picture is past
 * repair. Plain C++ over numbers and bytes: unit-tested without a
 * network. */
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <random>
#include <vector>

namespace xdn::loadtest {

/* A token bucket of @rateBitsPerS that holds at most @depthBytes: a
 * datagram passes when the bucket holds at least its size (which it then
 * takes), and is dropped otherwise (a link's queue that overflows). The
 * bucket starts full. */
class TokenBucket {
public:
  TokenBucket (double rateBitsPerS, double depthBytes);

  /* A datagram of @bytes arrives at @nowUs (any monotonic microseconds). */
  bool admit (size_t bytes, int64_t nowUs);
  double tokens () const { return tokens_; }

private:
  double bytesPerUs_;
  double depth_;
  double tokens_;
  int64_t lastUs_ = 0;
  bool started_ = false;
};

/* The emulated link: the bucket (depth: 100 ms of the rate, at least one
 * full-size datagram), then random loss from a generator seeded by
 * @seed, so that a run can be repeated. */
class SlowLink {
public:
  static constexpr int64_t kDepthUs = 100000;

  SlowLink (double rateKbps, double lossPercent, uint64_t seed);

  bool admit (size_t bytes, int64_t nowUs);
  uint64_t droppedByRate () const { return droppedByRate_; }
  uint64_t droppedByLoss () const { return droppedByLoss_; }

private:
  TokenBucket bucket_;
  double loss_;
  std::mt19937_64 rng_;
  uint64_t droppedByRate_ = 0;
  uint64_t droppedByLoss_ = 0;
};

/* The holes in one video source as its sequence numbers arrive: each
 * missing number is handed out once to be NACKed, and a packet that comes
 * after it was asked for is known as a retransmission. The picture is
 * past repair (the caller asks for a keyframe instead) when a hole is
 * wider than kMaxGap, when more than kMaxPending wait to be asked for, or
 * when a packet asked for has not come within kRepairTimeoutUs (a
 * receiver's jitter buffer would give up on its frame by then). */
class NackTracker {
public:
  static constexpr uint16_t kMaxGap = 50;
  static constexpr size_t kMaxPending = 128;
  static constexpr size_t kMaxAsked = 512;
  static constexpr int64_t kRepairTimeoutUs = 250000;
  /* As RtpSourceStats: farther ahead than this is a new numbering. */
  static constexpr uint16_t kMaxDropout = 3000;

  enum class Arrival {
    InOrder,         /* the next one, or ahead (a hole before it) */
    Retransmission,  /* was missing and asked for */
    Late,            /* was missing, not yet asked for: fills its hole */
    Old,             /* behind, not missing (a duplicate) or no longer tracked */
  };

  /* One packet. @pastRepair is set when this packet opened a hole too
   * wide to NACK or the list of missing ones overflowed. */
  Arrival onPacket (uint16_t seq, bool *pastRepair);
  bool hasPending () const { return !pending_.empty (); }
  size_t pending () const { return pending_.size (); }
  /* The missing numbers not asked for yet, in order; they count as asked
   * at @nowUs from now on. */
  std::vector<uint16_t> takePending (int64_t nowUs);
  /* Forgets the packets asked for before @nowUs - kRepairTimeoutUs that
   * never came; returns how many. */
  size_t expire (int64_t nowUs);

private:
  struct Asked {
    uint16_t seq;
    int64_t atUs;
  };
  bool started_ = false;
  uint16_t highest_ = 0;
  std::vector<uint16_t> pending_;
  std::deque<Asked> asked_;  /* oldest first */
};

}  // namespace xdn::loadtest
