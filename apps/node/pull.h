/* A stream pulled from an upstream node (origin or relay) into this node's
 * hub, on demand, for local viewers (edge) or downstream nodes (relay):
 *
 *   xdnrelaysrc uri=srt://UPSTREAM stream=NAME passphrase latency token
 *     pad video_N / audio_N / track_N ──▶ xdnrelaysink stream=NAME (hub) sink_N
 *
 * One pull per stream, however many subscribers. It asks where to pull from
 * (the manager's /route, or the static upstream), builds the pipeline, and
 * says when the stream is live here (every track has its caps in the hub).
 * When the link is lost for longer than PullSettings::lostRerouteMs, or the
 * manager says the route changed, it asks again and re-points: only the
 * source element is replaced, the hub stream and its subscribers stay. It
 * ends when the upstream stream ends (EOS), when the route says the stream
 * is not live, on a pipeline error, or PullSettings::lingerS after its last
 * subscriber left.
 *
 * Main thread only, except where noted (pad-added links on the source's
 * streaming thread). */
#pragma once

#include "cluster.h"
#include "manager-client.h"
#include "xdn-gref.h"

#include <gst/gst.h>

#include <atomic>
#include <functional>
#include <memory>
#include <string>

namespace xdn {

struct PullSettings {
  std::string passphrase;   /* [relay] passphrase */
  std::string token;        /* [relay] token, sent as s= */
  std::string packetFilter; /* [relay] packet-filter (SRTO_PACKETFILTER) */
  int latencyMs = 120;      /* SRT latency of the link */
  int lingerS = 10;         /* kept this long after the last subscriber left */
  int lostRerouteMs = 2000; /* link down this long: ask the route again */
  int liveTimeoutS = 10;    /* routed and built but not live after this: give up */
  bool staticRoute = false; /* the route is a fixed upstream (no manager to ask again) */
};

class Pull : public std::enable_shared_from_this<Pull> {
public:
  using RouteFn = std::function<void (const std::string &stream,
      std::function<void (const RouteAnswer &)> done)>;
  struct Hooks {
    /* Where to pull from; @done on the main loop. */
    RouteFn route;
    /* The hub sink for the stream (xdnrelaysink stream=NAME), new reference. */
    std::function<GstElement * (const std::string &stream)> makeSink;
    /* Every track has its caps in the hub: viewers can join. */
    std::function<void (const std::string &stream)> live;
    /* The pull has ended and its pipeline is down. @status: the HTTP status
     * for viewers still waiting (404 not live, 502 pipeline error, 503 no
     * route). Called once; the owner may drop the pull from within. */
    std::function<void (const std::string &stream, const std::string &reason, guint status)> ended;
  };

  static std::shared_ptr<Pull> create (std::string stream, PullSettings settings, Hooks hooks);
  ~Pull ();

  /* Asks the route and starts. */
  void start ();
  /* Ends the pull (idempotent). */
  void stop (const std::string &reason, guint status = 404);
  /* Asks the route again and re-points if the upstream changed. */
  void reroute (const std::string &why);
  /* Once a second: linger and lost-link checks. @waiting: viewers waiting
   * for the stream, counted as subscribers. */
  void tick (unsigned waiting);

  const std::string &stream () const { return stream_; }
  const std::string &upstream () const { return upstream_; }
  bool live () const { return live_; }
  bool linked () const { return linkUp_; }
  /* Subscribers of the hub stream now (viewers and downstream nodes). */
  unsigned subscribers () const;
  guint64 restarts () const { return restarts_; }
  gint64 startedAt () const { return startedAt_; }

private:
  Pull (std::string stream, PullSettings settings, Hooks hooks);

  void askRoute (const std::string &why);
  void onRoute (const RouteAnswer &answer);
  bool build (const std::string &uri, std::string *error);
  void repoint (const std::string &uri);
  GstElement *makeSource (const std::string &uri, std::string *error);
  void checkLive ();
  void onLinkMessage (const GstStructure *s);
  static gboolean onBus (GstBus *, GstMessage *msg, gpointer data);
  static void onPadAdded (GstElement *src, GstPad *pad, gpointer data);

  const std::string stream_;
  const PullSettings settings_;
  Hooks hooks_;

  GRef<GstElement> pipeline_, src_, sink_;
  guint busWatch_ = 0;
  guint liveTimer_ = 0;
  std::string upstream_;
  bool stopped_ = false;
  bool routing_ = false;
  bool live_ = false;
  bool liveCandidate_ = false;  /* the live condition held at the last check */
  bool linkUp_ = false;
  bool everLinked_ = false;
  gint64 lostSince_ = 0;        /* monotonic us; 0: not lost */
  gint64 startedAt_ = 0;
  guint64 restarts_ = 0;
  LingerTimer linger_;

  /* Written by the source's streaming thread. */
  std::atomic<unsigned> pads_{0};
  std::atomic<bool> noMorePads_{false};
  std::atomic<gint64> lastPadAt_{0};
};

}  // namespace xdn
