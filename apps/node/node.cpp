#include "node.h"

#include "json.h"
#include "log.h"
#include "metrics.h"
#include "srt-ingest.h"
#include "xdn-stream-name.h"

#include <gio/gio.h>

#include <algorithm>

namespace xdn {

namespace {

constexpr const char *kResourcePrefix = "/org/openxdn/web/";

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
    : config_ (std::move (config)),
      http_ (http::ServerSettings{config_.httpAddress, config_.httpPort,
          static_cast<size_t> (config_.maxBodyBytes), config_.corsOrigin})
{
  sessionSettings_.ice = config_.ice;
  sessionSettings_.publicAddress = config_.publicAddress;
  sessionSettings_.connectTimeoutS = config_.connectTimeoutS;
  sessionSettings_.peerTimeoutS = config_.peerTimeoutS;
  startedAt_ = g_get_monotonic_time ();
}

Node::~Node ()
{
  stop ();
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
    SrtIngestServer::Callbacks callbacks;
    callbacks.admit = [this] (const std::string &stream, const std::string &) {
      /* Open admission; the only refusal is a name already published. */
      std::string conflict = reserveStream (stream, "srt", "srt");
      return conflict.empty () ? SrtAdmission () : SrtAdmission::conflict (conflict);
    };
    callbacks.makeSink = [this] (const std::string &stream) { return makeRelaySink (stream, 0); };
    callbacks.onStarted = [] (const std::string &stream, const std::string &peer) {
      log (LogLevel::Info, "srt.publish.started", {{"stream", stream}, {"peer", peer}});
    };
    callbacks.onEnded = [this] (const std::string &stream, const std::string &reason) {
      releaseStream (stream, reason);
    };
    srt_ = std::make_unique<SrtIngestServer> (srt, callbacks);
    if (!srt_->start (error))
      return false;
  }

  bitrateTimer_ = g_timeout_add_seconds (1, [] (gpointer self) -> gboolean {
        static_cast<Node *> (self)->sampleBitrates ();
        return G_SOURCE_CONTINUE;
      }, this);

  log (LogLevel::Info, "node.started",
      {{"http", config_.httpAddress + ":" + std::to_string (http_.port ())},
       {"srt", config_.srtPort > 0 ? config_.srtAddress + ":" + std::to_string (config_.srtPort) : "off"},
       {"role", config_.role}});
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
  /* Viewers first, then publishers. */
  for (auto kind : {PeerSession::Kind::Play, PeerSession::Kind::Publish}) {
    std::vector<std::shared_ptr<PeerSession>> ending;
    for (auto &entry : sessions_)
      if (entry.second->kind () == kind)
        ending.push_back (entry.second);
    for (auto &s : ending)
      s->stop ("node stopping");
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
  }
  if (now_live)
    log (LogLevel::Info, "stream.live", {{"stream", name}});
  /* Without an expected count (SRT), the stream is live once its tracks
   * have stopped appearing: the demuxer adds them all at once. */
  struct Pending {
    Node *node;
    std::string name;
    size_t tracks;
  };
  g_timeout_add_full (G_PRIORITY_DEFAULT, 300, [] (gpointer data) -> gboolean {
        auto *p = static_cast<Pending *> (data);
        bool became_live = false;
        {
          std::lock_guard<std::mutex> lock (p->node->streamsLock_);
          auto it = p->node->streams_.find (p->name);
          if (it != p->node->streams_.end () && !it->second.live &&
              !it->second.expectedTracks && it->second.tracks.size () == p->tracks)
            became_live = it->second.live = true;
        }
        if (became_live)
          log (LogLevel::Info, "stream.live", {{"stream", p->name}});
        return G_SOURCE_REMOVE;
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
  if (sessions_.size () >= static_cast<size_t> (config_.maxSessions)) {
    http::respondError (msg, SOUP_STATUS_SERVICE_UNAVAILABLE, "the node is at its session limit");
    return false;
  }
  return true;
}

void
Node::handleWhip (SoupServerMessage *msg, const std::string &stream)
{
  std::string offer;
  if (!checkOfferRequest (msg, stream, &offer))
    return;
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
  std::string offer;
  if (!checkOfferRequest (msg, stream, &offer))
    return;
  bool live = false;
  {
    std::lock_guard<std::mutex> lock (streamsLock_);
    auto it = streams_.find (stream);
    live = it != streams_.end () && it->second.live;
  }
  if (!live) {
    sessionsRefused_[1]++;
    http::respondError (msg, SOUP_STATUS_NOT_FOUND, "stream '" + stream + "' is not live");
    return;
  }
  auto session = PlaySession::create (newSessionId (), stream, http::peerAddress (msg),
      sessionSettings_,
      [this] (const std::string &sid, const std::string &reason) { onSessionEnded (sid, reason); });
  startSession (msg, session, offer);
}

void
Node::startSession (SoupServerMessage *msg, std::shared_ptr<PeerSession> session,
    const std::string &offer)
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
  soup_server_message_pause (msg);
  g_object_ref (msg);
  session->start (offer, [this, msg, id, kind] (guint status, const std::string &body) {
    if (status == SOUP_STATUS_CREATED) {
      sessionsStarted_[kind]++;
      soup_message_headers_replace (soup_server_message_get_response_headers (msg),
          "Location", ("/sessions/" + id).c_str ());
      http::respond (msg, status, "application/sdp", body);
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

/* ----------------------------------------------------------------- API */

std::string
Node::streamJson (const Stream &s) const
{
  JsonBuilder *b = json_builder_new ();
  json_builder_begin_object (b);
  json::member (b, "name", s.name);
  json::member (b, "source", s.source);
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
  m.sample ("xdn_sessions", open[1], {{"kind", "whep"}});
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
    m.family ("xdn_track_received_bytes_total", "counter", "RTP bytes received on a track.");
    for (const auto &entry : streams_)
      for (size_t i = 0; i < entry.second.tracks.size (); i++)
        m.sample ("xdn_track_received_bytes_total", *entry.second.tracks[i].bytes,
            {{"stream", entry.first}, {"track", std::to_string (i)}});
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
  }
  http::respond (msg, SOUP_STATUS_OK, "text/plain; version=0.0.4", m.text ());
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
