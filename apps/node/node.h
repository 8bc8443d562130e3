/* The node: WHIP and SRT publishers in, WHEP viewers out, each peer a
 * pipeline of its own joined through the stream hub; downstream nodes
 * served over SRT (m=request) and streams pulled from upstream on demand;
 * the manager client; the JSON API, Prometheus metrics and the web pages on
 * one HTTP port. What it does of all this depends on its role (cluster.h:
 * RoleAbilities). */
#pragma once

#include "cluster.h"
#include "config.h"
#include "fanout-egress.h"
#include "http.h"
#include "manager-client.h"
#include "peer-session.h"
#include "port-pool.h"
#include "pull.h"
#include "relay-serving.h"
#include "srt-ingest.h"
#include "xdn-gref.h"

#include <gst/gst.h>

#include <atomic>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <vector>

namespace xdn {

class Node {
public:
  explicit Node (NodeConfig config);
  ~Node ();

  /* Listens on HTTP (and SRT), starts the demo if asked. Main thread. */
  bool start (std::string *error);
  /* Ends every session and publisher. Main thread. */
  void stop ();

  int httpPort () const { return http_.port (); }
  /* The settings, with the node id and public URLs filled by start (). */
  const NodeConfig &config () const { return config_; }

private:
  /* One live (or starting) stream. */
  struct Track {
    GRef<GstPad> pad;            /* the relay sink's pad */
    std::shared_ptr<std::atomic<guint64>> packets, bytes;
  };
  struct Stream {
    std::string name;
    std::string source;          /* "whip", "srt" or "pull" */
    std::string publisher;       /* WHIP session id, the SRT peer, or the upstream */
    unsigned expectedTracks = 0; /* 0: not known (SRT) */
    bool live = false;
    gint64 since = 0;            /* monotonic, us */
    GRef<GstElement> sink;
    std::vector<Track> tracks;
    std::set<std::string> viewers;
    guint64 lastBytes = 0;       /* for the inbound bitrate */
    double bitrateIn = 0;
  };

  /* Reserves @name for a publisher; returns "" or why not (409). */
  std::string reserveStream (const std::string &name, const std::string &source,
      const std::string &publisher);
  void releaseStream (const std::string &name, const std::string &reason);
  GstElement *makeRelaySink (const std::string &name, unsigned expectedTracks);
  void onTrackAdded (const std::string &name, GstPad *pad);
  void sampleBitrates ();

  void handleWhip (SoupServerMessage *msg, const std::string &stream);
  void handleWhep (SoupServerMessage *msg, const std::string &stream);
  void startPlay (SoupServerMessage *msg, const std::string &stream, const std::string &offer,
      bool paused);
  /* @paused: the message is already paused and referenced (a viewer that
   * waited for a pull). */
  /* @refusal: when set (a viewer the fan-out refused, tried with webrtcbin),
   * a failure is answered 406 with it instead of webrtcbin's words. */
  void startSession (SoupServerMessage *msg, std::shared_ptr<PeerSession> session,
      const std::string &offer, bool paused = false, const std::string &refusal = {});
  void handleDeleteSession (SoupServerMessage *msg, const std::string &id);

  /* WHEP through one xdnwebrtcfanout per stream ([webrtc] egress=fanout). */
  bool fanoutEgress () const { return config_.egress == "fanout"; }
  void startFanoutPlay (SoupServerMessage *msg, const std::string &stream, const std::string &offer,
      bool paused);
  /* The stream's fan-out, started if needed; null, why not and the HTTP
   * status otherwise. */
  std::shared_ptr<FanoutEgress> ensureEgress (const std::string &stream, std::string *error,
      guint *status);
  /* Answers @msg (unpausing it if @paused): the fan-out's answer; an offer
   * it refuses is tried with a webrtcbin of its own. */
  void answerFanoutViewer (SoupServerMessage *msg, FanoutEgress &egress, const std::string &offer,
      bool paused);
  void startWebRtcBinPlay (SoupServerMessage *msg, const std::string &stream,
      const std::string &offer, bool paused, const std::string &refusal);
  void checkFanoutWaiters (const std::string &stream);
  void forgetFanoutViewer (const std::string &stream, const std::string &viewer,
      const std::string &reason);
  void stopEgress (const std::string &stream, const std::string &reason);
  void fanoutTick ();
  unsigned streamTracks (const std::string &stream);
  void handleStreams (SoupServerMessage *msg, const std::string &rest);
  void handleMetrics (SoupServerMessage *msg);
  void handleNodeInfo (SoupServerMessage *msg);
  void handleResource (SoupServerMessage *msg, const std::string &path, const char *type = nullptr);
  void onSessionEnded (const std::string &id, const std::string &reason);
  bool checkOfferRequest (SoupServerMessage *msg, const std::string &stream, std::string *offer);
  std::string streamJson (const Stream &s) const;

  /* Cluster: pulls, viewers waiting for them, downstream nodes served. */
  bool canPull () const { return !config_.manager.empty () || !config_.upstream.empty (); }
  std::shared_ptr<Pull> ensurePull (const std::string &stream, std::string *error);
  void waitForPull (SoupServerMessage *msg, const std::string &stream, const std::string &offer);
  void onPullLive (const std::string &stream);
  void onPullEnded (const std::string &stream, const std::string &reason, guint status);
  void routeStream (const std::string &stream, std::function<void (const RouteAnswer &)> done);
  SrtAdmission admitPublisher (const std::string &stream);
  SrtAdmission admitRequest (const std::string &stream, const std::string &token);
  void serveRequest (int socket, const std::string &stream, const std::string &peer);
  void stopServingsOf (const std::string &stream, const std::string &reason);
  void clusterTick ();
  LoadReport loadReport ();
  void setDraining (bool draining);
  size_t viewerCount () const;

  void startDemo ();
  static gboolean onDemoBus (GstBus *, GstMessage *msg, gpointer self);

  NodeConfig config_;
  const RoleAbilities abilities_;
  SessionSettings sessionSettings_;
  http::Server http_;
  std::unique_ptr<SrtIngestServer> srt_;
  std::unique_ptr<ManagerClient> manager_;
  /* Lets callbacks queued on the loop (from SRT threads) know the node is
   * still there. */
  std::shared_ptr<Node *> alive_;

  /* Main thread only. */
  struct WhepWaiter {
    guint64 id;
    SoupServerMessage *msg;      /* paused, one reference held */
    std::string offer;
    guint timer;
  };
  std::map<std::string, std::shared_ptr<Pull>> pulls_;
  std::map<std::string, std::vector<WhepWaiter>> waiting_;
  std::map<guint64, std::shared_ptr<RelayServing>> servings_;
  guint64 nextId_ = 1;
  guint clusterTimer_ = 0;
  guint64 pullsStarted_ = 0, pullRestartsOfEnded_ = 0, servingsStarted_ = 0;
  guint64 waitersTimedOut_ = 0;

  /* Read by the SRT threads too. */
  std::atomic<bool> draining_{false};
  std::atomic<int> servingsOpen_{0};     /* admitted and not ended */

  /* Main thread only. Fan-out egress: one per stream with viewers (or
   * lingering a few seconds after the last); viewers waiting for its tracks;
   * the WHEP sessions served by it: session id -> (stream, viewer id). */
  struct FanoutWaiter {
    SoupServerMessage *msg;      /* paused, one reference held */
    std::string offer;
    gint64 deadline;             /* monotonic us */
  };
  struct FanoutSession {
    std::string stream, viewer;
  };
  /* The fan-outs' ports out of [webrtc] ports (shared with each egress,
   * which gives its port back when it stops). */
  std::shared_ptr<PortPool> fanoutPorts_;
  std::map<std::string, std::shared_ptr<FanoutEgress>> egresses_;
  std::map<std::string, std::vector<FanoutWaiter>> fanoutWaiting_;
  std::map<std::string, FanoutSession> fanoutSessions_;
  std::map<std::pair<std::string, std::string>, std::string> fanoutViewers_;  /* (stream, viewer) -> session */
  guint fanoutTimer_ = 0;
  guint64 fanoutFallbacks_ = 0;

  /* Main thread only. */
  std::map<std::string, std::shared_ptr<PeerSession>> sessions_;
  GRef<GstElement> demo_;
  guint demoRetry_ = 0;
  guint bitrateTimer_ = 0;
  gint64 startedAt_ = 0;
  guint64 sessionsStarted_[2] = {0, 0}, sessionsRefused_[2] = {0, 0};

  /* Streams are touched by the main thread and by the SRT threads. */
  mutable std::mutex streamsLock_;
  std::map<std::string, Stream> streams_;  /* protected by streamsLock_ */
  /* Streams the route said are not live, until when (monotonic us): a
   * downstream asking again at once gets 1404 without a new pull.
   * Protected by streamsLock_. */
  std::map<std::string, gint64> notLive_;
};

}  // namespace xdn
