/* The transport behind xdnrelaysink / xdnrelaysrc.
 *
 * The elements talk to a RelayTransport only: a publisher (one per
 * xdnrelaysink) hands it tracks and RTP buffers, a subscription (one per
 * xdnrelaysrc) hands back, in publish order, what its element must do on its
 * pads. The in-process hub (xdn-hub.h) is one transport; the SRT transport
 * (xdn-relay-srt.h), which crosses nodes, implements the same three classes.
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
    Unsupported,   /* settings no transport can serve (bad uri, ...) */
    Network,       /* the network refused (port in use, bad socket) */
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
  bool moreTracks = false;            /* TrackAdded: more TrackAdded events follow at once */
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
  size_t subscribers = 0;             /* SRT: downstream connections */
  std::vector<TrackStats> tracks;
  guint64 dropped = 0;                /* SRT: packets a link's send buffer had no room for */
  guint64 ignored = 0;                /* SRT: messages from downstream ignored (unknown, malformed) */
  int port = 0;                       /* SRT listener: the bound port */
};

struct SubscriptionStats {
  guint64 packets = 0;                /* handed to the element */
  guint64 bytes = 0;
  guint64 dropped = 0;                /* dropped because the queue was full */
  size_t queued = 0;                  /* packets waiting now */
  /* SRT mode only */
  std::string link;                   /* "connecting", "connected", "waiting" (to retry), "ended" */
  guint64 connectAttempts = 0;
  guint64 connects = 0;               /* attempts that connected */
  guint64 linkDropped = 0;            /* packets the link lost for good (SRT too-late drops) */
  guint64 linkLost = 0;               /* packets the link found missing (then mostly recovered) */
  guint64 linkRetransmitted = 0;      /* retransmitted packets the link received */
  guint64 ignored = 0;                /* messages ignored (unknown version or kind, malformed) */
};

/* A change of an SRT link, for the elements' `xdn-relay-link` messages. */
struct LinkState {
  std::string uri;                    /* srt://HOST:PORT of the peer */
  std::string state;                  /* "connected", "lost", "refused" */
  std::string reason;
  int rejectCode = 0;                 /* SRT reject reason of a refusal, 0 if none */
};

/* Called on a transport's I/O thread, with no transport lock held. It may
 * change the element's state (e.g. from a sync bus handler): the transport
 * never waits for its own I/O thread from that thread. */
using LinkHandler = std::function<void (const LinkState &)>;

/* Direct delivery of a subscription's events (StreamSubscription::
 * setDelivery). Returns false to stop delivering, as setInterrupted (true)
 * does. */
using DeliverFunction = std::function<bool (RelayEvent &)>;

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
  /* Ends the stream now (idempotent): subscribers get StreamEnded. SRT:
   * closes the links instead (downstream nodes reconnect); the downstream
   * side gets StreamEnded only when every track has ended. */
  virtual void unpublish () = 0;
  virtual StreamStats stats () const = 0;
};

struct SubscriptionOptions {
  size_t maxQueue = 1024;      /* packets; when full the oldest are dropped */
  bool waitForStream = false;  /* subscribe to a name that is not published yet (SRT: always) */
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
  /* Direct delivery, set once before PLAYING instead of popping: @deliver
   * gets each event, in publish order and one at a time, on the thread that
   * hands the transport a packet (the publisher's in the hub, the I/O
   * thread with SRT). It must not block. Events with no packet after them
   * (tracks, ends) are left to deliverWaiting (). */
  virtual void setDelivery (DeliverFunction deliver) = 0;
  /* With direct delivery: blocks until events wait that no packet carried,
   * delivers them; false when interrupted. */
  virtual bool deliverWaiting () = 0;
  /* While set, pop() and deliverWaiting () return false at once and nothing
   * is delivered (pause / stop of the element). */
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

/* What an element's properties say about its transport. */
struct TransportSettings {
  std::string uri;             /* empty: the process' hub; srt://HOST:PORT: SRT */
  int socket = -1;             /* xdnrelaysink: an accepted, connected SRT socket to serve */
  std::string passphrase;      /* SRT: SRTO_PASSPHRASE, empty for none */
  guint latencyMs = 120;       /* SRT: SRTO_LATENCY */
  std::string token;           /* SRT caller: `s=` of its streamid */
  std::string packetFilter;    /* SRT caller: SRTO_PACKETFILTER (FEC), empty for none */
  LinkHandler onLink;          /* SRT: link changes */

  bool isHub () const { return uri.empty () && socket < 0; }
};

/* Throws RelayError (Unsupported) with a sentence saying what is wrong when
 * the settings can never work (uri that is not srt://HOST:PORT, passphrase
 * of the wrong length, both uri and socket set). */
void checkTransportSettings (const TransportSettings &settings);

/* The transport for @settings: the process' hub (not owned; the pointer's
 * deleter does nothing) or a new SRT transport. Throws like
 * checkTransportSettings(). */
std::shared_ptr<RelayTransport> openTransport (const TransportSettings &settings);

/* Stats as a GstStructure, for the elements' `stats` properties:
 *   track, id=(uint), kind=(string), codec=(string), caps=(string),
 *   packets=(guint64), bytes=(guint64), keyframe-requests=(guint64), ended=(boolean) */
GstStructure *trackStatsToStructure (const TrackStats &track);

/* An `xdn-relay-link` structure (the elements' element messages): uri
 * (string), state (string), reason (string), reject-code (int). */
GstStructure *linkStateToStructure (const LinkState &state);

}  // namespace xdn::relay
