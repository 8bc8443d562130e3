/* The transport behind xdnrelaysink / xdnrelaysrc.
 *
 * The elements talk to a RelayTransport only: a publisher (one per
 * xdnrelaysink) hands it tracks and RTP buffers, a subscription (one per
 * xdnrelaysrc) hands back, in publish order, what its element must do on its
 * pads. The in-process hub (xdn-hub.h) is one transport; a transport that
 * crosses nodes (SRT) implements the same three classes.
 *
 * Plain C++17, no GObject. Errors are RelayError exceptions; the elements
 * catch them at their GObject boundary. */
#pragma once

#include <gst/gst.h>

#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "xdn-gref.h"

namespace xdn::relay {

enum class TrackKind { Video, Audio, Other };

/* From the `media` field of application/x-rtp caps. */
TrackKind trackKindFromCaps (GstCaps *caps);
/* "video", "audio", "other". */
const char *trackKindName (TrackKind kind);

class RelayError : public std::runtime_error {
public:
  enum class Code {
    InvalidName,   /* the stream name breaks the stream-name rules */
    Busy,          /* the stream already has a publisher */
    NotFound,      /* no such stream is published */
    Unsupported,   /* transport not available (e.g. SRT) */
  };
  RelayError (Code code, const std::string &what)
      : std::runtime_error (what), code_ (code) {}
  Code code () const { return code_; }

private:
  Code code_;
};

struct TrackDescription {
  guint id = 0;
  TrackKind kind = TrackKind::Other;
  GRef<GstCaps> caps;
};

/* One step a subscriber's element performs on its pads, in publish order. */
struct RelayEvent {
  enum class Type {
    TrackAdded,    /* new track (or a track that ended and came back): pad + caps */
    CapsChanged,   /* new caps on an existing track */
    Buffer,        /* one RTP packet */
    TrackEnded,    /* EOS on that track's pad */
    StreamEnded,   /* the publisher went away: EOS on every pad */
  };
  Type type = Type::Buffer;
  guint track = 0;
  TrackKind kind = TrackKind::Other;  /* TrackAdded */
  GRef<GstCaps> caps;                 /* TrackAdded, CapsChanged */
  GRef<GstBuffer> buffer;             /* Buffer: shared with every subscriber, read-only */
  /* Buffer: the subscriber's running time when the packet was handed to the
   * transport, or GST_CLOCK_TIME_NONE if the subscriber had no clock then. */
  GstClockTime runningTime = GST_CLOCK_TIME_NONE;
  bool keyframe = false;              /* Buffer: starts a keyframe */
  bool discont = false;               /* Buffer: first after a gap in this track */
};

struct TrackStats {
  guint id = 0;
  TrackKind kind = TrackKind::Other;
  GRef<GstCaps> caps;
  std::string codec;                  /* encoding-name of the caps */
  guint64 packets = 0;
  guint64 bytes = 0;
  guint64 keyframeRequests = 0;       /* requests subscribers made on this track */
  bool ended = false;
};

struct StreamStats {
  std::string name;
  size_t subscribers = 0;
  std::vector<TrackStats> tracks;
};

struct SubscriptionStats {
  guint64 packets = 0;                /* handed to the element */
  guint64 bytes = 0;
  guint64 dropped = 0;                /* dropped because the queue was full */
  size_t queued = 0;                  /* packets waiting now */
};

/* Called when a subscriber asks for a keyframe on a track. Runs on the
 * subscriber's thread with no transport lock held; must not block for long. */
using KeyframeRequestHandler = std::function<void (guint track)>;

class StreamPublisher {
public:
  /* Destroying the publisher unpublishes the stream. */
  virtual ~StreamPublisher () = default;

  virtual const std::string &streamName () const = 0;
  /* Adds the track, or gives it new caps (subscribers get them in order). */
  virtual void setTrack (guint track, GstCaps *caps) = 0;
  /* @buffer (transfer full): one RTP packet. Never blocks on a subscriber.
   * Returns false when the track or the stream has ended. */
  virtual bool push (guint track, GstBuffer *buffer) = 0;
  /* Ends one track; when every track has ended the stream ends. */
  virtual void endTrack (guint track) = 0;
  /* Ends the stream now (idempotent): subscribers get StreamEnded. */
  virtual void unpublish () = 0;
  virtual StreamStats stats () const = 0;
};

struct SubscriptionOptions {
  size_t maxQueue = 1024;      /* packets; when full the oldest are dropped */
  bool waitForStream = false;  /* subscribe to a name that is not published yet */
};

class StreamSubscription {
public:
  /* Destroying the subscription unsubscribes. */
  virtual ~StreamSubscription () = default;

  virtual const std::string &streamName () const = 0;
  /* The tracks the stream had when the subscription was made. They are not
   * repeated as TrackAdded events; later tracks are. */
  virtual std::vector<TrackDescription> initialTracks () const = 0;
  /* Blocks until the next event; returns false without one when interrupted. */
  virtual bool pop (RelayEvent &event) = 0;
  /* While set, pop() returns false at once (pause / stop of the element). */
  virtual void setInterrupted (bool interrupted) = 0;
  /* The clock and base time of the subscriber's pipeline: buffers are
   * stamped with its running time when they are handed to the transport.
   * nullptr while the element is not PLAYING. */
  virtual void setTimeBase (GstClock *clock, GstClockTime base_time) = 0;
  /* Asks the publisher for a keyframe on @track (rate-limited there). */
  virtual void requestKeyframe (guint track) = 0;
  virtual SubscriptionStats stats () const = 0;
};

class RelayTransport {
public:
  virtual ~RelayTransport () = default;
  /* Throws RelayError (InvalidName, Busy). */
  virtual std::unique_ptr<StreamPublisher> publish (const std::string &stream,
      KeyframeRequestHandler on_keyframe_request) = 0;
  /* Throws RelayError (InvalidName, NotFound). */
  virtual std::unique_ptr<StreamSubscription> subscribe (const std::string &stream,
      const SubscriptionOptions &options) = 0;
};

/* The transport for an element's `uri` property: empty means the process'
 * hub. Throws RelayError (Unsupported) for transports not available yet. */
RelayTransport &transportForUri (const std::string &uri);

/* Stats as a GstStructure, for the elements' `stats` properties:
 *   track, id=(uint), kind=(string), codec=(string), caps=(string),
 *   packets=(guint64), bytes=(guint64), keyframe-requests=(guint64), ended=(boolean) */
GstStructure *trackStatsToStructure (const TrackStats &track);

}  // namespace xdn::relay
