/* Rate limit of keyframe requests, per track.
 *
 * Many subscribers joining at once, or a viewer's receiver sending PLI in a
 * loop, must not turn the encoder into an all-keyframe encoder: at most one
 * request per track goes upstream every `min_interval`. A request that is
 * held back is not forgotten (a WebRTC sender makes keyframes only when asked):
 * it stays pending and is due once the interval has passed.
 *
 * Plain C++; the caller passes the time, so tests drive it with any clock.
 * Not thread-safe: the owner guards it with its own lock. */
#pragma once

#include <gst/gst.h>

#include <map>

namespace xdn::relay {

class KeyframeRateLimiter {
public:
  /* A request on @track at @now. True when it may go upstream now (and is
   * recorded as sent); false when it is held back as pending. */
  bool request (guint track, GstClockTime now, GstClockTime min_interval)
  {
    State &s = tracks_[track];
    if (s.sent && !elapsed (s, now, min_interval)) {
      if (!s.pending) {
        s.pending = true;
        pending_++;
      }
      return false;
    }
    markSent (s, now);
    return true;
  }

  /* True when a held-back request on @track may go now (recorded as sent). */
  bool takeDue (guint track, GstClockTime now, GstClockTime min_interval)
  {
    auto it = tracks_.find (track);
    if (it == tracks_.end () || !it->second.pending || !elapsed (it->second, now, min_interval))
      return false;
    markSent (it->second, now);
    return true;
  }

  /* Cheap check for the streaming thread: is any request held back? */
  bool hasPending () const { return pending_ > 0; }

  void forget (guint track)
  {
    auto it = tracks_.find (track);
    if (it == tracks_.end ())
      return;
    if (it->second.pending)
      pending_--;
    tracks_.erase (it);
  }

  void clear ()
  {
    tracks_.clear ();
    pending_ = 0;
  }

private:
  struct State {
    bool sent = false;
    GstClockTime last = 0;    /* time of the last request let through */
    bool pending = false;
  };

  static bool elapsed (const State &s, GstClockTime now, GstClockTime min_interval)
  {
    /* An invalid or backwards time never blocks a request forever. */
    if (!GST_CLOCK_TIME_IS_VALID (now) || now < s.last)
      return true;
    return now - s.last >= min_interval;
  }

  void markSent (State &s, GstClockTime now)
  {
    s.sent = true;
    s.last = GST_CLOCK_TIME_IS_VALID (now) ? now : 0;
    if (s.pending) {
      s.pending = false;
      pending_--;
    }
  }

  std::map<guint, State> tracks_;
  size_t pending_ = 0;
};

}  // namespace xdn::relay
