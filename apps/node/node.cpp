#include "node.h"

#include "json.h"
#include "log.h"
#include "metrics.h"
#include "srt-ingest.h"
#include "xdn-stream-name.h"

#include <gio/gio.h>
#include <srt/access_control.h>
#include <srt/srt.h>

#include <algorithm>
#ifdef __GLIBC__
#include <malloc.h>
#endif

namespace xdn {

namespace {

constexpr const char *kResourcePrefix = "/org/openxdn/web/";
/* A viewer of a stream not here waits this long for its pull. */
constexpr guint kPullWaitMs = 5000;
/* A stream the route said is not live is refused (1404) this long. */
constexpr gint64 kNotLiveCacheUs = 2 * G_USEC_PER_SEC;
/* A viewer of the fan-out waits this long for the stream's tracks to reach it. */
constexpr gint64 kFanoutReadyUs = 5 * G_USEC_PER_SEC;
/* A stream's fan-out stays this long after its last viewer left. */
constexpr gint64 kFanoutLingerUs = 3 * G_USEC_PER_SEC;

std::string
newSessionId ()
{
  gchar *uuid = g_uuid_string_random ();
  std::string id = uuid;
  g_free (uuid);
  id.erase (std::remove (id.begin (), id.end (), '-'), id.end ());
  return id;
}

const char *
contentTypeFor (const std::string &path)
{
  if (g_str_has_suffix (path.c_str (), ".html")) return "text/html; charset=utf-8";
  if (g_str_has_suffix (path.c_str (), ".js")) return "text/javascript; charset=utf-8";
  if (g_str_has_suffix (path.c_str (), ".css")) return "text/css; charset=utf-8";
  if (g_str_has_suffix (path.c_str (), ".svg")) return "image/svg+xml";
  if (g_str_has_suffix (path.c_str (), ".png")) return "image/png";
  return "application/octet-stream";
}

}  // namespace

Node::Node (NodeConfig config)
    : config_ (std::move (config)), abilities_ (roleAbilities (config_.nodeRole)),
      http_ (http::ServerSettings{config_.httpAddress, config_.httpPort,
          static_cast<size_t> (config_.maxBodyBytes), config_.corsOrigin})
{
  sessionSettings_.ice = config_.ice;
  fanoutPorts_ = std::make_shared<PortPool> (static_cast<int> (config_.ice.minPort),
      static_cast<int> (config_.ice.maxPort));
  sessionSettings_.publicAddress = config_.publicAddress;
  sessionSettings_.connectTimeoutS = config_.connectTimeoutS;
  sessionSettings_.peerTimeoutS = config_.peerTimeoutS;
  startedAt_ = g_get_monotonic_time ();
  alive_ = std::make_shared<Node *> (this);
}

Node::~Node ()
{
  stop ();
  *alive_ = nullptr;
}

bool
Node::start (std::string *error)
{
  http_.route ("POST", "/whip/", [this] (SoupServerMessage *m, const std::string &rest) { handleWhip (m, rest); });
  http_.route ("POST", "/whep/", [this] (SoupServerMessage *m, const std::string &rest) { handleWhep (m, rest); });
  http_.route ("DELETE", "/sessions/", [this] (SoupServerMessage *m, const std::string &rest) {
    handleDeleteSession (m, rest);
  });
  http_.route ("PATCH", "/sessions/", [] (SoupServerMessage *m, const std::string &) {
    soup_message_headers_replace (soup_server_message_get_response_headers (m), "Allow", "DELETE");
    http::respondError (m, SOUP_STATUS_METHOD_NOT_ALLOWED,
        "trickle ICE is not supported: send all candidates in the offer");
  });
  http_.route ("GET", "/api/v1/streams", [this] (SoupServerMessage *m, const std::string &rest) {
    handleStreams (m, rest);
  });
  http_.route ("GET", "/api/v1/node", [this] (SoupServerMessage *m, const std::string &rest) {
    if (!rest.empty ()) {
      http::respondError (m, SOUP_STATUS_NOT_FOUND, "no such resource");
      return;
    }
    handleNodeInfo (m);
  });
  http_.route ("GET", "/metrics", [this] (SoupServerMessage *m, const std::string &) { handleMetrics (m); });
  http_.route ("GET", "/play/", [this] (SoupServerMessage *m, const std::string &) {
    handleResource (m, "play.html");
  });
  http_.route ("GET", "/publish/", [this] (SoupServerMessage *m, const std::string &) {
    handleResource (m, "publish.html");
  });
  http_.route ("GET", "/static/", [this] (SoupServerMessage *m, const std::string &rest) {
    handleResource (m, rest);
  });
  http_.route ("GET", "/", [this] (SoupServerMessage *m, const std::string &) {
    handleResource (m, "index.html");
  });

  if (!http_.listen (error))
    return false;

  if (config_.srtPort > 0) {
    SrtIngestSettings srt;
    srt.address = config_.srtAddress;
    srt.port = config_.srtPort;
    srt.latencyMs = config_.srtLatencyMs;
    srt.passphrase = config_.srtPassphrase;
    srt.requestPassphrase = config_.relayPassphrase;
    srt.requestLatencyMs = config_.relayLatencyMs;
    SrtIngestServer::Callbacks callbacks;
    callbacks.admit = [this] (const std::string &stream, const std::string &) {
      return admitPublisher (stream);
    };
    callbacks.makeSink = [this] (const std::string &stream) { return makeRelaySink (stream, 0); };
    callbacks.onStarted = [] (const std::string &stream, const std::string &peer) {
      log (LogLevel::Info, "srt.publish.started", {{"stream", stream}, {"peer", peer}});
    };
    callbacks.onEnded = [this] (const std::string &stream, const std::string &reason) {
      releaseStream (stream, reason);
    };
    if (abilities_.serveRequest) {
      callbacks.admitRequest = [this] (const std::string &stream, const std::string &token,
          const std::string &) { return admitRequest (stream, token); };
      /* Serving pipelines are the main thread's: hand the socket over. */
      callbacks.onRequest = [this] (int socket, const std::string &stream, const std::string &peer) {
        struct Handover {
          std::weak_ptr<Node *> node;
          int socket;
          std::string stream, peer;
        };
        g_idle_add_full (G_PRIORITY_DEFAULT, [] (gpointer data) -> gboolean {
              auto *h = static_cast<Handover *> (data);
              auto node = h->node.lock ();
              if (node && *node) {
                (*node)->serveRequest (h->socket, h->stream, h->peer);
                h->socket = -1;
              }
              return G_SOURCE_REMOVE;
            }, new Handover{alive_, socket, stream, peer}, [] (gpointer data) {
              auto *h = static_cast<Handover *> (data);
              if (h->socket >= 0)
                srt_close (h->socket);
              delete h;
            });
      };
    }
    srt_ = std::make_unique<SrtIngestServer> (srt, callbacks);
    if (!srt_->start (error))
      return false;
  }

  resolveClusterDefaults (&config_, http_.port (), srt_ ? srt_->port () : 0, g_get_host_name ());
  if (!config_.manager.empty ()) {
    ManagerSettings ms;
    ms.url = config_.manager;
    ms.token = config_.clusterToken;
    ms.nodeId = config_.nodeId;
    ms.role = nodeRoleName (config_.nodeRole);
    ms.region = config_.region;
    ms.http = config_.publicUrl;
    ms.srt = abilities_.serveRequest || abilities_.ingest ? config_.publicSrt : "";
    ms.maxViewers = abilities_.whep ? config_.maxViewers : 0;
    ms.maxDownstream = abilities_.serveRequest ? config_.maxDownstream : 0;
    ManagerClient::Callbacks mc;
    mc.report = [this] { return loadReport (); };
    mc.routeChanged = [this] (const std::string &stream) {
      auto it = pulls_.find (stream);
      if (it != pulls_.end ())
        it->second->reroute ("the manager changed the route");
    };
    mc.streamUnpublished = [this] (const std::string &stream) {
      auto it = pulls_.find (stream);
      if (it != pulls_.end ())
        it->second->reroute ("the manager says the stream was unpublished");
    };
    mc.drainingChanged = [this] (bool draining) { setDraining (draining); };
    manager_ = std::make_unique<ManagerClient> (ms, mc);
    manager_->start ();
  }
  clusterTimer_ = g_timeout_add_seconds (1, [] (gpointer self) -> gboolean {
        static_cast<Node *> (self)->clusterTick ();
        return G_SOURCE_CONTINUE;
      }, this);

  bitrateTimer_ = g_timeout_add_seconds (1, [] (gpointer self) -> gboolean {
        static_cast<Node *> (self)->sampleBitrates ();
        return G_SOURCE_CONTINUE;
      }, this);
  fanoutTimer_ = g_timeout_add (50, [] (gpointer self) -> gboolean {
        static_cast<Node *> (self)->fanoutTick ();
        return G_SOURCE_CONTINUE;
      }, this);

  log (LogLevel::Info, "node.started",
      {{"http", config_.httpAddress + ":" + std::to_string (http_.port ())},
       {"srt", config_.srtPort > 0 ? config_.srtAddress + ":" + std::to_string (config_.srtPort) : "off"},
       {"role", config_.role}, {"node", config_.nodeId}, {"region", config_.region},
       {"egress", config_.egress},
       {"webrtc_ports", fanoutPorts_->limited () ? fanoutPorts_->range () : "any"},
       {"public_url", config_.publicUrl}, {"manager", config_.manager.empty () ? "none" : config_.manager},
       {"upstream", config_.upstream}});
  if (config_.demo)
    startDemo ();
  return true;
}

void
Node::stop ()
{
  if (demoRetry_) {
    g_source_remove (demoRetry_);
    demoRetry_ = 0;
  }
  if (demo_) {
    gst_element_set_state (demo_.get (), GST_STATE_NULL);
    demo_.reset ();
  }
  if (bitrateTimer_) {
    g_source_remove (bitrateTimer_);
    bitrateTimer_ = 0;
  }
  if (clusterTimer_) {
    g_source_remove (clusterTimer_);
    clusterTimer_ = 0;
  }
  if (fanoutTimer_) {
    g_source_remove (fanoutTimer_);
    fanoutTimer_ = 0;
  }
  /* The manager first: it stops sending viewers here. */
  if (manager_)
    manager_->stop ();
  for (auto &entry : waiting_) {
    for (auto &w : entry.second) {
      g_source_remove (w.timer);
      http::respondError (w.msg, SOUP_STATUS_SERVICE_UNAVAILABLE, "the node is stopping");
      soup_server_message_unpause (w.msg);
      g_object_unref (w.msg);
    }
  }
  waiting_.clear ();
  {
    std::vector<std::string> streams;
    for (const auto &entry : egresses_)
      streams.push_back (entry.first);
    for (const auto &entry : fanoutWaiting_)
      streams.push_back (entry.first);
    for (const auto &name : streams)
      stopEgress (name, "the node is stopping");
  }
  /* Downstream nodes, then pulls. */
  {
    std::vector<std::shared_ptr<RelayServing>> ending;
    for (auto &entry : servings_)
      ending.push_back (entry.second);
    for (auto &s : ending)
      s->stop ("node stopping");
    servings_.clear ();
  }
  /* Viewers first, then publishers and pulls. */
  for (auto kind : {PeerSession::Kind::Play, PeerSession::Kind::Publish}) {
    std::vector<std::shared_ptr<PeerSession>> ending;
    for (auto &entry : sessions_)
      if (entry.second->kind () == kind)
        ending.push_back (entry.second);
    for (auto &s : ending)
      s->stop ("node stopping");
  }
  {
    std::vector<std::shared_ptr<Pull>> ending;
    for (auto &entry : pulls_)
      ending.push_back (entry.second);
    for (auto &p : ending)
      p->stop ("node stopping", SOUP_STATUS_SERVICE_UNAVAILABLE);
    pulls_.clear ();
  }
  srt_.reset ();
  http_.stop ();
}

/* ------------------------------------------------------------- streams */

std::string
Node::reserveStream (const std::string &name, const std::string &source, const std::string &publisher)
{
  std::lock_guard<std::mutex> lock (streamsLock_);
  auto it = streams_.find (name);
  if (it != streams_.end ())
    return "stream '" + name + "' already has a publisher (" + it->second.source + ")";
  Stream &s = streams_[name];
  s.name = name;
  s.source = source;
  s.publisher = publisher;
  s.since = g_get_monotonic_time ();
  return "";
}

void
Node::releaseStream (const std::string &name, const std::string &reason)
{
  GRef<GstElement> sink;
  {
    std::lock_guard<std::mutex> lock (streamsLock_);
    auto it = streams_.find (name);
    if (it == streams_.end ())
      return;
    sink = std::move (it->second.sink);
    streams_.erase (it);
  }
  log (LogLevel::Info, "stream.ended", {{"stream", name}, {"reason", reason}});
  /* Downstream nodes still waiting for a stream that never came: end them
   * (from the loop; this may run on the SRT teardown thread). Those that
   * had it get its end through the hub and finish by themselves first. */
  struct Ended {
    std::weak_ptr<Node *> node;
    std::string name, reason;
  };
  g_timeout_add_full (G_PRIORITY_DEFAULT, 1500, [] (gpointer data) -> gboolean {
        auto *e = static_cast<Ended *> (data);
        auto node = e->node.lock ();
        if (node && *node) {
          bool back;
          {
            std::lock_guard<std::mutex> lock ((*node)->streamsLock_);
            back = (*node)->streams_.count (e->name) > 0;
          }
          if (!back)
            (*node)->stopServingsOf (e->name, "the stream ended: " + e->reason);
        }
        return G_SOURCE_REMOVE;
      }, new Ended{alive_, name, reason}, [] (gpointer data) { delete static_cast<Ended *> (data); });
}

GstElement *
Node::makeRelaySink (const std::string &name, unsigned expectedTracks)
{
  GstElement *sink = gst_element_factory_make ("xdnrelaysink", nullptr);
  if (!sink) {
    log (LogLevel::Error, "stream.no_relay", {{"stream", name},
        {"detail", "xdnrelaysink is not available: is GST_PLUGIN_PATH set to the xdn plugin?"}});
    return nullptr;
  }
  g_object_set (sink, "stream", name.c_str (), NULL);
  {
    std::lock_guard<std::mutex> lock (streamsLock_);
    auto it = streams_.find (name);
    if (it != streams_.end ()) {
      it->second.sink = GRef<GstElement>::ref (sink);
      it->second.expectedTracks = expectedTracks;
    }
  }
  /* Request pads become the stream's tracks. */
  g_signal_connect (sink, "pad-added", G_CALLBACK (+[] (GstElement *, GstPad *pad, gpointer self) {
        gchar *name = nullptr;
        g_object_get (GST_PAD_PARENT (pad), "stream", &name, NULL);
        static_cast<Node *> (self)->onTrackAdded (name ? name : "", pad);
        g_free (name);
      }), this);
  return sink;
}

void
Node::onTrackAdded (const std::string &name, GstPad *pad)
{
  Track track;
  track.pad = GRef<GstPad>::ref (pad);
  track.packets = std::make_shared<std::atomic<guint64>> (0);
  track.bytes = std::make_shared<std::atomic<guint64>> (0);
  struct Counters {
    std::shared_ptr<std::atomic<guint64>> packets, bytes;
  };
  gst_pad_add_probe (pad, GST_PAD_PROBE_TYPE_BUFFER,
      [] (GstPad *, GstPadProbeInfo *info, gpointer data) -> GstPadProbeReturn {
        auto *c = static_cast<Counters *> (data);
        (*c->packets)++;
        *c->bytes += gst_buffer_get_size (GST_PAD_PROBE_INFO_BUFFER (info));
        return GST_PAD_PROBE_OK;
      }, new Counters{track.packets, track.bytes},
      [] (gpointer data) { delete static_cast<Counters *> (data); });

  bool now_live = false;
  size_t count = 0;
  {
    std::lock_guard<std::mutex> lock (streamsLock_);
    auto it = streams_.find (name);
    if (it == streams_.end ())
      return;
    Stream &s = it->second;
    s.tracks.push_back (track);
    count = s.tracks.size ();
    if (s.expectedTracks && s.tracks.size () >= s.expectedTracks && !s.live)
      now_live = s.live = true;
    /* A pulled stream is live when its pull says so (caps in the hub). */
    if (s.source == "pull")
      return;
  }
  if (now_live)
    log (LogLevel::Info, "stream.live", {{"stream", name}});
  /* Without an expected count (SRT), the stream is live once its tracks
   * have stopped appearing (the demuxer adds them all at once) and each has
   * its caps (then the hub describes it to viewers); checked again until
   * then. */
  struct Pending {
    Node *node;
    std::string name;
    size_t tracks;
  };
  g_timeout_add_full (G_PRIORITY_DEFAULT, 300, [] (gpointer data) -> gboolean {
        auto *p = static_cast<Pending *> (data);
        bool became_live = false, again = false;
        {
          std::lock_guard<std::mutex> lock (p->node->streamsLock_);
          auto it = p->node->streams_.find (p->name);
          if (it != p->node->streams_.end () && !it->second.live &&
              !it->second.expectedTracks && it->second.tracks.size () == p->tracks) {
            bool caps = true;
            for (const auto &t : it->second.tracks)
              caps = caps && gst_pad_has_current_caps (t.pad.get ());
            became_live = it->second.live = caps;
            again = !caps;
          }
        }
        if (became_live)
          log (LogLevel::Info, "stream.live", {{"stream", p->name}});
        return again ? G_SOURCE_CONTINUE : G_SOURCE_REMOVE;
      }, new Pending{this, name, count}, [] (gpointer data) { delete static_cast<Pending *> (data); });
}

void
Node::sampleBitrates ()
{
  std::lock_guard<std::mutex> lock (streamsLock_);
  for (auto &entry : streams_) {
    Stream &s = entry.second;
    guint64 total = 0;
    for (auto &t : s.tracks)
      total += *t.bytes;
    s.bitrateIn = (total - s.lastBytes) * 8.0;
    s.lastBytes = total;
  }
}

/* --------------------------------------------------------- WHIP / WHEP */

bool
Node::checkOfferRequest (SoupServerMessage *msg, const std::string &stream, std::string *offer)
{
  std::string why = streamNameError (stream);
  if (!why.empty ()) {
    log (LogLevel::Warning, "http.bad_stream_name", {{"peer", http::peerAddress (msg)}, {"reason", why}});
    http::respondError (msg, SOUP_STATUS_BAD_REQUEST, "invalid stream name: it " + why);
    return false;
  }
  std::string type = http::requestHeader (msg, "Content-Type");
  if (type.rfind ("application/sdp", 0) != 0) {
    http::respondError (msg, SOUP_STATUS_UNSUPPORTED_MEDIA_TYPE,
        "the offer must be sent as Content-Type: application/sdp");
    return false;
  }
  *offer = http::requestBody (msg);
  if (offer->find ("v=0") == std::string::npos) {
    log (LogLevel::Warning, "http.bad_sdp", {{"stream", stream}, {"peer", http::peerAddress (msg)}});
    http::respondError (msg, SOUP_STATUS_BAD_REQUEST, "the body is not an SDP offer");
    return false;
  }
  if (sessions_.size () + fanoutSessions_.size () >= static_cast<size_t> (config_.maxSessions)) {
    http::respondError (msg, SOUP_STATUS_SERVICE_UNAVAILABLE, "the node is at its session limit");
    return false;
  }
  return true;
}

void
Node::handleWhip (SoupServerMessage *msg, const std::string &stream)
{
  if (!abilities_.ingest) {
    sessionsRefused_[0]++;
    http::respondError (msg, SOUP_STATUS_FORBIDDEN, std::string ("this node is ") +
        (config_.nodeRole == NodeRole::Edge ? "an edge" : "a relay") +
        ": it takes no publishers; publish to an origin (ask the manager: "
        "GET /api/v1/streams/{name}/publish)");
    return;
  }
  std::string offer;
  if (!checkOfferRequest (msg, stream, &offer))
    return;
  if (draining_) {
    sessionsRefused_[0]++;
    http::respondError (msg, SOUP_STATUS_SERVICE_UNAVAILABLE,
        "the node is draining: it takes no new publishers; ask the manager for another origin");
    return;
  }
  std::string id = newSessionId ();
  std::string conflict = reserveStream (stream, "whip", id);
  if (!conflict.empty ()) {
    sessionsRefused_[0]++;
    log (LogLevel::Warning, "whip.refused", {{"stream", stream}, {"peer", http::peerAddress (msg)},
        {"reason", conflict}});
    http::respondError (msg, SOUP_STATUS_CONFLICT, conflict);
    return;
  }
  auto session = PublishSession::create (id, stream, http::peerAddress (msg), sessionSettings_,
      [this] (const std::string &sid, const std::string &reason) { onSessionEnded (sid, reason); },
      [this] (const std::string &name, unsigned tracks) { return makeRelaySink (name, tracks); });
  startSession (msg, session, offer);
}

void
Node::handleWhep (SoupServerMessage *msg, const std::string &stream)
{
  if (!abilities_.whep) {
    sessionsRefused_[1]++;
    http::respondError (msg, SOUP_STATUS_FORBIDDEN, "this node is a relay: it serves other "
        "nodes, not viewers; play from an edge (ask the manager: GET /api/v1/streams/{name}/subscribe)");
    return;
  }
  std::string offer;
  if (!checkOfferRequest (msg, stream, &offer))
    return;
  if (draining_) {
    sessionsRefused_[1]++;
    http::respondError (msg, SOUP_STATUS_SERVICE_UNAVAILABLE,
        "the node is draining: it takes no new viewers; ask the manager for another edge");
    return;
  }
  if (viewerCount () >= static_cast<size_t> (config_.maxViewers)) {
    sessionsRefused_[1]++;
    http::respondError (msg, SOUP_STATUS_SERVICE_UNAVAILABLE,
        "the node has reached its viewer limit (" + std::to_string (config_.maxViewers) + ")");
    return;
  }
  bool live = false, known = false, pulled = false;
  {
    std::lock_guard<std::mutex> lock (streamsLock_);
    auto it = streams_.find (stream);
    known = it != streams_.end ();
    live = known && it->second.live;
    pulled = known && it->second.source == "pull";
  }
  if (live) {
    startPlay (msg, stream, offer, false);
    return;
  }
  /* Not here: pull it (once) and answer when it is live. */
  if (abilities_.pullForViewers && canPull () && (!known || pulled)) {
    waitForPull (msg, stream, offer);
    return;
  }
  sessionsRefused_[1]++;
  http::respondError (msg, SOUP_STATUS_NOT_FOUND, "stream '" + stream + "' is not live");
}

void
Node::startPlay (SoupServerMessage *msg, const std::string &stream, const std::string &offer,
    bool paused)
{
  if (fanoutEgress ()) {
    startFanoutPlay (msg, stream, offer, paused);
    return;
  }
  startWebRtcBinPlay (msg, stream, offer, paused, "");
}

void
Node::startWebRtcBinPlay (SoupServerMessage *msg, const std::string &stream,
    const std::string &offer, bool paused, const std::string &refusal)
{
  auto session = PlaySession::create (newSessionId (), stream, http::peerAddress (msg),
      sessionSettings_,
      [this] (const std::string &sid, const std::string &reason) { onSessionEnded (sid, reason); });
  startSession (msg, session, offer, paused, refusal);
}

void
Node::startSession (SoupServerMessage *msg, std::shared_ptr<PeerSession> session,
    const std::string &offer, bool paused, const std::string &refusal)
{
  const std::string id = session->id ();
  sessions_[id] = session;
  int kind = session->kind () == PeerSession::Kind::Publish ? 0 : 1;
  if (kind == 1) {
    std::lock_guard<std::mutex> lock (streamsLock_);
    auto it = streams_.find (session->stream ());
    if (it != streams_.end ())
      it->second.viewers.insert (id);
  }

  /* The answer comes later, on the main loop: hold the response. The server
   * keeps the message alive while it is paused. */
  if (!paused) {
    soup_server_message_pause (msg);
    g_object_ref (msg);
  }
  session->start (offer, [this, msg, id, kind, refusal] (guint status, const std::string &body) {
    if (status == SOUP_STATUS_CREATED) {
      sessionsStarted_[kind]++;
      soup_message_headers_replace (soup_server_message_get_response_headers (msg),
          "Location", ("/sessions/" + id).c_str ());
      http::respond (msg, status, "application/sdp", body);
    } else if (!refusal.empty ()) {
      sessionsRefused_[kind]++;
      log (LogLevel::Warning, "whep.refused", {{"session", id}, {"reason", refusal},
          {"webrtcbin", body}});
      http::respondError (msg, SOUP_STATUS_NOT_ACCEPTABLE, refusal);
    } else {
      sessionsRefused_[kind]++;
      http::respondError (msg, status, body);
    }
    soup_server_message_unpause (msg);
    g_object_unref (msg);
  });
}

void
Node::handleDeleteSession (SoupServerMessage *msg, const std::string &id)
{
  auto fs = fanoutSessions_.find (id);
  if (fs != fanoutSessions_.end ()) {
    const FanoutSession session = fs->second;
    auto e = egresses_.find (session.stream);
    if (e != egresses_.end ())
      e->second->removeViewer (session.viewer);
    forgetFanoutViewer (session.stream, session.viewer, "ended by the client (DELETE)");
    http::respond (msg, SOUP_STATUS_OK, nullptr, "");
    return;
  }
  auto it = sessions_.find (id);
  if (it == sessions_.end ()) {
    http::respondError (msg, SOUP_STATUS_NOT_FOUND, "no such session");
    return;
  }
  auto session = it->second;
  session->stop ("ended by the client (DELETE)");
  http::respond (msg, SOUP_STATUS_OK, nullptr, "");
}

void
Node::onSessionEnded (const std::string &id, const std::string &reason)
{
  auto it = sessions_.find (id);
  if (it == sessions_.end ())
    return;
  auto session = it->second;
  sessions_.erase (it);
  if (session->kind () == PeerSession::Kind::Publish) {
    releaseStream (session->stream (), reason);
  } else {
    std::lock_guard<std::mutex> lock (streamsLock_);
    auto s = streams_.find (session->stream ());
    if (s != streams_.end ())
      s->second.viewers.erase (id);
  }
  /* The session object may still be on the stack: free it from the loop. */
  g_idle_add_full (G_PRIORITY_LOW, [] (gpointer) -> gboolean { return G_SOURCE_REMOVE; },
      new std::shared_ptr<PeerSession> (session),
      [] (gpointer data) { delete static_cast<std::shared_ptr<PeerSession> *> (data); });
}

/* -------------------------------------------------------------- fan-out */

unsigned
Node::streamTracks (const std::string &stream)
{
  std::lock_guard<std::mutex> lock (streamsLock_);
  auto it = streams_.find (stream);
  return it == streams_.end () || !it->second.live ? 0 : static_cast<unsigned> (it->second.tracks.size ());
}

std::shared_ptr<FanoutEgress>
Node::ensureEgress (const std::string &stream, std::string *error, guint *status)
{
  auto it = egresses_.find (stream);
  if (it != egresses_.end ())
    return it->second;
  FanoutSettings fs;
  /* The element binds one socket: the first ICE address, else the HTTP
   * address unless it is a wildcard. */
  if (!config_.ice.addresses.empty ())
    fs.address = config_.ice.addresses.front ();
  else if (config_.httpAddress != "0.0.0.0" && config_.httpAddress != "::")
    fs.address = config_.httpAddress;
  else
    fs.address = "127.0.0.1";
  fs.localAddresses = config_.ice.addresses;
  if (fs.localAddresses.empty ())
    fs.localAddresses.push_back (fs.address);
  fs.publicAddress = config_.publicAddress;
  fs.threads = static_cast<unsigned> (config_.fanoutThreads);
  fs.viewerTimeoutS = config_.viewerTimeoutS;
  fs.ports = fanoutPorts_;
  FanoutEgress::Hooks hooks;
  hooks.viewerRemoved = [this, stream] (const std::string &viewer, const std::string &reason) {
    forgetFanoutViewer (stream, viewer, reason);
  };
  hooks.ended = [this, stream] (FanoutEgress &ended, const std::string &reason) {
    /* Not from within the egress' own callback: it is freed there. Only
     * this fan-out: a new publisher of the name may have a new one by then. */
    struct Ended {
      std::weak_ptr<Node *> node;
      std::weak_ptr<FanoutEgress> egress;
      std::string stream, reason;
    };
    g_idle_add_full (G_PRIORITY_DEFAULT, [] (gpointer data) -> gboolean {
          auto *e = static_cast<Ended *> (data);
          auto node = e->node.lock ();
          auto egress = e->egress.lock ();
          if (node && *node && egress) {
            auto it = (*node)->egresses_.find (e->stream);
            if (it != (*node)->egresses_.end () && it->second == egress)
              (*node)->stopEgress (e->stream, e->reason);
          }
          return G_SOURCE_REMOVE;
        }, new Ended{alive_, ended.weak_from_this (), stream, reason},
        [] (gpointer data) { delete static_cast<Ended *> (data); });
  };
  auto egress = FanoutEgress::create (stream, fs, hooks);
  if (!egress->start (error, status))
    return nullptr;
  egresses_[stream] = egress;
  return egress;
}

void
Node::startFanoutPlay (SoupServerMessage *msg, const std::string &stream, const std::string &offer,
    bool paused)
{
  std::string error;
  guint status = SOUP_STATUS_INTERNAL_SERVER_ERROR;
  auto egress = ensureEgress (stream, &error, &status);
  if (!egress) {
    sessionsRefused_[1]++;
    log (LogLevel::Error, "whep.fanout.failed", {{"stream", stream},
        {"peer", http::peerAddress (msg)}, {"reason", error}});
    http::respondError (msg, status, error);
    if (paused) {
      soup_server_message_unpause (msg);
      g_object_unref (msg);
    }
    return;
  }
  egress->idleSince = 0;
  unsigned tracks = streamTracks (stream);
  if (egress->ready (tracks) && fanoutWaiting_[stream].empty ()) {
    fanoutWaiting_.erase (stream);
    answerFanoutViewer (msg, *egress, offer, paused);
    return;
  }
  /* Its tracks have not reached the fan-out yet: answer when they have. */
  if (!paused) {
    soup_server_message_pause (msg);
    g_object_ref (msg);
  }
  fanoutWaiting_[stream].push_back (FanoutWaiter{msg, offer, g_get_monotonic_time () + kFanoutReadyUs});
}

void
Node::answerFanoutViewer (SoupServerMessage *msg, FanoutEgress &egress, const std::string &offer,
    bool paused)
{
  std::string viewer, answer;
  guint status = egress.addViewer (offer, &viewer, &answer);
  if (status == SOUP_STATUS_NOT_ACCEPTABLE) {
    /* The fan-out matches H.264 by profile; webrtcbin sends the stream in
     * whatever H.264 the viewer offered (an xdnwhepsrc offering only
     * Constrained Baseline, a High stream from an SRT encoder). Refused by
     * both: the fan-out's reason. */
    fanoutFallbacks_++;
    log (LogLevel::Info, "whep.fanout.fallback", {{"stream", egress.stream ()},
        {"peer", http::peerAddress (msg)}, {"reason", answer}});
    startWebRtcBinPlay (msg, egress.stream (), offer, paused, answer);
    return;
  }
  if (status != SOUP_STATUS_CREATED) {
    sessionsRefused_[1]++;
    log (LogLevel::Warning, "whep.refused", {{"stream", egress.stream ()},
        {"peer", http::peerAddress (msg)}, {"reason", answer}});
    http::respondError (msg, status, answer);
    if (paused) {
      soup_server_message_unpause (msg);
      g_object_unref (msg);
    }
    return;
  }
  const std::string id = newSessionId ();
  fanoutSessions_[id] = FanoutSession{egress.stream (), viewer};
  fanoutViewers_[{egress.stream (), viewer}] = id;
  {
    std::lock_guard<std::mutex> lock (streamsLock_);
    auto it = streams_.find (egress.stream ());
    if (it != streams_.end ())
      it->second.viewers.insert (id);
  }
  sessionsStarted_[1]++;
  log (LogLevel::Info, "whep.fanout.viewer", {{"stream", egress.stream ()}, {"session", id},
      {"peer", http::peerAddress (msg)}});
  soup_message_headers_replace (soup_server_message_get_response_headers (msg),
      "Location", ("/sessions/" + id).c_str ());
  http::respond (msg, SOUP_STATUS_CREATED, "application/sdp", answer);
  if (paused) {
    soup_server_message_unpause (msg);
    g_object_unref (msg);
  }
}

void
Node::checkFanoutWaiters (const std::string &stream)
{
  auto w = fanoutWaiting_.find (stream);
  if (w == fanoutWaiting_.end ())
    return;
  auto e = egresses_.find (stream);
  const bool ready = e != egresses_.end () && e->second->ready (streamTracks (stream));
  const gint64 now = g_get_monotonic_time ();
  std::vector<FanoutWaiter> answer, keep;
  for (auto &waiter : w->second)
    (ready || waiter.deadline <= now ? answer : keep).push_back (waiter);
  if (keep.empty ())
    fanoutWaiting_.erase (w);
  else
    w->second = keep;
  for (auto &waiter : answer) {
    if (ready) {
      answerFanoutViewer (waiter.msg, *e->second, waiter.offer, true);
      continue;
    }
    sessionsRefused_[1]++;
    log (LogLevel::Warning, "whep.fanout.timeout", {{"stream", stream}});
    http::respondError (waiter.msg, SOUP_STATUS_SERVICE_UNAVAILABLE, "the tracks of stream '" +
        stream + "' did not reach the fan-out within " +
        std::to_string (kFanoutReadyUs / G_USEC_PER_SEC) + " s");
    soup_server_message_unpause (waiter.msg);
    g_object_unref (waiter.msg);
  }
}

void
Node::forgetFanoutViewer (const std::string &stream, const std::string &viewer,
    const std::string &reason)
{
  auto v = fanoutViewers_.find ({stream, viewer});
  if (v == fanoutViewers_.end ())
    return;
  const std::string id = v->second;
  fanoutViewers_.erase (v);
  fanoutSessions_.erase (id);
  {
    std::lock_guard<std::mutex> lock (streamsLock_);
    auto s = streams_.find (stream);
    if (s != streams_.end ())
      s->second.viewers.erase (id);
  }
  log (LogLevel::Info, "whep.fanout.viewer_ended", {{"stream", stream}, {"session", id},
      {"reason", reason}});
}

void
Node::stopEgress (const std::string &stream, const std::string &reason)
{
  auto w = fanoutWaiting_.find (stream);
  if (w != fanoutWaiting_.end ()) {
    std::vector<FanoutWaiter> waiters = std::move (w->second);
    fanoutWaiting_.erase (w);
    for (auto &waiter : waiters) {
      sessionsRefused_[1]++;
      http::respondError (waiter.msg, SOUP_STATUS_SERVICE_UNAVAILABLE,
          "stream '" + stream + "': " + reason);
      soup_server_message_unpause (waiter.msg);
      g_object_unref (waiter.msg);
    }
  }
  auto it = egresses_.find (stream);
  if (it == egresses_.end ())
    return;
  std::shared_ptr<FanoutEgress> egress = it->second;
  egresses_.erase (it);
  std::vector<std::string> viewers;
  for (const auto &entry : fanoutViewers_)
    if (entry.first.first == stream)
      viewers.push_back (entry.first.second);
  for (const auto &viewer : viewers)
    forgetFanoutViewer (stream, viewer, reason);
  log (LogLevel::Info, "whep.fanout.stopping", {{"stream", stream}, {"reason", reason},
      {"viewers", std::to_string (viewers.size ())}});
  egress->stop ();
  egress.reset ();
#ifdef __GLIBC__
  /* Thousands of viewers' state just went (several threads' arenas): give
   * the freed memory back to the system rather than keep it for the next
   * crowd. */
  malloc_trim (0);
#endif
}

void
Node::fanoutTick ()
{
  std::vector<std::string> waiting;
  for (const auto &entry : fanoutWaiting_)
    waiting.push_back (entry.first);
  for (const auto &stream : waiting)
    checkFanoutWaiters (stream);
  /* A fan-out without viewers (or anyone waiting) goes after a few seconds. */
  std::map<std::string, size_t> held;
  for (const auto &entry : fanoutSessions_)
    held[entry.second.stream]++;
  const gint64 now = g_get_monotonic_time ();
  std::vector<std::string> idle;
  for (auto &entry : egresses_) {
    FanoutEgress &e = *entry.second;
    if (held[entry.first] > 0 || fanoutWaiting_.count (entry.first)) {
      e.idleSince = 0;
      continue;
    }
    if (!e.idleSince)
      e.idleSince = now;
    else if (now - e.idleSince >= kFanoutLingerUs)
      idle.push_back (entry.first);
  }
  for (const auto &stream : idle)
    stopEgress (stream, "no viewers left");
}

/* ------------------------------------------------------------- cluster */

size_t
Node::viewerCount () const
{
  size_t n = 0;
  for (const auto &entry : sessions_)
    if (entry.second->kind () == PeerSession::Kind::Play)
      n++;
  for (const auto &entry : waiting_)
    n += entry.second.size ();
  n += fanoutSessions_.size ();
  for (const auto &entry : fanoutWaiting_)
    n += entry.second.size ();
  return n;
}

void
Node::routeStream (const std::string &stream, std::function<void (const RouteAnswer &)> done)
{
  if (manager_) {
    manager_->route (stream, std::move (done));
    return;
  }
  /* The static upstream, answered from the loop like the manager's. */
  RouteAnswer answer;
  if (config_.upstream.empty ()) {
    answer.status = RouteAnswer::Status::Error;
    answer.detail = "no manager and no upstream configured";
  } else {
    answer.status = RouteAnswer::Status::Ok;
    answer.upstream = config_.upstream;
  }
  using Pending = std::pair<RouteAnswer, std::function<void (const RouteAnswer &)>>;
  g_idle_add_full (G_PRIORITY_DEFAULT, [] (gpointer data) -> gboolean {
        auto *p = static_cast<Pending *> (data);
        p->second (p->first);
        return G_SOURCE_REMOVE;
      }, new Pending (answer, std::move (done)), [] (gpointer data) {
        delete static_cast<Pending *> (data);
      });
}

std::shared_ptr<Pull>
Node::ensurePull (const std::string &stream, std::string *error)
{
  auto it = pulls_.find (stream);
  if (it != pulls_.end ())
    return it->second;
  std::string conflict = reserveStream (stream, "pull", "");
  if (!conflict.empty ()) {
    *error = conflict;
    return nullptr;
  }
  PullSettings ps;
  ps.passphrase = config_.relayPassphrase;
  ps.token = config_.relayToken;
  ps.latencyMs = config_.relayLatencyMs;
  ps.packetFilter = config_.relayPacketFilter;
  ps.lingerS = config_.relayLingerS;
  ps.staticRoute = !manager_;
  Pull::Hooks hooks;
  hooks.route = [this] (const std::string &name, std::function<void (const RouteAnswer &)> done) {
    routeStream (name, std::move (done));
  };
  hooks.makeSink = [this] (const std::string &name) { return makeRelaySink (name, 0); };
  hooks.live = [this] (const std::string &name) { onPullLive (name); };
  hooks.ended = [this] (const std::string &name, const std::string &reason, guint status) {
    onPullEnded (name, reason, status);
  };
  auto pull = Pull::create (stream, ps, hooks);
  pulls_[stream] = pull;
  pullsStarted_++;
  pull->start ();
  return pull;
}

void
Node::waitForPull (SoupServerMessage *msg, const std::string &stream, const std::string &offer)
{
  std::string error;
  auto pull = ensurePull (stream, &error);
  if (!pull) {
    sessionsRefused_[1]++;
    http::respondError (msg, SOUP_STATUS_CONFLICT, error);
    return;
  }
  if (pull->live ()) {
    startPlay (msg, stream, offer, false);
    return;
  }
  soup_server_message_pause (msg);
  g_object_ref (msg);
  struct Timeout {
    Node *node;
    std::string stream;
    guint64 id;
  };
  const guint64 id = nextId_++;
  guint timer = g_timeout_add_full (G_PRIORITY_DEFAULT, kPullWaitMs, [] (gpointer data) -> gboolean {
        auto *t = static_cast<Timeout *> (data);
        Node *node = t->node;
        auto &list = node->waiting_[t->stream];
        for (auto w = list.begin (); w != list.end (); ++w) {
          if (w->id != t->id)
            continue;
          SoupServerMessage *m = w->msg;
          list.erase (w);
          node->sessionsRefused_[1]++;
          node->waitersTimedOut_++;
          log (LogLevel::Warning, "whep.pull.timeout", {{"stream", t->stream}});
          http::respondError (m, SOUP_STATUS_NOT_FOUND, "stream '" + t->stream +
              "' did not arrive from upstream within " + std::to_string (kPullWaitMs / 1000) + " s");
          soup_server_message_unpause (m);
          g_object_unref (m);
          break;
        }
        if (list.empty ())
          node->waiting_.erase (t->stream);
        return G_SOURCE_REMOVE;
      }, new Timeout{this, stream, id}, [] (gpointer data) { delete static_cast<Timeout *> (data); });
  waiting_[stream].push_back (WhepWaiter{id, msg, offer, timer});
}

void
Node::onPullLive (const std::string &stream)
{
  {
    std::lock_guard<std::mutex> lock (streamsLock_);
    auto it = streams_.find (stream);
    if (it != streams_.end ()) {
      it->second.live = true;
      auto pull = pulls_.find (stream);
      if (pull != pulls_.end ())
        it->second.publisher = pull->second->upstream ();
    }
  }
  log (LogLevel::Info, "stream.live", {{"stream", stream}, {"source", "pull"}});
  auto it = waiting_.find (stream);
  if (it == waiting_.end ())
    return;
  std::vector<WhepWaiter> waiters = std::move (it->second);
  waiting_.erase (it);
  for (auto &w : waiters) {
    g_source_remove (w.timer);
    startPlay (w.msg, stream, w.offer, true);
  }
}

void
Node::onPullEnded (const std::string &stream, const std::string &reason, guint status)
{
  auto it = pulls_.find (stream);
  if (it != pulls_.end ()) {
    pullRestartsOfEnded_ += it->second->restarts ();
    /* Freed from the loop: the pull is still on the stack. */
    g_idle_add_full (G_PRIORITY_LOW, [] (gpointer) -> gboolean { return G_SOURCE_REMOVE; },
        new std::shared_ptr<Pull> (it->second),
        [] (gpointer data) { delete static_cast<std::shared_ptr<Pull> *> (data); });
    pulls_.erase (it);
  }
  if (status == SOUP_STATUS_NOT_FOUND) {
    std::lock_guard<std::mutex> lock (streamsLock_);
    notLive_[stream] = g_get_monotonic_time () + kNotLiveCacheUs;
  }
  releaseStream (stream, reason);
  auto w = waiting_.find (stream);
  if (w != waiting_.end ()) {
    std::vector<WhepWaiter> waiters = std::move (w->second);
    waiting_.erase (w);
    for (auto &waiter : waiters) {
      g_source_remove (waiter.timer);
      sessionsRefused_[1]++;
      http::respondError (waiter.msg, status, status == SOUP_STATUS_NOT_FOUND
          ? "stream '" + stream + "' is not live (" + reason + ")"
          : "cannot pull stream '" + stream + "': " + reason);
      soup_server_message_unpause (waiter.msg);
      g_object_unref (waiter.msg);
    }
  }
  stopServingsOf (stream, "the pull ended: " + reason);
}

/* libsrt's receiver thread. */
SrtAdmission
Node::admitPublisher (const std::string &stream)
{
  if (!abilities_.ingest)
    return SrtAdmission::refuse (SRT_REJX_BAD_MODE, std::string ("this node (role ") +
        nodeRoleName (config_.nodeRole) + ") takes no publishers");
  if (draining_)
    return SrtAdmission::refuse (SRT_REJX_DOWN, "the node is draining");
  /* Open admission; the only refusal is a name already published. */
  std::string conflict = reserveStream (stream, "srt", "srt");
  return conflict.empty () ? SrtAdmission () : SrtAdmission::conflict (conflict);
}

/* libsrt's receiver thread. */
SrtAdmission
Node::admitRequest (const std::string &stream, const std::string &token)
{
  if (!config_.relayToken.empty () && token != config_.relayToken)
    return SrtAdmission::refuse (SRT_REJX_UNAUTHORIZED, "wrong or missing relay token (s=)");
  if (config_.maxDownstream > 0 && servingsOpen_ >= config_.maxDownstream)
    return SrtAdmission::refuse (SRT_REJX_OVERLOAD, "already serving " +
        std::to_string (config_.maxDownstream) + " downstream links");
  {
    std::lock_guard<std::mutex> lock (streamsLock_);
    const bool here = streams_.count (stream) > 0;
    if (!here) {
      auto nl = notLive_.find (stream);
      const bool knownNotLive = nl != notLive_.end () && nl->second > g_get_monotonic_time ();
      if (!abilities_.pullForRequest || !canPull () || knownNotLive)
        return SrtAdmission::refuse (SRT_REJX_NOTFOUND, "the stream is not here");
    }
  }
  return SrtAdmission ();
}

/* Main thread: an admitted m=request socket, accepted. */
void
Node::serveRequest (int socket, const std::string &stream, const std::string &peer)
{
  bool here;
  {
    std::lock_guard<std::mutex> lock (streamsLock_);
    here = streams_.count (stream) > 0;
  }
  if (!here && abilities_.pullForRequest) {
    std::string error;
    if (!ensurePull (stream, &error))
      log (LogLevel::Warning, "relay.pull_failed", {{"stream", stream}, {"reason", error}});
  }
  const guint64 id = nextId_++;
  auto serving = RelayServing::create (id, socket, stream, peer,
      [this] (RelayServing &s, const std::string &) {
        servingsOpen_--;
        auto it = servings_.find (s.id ());
        if (it == servings_.end ())
          return;
        g_idle_add_full (G_PRIORITY_LOW, [] (gpointer) -> gboolean { return G_SOURCE_REMOVE; },
            new std::shared_ptr<RelayServing> (it->second),
            [] (gpointer data) { delete static_cast<std::shared_ptr<RelayServing> *> (data); });
        servings_.erase (it);
      });
  servings_[id] = serving;
  servingsStarted_++;
  servingsOpen_++;
  std::string error;
  if (!serving->start (&error)) {
    log (LogLevel::Error, "relay.serving.failed", {{"stream", stream}, {"peer", peer},
        {"reason", error}});
    serving->stop (error);
  }
}

void
Node::stopServingsOf (const std::string &stream, const std::string &reason)
{
  std::vector<std::shared_ptr<RelayServing>> ending;
  for (auto &entry : servings_)
    if (entry.second->stream () == stream)
      ending.push_back (entry.second);
  for (auto &s : ending)
    s->stop (reason);
}

void
Node::clusterTick ()
{
  std::vector<std::shared_ptr<Pull>> pulls;
  for (auto &entry : pulls_)
    pulls.push_back (entry.second);
  /* Viewers waiting and downstream links (a relay's may wait for the hub
   * stream before the pull has built it) keep a pull. */
  std::map<std::string, unsigned> held;
  for (const auto &entry : waiting_)
    held[entry.first] += entry.second.size ();
  for (const auto &entry : servings_)
    held[entry.second->stream ()]++;
  for (auto &p : pulls)
    p->tick (held[p->stream ()]);
  std::lock_guard<std::mutex> lock (streamsLock_);
  const gint64 now = g_get_monotonic_time ();
  for (auto it = notLive_.begin (); it != notLive_.end ();)
    it = it->second <= now ? notLive_.erase (it) : std::next (it);
}

LoadReport
Node::loadReport ()
{
  std::map<std::string, int> downstream;
  for (const auto &entry : servings_)
    downstream[entry.second->stream ()]++;
  LoadReport r;
  std::lock_guard<std::mutex> lock (streamsLock_);
  for (const auto &entry : streams_) {
    const Stream &s = entry.second;
    StreamReport sr;
    sr.name = s.name;
    sr.publishing = s.source != "pull";
    sr.pulling = s.source == "pull";
    sr.viewers = static_cast<int> (s.viewers.size ());
    r.streams.push_back (sr);
    r.viewers += sr.viewers;
    r.bitrateIn += s.bitrateIn;
    auto d = downstream.find (s.name);
    r.bitrateOut += s.bitrateIn * (sr.viewers + (d == downstream.end () ? 0 : d->second));
  }
  return r;
}

void
Node::setDraining (bool draining)
{
  draining_ = draining;
  log (LogLevel::Info, draining ? "node.draining" : "node.active",
      {{"detail", draining ? "new publishers and viewers get 503; the current ones stay" : ""}});
}

/* ----------------------------------------------------------------- API */

std::string
Node::streamJson (const Stream &s) const
{
  JsonBuilder *b = json_builder_new ();
  json_builder_begin_object (b);
  json::member (b, "name", s.name);
  json::member (b, "source", s.source);
  if (s.source == "pull")
    json::member (b, "upstream", s.publisher);
  json::member (b, "live", s.live);
  json::member (b, "uptime_s", (gint64) ((g_get_monotonic_time () - s.since) / G_USEC_PER_SEC));
  json::member (b, "viewers", (gint64) s.viewers.size ());
  json::member (b, "bitrate_in", s.bitrateIn);
  json_builder_set_member_name (b, "tracks");
  json_builder_begin_array (b);
  int index = 0;
  for (const auto &t : s.tracks) {
    json_builder_begin_object (b);
    json::member (b, "id", (gint64) index++);
    GstCaps *caps = gst_pad_get_current_caps (t.pad.get ());
    std::string kind, codec, caps_text;
    if (caps) {
      const GstStructure *st = gst_caps_get_structure (caps, 0);
      const gchar *media = gst_structure_get_string (st, "media");
      const gchar *enc = gst_structure_get_string (st, "encoding-name");
      kind = media ? media : "";
      codec = enc ? enc : "";
      gchar *text = gst_caps_to_string (caps);
      caps_text = text;
      g_free (text);
      gst_caps_unref (caps);
    }
    json::member (b, "kind", kind);
    json::member (b, "codec", codec);
    json::member (b, "caps", caps_text);
    json::member (b, "packets", (gint64) t.packets->load ());
    json::member (b, "bytes", (gint64) t.bytes->load ());
    json_builder_end_object (b);
  }
  json_builder_end_array (b);
  json_builder_end_object (b);
  std::string out = json::toString (b);
  g_object_unref (b);
  return out;
}

void
Node::handleStreams (SoupServerMessage *msg, const std::string &rest)
{
  std::lock_guard<std::mutex> lock (streamsLock_);
  if (rest.empty () || rest == "/") {
    std::string body = "{\"streams\":[";
    bool first = true;
    for (const auto &entry : streams_) {
      if (!entry.second.live)
        continue;
      body += (first ? "" : ",") + streamJson (entry.second);
      first = false;
    }
    body += "]}\n";
    http::respond (msg, SOUP_STATUS_OK, "application/json", body);
    return;
  }
  if (rest[0] != '/') {
    http::respondError (msg, SOUP_STATUS_NOT_FOUND, "no such resource");
    return;
  }
  std::string name = rest.substr (1);
  auto it = streams_.find (name);
  if (it == streams_.end () || !it->second.live) {
    http::respondError (msg, SOUP_STATUS_NOT_FOUND, "stream '" + name + "' is not live");
    return;
  }
  http::respond (msg, SOUP_STATUS_OK, "application/json", streamJson (it->second) + "\n");
}

void
Node::handleMetrics (SoupServerMessage *msg)
{
  MetricsWriter m;
  m.family ("xdn_uptime_seconds", "gauge", "Seconds since the node started.");
  m.sample ("xdn_uptime_seconds", (g_get_monotonic_time () - startedAt_) / 1e6);
  m.family ("xdn_sessions", "gauge", "WebRTC sessions open now.");
  size_t open[2] = {0, 0};
  for (const auto &entry : sessions_)
    open[entry.second->kind () == PeerSession::Kind::Publish ? 0 : 1]++;
  m.sample ("xdn_sessions", open[0], {{"kind", "whip"}});
  m.sample ("xdn_sessions", open[1] + fanoutSessions_.size (), {{"kind", "whep"}});
  m.family ("xdn_sessions_started_total", "counter", "WebRTC sessions answered.");
  m.sample ("xdn_sessions_started_total", sessionsStarted_[0], {{"kind", "whip"}});
  m.sample ("xdn_sessions_started_total", sessionsStarted_[1], {{"kind", "whep"}});
  m.family ("xdn_sessions_refused_total", "counter", "WebRTC session requests refused.");
  m.sample ("xdn_sessions_refused_total", sessionsRefused_[0], {{"kind", "whip"}});
  m.sample ("xdn_sessions_refused_total", sessionsRefused_[1], {{"kind", "whep"}});
  {
    std::lock_guard<std::mutex> lock (streamsLock_);
    m.family ("xdn_stream_viewers", "gauge", "Viewers of a live stream.");
    for (const auto &entry : streams_)
      m.sample ("xdn_stream_viewers", entry.second.viewers.size (), {{"stream", entry.first}});
    m.family ("xdn_stream_bitrate_in_bits", "gauge", "Inbound bitrate of a stream, bit/s.");
    for (const auto &entry : streams_)
      m.sample ("xdn_stream_bitrate_in_bits", entry.second.bitrateIn, {{"stream", entry.first}});
    m.family ("xdn_stream_bytes_in_total", "counter",
        "RTP bytes that came into a stream here (published or pulled), while the node carries it.");
    for (const auto &entry : streams_) {
      guint64 total = 0;
      for (const auto &t : entry.second.tracks)
        total += *t.bytes;
      m.sample ("xdn_stream_bytes_in_total", total, {{"stream", entry.first},
          {"source", entry.second.source}});
    }
    m.family ("xdn_track_received_bytes_total", "counter", "RTP bytes received on a track.");
    for (const auto &entry : streams_)
      for (size_t i = 0; i < entry.second.tracks.size (); i++)
        m.sample ("xdn_track_received_bytes_total", *entry.second.tracks[i].bytes,
            {{"stream", entry.first}, {"track", std::to_string (i)}});
  }
  {
    m.family ("xdn_fanout_fallbacks_total", "counter",
        "Viewers the fan-out refused (no codec match) that were tried with a webrtcbin of their own.");
    m.sample ("xdn_fanout_fallbacks_total", fanoutFallbacks_);
    std::vector<std::pair<std::string, FanoutStats>> fanouts;
    for (const auto &entry : egresses_)
      fanouts.emplace_back (entry.first, entry.second->stats ());
    /* One sample per stream with a fan-out, for each of these. */
    const struct {
      const char *name, *type, *help;
      guint64 FanoutStats::*value;
    } perStream[] = {
      {"xdn_fanout_viewers", "gauge", "Viewers held by a stream's fan-out (added, not yet removed).",
          &FanoutStats::viewers},
      {"xdn_fanout_connected_viewers", "gauge", "Fan-out viewers with DTLS-SRTP up.",
          &FanoutStats::connected},
      {"xdn_fanout_packets_sent_total", "counter", "SRTP packets the fan-out sent to viewers.",
          &FanoutStats::packetsSent},
      {"xdn_fanout_bytes_sent_total", "counter", "SRTP bytes the fan-out sent to viewers.",
          &FanoutStats::bytesSent},
      {"xdn_fanout_retransmits_total", "counter", "Packets sent again on a viewer's NACK.",
          &FanoutStats::retransmits},
      {"xdn_fanout_nacked_packets_total", "counter",
          "Packets the viewers reported lost in their NACKs.", &FanoutStats::nacks},
      {"xdn_fanout_nack_misses_total", "counter",
          "NACKed packets no longer in the packet history, not sent again.",
          &FanoutStats::nackMisses},
      {"xdn_fanout_plis_total", "counter", "Picture loss indications from viewers.",
          &FanoutStats::plis},
      {"xdn_fanout_firs_total", "counter", "Full intra requests from viewers.", &FanoutStats::firs},
      {"xdn_fanout_keyframe_requests_total", "counter",
          "Keyframe requests the fan-out passed upstream: viewers' PLIs and FIRs, and viewers that fell behind.",
          &FanoutStats::keyframeRequests},
      {"xdn_fanout_keyframe_requests_limited_total", "counter",
          "Keyframe requests held back by the rate limit and made once, later.",
          &FanoutStats::keyframeRequestsLimited},
      {"xdn_fanout_dropped_total", "counter",
          "Packets skipped by viewers that fell behind, or refused by the kernel.",
          &FanoutStats::dropped},
      {"xdn_fanout_transport_cc_feedbacks_total", "counter",
          "Transport-cc feedback messages the fan-out's viewers sent.",
          &FanoutStats::transportCcFeedbacks},
      {"xdn_fanout_transport_cc_received_total", "counter",
          "Packets the viewers' transport-cc feedback reported received.",
          &FanoutStats::transportCcReceived},
      {"xdn_fanout_transport_cc_lost_total", "counter",
          "Packets the viewers' transport-cc feedback reported not received.",
          &FanoutStats::transportCcLost},
    };
    for (const auto &family : perStream) {
      m.family (family.name, family.type, family.help);
      for (const auto &f : fanouts)
        m.sample (family.name, f.second.*family.value, {{"stream", f.first}});
    }
  }
  {
    m.family ("xdn_pulls", "gauge", "Streams pulled from upstream now.");
    m.sample ("xdn_pulls", pulls_.size ());
    m.family ("xdn_pulls_started_total", "counter", "Pulls started.");
    m.sample ("xdn_pulls_started_total", pullsStarted_);
    guint64 restarts = pullRestartsOfEnded_;
    for (const auto &entry : pulls_)
      restarts += entry.second->restarts ();
    m.family ("xdn_pull_restarts_total", "counter",
        "Times a pull's link came back after a loss, or was re-pointed to another upstream.");
    m.sample ("xdn_pull_restarts_total", restarts);
    m.family ("xdn_pull_wait_timeouts_total", "counter",
        "Viewers refused because their stream did not arrive from upstream in time.");
    m.sample ("xdn_pull_wait_timeouts_total", waitersTimedOut_);
    m.family ("xdn_relay_downstream", "gauge", "Downstream nodes served over SRT now.");
    m.sample ("xdn_relay_downstream", servings_.size ());
    m.family ("xdn_relay_downstream_started_total", "counter", "Downstream links served.");
    m.sample ("xdn_relay_downstream_started_total", servingsStarted_);
    m.family ("xdn_node_draining", "gauge", "1 while the node is draining.");
    m.sample ("xdn_node_draining", draining_ ? 1 : 0);
    if (manager_) {
      m.family ("xdn_manager_registered", "gauge", "1 while the node is registered with the manager.");
      m.sample ("xdn_manager_registered", manager_->registered () ? 1 : 0);
      m.family ("xdn_manager_events_connected", "gauge", "1 while the manager's event WebSocket is open.");
      m.sample ("xdn_manager_events_connected", manager_->eventsConnected () ? 1 : 0);
      m.family ("xdn_manager_registrations_total", "counter", "Registrations accepted by the manager.");
      m.sample ("xdn_manager_registrations_total", manager_->registrations ());
      m.family ("xdn_manager_heartbeats_failed_total", "counter", "Heartbeats without a 200 answer.");
      m.sample ("xdn_manager_heartbeats_failed_total", manager_->heartbeatsFailed ());
    }
  }
  if (srt_) {
    SrtIngestStats stats = srt_->stats ();
    m.family ("xdn_srt_publishers", "gauge", "SRT publishers connected now.");
    m.sample ("xdn_srt_publishers", stats.publishers.size ());
    m.family ("xdn_srt_received_bytes_total", "counter", "Bytes received from SRT publishers.");
    m.sample ("xdn_srt_received_bytes_total", stats.bytesReceived);
    m.family ("xdn_srt_refused_total", "counter", "SRT connections refused, by reason.");
    m.sample ("xdn_srt_refused_total", stats.refused.badRequest, {{"reason", "bad_request"}});
    m.sample ("xdn_srt_refused_total", stats.refused.forbidden, {{"reason", "forbidden"}});
    m.sample ("xdn_srt_refused_total", stats.refused.conflict, {{"reason", "conflict"}});
    m.sample ("xdn_srt_refused_total", stats.refused.overload, {{"reason", "overload"}});
    m.sample ("xdn_srt_refused_total", stats.refused.badMode, {{"reason", "bad_mode"}});
    m.sample ("xdn_srt_refused_total", stats.refused.badType, {{"reason", "bad_type"}});
    m.sample ("xdn_srt_refused_total", stats.refused.notFound, {{"reason", "not_found"}});
    m.sample ("xdn_srt_refused_total", stats.refused.unauthorized, {{"reason", "unauthorized"}});
    m.sample ("xdn_srt_refused_total", stats.refused.unavailable, {{"reason", "unavailable"}});
    m.family ("xdn_srt_requests_accepted_total", "counter", "SRT m=request connections accepted.");
    m.sample ("xdn_srt_requests_accepted_total", stats.requestsAccepted);
  }
  http::respond (msg, SOUP_STATUS_OK, "text/plain; version=0.0.4", m.text ());
}

void
Node::handleNodeInfo (SoupServerMessage *msg)
{
  JsonBuilder *b = json_builder_new ();
  json_builder_begin_object (b);
  json::member (b, "id", config_.nodeId);
  json::member (b, "role", nodeRoleName (config_.nodeRole));
  json::member (b, "region", config_.region);
  json::member (b, "http", config_.publicUrl);
  json::member (b, "srt", config_.publicSrt);
  json::member (b, "manager", config_.manager);
  json::member (b, "upstream", config_.upstream);
  json::member (b, "registered", manager_ ? manager_->registered () : false);
  json::member (b, "draining", draining_.load ());
  json::member (b, "viewers", (gint64) viewerCount ());
  json_builder_set_member_name (b, "pulls");
  json_builder_begin_array (b);
  for (const auto &entry : pulls_) {
    const Pull &p = *entry.second;
    json_builder_begin_object (b);
    json::member (b, "stream", p.stream ());
    json::member (b, "upstream", p.upstream ());
    json::member (b, "live", p.live ());
    json::member (b, "linked", p.linked ());
    json::member (b, "subscribers", (gint64) p.subscribers ());
    json::member (b, "restarts", (gint64) p.restarts ());
    json::member (b, "uptime_s", (gint64) ((g_get_monotonic_time () - p.startedAt ()) / G_USEC_PER_SEC));
    json_builder_end_object (b);
  }
  json_builder_end_array (b);
  json_builder_set_member_name (b, "downstream");
  json_builder_begin_array (b);
  for (const auto &entry : servings_) {
    const RelayServing &s = *entry.second;
    json_builder_begin_object (b);
    json::member (b, "stream", s.stream ());
    json::member (b, "peer", s.peer ());
    json::member (b, "uptime_s", (gint64) ((g_get_monotonic_time () - s.startedAt ()) / G_USEC_PER_SEC));
    json_builder_end_object (b);
  }
  json_builder_end_array (b);
  json_builder_end_object (b);
  std::string body = json::toString (b);
  g_object_unref (b);
  http::respond (msg, SOUP_STATUS_OK, "application/json", body + "\n");
}

void
Node::handleResource (SoupServerMessage *msg, const std::string &path, const char *type)
{
  if (path.find ("..") != std::string::npos) {
    http::respondError (msg, SOUP_STATUS_BAD_REQUEST, "invalid path");
    return;
  }
  GBytes *bytes = g_resources_lookup_data ((kResourcePrefix + path).c_str (),
      G_RESOURCE_LOOKUP_FLAGS_NONE, nullptr);
  if (!bytes) {
    http::respondError (msg, SOUP_STATUS_NOT_FOUND, "no such file: " + path);
    return;
  }
  gsize size = 0;
  const char *data = static_cast<const char *> (g_bytes_get_data (bytes, &size));
  http::respond (msg, SOUP_STATUS_OK, type ? type : contentTypeFor (path), std::string (data, size));
  g_bytes_unref (bytes);
}

/* ---------------------------------------------------------------- demo */

void
Node::startDemo ()
{
  demoRetry_ = 0;
  std::string host = config_.httpAddress == "0.0.0.0" || config_.httpAddress == "::"
      ? "127.0.0.1" : config_.httpAddress;
  std::string ice;
  for (const auto &a : config_.ice.addresses)
    ice += (ice.empty () ? "" : ",") + a;
  gchar *description = g_strdup_printf (
      "videotestsrc is-live=true pattern=ball motion=sweep background-color=0xff203040 "
      "! video/x-raw,width=%d,height=%d,framerate=30/1 ! timeoverlay font-desc=\"Sans 24\" "
      "! xdnlatencystamp ! videoconvert ! x264enc tune=zerolatency speed-preset=ultrafast "
      "bitrate=%d key-int-max=60 ! video/x-h264,profile=constrained-baseline "
      "! xdnwhipsink name=whip location=http://%s:%d/whip/%s%s%s "
      "audiotestsrc is-live=true wave=sine freq=440 volume=0.2 ! audioconvert ! audioresample "
      "! opusenc bitrate=64000 ! whip.",
      config_.demoWidth, config_.demoHeight, config_.demoBitrateKbps, host.c_str (),
      http_.port (), config_.demoStream.c_str (), ice.empty () ? "" : " ice-addresses=",
      ice.c_str ());
  GError *err = nullptr;
  GstElement *pipeline = gst_parse_launch (description, &err);
  g_free (description);
  if (!pipeline || err) {
    log (LogLevel::Error, "demo.failed", {{"reason", err ? err->message : "cannot build the pipeline"},
        {"hint", "the demo needs x264enc, opusenc and the xdn plugin (GST_PLUGIN_PATH)"}});
    g_clear_error (&err);
    if (pipeline)
      gst_object_unref (pipeline);
    return;
  }
  demo_ = adoptGRef (GST_ELEMENT (gst_object_ref_sink (pipeline)));
  GstBus *bus = gst_element_get_bus (pipeline);
  gst_bus_add_watch (bus, &Node::onDemoBus, this);
  gst_object_unref (bus);
  gst_element_set_state (pipeline, GST_STATE_PLAYING);
  log (LogLevel::Info, "demo.started", {{"stream", config_.demoStream},
      {"play", "http://" + host + ":" + std::to_string (http_.port ()) + "/play/" + config_.demoStream}});
}

gboolean
Node::onDemoBus (GstBus *, GstMessage *msg, gpointer data)
{
  auto *self = static_cast<Node *> (data);
  if (GST_MESSAGE_TYPE (msg) != GST_MESSAGE_ERROR && GST_MESSAGE_TYPE (msg) != GST_MESSAGE_EOS)
    return G_SOURCE_CONTINUE;
  std::string reason = "end of stream";
  if (GST_MESSAGE_TYPE (msg) == GST_MESSAGE_ERROR) {
    GError *err = nullptr;
    gst_message_parse_error (msg, &err, nullptr);
    reason = err ? err->message : "error";
    g_clear_error (&err);
  }
  log (LogLevel::Warning, "demo.restarting", {{"reason", reason}});
  /* Restart from the loop, not from within the pipeline's own watch. */
  g_idle_add ([] (gpointer d) -> gboolean {
        auto *node = static_cast<Node *> (d);
        if (node->demo_) {
          gst_element_set_state (node->demo_.get (), GST_STATE_NULL);
          node->demo_.reset ();
        }
        node->demoRetry_ = g_timeout_add_seconds (2, [] (gpointer n) -> gboolean {
              static_cast<Node *> (n)->startDemo ();
              return G_SOURCE_REMOVE;
            }, node);
        return G_SOURCE_REMOVE;
      }, self);
  return G_SOURCE_REMOVE;
}

}  // namespace xdn
