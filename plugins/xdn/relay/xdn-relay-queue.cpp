#include "xdn-relay-queue.h"

#include <algorithm>

namespace xdn::relay {

VideoCodec
gateCodecOf (const TrackDescription &t)
{
  if (t.kind != TrackKind::Video || !t.caps || gst_caps_get_size (t.caps.get ()) == 0)
    return VideoCodec::Unknown;
  return videoCodecFromEncodingName (gst_structure_get_string (
      gst_caps_get_structure (t.caps.get (), 0), "encoding-name"));
}

SubscriberQueue::SubscriberQueue (size_t max_queue)
    : maxQueue_ (std::max<size_t> (max_queue, 1))
{
}

bool
SubscriberQueue::addTracks (const std::vector<TrackDescription> &tracks, bool initial,
    std::vector<guint> &video)
{
  std::lock_guard<std::mutex> l (lock_);
  if (closed_)
    return false;
  for (size_t i = 0; i < tracks.size (); i++) {
    const TrackDescription &t = tracks[i];
    setGateLocked (t);
    if (t.kind == TrackKind::Video)
      video.push_back (t.id);
    if (!initial) {
      RelayEvent ev;
      ev.type = RelayEvent::Type::TrackAdded;
      ev.track = t.id;
      ev.kind = t.kind;
      ev.caps = t.caps;
      ev.moreTracks = i + 1 < tracks.size ();
      pushControlLocked (std::move (ev));
    }
  }
  return true;
}

void
SubscriberQueue::trackChanged (const TrackDescription &t, bool added, bool more)
{
  std::lock_guard<std::mutex> l (lock_);
  if (closed_ || ended_)
    return;
  auto it = gates_.find (t.id);
  if (added || it == gates_.end ()) {
    setGateLocked (t);
  } else {
    it->second.kind = t.kind;
    it->second.codec = gateCodecOf (t);
  }
  RelayEvent ev;
  ev.type = added ? RelayEvent::Type::TrackAdded : RelayEvent::Type::CapsChanged;
  ev.track = t.id;
  ev.kind = t.kind;
  ev.caps = t.caps;
  ev.moreTracks = added && more;
  pushControlLocked (std::move (ev));
}

void
SubscriberQueue::trackEnded (guint track)
{
  std::lock_guard<std::mutex> l (lock_);
  if (closed_ || ended_)
    return;
  gates_.erase (track);
  RelayEvent ev;
  ev.type = RelayEvent::Type::TrackEnded;
  ev.track = track;
  pushControlLocked (std::move (ev));
}

void
SubscriberQueue::streamEnded ()
{
  std::lock_guard<std::mutex> l (lock_);
  if (closed_ || ended_)
    return;
  ended_ = true;
  gates_.clear ();
  RelayEvent ev;
  ev.type = RelayEvent::Type::StreamEnded;
  pushControlLocked (std::move (ev));
}

void
SubscriberQueue::enqueueBuffer (guint track, GstBuffer *buffer, bool keyframe,
    ClockReadings &clocks, std::vector<guint> &requests)
{
  std::unique_lock<std::mutex> l (lock_);
  if (closed_ || ended_)
    return;
  auto it = gates_.find (track);
  if (it == gates_.end ())
    return;
  Gate &gate = it->second;
  if (gate.waitingForKeyframe) {
    if (!keyframe)
      return;
    gate.waitingForKeyframe = false;
  }
  if (bufferCount_ >= maxQueue_) {
    dropOldestLocked (requests);
    /* The drop may have broken this very track: go on only from a keyframe. */
    if (gate.waitingForKeyframe) {
      if (!keyframe)
        return;
      gate.waitingForKeyframe = false;
      requests.erase (std::remove (requests.begin (), requests.end (), track),
          requests.end ());
    }
  }

  RelayEvent ev;
  ev.type = RelayEvent::Type::Buffer;
  ev.track = track;
  ev.buffer = GRef<GstBuffer>::ref (buffer);
  ev.keyframe = keyframe;
  ev.discont = std::exchange (gate.discont, false);
  if (clock_) {
    GstClockTime now = clocks.now (clock_.get ());
    ev.runningTime = now > baseTime_ ? now - baseTime_ : 0;
  }
  queue_.push_back (std::move (ev));
  bufferCount_++;
  if (deliver_)
    deliverLocked (l);
  else
    cond_.notify_one ();
}

void
SubscriberQueue::breakTracks (std::vector<guint> &video)
{
  std::lock_guard<std::mutex> l (lock_);
  if (closed_ || ended_)
    return;
  for (auto &[id, gate] : gates_) {
    gate.discont = true;
    if (gate.codec != VideoCodec::Unknown) {
      gate.waitingForKeyframe = true;
      video.push_back (id);
    }
  }
}

bool
SubscriberQueue::pop (RelayEvent &event)
{
  std::unique_lock<std::mutex> l (lock_);
  cond_.wait (l, [this] { return interrupted_ || closed_ || !queue_.empty (); });
  if (interrupted_ || closed_)
    return false;
  event = takeFrontLocked ();
  return true;
}

void
SubscriberQueue::setDelivery (DeliverFunction deliver)
{
  std::lock_guard<std::mutex> l (lock_);
  deliver_ = std::move (deliver);
}

bool
SubscriberQueue::deliverWaiting ()
{
  std::unique_lock<std::mutex> l (lock_);
  cond_.wait (l, [this] {
    return interrupted_ || closed_ || (!queue_.empty () && !delivering_);
  });
  if (interrupted_ || closed_)
    return false;
  deliverLocked (l);
  return !interrupted_ && !closed_;
}

void
SubscriberQueue::deliverLocked (std::unique_lock<std::mutex> &l)
{
  if (delivering_)
    return;  /* that thread delivers what was just queued as well */
  delivering_ = true;
  deliverer_ = std::this_thread::get_id ();
  while (!interrupted_ && !closed_ && !queue_.empty ()) {
    RelayEvent event = takeFrontLocked ();
    l.unlock ();
    const bool go_on = deliver_ (event);
    event = RelayEvent ();  /* the buffer is released outside the lock */
    l.lock ();
    if (!go_on)
      interrupted_ = true;
  }
  delivering_ = false;
  /* Only close () waits for this; deliverWaiting () has nothing to do now
   * (the queue is empty, or interrupted, which woke it already). Waking it
   * for every packet would cost the thread switch this saves. */
  if (closed_)
    cond_.notify_all ();
}

void
SubscriberQueue::setInterrupted (bool interrupted)
{
  std::lock_guard<std::mutex> l (lock_);
  interrupted_ = interrupted;
  cond_.notify_all ();
}

void
SubscriberQueue::setTimeBase (GstClock *clock, GstClockTime base_time)
{
  std::lock_guard<std::mutex> l (lock_);
  clock_ = GRef<GstClock>::ref (clock);
  baseTime_ = base_time;
}

void
SubscriberQueue::close ()
{
  std::deque<RelayEvent> dropped;  /* destroyed after the lock is released */
  std::unique_lock<std::mutex> l (lock_);
  closed_ = true;
  dropped.swap (queue_);
  bufferCount_ = 0;
  cond_.notify_all ();
  /* The subscriber tears its pads down after this: a delivery still running
   * on another thread may be using them. (From within a delivery, there is
   * nothing to wait for.) */
  cond_.wait (l, [this] {
    return !delivering_ || deliverer_ == std::this_thread::get_id ();
  });
}

SubscriptionStats
SubscriberQueue::stats () const
{
  std::lock_guard<std::mutex> l (lock_);
  SubscriptionStats s;
  s.packets = packets_;
  s.bytes = bytes_;
  s.dropped = dropped_;
  s.queued = bufferCount_;
  return s;
}

void
SubscriberQueue::setGateLocked (const TrackDescription &t)
{
  Gate g;
  g.kind = t.kind;
  g.codec = gateCodecOf (t);
  /* A video track starts on a keyframe, whenever the subscriber joins. */
  g.waitingForKeyframe = g.codec != VideoCodec::Unknown;
  gates_[t.id] = g;
}

RelayEvent
SubscriberQueue::takeFrontLocked ()
{
  RelayEvent event = std::move (queue_.front ());
  queue_.pop_front ();
  if (event.type == RelayEvent::Type::Buffer) {
    bufferCount_--;
    packets_++;
    bytes_ += gst_buffer_get_size (event.buffer.get ());
  }
  return event;
}

void
SubscriberQueue::pushControlLocked (RelayEvent &&ev)
{
  /* Control events are never dropped and do not count against max-queue. */
  queue_.push_back (std::move (ev));
  cond_.notify_all ();
}

/* The queue is full: drop its oldest packet. A video track that lost a
 * packet cannot be decoded until its next keyframe, so its packets up to
 * the next queued keyframe go too; with none queued, the track waits for
 * the next one and asks for it. */
void
SubscriberQueue::dropOldestLocked (std::vector<guint> &requests)
{
  auto oldest = std::find_if (queue_.begin (), queue_.end (),
      [] (const RelayEvent &e) { return e.type == RelayEvent::Type::Buffer; });
  if (oldest == queue_.end ())
    return;
  const guint track = oldest->track;
  queue_.erase (oldest);
  bufferCount_--;
  dropped_++;

  auto g = gates_.find (track);
  const bool gated = g != gates_.end () && g->second.codec != VideoCodec::Unknown;
  bool resumed = false;  /* a later packet of @track carries the discont */
  std::deque<RelayEvent> kept;
  for (auto &e : queue_) {
    if (!resumed && e.type == RelayEvent::Type::Buffer && e.track == track) {
      if (!gated || e.keyframe) {
        e.discont = true;
        resumed = true;
      } else {
        bufferCount_--;
        dropped_++;
        continue;
      }
    }
    kept.push_back (std::move (e));
  }
  queue_.swap (kept);
  if (!resumed && g != gates_.end ()) {
    g->second.discont = true;
    if (gated) {
      g->second.waitingForKeyframe = true;
      requests.push_back (track);
    }
  }
}

}  // namespace xdn::relay
