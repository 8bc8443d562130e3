/* The all-in-one node: WHIP and SRT publishers in, WHEP viewers out, each
 * peer a pipeline of its own joined through the stream hub; the JSON API,
 * Prometheus metrics and the web pages on one HTTP port. */
#pragma once

#include "config.h"
#include "http.h"
#include "peer-session.h"
#include "xdn-gref.h"

#include <gst/gst.h>

#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <vector>

namespace xdn {

class SrtIngestServer;

class Node {
public:
  explicit Node (NodeConfig config);
  ~Node ();

  /* Listens on HTTP (and SRT), starts the demo if asked. Main thread. */
  bool start (std::string *error);
  /* Ends every session and publisher. Main thread. */
  void stop ();

  int httpPort () const { return http_.port (); }

private:
  /* One live (or starting) stream. */
  struct Track {
    GRef<GstPad> pad;            /* the relay sink's pad */
    std::shared_ptr<std::atomic<guint64>> packets, bytes;
  };
  struct Stream {
    std::string name;
    std::string source;          /* "whip" or "srt" */
    std::string publisher;       /* WHIP session id, or the SRT peer */
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
  void startSession (SoupServerMessage *msg, std::shared_ptr<PeerSession> session,
      const std::string &offer);
  void handleDeleteSession (SoupServerMessage *msg, const std::string &id);
  void handleStreams (SoupServerMessage *msg, const std::string &rest);
  void handleMetrics (SoupServerMessage *msg);
  void handleResource (SoupServerMessage *msg, const std::string &path, const char *type = nullptr);
  void onSessionEnded (const std::string &id, const std::string &reason);
  bool checkOfferRequest (SoupServerMessage *msg, const std::string &stream, std::string *offer);
  std::string streamJson (const Stream &s) const;

  void startDemo ();
  static gboolean onDemoBus (GstBus *, GstMessage *msg, gpointer self);

  NodeConfig config_;
  SessionSettings sessionSettings_;
  http::Server http_;
  std::unique_ptr<SrtIngestServer> srt_;

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
};

}  // namespace xdn
