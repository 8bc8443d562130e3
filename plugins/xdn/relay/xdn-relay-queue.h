/* One subscriber's queue of RelayEvents, shared by the transports.
 *
 * Events wait here, in publish order, until the subscriber's element pops
 * them. The queue is bounded in packets: when it is full the oldest packet
 * is dropped (and counted), never the publisher held up. It also keeps, per
 * track, the gate that makes a video track start on a keyframe: after a
 * subscriber joins, after a drop, and after a gap in the link (SRT
 * reconnect), a video track's packets are held back until its next
 * keyframe, and the first packet after a gap carries DISCONT.
 *
 * Control events (tracks added, caps, ends) are never dropped and do not
 * count against the bound.
 *
 * Direct delivery (setDelivery) hands events to a function on the thread
 * that queued a packet, instead of leaving them for the subscriber's thread
 * to pop: no thread switch per packet. Events are still delivered one at a
 * time and in order; whichever thread finds nobody delivering drains the
 * queue. Control events queued with no packet after them (a new track, an
 * end) wait for the subscriber's thread (deliverWaiting), since the
 * transports queue those with their own locks held.
 *
 * Thread-safe: one lock guards everything; it is never held while calling
 * out. */
#pragma once

#include <condition_variable>
#include <deque>
#include <map>
#include <mutex>
#include <thread>
#include <utility>
#include <vector>

#include "xdn-relay-transport.h"
#include "xdn-rtp-keyframe.h"

namespace xdn::relay {

/* Clock readings made while fanning one packet out: subscriptions that share
 * a clock (usually all: the system clock) read it once. */
class ClockReadings {
public:
  GstClockTime now (GstClock *clock)
  {
    for (const auto &r : readings_)
      if (r.first == clock)
        return r.second;
    GstClockTime t = gst_clock_get_time (clock);
    readings_.emplace_back (clock, t);
    return t;
  }

private:
  std::vector<std::pair<GstClock *, GstClockTime>> readings_;
};

/* The video codec whose keyframes gate a track (Unknown: never wait). */
VideoCodec gateCodecOf (const TrackDescription &t);

class SubscriberQueue {
public:
  explicit SubscriberQueue (size_t max_queue);

  /* Gates for @tracks; unless @initial each also becomes a TrackAdded
   * event. Appends the video tracks (to ask a keyframe for) to @video.
   * False, doing nothing, once the queue is closed. */
  bool addTracks (const std::vector<TrackDescription> &tracks, bool initial,
      std::vector<guint> &video);
  /* A track added (or back after it ended) or with new caps. @more: other
   * TrackAdded events follow at once (the element waits for the last one
   * before no-more-pads). */
  void trackChanged (const TrackDescription &t, bool added, bool more = false);
  void trackEnded (guint track);
  void streamEnded ();

  /* A packet of @track. Never blocks for longer than the queue lock.
   * Appends to @requests the tracks that lost packets and need a keyframe. */
  void enqueueBuffer (guint track, GstBuffer *buffer, bool keyframe,
      ClockReadings &clocks, std::vector<guint> &requests);
  /* The link lost packets of every track (reconnect): the next packet of
   * each track is DISCONT and video waits for a keyframe. Appends the video
   * tracks to @video. */
  void breakTracks (std::vector<guint> &video);

  /* Blocks until the next event; false when interrupted or closed. Not
   * with direct delivery. */
  bool pop (RelayEvent &event);

  /* Direct delivery from now on (call once, before events flow). */
  void setDelivery (DeliverFunction deliver);
  /* Direct delivery's pop (): blocks until events wait that no packet's
   * thread is delivering, and delivers them; false when interrupted or
   * closed. */
  bool deliverWaiting ();

  /* While set, pop () and deliverWaiting () return false at once and
   * nothing is delivered. */
  void setInterrupted (bool interrupted);
  void setTimeBase (GstClock *clock, GstClockTime base_time);
  /* Unsubscribe: drops every queued event; later calls do nothing. Waits for
   * a delivery in progress on another thread to return. */
  void close ();
  SubscriptionStats stats () const;

private:
  struct Gate {
    TrackKind kind = TrackKind::Other;
    VideoCodec codec = VideoCodec::Unknown;  /* Unknown: never wait */
    bool waitingForKeyframe = false;
    bool discont = true;                     /* mark the next buffer DISCONT */
  };

  void setGateLocked (const TrackDescription &t);
  void pushControlLocked (RelayEvent &&ev);
  void dropOldestLocked (std::vector<guint> &requests);
  RelayEvent takeFrontLocked ();
  /* Delivers what is queued unless another thread is at it; @l is held on
   * entry and on return. */
  void deliverLocked (std::unique_lock<std::mutex> &l);

  const size_t maxQueue_;

  mutable std::mutex lock_;       /* protects every field below */
  /* queue_ not empty, interrupted_, closed_, delivering_ cleared */
  std::condition_variable cond_;
  std::deque<RelayEvent> queue_;
  size_t bufferCount_ = 0;        /* Buffer events in queue_ (control events excluded) */
  std::map<guint, Gate> gates_;
  GRef<GstClock> clock_;
  GstClockTime baseTime_ = 0;
  bool interrupted_ = false;
  bool closed_ = false;           /* unsubscribed */
  bool ended_ = false;            /* the stream ended */
  guint64 packets_ = 0;
  guint64 bytes_ = 0;
  guint64 dropped_ = 0;
  DeliverFunction deliver_;       /* direct delivery; empty: pop () */
  bool delivering_ = false;       /* a thread is draining queue_ through deliver_ */
  std::thread::id deliverer_;     /* which one */
};

}  // namespace xdn::relay
