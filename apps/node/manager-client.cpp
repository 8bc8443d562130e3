#include "manager-client.h"

#include "json.h"
#include "log.h"

#include <algorithm>

namespace xdn {

namespace {

/* A parsed JSON document whose root is an object. */
class JsonDocument {
public:
  explicit JsonDocument (const std::string &text) : parser_ (json_parser_new ())
  {
    if (text.empty () || !json_parser_load_from_data (parser_, text.data (), text.size (), nullptr))
      return;
    JsonNode *root = json_parser_get_root (parser_);
    if (root && JSON_NODE_HOLDS_OBJECT (root))
      root_ = json_node_get_object (root);
  }
  ~JsonDocument () { g_object_unref (parser_); }
  JsonDocument (const JsonDocument &) = delete;
  JsonDocument &operator= (const JsonDocument &) = delete;

  bool ok () const { return root_ != nullptr; }
  std::string string (const char *member) const
  {
    JsonNode *n = root_ ? json_object_get_member (root_, member) : nullptr;
    if (!n || !JSON_NODE_HOLDS_VALUE (n) || json_node_get_value_type (n) != G_TYPE_STRING)
      return "";
    return json_node_get_string (n);
  }
  bool integer (const char *member, gint64 *out) const
  {
    JsonNode *n = root_ ? json_object_get_member (root_, member) : nullptr;
    if (!n || !JSON_NODE_HOLDS_VALUE (n))
      return false;
    GType t = json_node_get_value_type (n);
    if (t == G_TYPE_INT64)
      *out = json_node_get_int (n);
    else if (t == G_TYPE_DOUBLE)
      *out = static_cast<gint64> (json_node_get_double (n));
    else
      return false;
    return true;
  }

private:
  JsonParser *parser_;
  JsonObject *root_ = nullptr;
};

std::string
shorten (const std::string &text, size_t max = 200)
{
  return text.size () > max ? text.substr (0, max) + "..." : text;
}

}  // namespace

/* ------------------------------------------------------ bodies, answers */

std::string
managerRegisterBody (const ManagerSettings &s)
{
  JsonBuilder *b = json_builder_new ();
  json_builder_begin_object (b);
  json::member (b, "id", s.nodeId);
  json::member (b, "role", s.role);
  json::member (b, "region", s.region);
  json::member (b, "http", s.http);
  json::member (b, "srt", s.srt);
  json_builder_set_member_name (b, "capacity");
  json_builder_begin_object (b);
  json::member (b, "viewers", (gint64) s.maxViewers);
  if (s.maxDownstream > 0)
    json::member (b, "downstream", (gint64) s.maxDownstream);
  json_builder_end_object (b);
  json_builder_end_object (b);
  std::string out = json::toString (b);
  g_object_unref (b);
  return out;
}

std::string
managerHeartbeatBody (const LoadReport &load, double cpu)
{
  JsonBuilder *b = json_builder_new ();
  json_builder_begin_object (b);
  json_builder_set_member_name (b, "load");
  json_builder_begin_object (b);
  json::member (b, "cpu", cpu);
  json::member (b, "viewers", (gint64) load.viewers);
  json::member (b, "streams", (gint64) load.streams.size ());
  json::member (b, "bitrateIn", (gint64) load.bitrateIn);
  json::member (b, "bitrateOut", (gint64) load.bitrateOut);
  json_builder_end_object (b);
  json_builder_set_member_name (b, "streams");
  json_builder_begin_array (b);
  for (const auto &s : load.streams) {
    json_builder_begin_object (b);
    json::member (b, "name", s.name);
    json::member (b, "publishing", s.publishing);
    json::member (b, "pulling", s.pulling);
    json::member (b, "viewers", (gint64) s.viewers);
    json_builder_end_object (b);
  }
  json_builder_end_array (b);
  json_builder_end_object (b);
  std::string out = json::toString (b);
  g_object_unref (b);
  return out;
}

int
managerHeartbeatInterval (const std::string &body, int fallback)
{
  JsonDocument doc (body);
  gint64 ms = 0;
  if (!doc.integer ("heartbeatIntervalMs", &ms) || ms <= 0)
    return fallback;
  return static_cast<int> (std::clamp<gint64> (ms, 100, 60000));
}

std::string
managerHeartbeatState (const std::string &body)
{
  return JsonDocument (body).string ("state");
}

bool
parseManagerEvent (const std::string &text, ManagerEvent *event)
{
  JsonDocument doc (text);
  if (!doc.ok ())
    return false;
  event->event = doc.string ("event");
  event->stream = doc.string ("stream");
  return !event->event.empty ();
}

bool
parseRouteAnswer (const std::string &body, RouteAnswer *answer)
{
  JsonDocument doc (body);
  std::string upstream = doc.string ("upstream");
  if (!parseSrtUri (upstream, nullptr, nullptr))
    return false;
  answer->status = RouteAnswer::Status::Ok;
  answer->upstream = upstream;
  answer->node = doc.string ("node");
  return true;
}

std::string
managerErrorText (const std::string &body)
{
  std::string error = JsonDocument (body).string ("error");
  return shorten (error.empty () ? body : error);
}

/* --------------------------------------------------------------- client */

/* Async callbacks hold the guard, not the client: the client may be gone
 * by the time a cancelled request reports. */
struct ManagerClient::Guard {
  ManagerClient *self;
};

namespace {

struct Request {
  std::shared_ptr<void> guard;       /* ManagerClient::Guard */
  ManagerClient **self;              /* points into the guard */
  SoupMessage *msg;
  std::function<void (guint, const std::string &, const std::string &)> done;
};

}  // namespace

ManagerClient::ManagerClient (ManagerSettings settings, Callbacks callbacks)
    : settings_ (std::move (settings)), callbacks_ (std::move (callbacks)),
      guard_ (std::make_shared<Guard> (Guard{this}))
{
  /* Cluster traffic goes direct, whatever proxy the environment names. */
  GProxyResolver *direct = g_simple_proxy_resolver_new (nullptr, nullptr);
  session_ = soup_session_new_with_options ("timeout", (guint) settings_.requestTimeoutS,
      "idle-timeout", 60u, "user-agent", "openxdn-node", "proxy-resolver", direct, nullptr);
  g_object_unref (direct);
  cancel_ = g_cancellable_new ();
}

ManagerClient::~ManagerClient ()
{
  stop ();
  guard_->self = nullptr;
  g_object_unref (cancel_);
  g_object_unref (session_);
}

void
ManagerClient::start ()
{
  log (LogLevel::Info, "manager.connecting", {{"manager", settings_.url}, {"node", settings_.nodeId},
      {"role", settings_.role}, {"region", settings_.region}});
  registerNode ();
}

void
ManagerClient::stop ()
{
  if (stopped_)
    return;
  stopped_ = true;
  for (guint *timer : {&registerTimer_, &heartbeatTimer_, &eventsTimer_}) {
    if (*timer)
      g_source_remove (*timer);
    *timer = 0;
  }
  dropEvents ();
  g_cancellable_cancel (cancel_);
  if (!registered_)
    return;
  registered_ = false;

  /* Goodbye, bounded: the node is on its way out. */
  GProxyResolver *direct = g_simple_proxy_resolver_new (nullptr, nullptr);
  SoupSession *session = soup_session_new_with_options ("timeout",
      (guint) settings_.goodbyeTimeoutS, "proxy-resolver", direct, nullptr);
  g_object_unref (direct);
  const std::string url = settings_.url + "/api/v1/nodes/" + settings_.nodeId;
  SoupMessage *msg = soup_message_new ("DELETE", url.c_str ());
  if (msg) {
    if (!settings_.token.empty ())
      soup_message_headers_replace (soup_message_get_request_headers (msg), "Authorization",
          ("Bearer " + settings_.token).c_str ());
    GError *err = nullptr;
    GBytes *bytes = soup_session_send_and_read (session, msg, nullptr, &err);
    if (err) {
      log (LogLevel::Warning, "manager.unregister_failed", {{"node", settings_.nodeId},
          {"reason", err->message}});
      g_error_free (err);
    } else {
      log (LogLevel::Info, "manager.unregistered", {{"node", settings_.nodeId},
          {"status", std::to_string (soup_message_get_status (msg))}});
    }
    if (bytes)
      g_bytes_unref (bytes);
    g_object_unref (msg);
  }
  g_object_unref (session);
}

void
ManagerClient::send (const char *method, const std::string &path, const std::string &body,
    Done done)
{
  const std::string url = settings_.url + path;
  SoupMessage *msg = soup_message_new (method, url.c_str ());
  if (!msg) {
    /* Report from the loop, as for any other answer. */
    auto *d = new Done (std::move (done));
    g_idle_add_full (G_PRIORITY_DEFAULT, [] (gpointer data) -> gboolean {
          (*static_cast<Done *> (data)) (0, "", "invalid manager URL");
          return G_SOURCE_REMOVE;
        }, d, [] (gpointer data) { delete static_cast<Done *> (data); });
    return;
  }
  SoupMessageHeaders *headers = soup_message_get_request_headers (msg);
  soup_message_headers_replace (headers, "Accept", "application/json");
  if (!settings_.token.empty ())
    soup_message_headers_replace (headers, "Authorization", ("Bearer " + settings_.token).c_str ());
  if (!body.empty ()) {
    GBytes *bytes = g_bytes_new (body.data (), body.size ());
    soup_message_set_request_body_from_bytes (msg, "application/json", bytes);
    g_bytes_unref (bytes);
  }
  auto *req = new Request{guard_, &guard_->self, msg, std::move (done)};
  soup_session_send_and_read_async (session_, msg, G_PRIORITY_DEFAULT, cancel_,
      [] (GObject *source, GAsyncResult *result, gpointer data) {
        std::unique_ptr<Request> req (static_cast<Request *> (data));
        GError *err = nullptr;
        GBytes *bytes = soup_session_send_and_read_finish (SOUP_SESSION (source), result, &err);
        const bool cancelled = err && g_error_matches (err, G_IO_ERROR, G_IO_ERROR_CANCELLED);
        std::string body, error;
        guint status = 0;
        if (err)
          error = err->message;
        else
          status = soup_message_get_status (req->msg);
        if (bytes) {
          gsize size = 0;
          const char *data = static_cast<const char *> (g_bytes_get_data (bytes, &size));
          body.assign (data ? data : "", size);
          g_bytes_unref (bytes);
        }
        g_clear_error (&err);
        g_object_unref (req->msg);
        if (cancelled || !*req->self)
          return;
        try {
          req->done (status, body, error);
        } catch (const std::exception &e) {
          log (LogLevel::Error, "manager.callback_failed", {{"reason", e.what ()}});
        }
      }, req);
}

/* ------------------------------------------------------------ register */

void
ManagerClient::registerNode ()
{
  if (stopped_ || registering_)
    return;
  registering_ = true;
  send ("POST", "/api/v1/nodes", managerRegisterBody (settings_),
      [this] (guint status, const std::string &body, const std::string &error) {
        registering_ = false;
        if (status == SOUP_STATUS_CREATED || status == SOUP_STATUS_OK) {
          registered_ = true;
          registrations_++;
          managerAway_ = false;
          registerBackoff_.reset ();
          intervalMs_ = managerHeartbeatInterval (body, 1000);
          log (LogLevel::Info, "manager.registered", {{"manager", settings_.url},
              {"node", settings_.nodeId}, {"heartbeat_ms", std::to_string (intervalMs_)}});
          if (heartbeatTimer_)
            g_source_remove (heartbeatTimer_);
          heartbeatTimer_ = g_timeout_add (intervalMs_, [] (gpointer self) -> gboolean {
                static_cast<ManagerClient *> (self)->heartbeat ();
                return G_SOURCE_CONTINUE;
              }, this);
          /* One heartbeat now: the manager learns the streams at once. */
          heartbeat ();
          if (!ws_ && !connectingEvents_ && !eventsTimer_)
            connectEvents ();
          return;
        }
        std::string why = status == 0 ? error : std::to_string (status) + " " + managerErrorText (body);
        if (!managerAway_ || registerBackoff_.attempts () == 0)
          log (status == 0 || status >= 500 ? LogLevel::Warning : LogLevel::Error,
              "manager.register_failed", {{"manager", settings_.url}, {"node", settings_.nodeId},
              {"reason", why}, {"hint", status == 401 ? "check --cluster-token" : ""}});
        managerAway_ = true;
        scheduleRegister ();
      });
}

void
ManagerClient::scheduleRegister ()
{
  if (stopped_ || registerTimer_)
    return;
  registerTimer_ = g_timeout_add (registerBackoff_.next (), [] (gpointer self) -> gboolean {
        auto *client = static_cast<ManagerClient *> (self);
        client->registerTimer_ = 0;
        client->registerNode ();
        return G_SOURCE_REMOVE;
      }, this);
}

/* ----------------------------------------------------------- heartbeat */

void
ManagerClient::heartbeat ()
{
  if (stopped_ || !registered_ || heartbeatInFlight_)
    return;
  LoadReport load;
  if (callbacks_.report)
    load = callbacks_.report ();
  const double cpu = cpu_.sample ();
  heartbeatInFlight_ = true;
  send ("POST", "/api/v1/nodes/" + settings_.nodeId + "/heartbeat", managerHeartbeatBody (load, cpu),
      [this] (guint status, const std::string &body, const std::string &error) {
        heartbeatInFlight_ = false;
        if (status == SOUP_STATUS_OK) {
          if (managerAway_)
            log (LogLevel::Info, "manager.back", {{"manager", settings_.url}});
          managerAway_ = false;
          std::string state = managerHeartbeatState (body);
          if (state == "draining")
            setDraining (true);
          else if (state == "active")
            setDraining (false);
          return;
        }
        heartbeatsFailed_++;
        if (status == SOUP_STATUS_NOT_FOUND) {
          /* The manager forgot this node (restarted, or declared it dead). */
          log (LogLevel::Warning, "manager.unknown_node", {{"node", settings_.nodeId}});
          registered_ = false;
          if (heartbeatTimer_)
            g_source_remove (heartbeatTimer_);
          heartbeatTimer_ = 0;
          registerBackoff_.reset ();
          registerNode ();
          return;
        }
        if (!managerAway_)
          log (LogLevel::Warning, "manager.heartbeat_failed", {{"manager", settings_.url},
              {"reason", status == 0 ? error : std::to_string (status) + " " + managerErrorText (body)}});
        managerAway_ = true;
      });
}

void
ManagerClient::setDraining (bool draining)
{
  if (draining == draining_)
    return;
  draining_ = draining;
  log (LogLevel::Info, draining ? "node.draining" : "node.active", {{"node", settings_.nodeId}});
  if (callbacks_.drainingChanged)
    callbacks_.drainingChanged (draining);
}

/* --------------------------------------------------------------- route */

void
ManagerClient::route (const std::string &stream, RouteCallback done)
{
  send ("GET", "/api/v1/streams/" + stream + "/route?node=" + settings_.nodeId, "",
      [stream, done] (guint status, const std::string &body, const std::string &error) {
        RouteAnswer answer;
        if (status == SOUP_STATUS_OK) {
          if (!parseRouteAnswer (body, &answer)) {
            answer.status = RouteAnswer::Status::Error;
            answer.detail = "the manager's route has no srt:// upstream: " + managerErrorText (body);
          }
        } else if (status == SOUP_STATUS_NOT_FOUND) {
          answer.status = RouteAnswer::Status::NotLive;
          answer.detail = managerErrorText (body);
        } else if (status == 0) {
          answer.status = RouteAnswer::Status::Unreachable;
          answer.detail = "the manager does not answer: " + error;
        } else {
          answer.status = status >= 500 ? RouteAnswer::Status::Unreachable : RouteAnswer::Status::Error;
          answer.detail = "the manager answered " + std::to_string (status) + ": " +
              managerErrorText (body);
        }
        done (answer);
      });
}

/* -------------------------------------------------------------- events */

void
ManagerClient::connectEvents ()
{
  if (stopped_ || ws_ || connectingEvents_)
    return;
  connectingEvents_ = true;
  const std::string url = settings_.url + "/api/v1/nodes/" + settings_.nodeId + "/events";
  SoupMessage *msg = soup_message_new ("GET", url.c_str ());
  if (!msg) {
    connectingEvents_ = false;
    return;
  }
  if (!settings_.token.empty ())
    soup_message_headers_replace (soup_message_get_request_headers (msg), "Authorization",
        ("Bearer " + settings_.token).c_str ());
  auto *guard = new std::shared_ptr<Guard> (guard_);
  soup_session_websocket_connect_async (session_, msg, nullptr, nullptr, G_PRIORITY_DEFAULT,
      cancel_, [] (GObject *source, GAsyncResult *result, gpointer data) {
        std::unique_ptr<std::shared_ptr<Guard>> guard (static_cast<std::shared_ptr<Guard> *> (data));
        GError *err = nullptr;
        SoupWebsocketConnection *ws =
            soup_session_websocket_connect_finish (SOUP_SESSION (source), result, &err);
        ManagerClient *self = (*guard)->self;
        if (!self || (err && g_error_matches (err, G_IO_ERROR, G_IO_ERROR_CANCELLED))) {
          g_clear_error (&err);
          if (ws)
            g_object_unref (ws);
          return;
        }
        self->connectingEvents_ = false;
        if (!ws) {
          log (LogLevel::Debug, "manager.events.connect_failed", {{"reason", err ? err->message : "?"}});
          g_clear_error (&err);
          self->scheduleEvents ();
          return;
        }
        self->ws_ = ws;
        self->eventsBackoff_.reset ();
        soup_websocket_connection_set_keepalive_interval (ws, 5);
        g_signal_connect (ws, "message", G_CALLBACK (+[] (SoupWebsocketConnection *,
            gint type, GBytes *message, gpointer client) {
              if (type != SOUP_WEBSOCKET_DATA_TEXT)
                return;
              gsize size = 0;
              const char *data = static_cast<const char *> (g_bytes_get_data (message, &size));
              static_cast<ManagerClient *> (client)->onEvent (std::string (data ? data : "", size));
            }), self);
        g_signal_connect (ws, "closed", G_CALLBACK (+[] (SoupWebsocketConnection *, gpointer client) {
              auto *c = static_cast<ManagerClient *> (client);
              log (LogLevel::Info, "manager.events.closed", {{"node", c->settings_.nodeId}});
              c->dropEvents ();
              c->scheduleEvents ();
            }), self);
        log (LogLevel::Info, "manager.events.connected", {{"node", self->settings_.nodeId}});
      }, guard);
  g_object_unref (msg);
}

void
ManagerClient::scheduleEvents ()
{
  if (stopped_ || eventsTimer_)
    return;
  eventsTimer_ = g_timeout_add (eventsBackoff_.next (), [] (gpointer self) -> gboolean {
        auto *client = static_cast<ManagerClient *> (self);
        client->eventsTimer_ = 0;
        client->connectEvents ();
        return G_SOURCE_REMOVE;
      }, this);
}

void
ManagerClient::dropEvents ()
{
  if (!ws_)
    return;
  SoupWebsocketConnection *ws = ws_;
  ws_ = nullptr;
  g_signal_handlers_disconnect_by_data (ws, this);
  if (soup_websocket_connection_get_state (ws) == SOUP_WEBSOCKET_STATE_OPEN)
    soup_websocket_connection_close (ws, SOUP_WEBSOCKET_CLOSE_GOING_AWAY, nullptr);
  /* Maybe called from the connection's own "closed" signal: let go later. */
  g_idle_add_full (G_PRIORITY_DEFAULT_IDLE, [] (gpointer) -> gboolean { return G_SOURCE_REMOVE; },
      ws, g_object_unref);
}

void
ManagerClient::onEvent (const std::string &text)
{
  ManagerEvent event;
  if (!parseManagerEvent (text, &event)) {
    log (LogLevel::Warning, "manager.events.bad_message", {{"text", text.substr (0, 200)}});
    return;
  }
  log (LogLevel::Debug, "manager.event", {{"event", event.event}, {"stream", event.stream}});
  if (event.event == "node.draining") {
    setDraining (true);
  } else if (event.event == "route.changed" && !event.stream.empty ()) {
    if (callbacks_.routeChanged)
      callbacks_.routeChanged (event.stream);
  } else if (event.event == "stream.unpublished" && !event.stream.empty ()) {
    if (callbacks_.streamUnpublished)
      callbacks_.streamUnpublished (event.stream);
  }
}

}  // namespace xdn
