#include "xdn-hub.h"

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <deque>

#include "xdn-rtp-keyframe.h"
#include "xdn-stream-name.h"

GST_DEBUG_CATEGORY_STATIC (xdn_hub_debug);
#define GST_CAT_DEFAULT xdn_hub_debug

namespace xdn::relay {

namespace {

using SubscriptionList = std::vector<std::shared_ptr<HubSubscription>>;

std::string
codecOfCaps (GstCaps *caps)
{
  if (!caps || gst_caps_get_size (caps) == 0)
    return {};
  const gchar *name = gst_structure_get_string (gst_caps_get_structure (caps, 0),
      "encoding-name");
  return name ? name : "";
}

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

void
ensureDebugCategory ()
{
  static gsize once = 0;
  if (g_once_init_enter (&once)) {
    GST_DEBUG_CATEGORY_INIT (xdn_hub_debug, "xdnhub", 0, "OpenXDN in-process relay hub");
    g_once_init_leave (&once, 1);
  }
}

}  // namespace

/* ---------------------------------------------------------------------- */

class HubSubscription {
public:
  HubSubscription (std::string name, const SubscriptionOptions &options)
      : name_ (std::move (name)), maxQueue_ (std::max<size_t> (options.maxQueue, 1)) {}

  const std::string &streamName () const { return name_; }

  /* With the stream's lock held. @initial: tracks of a stream joined at
   * subscribe time (described by initialTracks()); otherwise each becomes a
   * TrackAdded event. Fills @video with the video tracks to ask a keyframe
   * for. False if the subscription was closed meanwhile. */
  bool attach (const std::weak_ptr<HubStream> &stream,
      const std::vector<TrackDescription> &tracks, bool initial,
      std::vector<guint> &video)
  {
    std::lock_guard<std::mutex> l (lock_);
    if (closed_)
      return false;
    stream_ = stream;
    for (const auto &t : tracks) {
      setGateLocked (t);
      if (t.kind == TrackKind::Video)
        video.push_back (t.id);
      if (initial) {
        initial_.push_back (t);
      } else {
        RelayEvent ev;
        ev.type = RelayEvent::Type::TrackAdded;
        ev.track = t.id;
        ev.kind = t.kind;
        ev.caps = t.caps;
        pushControlLocked (std::move (ev));
      }
    }
    return true;
  }

  /* With the stream's lock held. */
  void trackChanged (const TrackDescription &t, bool added)
  {
    std::lock_guard<std::mutex> l (lock_);
    if (closed_ || ended_)
      return;
    auto it = gates_.find (t.id);
    if (added || it == gates_.end ()) {
      setGateLocked (t);
    } else {
      it->second.kind = t.kind;
      it->second.codec = codecForGate (t);
    }
    RelayEvent ev;
    ev.type = added ? RelayEvent::Type::TrackAdded : RelayEvent::Type::CapsChanged;
    ev.track = t.id;
    ev.kind = t.kind;
    ev.caps = t.caps;
    pushControlLocked (std::move (ev));
  }

  /* With the stream's lock held. */
  void trackEnded (guint track)
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

  void streamEnded ()
  {
    std::lock_guard<std::mutex> l (lock_);
    stream_.reset ();
    if (closed_ || ended_)
      return;
    ended_ = true;
    gates_.clear ();
    RelayEvent ev;
    ev.type = RelayEvent::Type::StreamEnded;
    pushControlLocked (std::move (ev));
  }

  /* From the publisher's thread, no stream lock held. Never blocks for
   * longer than the queue lock. Appends to @requests the tracks that lost
   * packets and need a keyframe. */
  void enqueueBuffer (guint track, GstBuffer *buffer, bool keyframe,
      ClockReadings &clocks, std::vector<guint> &requests)
  {
    std::lock_guard<std::mutex> l (lock_);
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
    cond_.notify_one ();
  }

  bool pop (RelayEvent &event)
  {
    std::unique_lock<std::mutex> l (lock_);
    cond_.wait (l, [this] { return interrupted_ || closed_ || !queue_.empty (); });
    if (interrupted_ || closed_)
      return false;
    event = std::move (queue_.front ());
    queue_.pop_front ();
    if (event.type == RelayEvent::Type::Buffer) {
      bufferCount_--;
      packets_++;
      bytes_ += gst_buffer_get_size (event.buffer.get ());
    }
    return true;
  }

  void setInterrupted (bool interrupted)
  {
    std::lock_guard<std::mutex> l (lock_);
    interrupted_ = interrupted;
    cond_.notify_all ();
  }

  void setTimeBase (GstClock *clock, GstClockTime base_time)
  {
    std::lock_guard<std::mutex> l (lock_);
    clock_ = GRef<GstClock>::ref (clock);
    baseTime_ = base_time;
  }

  std::vector<TrackDescription> initialTracks () const
  {
    std::lock_guard<std::mutex> l (lock_);
    return initial_;
  }

  std::shared_ptr<HubStream> stream () const
  {
    std::lock_guard<std::mutex> l (lock_);
    return stream_.lock ();
  }

  /* Unsubscribe: drops every queued buffer; returns the stream to leave. */
  std::shared_ptr<HubStream> close ()
  {
    std::deque<RelayEvent> dropped;
    std::shared_ptr<HubStream> stream;
    {
      std::lock_guard<std::mutex> l (lock_);
      closed_ = true;
      stream = stream_.lock ();
      stream_.reset ();
      dropped.swap (queue_);
      bufferCount_ = 0;
      cond_.notify_all ();
    }
    return stream;  /* @dropped releases its buffers here, outside the lock */
  }

  SubscriptionStats stats () const
  {
    std::lock_guard<std::mutex> l (lock_);
    SubscriptionStats s;
    s.packets = packets_;
    s.bytes = bytes_;
    s.dropped = dropped_;
    s.queued = bufferCount_;
    return s;
  }

private:
  struct Gate {
    TrackKind kind = TrackKind::Other;
    VideoCodec codec = VideoCodec::Unknown;  /* Unknown: never wait */
    bool waitingForKeyframe = false;
    bool discont = true;                     /* mark the next buffer DISCONT */
  };

  static VideoCodec codecForGate (const TrackDescription &t)
  {
    if (t.kind != TrackKind::Video)
      return VideoCodec::Unknown;
    return videoCodecFromEncodingName (codecOfCaps (t.caps.get ()).c_str ());
  }

  void setGateLocked (const TrackDescription &t)
  {
    Gate g;
    g.kind = t.kind;
    g.codec = codecForGate (t);
    /* A video track starts on a keyframe, whenever the subscriber joins. */
    g.waitingForKeyframe = g.codec != VideoCodec::Unknown;
    gates_[t.id] = g;
  }

  void pushControlLocked (RelayEvent &&ev)
  {
    /* Control events are never dropped and do not count against max-queue. */
    queue_.push_back (std::move (ev));
    cond_.notify_one ();
  }

  /* The queue is full: drop its oldest packet. A video track that lost a
   * packet cannot be decoded until its next keyframe, so its packets up to
   * the next queued keyframe go too; with none queued, the track waits for
   * the next one and asks for it. */
  void dropOldestLocked (std::vector<guint> &requests)
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

  const std::string name_;
  const size_t maxQueue_;

  mutable std::mutex lock_;   /* protects every field below */
  std::condition_variable cond_;  /* queue_ not empty, interrupted_, closed_ */
  std::deque<RelayEvent> queue_;
  size_t bufferCount_ = 0;    /* Buffer events in queue_ (control events excluded) */
  std::map<guint, Gate> gates_;
  std::vector<TrackDescription> initial_;
  std::weak_ptr<HubStream> stream_;
  GRef<GstClock> clock_;
  GstClockTime baseTime_ = 0;
  bool interrupted_ = false;
  bool closed_ = false;       /* unsubscribed */
  bool ended_ = false;        /* the stream ended */
  guint64 packets_ = 0;
  guint64 bytes_ = 0;
  guint64 dropped_ = 0;
};

/* ---------------------------------------------------------------------- */

class HubStream : public std::enable_shared_from_this<HubStream> {
public:
  HubStream (std::string name, KeyframeRequestHandler handler)
      : name_ (std::move (name)),
        subscribers_ (std::make_shared<const SubscriptionList> ()),
        handler_ (std::make_shared<const KeyframeRequestHandler> (std::move (handler))) {}

  const std::string &name () const { return name_; }

  bool ended () const
  {
    std::lock_guard<std::mutex> l (lock_);
    return ended_;
  }

  /* Called with Hub::lock_ held. False if the stream has ended. */
  bool attach (const std::shared_ptr<HubSubscription> &sub, bool initial,
      std::vector<guint> &video_tracks)
  {
    std::lock_guard<std::mutex> l (lock_);
    if (ended_)
      return false;
    if (!sub->attach (weak_from_this (), describeLocked (), initial, video_tracks))
      return true;  /* closed meanwhile: nothing to deliver to */
    auto list = std::make_shared<SubscriptionList> (*subscribers_);
    list->push_back (sub);
    subscribers_ = std::move (list);
    GST_INFO ("stream %s: subscriber joined, %zu now", name_.c_str (),
        subscribers_->size ());
    return true;
  }

  void detach (const HubSubscription *sub)
  {
    std::lock_guard<std::mutex> l (lock_);
    auto list = std::make_shared<SubscriptionList> ();
    for (const auto &s : *subscribers_)
      if (s.get () != sub)
        list->push_back (s);
    subscribers_ = std::move (list);
    GST_INFO ("stream %s: subscriber left, %zu now", name_.c_str (),
        subscribers_->size ());
  }

  void setTrack (guint id, GstCaps *caps)
  {
    std::lock_guard<std::mutex> l (lock_);
    if (ended_)
      return;
    auto &track = tracks_[id];
    bool added = false;
    if (!track) {
      track = std::make_shared<Track> ();
      track->id = id;
      added = true;
    } else if (track->ended) {
      track->ended = false;
      added = true;
    } else if (track->caps && caps && gst_caps_is_equal (track->caps.get (), caps)) {
      return;
    }
    track->caps = GRef<GstCaps>::ref (caps);
    track->kind = trackKindFromCaps (caps);
    track->codec = track->kind == TrackKind::Video
        ? videoCodecFromEncodingName (codecOfCaps (caps).c_str ())
        : VideoCodec::Unknown;
    GST_INFO ("stream %s: track %u %s %" GST_PTR_FORMAT, name_.c_str (), id,
        added ? "added" : "has new caps", caps);
    const TrackDescription desc = describe (*track);
    for (const auto &s : *subscribers_)
      s->trackChanged (desc, added);
  }

  bool push (guint id, GstBuffer *buffer_full)
  {
    GRef<GstBuffer> buffer = adoptGRef (buffer_full);
    std::shared_ptr<Track> track;
    std::shared_ptr<const SubscriptionList> subs;
    VideoCodec codec;
    {
      std::lock_guard<std::mutex> l (lock_);
      if (ended_)
        return false;
      auto it = tracks_.find (id);
      if (it == tracks_.end () || it->second->ended)
        return false;
      track = it->second;
      subs = subscribers_;
      codec = track->codec;
    }
    track->packets.fetch_add (1, std::memory_order_relaxed);
    track->bytes.fetch_add (gst_buffer_get_size (buffer.get ()), std::memory_order_relaxed);
    if (subs->empty ())
      return true;

    const bool keyframe = codec != VideoCodec::Unknown
        && rtpBufferStartsKeyframe (codec, buffer.get ());
    ClockReadings clocks;
    std::vector<guint> requests;
    for (const auto &s : *subs)
      s->enqueueBuffer (id, buffer.get (), keyframe, clocks, requests);

    std::sort (requests.begin (), requests.end ());
    requests.erase (std::unique (requests.begin (), requests.end ()), requests.end ());
    for (guint t : requests)
      requestKeyframe (t);
    return true;
  }

  void endTrack (guint id)
  {
    bool all_ended = true;
    {
      std::lock_guard<std::mutex> l (lock_);
      if (ended_)
        return;
      auto it = tracks_.find (id);
      if (it == tracks_.end () || it->second->ended)
        return;
      it->second->ended = true;
      GST_INFO ("stream %s: track %u ended", name_.c_str (), id);
      for (const auto &s : *subscribers_)
        s->trackEnded (id);
      for (const auto &t : tracks_)
        all_ended = all_ended && t.second->ended;
    }
    if (all_ended)
      end ();
  }

  /* Unpublish: idempotent, from any thread. */
  void end ()
  {
    std::shared_ptr<const SubscriptionList> subs;
    {
      std::lock_guard<std::mutex> l (lock_);
      if (ended_)
        return;
      ended_ = true;
      subs = std::exchange (subscribers_, std::make_shared<const SubscriptionList> ());
      handler_.reset ();
    }
    GST_INFO ("stream %s: unpublished, ending %zu subscribers", name_.c_str (),
        subs->size ());
    Hub::instance ().removeStream (shared_from_this ());
    for (const auto &s : *subs)
      s->streamEnded ();
  }

  void requestKeyframe (guint id)
  {
    std::shared_ptr<const KeyframeRequestHandler> handler;
    {
      std::lock_guard<std::mutex> l (lock_);
      auto it = tracks_.find (id);
      if (ended_ || it == tracks_.end () || it->second->ended)
        return;
      it->second->keyframeRequests.fetch_add (1, std::memory_order_relaxed);
      handler = handler_;
    }
    if (handler && *handler) {
      try {
        (*handler) (id);
      } catch (const std::exception &e) {
        GST_ERROR ("stream %s: keyframe request on track %u failed: %s",
            name_.c_str (), id, e.what ());
      }
    }
  }

  StreamStats stats () const
  {
    std::lock_guard<std::mutex> l (lock_);
    StreamStats s;
    s.name = name_;
    s.subscribers = subscribers_->size ();
    for (const auto &entry : tracks_) {
      const Track &t = *entry.second;
      TrackStats ts;
      ts.id = t.id;
      ts.kind = t.kind;
      ts.caps = t.caps;
      ts.codec = codecOfCaps (t.caps.get ());
      ts.packets = t.packets.load (std::memory_order_relaxed);
      ts.bytes = t.bytes.load (std::memory_order_relaxed);
      ts.keyframeRequests = t.keyframeRequests.load (std::memory_order_relaxed);
      ts.ended = t.ended;
      s.tracks.push_back (std::move (ts));
    }
    return s;
  }

private:
  struct Track {
    guint id = 0;
    /* HubStream::lock_ */
    TrackKind kind = TrackKind::Other;
    VideoCodec codec = VideoCodec::Unknown;
    GRef<GstCaps> caps;
    bool ended = false;
    /* lock-free counters */
    std::atomic<guint64> packets{0};
    std::atomic<guint64> bytes{0};
    std::atomic<guint64> keyframeRequests{0};
  };

  static TrackDescription describe (const Track &t)
  {
    TrackDescription d;
    d.id = t.id;
    d.kind = t.kind;
    d.caps = t.caps;
    return d;
  }

  std::vector<TrackDescription> describeLocked () const
  {
    std::vector<TrackDescription> out;
    for (const auto &t : tracks_)
      if (!t.second->ended)
        out.push_back (describe (*t.second));
    return out;
  }

  const std::string name_;

  mutable std::mutex lock_;  /* protects every field below */
  std::map<guint, std::shared_ptr<Track>> tracks_;
  /* Copy-on-write: push() takes a reference under the lock and fans out
   * without it; attach/detach replace the list. */
  std::shared_ptr<const SubscriptionList> subscribers_;
  std::shared_ptr<const KeyframeRequestHandler> handler_;  /* reset on end () */
  bool ended_ = false;
};

/* ---------------------------------------------------------------------- */
/* Handles given to the elements. */

namespace {

class HubPublisher final : public StreamPublisher {
public:
  explicit HubPublisher (std::shared_ptr<HubStream> stream) : stream_ (std::move (stream)) {}
  ~HubPublisher () override { stream_->end (); }

  const std::string &streamName () const override { return stream_->name (); }
  void setTrack (guint track, GstCaps *caps) override { stream_->setTrack (track, caps); }
  bool push (guint track, GstBuffer *buffer) override { return stream_->push (track, buffer); }
  void endTrack (guint track) override { stream_->endTrack (track); }
  void unpublish () override { stream_->end (); }
  StreamStats stats () const override { return stream_->stats (); }

private:
  std::shared_ptr<HubStream> stream_;
};

class HubSubscriptionHandle final : public StreamSubscription {
public:
  explicit HubSubscriptionHandle (std::shared_ptr<HubSubscription> sub) : sub_ (std::move (sub)) {}
  ~HubSubscriptionHandle () override
  {
    if (auto stream = sub_->close ())
      stream->detach (sub_.get ());
    Hub::instance ().removeWaiting (sub_->streamName (), sub_);
  }

  const std::string &streamName () const override { return sub_->streamName (); }
  std::vector<TrackDescription> initialTracks () const override { return sub_->initialTracks (); }
  bool pop (RelayEvent &event) override { return sub_->pop (event); }
  void setInterrupted (bool interrupted) override { sub_->setInterrupted (interrupted); }
  void setTimeBase (GstClock *clock, GstClockTime base_time) override
  {
    sub_->setTimeBase (clock, base_time);
  }
  void requestKeyframe (guint track) override
  {
    if (auto stream = sub_->stream ())
      stream->requestKeyframe (track);
  }
  SubscriptionStats stats () const override { return sub_->stats (); }

private:
  std::shared_ptr<HubSubscription> sub_;
};

void
checkName (const std::string &stream)
{
  std::string why = streamNameError (stream);
  if (!why.empty ())
    throw RelayError (RelayError::Code::InvalidName,
        "invalid stream name \"" + stream + "\": " + why);
}

}  // namespace

/* ---------------------------------------------------------------------- */

Hub &
Hub::instance ()
{
  /* The plugin and an application may each link this code: they must share
   * one hub. The first copy to get here registers a GType named
   * XdnRelayHub and keeps the hub as its qdata; later copies find it there.
   * The default registry's object lock is process-wide, so it serialises
   * the copies. */
  static Hub *hub = [] {
    ensureDebugCategory ();
    GstRegistry *registry = gst_registry_get ();
    GQuark quark = g_quark_from_static_string ("xdn-relay-hub");
    GST_OBJECT_LOCK (registry);
    GType type = g_type_from_name ("XdnRelayHub");
    if (!type)
      type = g_pointer_type_register_static ("XdnRelayHub");
    auto *found = static_cast<Hub *> (g_type_get_qdata (type, quark));
    if (!found) {
      found = new Hub ();  /* lives as long as the process */
      g_type_set_qdata (type, quark, found);
    }
    GST_OBJECT_UNLOCK (registry);
    return found;
  }();
  return *hub;
}

std::unique_ptr<StreamPublisher>
Hub::publish (const std::string &name, KeyframeRequestHandler on_keyframe_request)
{
  checkName (name);
  auto stream = std::make_shared<HubStream> (name, std::move (on_keyframe_request));
  {
    std::lock_guard<std::mutex> l (lock_);
    auto it = streams_.find (name);
    if (it != streams_.end () && !it->second->ended ())
      throw RelayError (RelayError::Code::Busy,
          "stream \"" + name + "\" already has a publisher");
    streams_[name] = stream;
    auto waiting = waiting_.find (name);
    if (waiting != waiting_.end ()) {
      std::vector<guint> unused;
      for (const auto &weak : waiting->second)
        if (auto sub = weak.lock ())
          stream->attach (sub, false, unused);
      waiting_.erase (waiting);
    }
  }
  GST_INFO ("stream %s: published", name.c_str ());
  return std::make_unique<HubPublisher> (std::move (stream));
}

std::unique_ptr<StreamSubscription>
Hub::subscribe (const std::string &name, const SubscriptionOptions &options)
{
  checkName (name);
  auto sub = std::make_shared<HubSubscription> (name, options);
  std::shared_ptr<HubStream> stream;
  std::vector<guint> video_tracks;
  {
    std::lock_guard<std::mutex> l (lock_);
    auto it = streams_.find (name);
    if (it != streams_.end () && it->second->attach (sub, true, video_tracks)) {
      stream = it->second;
    } else if (options.waitForStream) {
      waiting_[name].push_back (sub);
      GST_INFO ("stream %s: subscriber waits for a publisher", name.c_str ());
    } else {
      throw RelayError (RelayError::Code::NotFound,
          "stream \"" + name + "\" is not published");
    }
  }
  /* Joining late: ask for keyframes so the wait is short (rate-limited by
   * the publisher). No hub lock held. */
  if (stream)
    for (guint t : video_tracks)
      stream->requestKeyframe (t);
  return std::make_unique<HubSubscriptionHandle> (std::move (sub));
}

void
Hub::removeStream (const std::shared_ptr<HubStream> &stream)
{
  std::lock_guard<std::mutex> l (lock_);
  auto it = streams_.find (stream->name ());
  if (it != streams_.end () && it->second == stream)
    streams_.erase (it);
}

void
Hub::removeWaiting (const std::string &name, const std::shared_ptr<HubSubscription> &subscription)
{
  std::lock_guard<std::mutex> l (lock_);
  auto it = waiting_.find (name);
  if (it == waiting_.end ())
    return;
  auto &list = it->second;
  list.erase (std::remove_if (list.begin (), list.end (),
                  [&] (const std::weak_ptr<HubSubscription> &w) {
                    auto s = w.lock ();
                    return !s || s == subscription;
                  }),
      list.end ());
  if (list.empty ())
    waiting_.erase (it);
}

std::vector<std::string>
Hub::streamNames () const
{
  std::lock_guard<std::mutex> l (lock_);
  std::vector<std::string> names;
  for (const auto &s : streams_)
    if (!s.second->ended ())
      names.push_back (s.first);
  return names;
}

bool
Hub::isPublished (const std::string &name) const
{
  std::lock_guard<std::mutex> l (lock_);
  auto it = streams_.find (name);
  return it != streams_.end () && !it->second->ended ();
}

std::optional<StreamStats>
Hub::streamStats (const std::string &name) const
{
  std::shared_ptr<HubStream> stream;
  {
    std::lock_guard<std::mutex> l (lock_);
    auto it = streams_.find (name);
    if (it == streams_.end ())
      return std::nullopt;
    stream = it->second;
  }
  if (stream->ended ())
    return std::nullopt;
  return stream->stats ();
}

}  // namespace xdn::relay
