#include "manager.h"

#include "json.h"
#include "log.h"
#include "metrics.h"
#include "placement.h"
#include "validate.h"
#include "xdn-stream-name.h"

#include <gio/gio.h>

#include <algorithm>
#include <vector>

namespace xdn::manager {

namespace {

constexpr const char *kResourcePrefix = "/org/openxdn/web/";
constexpr size_t kMaxClientsPerNode = 4;
constexpr size_t kMaxClients = 10000;
constexpr int kEventsPerPoll = 500;

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

/* Builds one JSON object with @fill and serialises it. */
template <typename F>
std::string
jsonObject (F fill)
{
  JsonBuilder *b = json_builder_new ();
  json_builder_begin_object (b);
  fill (b);
  json_builder_end_object (b);
  std::string text = json::toString (b);
  g_object_unref (b);
  return text + "\n";
}

void
nodeJson (JsonBuilder *b, const NodeRecord &n)
{
  json_builder_begin_object (b);
  json::member (b, "id", n.info.id);
  json::member (b, "role", n.info.role);
  json::member (b, "region", n.info.region);
  json::member (b, "http", n.info.http);
  json::member (b, "srt", n.info.srt);
  json::member (b, "state", n.state ());
  json::member (b, "lastHeartbeatMs", static_cast<gint64> (n.lastHeartbeatMs));
  json::member (b, "heartbeatAgeMs", static_cast<gint64> (n.heartbeatAgeMs));
  json_builder_set_member_name (b, "load");
  json_builder_begin_object (b);
  json::member (b, "cpu", n.load.cpu);
  json::member (b, "viewers", static_cast<gint64> (n.load.viewers));
  json::member (b, "streams", static_cast<gint64> (n.load.streams));
  json::member (b, "bitrateIn", static_cast<gint64> (n.load.bitrateIn));
  json::member (b, "bitrateOut", static_cast<gint64> (n.load.bitrateOut));
  json_builder_end_object (b);
  json_builder_set_member_name (b, "capacity");
  json_builder_begin_object (b);
  json::member (b, "viewers", static_cast<gint64> (n.info.capacityViewers));
  json::member (b, "downstream", static_cast<gint64> (n.info.capacityDownstream));
  json_builder_end_object (b);
  json_builder_end_object (b);
}

void
streamJson (JsonBuilder *b, const StreamRecord &s)
{
  json_builder_begin_object (b);
  json::member (b, "name", s.name);
  json::member (b, "origin", s.origin);
  json_builder_set_member_name (b, "carriers");
  json_builder_begin_array (b);
  for (const auto &c : s.carriers)
    json_builder_add_string_value (b, c.c_str ());
  json_builder_end_array (b);
  json_builder_end_object (b);
}

/* "host:port" part of srt://host:port (the upstream handed out by /route). */
std::string
srtBase (const std::string &srt)
{
  std::string s = srt;
  while (!s.empty () && s.back () == '/')
    s.pop_back ();
  return s;
}

}  // namespace

Manager::Manager (ManagerConfig config)
    : config_ (std::move (config)),
      http_ (http::ServerSettings{config_.httpAddress, config_.httpPort,
          static_cast<size_t> (config_.maxBodyBytes), config_.corsOrigin})
{
  startedAt_ = g_get_monotonic_time ();
}

Manager::~Manager ()
{
  stop ();
}

bool
Manager::start (std::string *error)
{
  StoreSettings settings;
  settings.heartbeatIntervalMs = config_.heartbeatIntervalMs;
  settings.originFanout = config_.originFanout;
  settings.relayFanout = config_.relayFanout;
  settings.defaultViewerCapacity = config_.viewerCapacity;
  settings.timeoutMs = config_.storeTimeoutMs;
  store_ = openStore (config_.db, settings, error);
  if (!store_)
    return false;
  StoreStatus st = store_->migrate ();
  if (!st) {
    *error = "cannot prepare the database " + store_->describe () + ": " + st.error;
    return false;
  }
  int64_t version = 0;
  store_->schemaVersion (&version);
  st = store_->lastEventId (&lastEventId_);
  eventsPrimed_ = static_cast<bool> (st);
  log (LogLevel::Info, "manager.store.ready", {{"db", store_->describe ()},
      {"schema", std::to_string (version)}, {"events_from", std::to_string (lastEventId_)}});

  auto bind = [this] (void (Manager::*fn) (SoupServerMessage *, const std::string &)) {
    return [this, fn] (SoupServerMessage *m, const std::string &rest) { (this->*fn) (m, rest); };
  };
  http_.route ("POST", "/api/v1/nodes", bind (&Manager::handleRegister));
  http_.route ("GET", "/api/v1/nodes", [this] (SoupServerMessage *m, const std::string &rest) {
    if (rest.empty () || rest == "/")
      handleNodeGet (m, "");
    else
      refuse (m, SOUP_STATUS_NOT_FOUND, "not_found", "no such resource");
  });
  http_.route ("POST", "/api/v1/nodes/", bind (&Manager::handleNodePost));
  http_.route ("DELETE", "/api/v1/nodes/", bind (&Manager::handleNodeDelete));
  http_.route ("GET", "/api/v1/nodes/", bind (&Manager::handleNodeGet));
  http_.websocket ("/api/v1/nodes/", bind (&Manager::acceptEvents),
      [this] (SoupWebsocketConnection *conn, const std::string &rest) { openEvents (conn, rest); });
  http_.route ("GET", "/api/v1/streams", bind (&Manager::handleStreamList));
  http_.route ("GET", "/api/v1/streams/", bind (&Manager::handleStream));
  http_.route ("GET", "/api/v1/config", [this] (SoupServerMessage *m, const std::string &rest) {
    if (!rest.empty ()) {
      refuse (m, SOUP_STATUS_NOT_FOUND, "not_found", "no such resource");
      return;
    }
    respondJson (m, SOUP_STATUS_OK, jsonObject ([] (JsonBuilder *b) { json::member (b, "role", "manager"); }));
  });
  http_.route ("GET", "/metrics", [this] (SoupServerMessage *m, const std::string &) { handleMetrics (m); });
  http_.route ("GET", "/healthz", [this] (SoupServerMessage *m, const std::string &) { handleHealth (m); });
  http_.route ("GET", "/play/", [this] (SoupServerMessage *m, const std::string &) {
    handleResource (m, "play.html");
  });
  http_.route ("GET", "/static/", [this] (SoupServerMessage *m, const std::string &rest) {
    handleResource (m, rest);
  });
  http_.route ("GET", "/", [this] (SoupServerMessage *m, const std::string &) {
    handleResource (m, "index.html");
  });
  http_.observeResponses ([this] (SoupServerMessage *m, guint status) { onResponse (m, status); });

  if (!http_.listen (error))
    return false;
  holdSweeps ();

  guint sweep_ms = std::clamp (config_.heartbeatIntervalMs / 4, 50, 1000);
  sweepTimer_ = g_timeout_add (sweep_ms, [] (gpointer self) -> gboolean {
    static_cast<Manager *> (self)->sweep ();
    return G_SOURCE_CONTINUE;
  }, this);
  pollTimer_ = g_timeout_add (config_.eventsPollMs, [] (gpointer self) -> gboolean {
    static_cast<Manager *> (self)->pollEvents ();
    return G_SOURCE_CONTINUE;
  }, this);
  cleanupTimer_ = g_timeout_add_seconds (30, [] (gpointer self) -> gboolean {
    static_cast<Manager *> (self)->cleanup ();
    return G_SOURCE_CONTINUE;
  }, this);
  log (LogLevel::Info, "manager.started", {{"port", std::to_string (http_.port ())},
      {"db", store_->describe ()}, {"heartbeat_interval_ms", std::to_string (config_.heartbeatIntervalMs)},
      {"token", config_.clusterToken.empty () ? "none (open)" : "set"}});
  return true;
}

void
Manager::stop ()
{
  /* The timers call into this object: they go first. */
  for (guint *id : {&sweepTimer_, &pollTimer_, &cleanupTimer_}) {
    if (*id)
      g_source_remove (*id);
    *id = 0;
  }
  auto clients = std::move (clients_);
  clients_.clear ();
  for (auto &entry : clients) {
    g_signal_handlers_disconnect_by_data (entry.first, this);
    if (soup_websocket_connection_get_state (entry.first) == SOUP_WEBSOCKET_STATE_OPEN)
      soup_websocket_connection_close (entry.first, SOUP_WEBSOCKET_CLOSE_GOING_AWAY, "manager stopping");
    g_object_unref (entry.first);
  }
  http_.observeResponses (nullptr);
  http_.stop ();
}

/* ---------------------------------------------------------------- helpers */

void
Manager::respondJson (SoupServerMessage *msg, guint status, const std::string &body)
{
  http::respond (msg, status, "application/json", body);
}

void
Manager::refuse (SoupServerMessage *msg, guint status, const char *reason, const std::string &message)
{
  refusals_[reason]++;
  g_object_set_data (G_OBJECT (msg), "xdn-refusal-counted", GINT_TO_POINTER (1));
  /* Answers that are part of normal operation (a player asking before the
   * publisher started) are not warnings. */
  bool normal = g_str_equal (reason, "not_live") || g_str_equal (reason, "no_edge") ||
      g_str_equal (reason, "no_origin");
  log (normal ? LogLevel::Info : LogLevel::Warning, "manager.refused", {{"reason", reason}, {"status", std::to_string (status)},
      {"method", soup_server_message_get_method (msg)},
      {"path", g_uri_get_path (soup_server_message_get_uri (msg))},
      {"peer", http::peerAddress (msg)}, {"detail", message}});
  http::respondError (msg, status, message);
}

void
Manager::storeFailed (SoupServerMessage *msg, const StoreStatus &status)
{
  storeErrors_++;
  holdSweeps ();
  log (LogLevel::Error, "manager.store.failed", {{"error", status.error}});
  refuse (msg, SOUP_STATUS_SERVICE_UNAVAILABLE, "store_unavailable", "the store is unavailable; try again");
}

/* Refusals that did not go through refuse(): the router's 404 and 405 and
 * the HTTP layer's 413. */
void
Manager::onResponse (SoupServerMessage *msg, guint status)
{
  if (status < 400 || g_object_get_data (G_OBJECT (msg), "xdn-refusal-counted"))
    return;
  const char *reason = status == SOUP_STATUS_REQUEST_ENTITY_TOO_LARGE ? "too_large"
      : status == SOUP_STATUS_METHOD_NOT_ALLOWED ? "method_not_allowed"
      : status == SOUP_STATUS_NOT_FOUND ? "not_found"
      : status == SOUP_STATUS_BAD_REQUEST ? "bad_request" : "other";
  refusals_[reason]++;
  log (LogLevel::Warning, "manager.refused", {{"reason", reason}, {"status", std::to_string (status)},
      {"method", soup_server_message_get_method (msg) ? soup_server_message_get_method (msg) : ""},
      {"path", g_uri_get_path (soup_server_message_get_uri (msg))}, {"peer", http::peerAddress (msg)}});
}

bool
Manager::authorized (SoupServerMessage *msg, bool allowQueryToken)
{
  if (config_.clusterToken.empty ())
    return true;
  std::string token = http::bearerToken (msg);
  if (token.empty () && allowQueryToken)
    token = query (msg, "token");
  if (!token.empty () && tokensEqual (token, config_.clusterToken))
    return true;
  refuse (msg, SOUP_STATUS_UNAUTHORIZED, "unauthorized",
      token.empty () ? "a cluster token is required (Authorization: Bearer TOKEN)" : "wrong cluster token");
  return false;
}

std::string
Manager::query (SoupServerMessage *msg, const char *key, bool *present)
{
  const char *q = g_uri_get_query (soup_server_message_get_uri (msg));
  std::string value;
  bool found = false;
  if (q) {
    GHashTable *form = soup_form_decode (q);
    if (const char *v = static_cast<const char *> (g_hash_table_lookup (form, key))) {
      value = v;
      found = true;
    }
    g_hash_table_unref (form);
  }
  if (present)
    *present = found;
  return value;
}

/* ---------------------------------------------------------------- nodes */

void
Manager::handleRegister (SoupServerMessage *msg, const std::string &rest)
{
  if (!rest.empty () && rest != "/") {
    refuse (msg, SOUP_STATUS_NOT_FOUND, "not_found", "no such resource");
    return;
  }
  if (!authorized (msg, false))
    return;
  NodeInfo node;
  std::string error;
  if (!parseRegistration (http::requestBody (msg), &node, &error)) {
    refuse (msg, SOUP_STATUS_BAD_REQUEST, "bad_request", error);
    return;
  }
  bool created = false;
  StoreStatus st = store_->registerNode (node, &created);
  if (!st) {
    storeFailed (msg, st);
    return;
  }
  log (LogLevel::Info, created ? "node.registered" : "node.reregistered",
      {{"node", node.id}, {"role", node.role}, {"region", node.region}, {"http", node.http},
       {"srt", node.srt}, {"peer", http::peerAddress (msg)}});
  respondJson (msg, created ? SOUP_STATUS_CREATED : SOUP_STATUS_OK, jsonObject ([&] (JsonBuilder *b) {
    json::member (b, "id", node.id);
    json::member (b, "heartbeatIntervalMs", static_cast<gint64> (config_.heartbeatIntervalMs));
  }));
}

void
Manager::handleNodeGet (SoupServerMessage *msg, const std::string &rest)
{
  /* rest: "" (the list), "{id}" or "{id}/events" (see acceptEvents) */
  if (!authorized (msg, false))
    return;
  const std::string &id = rest;
  if (g_str_has_suffix (id.c_str (), "/events")) {
    refuse (msg, SOUP_STATUS_BAD_REQUEST, "bad_request",
        "the events of a node are a WebSocket: send a WebSocket upgrade");
    return;
  }
  if (!id.empty () && !isValidNodeId (id)) {
    refuse (msg, id.find ('/') != std::string::npos ? SOUP_STATUS_NOT_FOUND : SOUP_STATUS_BAD_REQUEST,
        "bad_node_id", "invalid node id");
    return;
  }
  std::vector<NodeRecord> nodes;
  StoreStatus st = store_->listNodes (&nodes);
  if (!st) {
    storeFailed (msg, st);
    return;
  }
  if (id.empty ()) {
    respondJson (msg, SOUP_STATUS_OK, jsonObject ([&] (JsonBuilder *b) {
      json_builder_set_member_name (b, "nodes");
      json_builder_begin_array (b);
      for (const auto &n : nodes)
        nodeJson (b, n);
      json_builder_end_array (b);
    }));
    return;
  }
  for (const auto &n : nodes) {
    if (n.info.id != id)
      continue;
    JsonBuilder *b = json_builder_new ();
    nodeJson (b, n);
    std::string text = json::toString (b);
    g_object_unref (b);
    respondJson (msg, SOUP_STATUS_OK, text + "\n");
    return;
  }
  refuse (msg, SOUP_STATUS_NOT_FOUND, "unknown_node", "unknown node '" + id + "'");
}

void
Manager::handleNodePost (SoupServerMessage *msg, const std::string &rest)
{
  if (!authorized (msg, false))
    return;
  size_t slash = rest.find ('/');
  std::string id = rest.substr (0, slash);
  std::string action = slash == std::string::npos ? "" : rest.substr (slash + 1);
  if (action != "heartbeat" && action != "drain") {
    refuse (msg, SOUP_STATUS_NOT_FOUND, "not_found",
        "no such resource (POST /api/v1/nodes/{id}/heartbeat or /drain)");
    return;
  }
  if (!isValidNodeId (id)) {
    refuse (msg, SOUP_STATUS_BAD_REQUEST, "bad_node_id", "invalid node id");
    return;
  }
  if (action == "heartbeat")
    handleHeartbeat (msg, id);
  else
    handleDrain (msg, id);
}

void
Manager::handleHeartbeat (SoupServerMessage *msg, const std::string &id)
{
  NodeLoad load;
  std::vector<StreamReport> streams;
  std::string error;
  if (!parseHeartbeat (http::requestBody (msg), &load, &streams, &error)) {
    refuse (msg, SOUP_STATUS_BAD_REQUEST, "bad_request", error);
    return;
  }
  HeartbeatResult result;
  StoreStatus st = store_->heartbeat (id, load, streams, &result);
  if (!st) {
    storeFailed (msg, st);
    return;
  }
  if (!result.known) {
    refuse (msg, SOUP_STATUS_NOT_FOUND, "unknown_node",
        "unknown node '" + id + "' (never registered, left, or declared dead): register again");
    return;
  }
  for (const auto &name : result.conflicts)
    log (LogLevel::Warning, "stream.origin_conflict", {{"stream", name}, {"node", id},
        {"detail", "the stream is live on another origin; that one keeps it"}});
  respondJson (msg, SOUP_STATUS_OK, jsonObject ([&] (JsonBuilder *b) {
    json::member (b, "state", result.draining ? "draining" : "active");
  }));
}

void
Manager::handleDrain (SoupServerMessage *msg, const std::string &id)
{
  bool found = false;
  StoreStatus st = store_->drainNode (id, &found);
  if (!st) {
    storeFailed (msg, st);
    return;
  }
  if (!found) {
    refuse (msg, SOUP_STATUS_NOT_FOUND, "unknown_node", "unknown node '" + id + "'");
    return;
  }
  log (LogLevel::Info, "node.draining", {{"node", id}, {"peer", http::peerAddress (msg)}});
  respondJson (msg, SOUP_STATUS_OK, jsonObject ([&] (JsonBuilder *b) {
    json::member (b, "id", id);
    json::member (b, "state", "draining");
  }));
}

void
Manager::handleNodeDelete (SoupServerMessage *msg, const std::string &rest)
{
  if (!authorized (msg, false))
    return;
  if (!isValidNodeId (rest)) {
    refuse (msg, rest.find ('/') != std::string::npos ? SOUP_STATUS_NOT_FOUND : SOUP_STATUS_BAD_REQUEST,
        "bad_node_id", "invalid node id");
    return;
  }
  bool found = false;
  StoreStatus st = store_->removeNode (rest, &found);
  if (!st) {
    storeFailed (msg, st);
    return;
  }
  if (!found) {
    refuse (msg, SOUP_STATUS_NOT_FOUND, "unknown_node", "unknown node '" + rest + "'");
    return;
  }
  log (LogLevel::Info, "node.left", {{"node", rest}, {"peer", http::peerAddress (msg)}});
  http::respond (msg, SOUP_STATUS_NO_CONTENT, nullptr, "");
}

/* ---------------------------------------------------------------- streams */

void
Manager::handleStreamList (SoupServerMessage *msg, const std::string &rest)
{
  if (!rest.empty () && rest != "/") {
    refuse (msg, SOUP_STATUS_NOT_FOUND, "not_found", "no such resource");
    return;
  }
  std::vector<StreamRecord> streams;
  StoreStatus st = store_->listStreams (&streams);
  if (!st) {
    storeFailed (msg, st);
    return;
  }
  respondJson (msg, SOUP_STATUS_OK, jsonObject ([&] (JsonBuilder *b) {
    json_builder_set_member_name (b, "streams");
    json_builder_begin_array (b);
    for (const auto &s : streams)
      streamJson (b, s);
    json_builder_end_array (b);
  }));
}

void
Manager::handleStream (SoupServerMessage *msg, const std::string &rest)
{
  /* rest: NAME/publish, NAME/subscribe, NAME/route or NAME (NAME may hold '/'). */
  size_t slash = rest.rfind ('/');
  std::string action = slash == std::string::npos ? "" : rest.substr (slash + 1);
  std::string name = rest;
  if (action == "publish" || action == "subscribe" || action == "route")
    name = rest.substr (0, slash);
  else
    action.clear ();
  std::string why = streamNameError (name);
  if (!why.empty ()) {
    refuse (msg, SOUP_STATUS_BAD_REQUEST, "bad_name", "invalid stream name: " + why);
    return;
  }
  if (action == "publish") {
    handlePublish (msg, name);
  } else if (action == "subscribe") {
    handleSubscribe (msg, name);
  } else if (action == "route") {
    handleRoute (msg, name);
  } else {
    std::vector<StreamRecord> streams;
    StoreStatus st = store_->listStreams (&streams);
    if (!st) {
      storeFailed (msg, st);
      return;
    }
    for (const auto &s : streams) {
      if (s.name != name)
        continue;
      JsonBuilder *b = json_builder_new ();
      streamJson (b, s);
      std::string text = json::toString (b);
      g_object_unref (b);
      respondJson (msg, SOUP_STATUS_OK, text + "\n");
      return;
    }
    refuse (msg, SOUP_STATUS_NOT_FOUND, "not_live", "stream not live");
  }
}

void
Manager::handlePublish (SoupServerMessage *msg, const std::string &name)
{
  std::string region = query (msg, "region");
  if (!isValidRegion (region)) {
    refuse (msg, SOUP_STATUS_BAD_REQUEST, "bad_request", "invalid region");
    return;
  }
  PublishResult result;
  StoreStatus st = store_->placePublish (name, region, &result);
  if (!st) {
    storeFailed (msg, st);
    return;
  }
  if (!result.found) {
    refuse (msg, SOUP_STATUS_SERVICE_UNAVAILABLE, "no_origin", "no origin node is available");
    return;
  }
  placements_["publish"]++;
  log (LogLevel::Info, "placement.publish", {{"stream", name}, {"region", region},
      {"node", result.origin.info.id}, {"sticky", result.sticky ? "true" : "false"}});
  std::string srt = srtPublishUrl (result.origin.info, name);
  respondJson (msg, SOUP_STATUS_OK, jsonObject ([&] (JsonBuilder *b) {
    json::member (b, "node", result.origin.info.id);
    json::member (b, "whip", whipUrl (result.origin.info, name));
    if (!srt.empty ())
      json::member (b, "srt", srt);
  }));
}

void
Manager::handleSubscribe (SoupServerMessage *msg, const std::string &name)
{
  std::string region = query (msg, "region");
  if (!isValidRegion (region)) {
    refuse (msg, SOUP_STATUS_BAD_REQUEST, "bad_request", "invalid region");
    return;
  }
  SubscribeResult result;
  StoreStatus st = store_->placeSubscribe (name, region, &result);
  if (!st) {
    storeFailed (msg, st);
    return;
  }
  if (result.outcome == SubscribeOutcome::NotLive) {
    refuse (msg, SOUP_STATUS_NOT_FOUND, "not_live", "stream not live");
    return;
  }
  if (result.outcome == SubscribeOutcome::NoEdge) {
    refuse (msg, SOUP_STATUS_SERVICE_UNAVAILABLE, "no_edge", "no edge node is available");
    return;
  }
  placements_["subscribe"]++;
  log (LogLevel::Debug, "placement.subscribe", {{"stream", name}, {"region", region},
      {"node", result.edge.info.id}, {"carrying", result.carrying ? "true" : "false"}});
  respondJson (msg, SOUP_STATUS_OK, jsonObject ([&] (JsonBuilder *b) {
    json::member (b, "node", result.edge.info.id);
    json::member (b, "whep", whepUrl (result.edge.info, name));
  }));
}

void
Manager::handleRoute (SoupServerMessage *msg, const std::string &name)
{
  if (!authorized (msg, false))
    return;
  std::string node = query (msg, "node");
  if (!isValidNodeId (node)) {
    refuse (msg, SOUP_STATUS_BAD_REQUEST, "bad_node_id",
        node.empty () ? "the node asking is required (?node=ID)" : "invalid node id");
    return;
  }
  RouteResult result;
  StoreStatus st = store_->placeRoute (name, node, &result);
  if (!st) {
    storeFailed (msg, st);
    return;
  }
  switch (result.outcome) {
    case RouteOutcome::UnknownNode:
      refuse (msg, SOUP_STATUS_NOT_FOUND, "unknown_node",
          "unknown node '" + node + "' (never registered, left, or declared dead)");
      return;
    case RouteOutcome::NotLive:
      refuse (msg, SOUP_STATUS_NOT_FOUND, "not_live", "stream not live");
      return;
    case RouteOutcome::IsOrigin:
      refuse (msg, SOUP_STATUS_CONFLICT, "is_origin", "node '" + node + "' is the stream's origin");
      return;
    case RouteOutcome::Ok:
      break;
  }
  if (result.upstream.info.srt.empty ()) {
    refuse (msg, SOUP_STATUS_SERVICE_UNAVAILABLE, "no_upstream",
        "upstream node '" + result.upstream.info.id + "' has no SRT address");
    return;
  }
  placements_["route"]++;
  if (result.overLimit)
    log (LogLevel::Warning, "placement.route.over_fanout", {{"stream", name}, {"node", node},
        {"upstream", result.upstream.info.id}, {"detail", "origin past its fan-out and no relay has room"}});
  log (result.sticky ? LogLevel::Debug : LogLevel::Info, "placement.route", {{"stream", name},
      {"node", node}, {"upstream", result.upstream.info.id},
      {"via", result.viaRelay ? "relay" : "origin"}});
  respondJson (msg, SOUP_STATUS_OK, jsonObject ([&] (JsonBuilder *b) {
    json::member (b, "node", result.upstream.info.id);
    json::member (b, "upstream", srtBase (result.upstream.info.srt));
  }));
}

/* ---------------------------------------------------------------- events */

void
Manager::acceptEvents (SoupServerMessage *msg, const std::string &rest)
{
  if (!authorized (msg, true))
    return;
  size_t slash = rest.find ('/');
  std::string id = rest.substr (0, slash);
  if (slash == std::string::npos || rest.substr (slash + 1) != "events") {
    refuse (msg, SOUP_STATUS_NOT_FOUND, "not_found", "no such resource (GET /api/v1/nodes/{id}/events)");
    return;
  }
  if (!isValidNodeId (id)) {
    refuse (msg, SOUP_STATUS_BAD_REQUEST, "bad_node_id", "invalid node id");
    return;
  }
  bool after_present = false;
  std::string after = query (msg, "after", &after_present);
  if (after_present) {
    gint64 v = 0;
    if (!g_ascii_string_to_signed (after.c_str (), 10, 0, G_MAXINT64, &v, nullptr)) {
      refuse (msg, SOUP_STATUS_BAD_REQUEST, "bad_request", "'after' must be an event id");
      return;
    }
  }
  bool known = false;
  StoreStatus st = store_->nodeKnown (id, &known);
  if (!st) {
    storeFailed (msg, st);
    return;
  }
  if (!known) {
    refuse (msg, SOUP_STATUS_NOT_FOUND, "unknown_node", "unknown node '" + id + "': register first");
    return;
  }
  if (clients_.size () >= kMaxClients) {
    refuse (msg, SOUP_STATUS_SERVICE_UNAVAILABLE, "too_many_clients", "too many event clients");
    return;
  }
  /* Left unanswered: the upgrade goes on to openEvents. */
}

void
Manager::openEvents (SoupWebsocketConnection *conn, const std::string &rest)
{
  std::string id = rest.substr (0, rest.find ('/'));
  /* At most a few connections per node: the oldest goes. */
  std::vector<std::pair<gint64, SoupWebsocketConnection *>> same;
  for (const auto &entry : clients_)
    if (entry.second.node == id)
      same.emplace_back (entry.second.since, entry.first);
  std::sort (same.begin (), same.end ());
  for (size_t i = 0; i + kMaxClientsPerNode <= same.size (); i++) {
    soup_websocket_connection_close (same[i].second, SOUP_WEBSOCKET_CLOSE_POLICY_VIOLATION,
        "too many event connections for this node");
    dropClient (same[i].second);
  }

  g_object_ref (conn);
  clients_[conn] = {id, g_get_monotonic_time ()};
  soup_websocket_connection_set_keepalive_interval (conn, 15);
  soup_websocket_connection_set_max_incoming_payload_size (conn, 4096);
  g_signal_connect (conn, "closed", G_CALLBACK (&Manager::onClientClosed), this);
  log (LogLevel::Info, "events.client.connected", {{"node", id}, {"clients", std::to_string (clients_.size ())}});

  /* Replay what the node missed, when it says where it stopped (one batch). */
  GUri *uri = soup_websocket_connection_get_uri (conn);
  const char *q = uri ? g_uri_get_query (uri) : nullptr;
  if (!q)
    return;
  GHashTable *form = soup_form_decode (q);
  const char *after = static_cast<const char *> (g_hash_table_lookup (form, "after"));
  gint64 from = 0;
  std::vector<Event> events;
  if (after && g_ascii_string_to_signed (after, 10, 0, G_MAXINT64, &from, nullptr) &&
      from < lastEventId_ && store_->eventsAfter (from, kEventsPerPoll, &events)) {
    for (const auto &e : events) {
      if (e.id > lastEventId_)
        break;  /* the next poll delivers it */
      if (e.node == id)
        deliver (e);
    }
  }
  g_hash_table_unref (form);
}

void
Manager::onClientClosed (SoupWebsocketConnection *conn, gpointer self)
{
  static_cast<Manager *> (self)->dropClient (conn);
}

void
Manager::dropClient (SoupWebsocketConnection *conn)
{
  auto it = clients_.find (conn);
  if (it == clients_.end ())
    return;
  log (LogLevel::Info, "events.client.closed", {{"node", it->second.node}});
  clients_.erase (it);
  g_signal_handlers_disconnect_by_data (conn, this);
  /* Possibly inside the connection's own "closed" emission: let go later. */
  g_idle_add ([] (gpointer c) -> gboolean {
    g_object_unref (c);
    return G_SOURCE_REMOVE;
  }, conn);
}

void
Manager::deliver (const Event &e)
{
  std::string text = jsonObject ([&] (JsonBuilder *b) {
    json::member (b, "event", e.event);
    if (!e.stream.empty ())
      json::member (b, "stream", e.stream);
    json::member (b, "id", static_cast<gint64> (e.id));
  });
  while (!text.empty () && text.back () == '\n')
    text.pop_back ();
  for (const auto &entry : clients_) {
    if (entry.second.node != e.node ||
        soup_websocket_connection_get_state (entry.first) != SOUP_WEBSOCKET_STATE_OPEN)
      continue;
    soup_websocket_connection_send_text (entry.first, text.c_str ());
    eventsDelivered_++;
  }
}

void
Manager::pollEvents ()
{
  if (!eventsPrimed_) {
    eventsPrimed_ = static_cast<bool> (store_->lastEventId (&lastEventId_));
    return;
  }
  std::vector<Event> events;
  for (int round = 0; round < 8; round++) {
    StoreStatus st = store_->eventsAfter (lastEventId_, kEventsPerPoll, &events);
    if (!st) {
      storeErrors_++;
      holdSweeps ();
      log (LogLevel::Warning, "events.poll.failed", {{"error", st.error}});
      return;
    }
    for (const auto &e : events) {
      deliver (e);
      lastEventId_ = e.id;
    }
    if (events.size () < static_cast<size_t> (kEventsPerPoll))
      return;
  }
}

/* ---------------------------------------------------------------- liveness */

void
Manager::holdSweeps ()
{
  sweepHoldUntil_ = g_get_monotonic_time () + 3 * static_cast<gint64> (config_.heartbeatIntervalMs) * 1000;
}

void
Manager::sweep ()
{
  /* Not while nodes may not have been able to heartbeat (this manager or
   * its store were away): they get 3 intervals to come back first. */
  if (g_get_monotonic_time () < sweepHoldUntil_)
    return;
  SweepResult result;
  StoreStatus st = store_->sweep (&result);
  if (!st) {
    storeErrors_++;
    holdSweeps ();
    log (LogLevel::Warning, "liveness.sweep.failed", {{"error", st.error}});
    return;
  }
  for (const auto &id : result.dead) {
    nodesDeclaredDead_++;
    log (LogLevel::Warning, "node.dead", {{"node", id}, {"detail",
        "no heartbeat for 3 intervals of " + std::to_string (config_.heartbeatIntervalMs) + " ms"}});
  }
}

void
Manager::cleanup ()
{
  StoreStatus st = store_->cleanup ();
  if (!st) {
    storeErrors_++;
    log (LogLevel::Warning, "store.cleanup.failed", {{"error", st.error}});
  }
}

/* ---------------------------------------------------------------- misc */

void
Manager::handleHealth (SoupServerMessage *msg)
{
  StoreStatus st = store_->ping ();
  if (!st) {
    storeErrors_++;
    refuse (msg, SOUP_STATUS_SERVICE_UNAVAILABLE, "store_unavailable", "store unavailable: " + st.error);
    return;
  }
  respondJson (msg, SOUP_STATUS_OK, jsonObject ([&] (JsonBuilder *b) {
    json::member (b, "status", "ok");
    json::member (b, "store", store_->kind ());
  }));
}

void
Manager::handleMetrics (SoupServerMessage *msg)
{
  MetricsWriter m;
  m.family ("xdn_manager_uptime_seconds", "gauge", "Seconds since the manager started.");
  m.sample ("xdn_manager_uptime_seconds", (g_get_monotonic_time () - startedAt_) / 1e6);
  std::vector<NodeRecord> nodes;
  StoreStatus st = store_->listNodes (&nodes);
  if (!st)
    storeErrors_++;
  m.family ("xdn_manager_store_up", "gauge", "1 when the store answered this scrape.");
  m.sample ("xdn_manager_store_up", st ? 1 : 0, {{"store", store_->kind ()}});
  if (st) {
    std::map<std::string, int> by_state = {{"alive", 0}, {"draining", 0}, {"dead", 0}};
    std::map<std::string, int> by_role;
    for (const auto &n : nodes) {
      by_state[n.state ()]++;
      if (!n.dead)
        by_role[n.info.role]++;
    }
    m.family ("xdn_manager_nodes", "gauge", "Registered nodes by state.");
    for (const auto &e : by_state)
      m.sample ("xdn_manager_nodes", e.second, {{"state", e.first}});
    m.family ("xdn_manager_nodes_live", "gauge", "Nodes not dead, by role.");
    for (const auto &e : by_role)
      m.sample ("xdn_manager_nodes_live", e.second, {{"role", e.first}});
  }
  m.family ("xdn_manager_placements_total", "counter", "Placements this manager answered, by kind.");
  for (const char *kind : {"publish", "subscribe", "route"})
    m.sample ("xdn_manager_placements_total", placements_[kind], {{"kind", kind}});
  m.family ("xdn_manager_refusals_total", "counter", "Requests refused by this manager, by reason.");
  for (const auto &e : refusals_)
    m.sample ("xdn_manager_refusals_total", e.second, {{"reason", e.first}});
  m.family ("xdn_manager_store_errors_total", "counter", "Store calls that failed.");
  m.sample ("xdn_manager_store_errors_total", storeErrors_);
  m.family ("xdn_manager_nodes_declared_dead_total", "counter", "Nodes this manager declared dead.");
  m.sample ("xdn_manager_nodes_declared_dead_total", nodesDeclaredDead_);
  m.family ("xdn_manager_event_clients", "gauge", "Node WebSocket connections held by this manager.");
  m.sample ("xdn_manager_event_clients", clients_.size ());
  m.family ("xdn_manager_events_delivered_total", "counter", "Event messages sent to nodes.");
  m.sample ("xdn_manager_events_delivered_total", eventsDelivered_);
  http::respond (msg, SOUP_STATUS_OK, "text/plain; version=0.0.4", m.text ());
}

void
Manager::handleResource (SoupServerMessage *msg, const std::string &path)
{
  if (path.find ("..") != std::string::npos) {
    refuse (msg, SOUP_STATUS_BAD_REQUEST, "bad_request", "invalid path");
    return;
  }
  GBytes *bytes = g_resources_lookup_data ((kResourcePrefix + path).c_str (),
      G_RESOURCE_LOOKUP_FLAGS_NONE, nullptr);
  if (!bytes) {
    refuse (msg, SOUP_STATUS_NOT_FOUND, "not_found", "no such file: " + path);
    return;
  }
  gsize size = 0;
  const char *data = static_cast<const char *> (g_bytes_get_data (bytes, &size));
  /* The pages ask /api/v1/config to learn they are on a manager; the
   * header says the same to anything else. */
  soup_message_headers_replace (soup_server_message_get_response_headers (msg), "X-XDN-Role", "manager");
  http::respond (msg, SOUP_STATUS_OK, contentTypeFor (path), std::string (data, size));
  g_bytes_unref (bytes);
}

}  // namespace xdn::manager
