#include "xdn-hub.h"

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <deque>

#include "xdn-relay-queue.h"
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
      : name_ (std::move (name)), queue_ (options.maxQueue) {}

  const std::string &streamName () const { return name_; }
  SubscriberQueue &queue () { return queue_; }

  /* With the stream's lock held. @initial: tracks of a stream joined at
   * subscribe time (described by initialTracks()); otherwise each becomes a
   * TrackAdded event. Fills @video with the video tracks to ask a keyframe
   * for. False if the subscription was closed meanwhile. */
  bool attach (const std::weak_ptr<HubStream> &stream,
      const std::vector<TrackDescription> &tracks, bool initial,
      std::vector<guint> &video)
  {
    std::lock_guard<std::mutex> l (lock_);
    if (!queue_.addTracks (tracks, initial, video))
      return false;
    stream_ = stream;
    if (initial)
      initial_.insert (initial_.end (), tracks.begin (), tracks.end ());
    return true;
  }

  void streamEnded ()
  {
    {
      std::lock_guard<std::mutex> l (lock_);
      stream_.reset ();
    }
    queue_.streamEnded ();
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
    std::lock_guard<std::mutex> l (lock_);
    queue_.close ();
    std::shared_ptr<HubStream> stream = stream_.lock ();
    stream_.reset ();
    return stream;
  }

private:
  const std::string name_;
  SubscriberQueue queue_;   /* thread-safe on its own */

  /* Taken before the queue's lock when both are; attach() and close() are
   * serialised by it, so a subscription closed meanwhile is never attached. */
  mutable std::mutex lock_;  /* protects stream_ and initial_ */
  std::vector<TrackDescription> initial_;
  std::weak_ptr<HubStream> stream_;
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
      s->queue ().trackChanged (desc, added);
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
      s->queue ().enqueueBuffer (id, buffer.get (), keyframe, clocks, requests);

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
        s->queue ().trackEnded (id);
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
  bool pop (RelayEvent &event) override { return sub_->queue ().pop (event); }
  void setDelivery (DeliverFunction deliver) override
  {
    sub_->queue ().setDelivery (std::move (deliver));
  }
  bool deliverWaiting () override { return sub_->queue ().deliverWaiting (); }
  void setInterrupted (bool interrupted) override { sub_->queue ().setInterrupted (interrupted); }
  void setTimeBase (GstClock *clock, GstClockTime base_time) override
  {
    sub_->queue ().setTimeBase (clock, base_time);
  }
  void requestKeyframe (guint track) override
  {
    if (auto stream = sub_->stream ())
      stream->requestKeyframe (track);
  }
  SubscriptionStats stats () const override { return sub_->queue ().stats (); }

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
