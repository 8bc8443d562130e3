#include "http.h"

#include "log.h"

#include <json-glib/json-glib.h>

#include <algorithm>

namespace xdn::http {

Server::Server (ServerSettings settings) : settings_ (std::move (settings))
{
  server_ = soup_server_new ("server-header", "openxdn", NULL);
  soup_server_add_handler (server_, nullptr, &Server::onRequest, this, nullptr);
  g_signal_connect (server_, "request-started", G_CALLBACK (&Server::onRequestStarted), this);
  g_signal_connect (server_, "request-finished", G_CALLBACK (&Server::onRequestFinished), this);
}

Server::~Server ()
{
  stop ();
  g_object_unref (server_);
}

void
Server::websocket (const std::string &prefix, Handler accept, WebSocketOpen open)
{
  websocketRoutes_.push_back ({prefix, std::move (accept), std::move (open)});
  std::stable_sort (websocketRoutes_.begin (), websocketRoutes_.end (),
      [] (const WebSocketRoute &a, const WebSocketRoute &b) { return a.prefix.size () > b.prefix.size (); });
}

void
Server::route (const std::string &method, const std::string &prefix, Handler handler)
{
  routes_.push_back ({method, prefix, std::move (handler)});
  std::stable_sort (routes_.begin (), routes_.end (),
      [] (const Route &a, const Route &b) { return a.prefix.size () > b.prefix.size (); });
}

bool
Server::listen (std::string *error)
{
  GError *err = nullptr;
  GInetAddress *inet = g_inet_address_new_from_string (settings_.address.c_str ());
  if (!inet) {
    *error = "invalid HTTP listen address '" + settings_.address + "'";
    return false;
  }
  GSocketAddress *address = g_inet_socket_address_new (inet, settings_.port);
  g_object_unref (inet);
  gboolean ok = soup_server_listen (server_, address, (SoupServerListenOptions) 0, &err);
  g_object_unref (address);
  if (!ok) {
    *error = "cannot listen for HTTP on " + settings_.address + ":" +
        std::to_string (settings_.port) + ": " + err->message;
    g_error_free (err);
    return false;
  }
  if (settings_.port == 0) {
    GSList *uris = soup_server_get_uris (server_);
    if (uris)
      settings_.port = g_uri_get_port (static_cast<GUri *> (uris->data));
    g_slist_free_full (uris, (GDestroyNotify) g_uri_unref);
  }
  return true;
}

void
Server::stop ()
{
  if (server_)
    soup_server_disconnect (server_);
}

static void
onGotHeaders (SoupServerMessage *msg, gpointer user_data)
{
  auto *self = static_cast<Server *> (user_data);
  SoupMessageHeaders *headers = soup_server_message_get_request_headers (msg);
  /* libsoup before 3.3 never frees a kept-alive connection that the client
   * closes while it is idle (its socket stays in CLOSE-WAIT, its objects and
   * buffers stay allocated): every WHEP viewer, every browser tab would
   * leave one behind. There, one request per connection; WebSocket
   * upgrades keep theirs (the connection leaves the server). */
  static const bool keepAliveLeaks = !soup_check_version (3, 3, 0);
  if (keepAliveLeaks && !soup_message_headers_header_contains (headers, "Upgrade", "websocket"))
    soup_message_headers_replace (soup_server_message_get_response_headers (msg),
        "Connection", "close");
  goffset length = soup_message_headers_get_content_length (headers);
  if (soup_message_headers_get_encoding (headers) == SOUP_ENCODING_CONTENT_LENGTH &&
      length > (goffset) self->settings ().maxBodyBytes) {
    /* Answer before reading the body. */
    log (LogLevel::Warning, "http.body.too_large",
        {{"path", g_uri_get_path (soup_server_message_get_uri (msg))},
         {"bytes", std::to_string (length)}, {"peer", peerAddress (msg)}});
    self->addCors (msg);
    respondError (msg, SOUP_STATUS_REQUEST_ENTITY_TOO_LARGE,
        "request body is larger than " + std::to_string (self->settings ().maxBodyBytes) + " bytes");
  }
}

/* A body without Content-Length (chunked) is counted as it arrives; past
 * the limit the connection is dropped so that nothing more is buffered. */
static void
onGotChunk (SoupServerMessage *msg, GBytes *chunk, gpointer user_data)
{
  auto *self = static_cast<Server *> (user_data);
  SoupMessageHeaders *headers = soup_server_message_get_request_headers (msg);
  if (soup_message_headers_get_encoding (headers) == SOUP_ENCODING_CONTENT_LENGTH)
    return;  /* bounded in got-headers */
  goffset total = GPOINTER_TO_SIZE (g_object_get_data (G_OBJECT (msg), "xdn-body-bytes"))
      + g_bytes_get_size (chunk);
  g_object_set_data (G_OBJECT (msg), "xdn-body-bytes", GSIZE_TO_POINTER (total));
  if (total <= (goffset) self->settings ().maxBodyBytes)
    return;
  log (LogLevel::Warning, "http.body.too_large",
      {{"path", g_uri_get_path (soup_server_message_get_uri (msg))},
       {"bytes", std::to_string (total)}, {"peer", peerAddress (msg)}, {"detail", "chunked; connection dropped"}});
  g_signal_handlers_disconnect_by_func (msg, (gpointer) onGotChunk, user_data);
  GIOStream *stream = soup_server_message_steal_connection (msg);
  if (stream) {
    g_io_stream_close (stream, nullptr, nullptr);
    g_object_unref (stream);
  }
}

void
Server::onRequestStarted (SoupServer *, SoupServerMessage *msg, gpointer self)
{
  g_signal_connect (msg, "got-headers", G_CALLBACK (onGotHeaders), self);
  g_signal_connect (msg, "got-chunk", G_CALLBACK (onGotChunk), self);
}

void
Server::onRequestFinished (SoupServer *, SoupServerMessage *msg, gpointer self)
{
  auto *server = static_cast<Server *> (self);
  if (server->observer_)
    server->observer_ (msg, soup_server_message_get_status (msg));
}

namespace {

/* The upgrade in flight between the 101 answer and the stolen connection. */
struct PendingWebSocket {
  WebSocketOpen open;
  std::string rest;
};

/* After the 101 is written: the connection leaves the HTTP server and
 * becomes a WebSocket (what SoupServer does for its own WebSocket handlers,
 * done here so that WebSocket paths can sit among ordinary routes). */
void
onWroteInformational (SoupServerMessage *msg, gpointer data)
{
  auto *pending = static_cast<PendingWebSocket *> (data);
  if (soup_server_message_get_status (msg) != SOUP_STATUS_SWITCHING_PROTOCOLS)
    return;
  g_signal_handlers_disconnect_by_func (msg, (gpointer) onWroteInformational, data);
  g_object_ref (msg);
  GIOStream *stream = soup_server_message_steal_connection (msg);
  if (stream) {
    SoupWebsocketConnection *conn = soup_websocket_connection_new (stream,
        soup_server_message_get_uri (msg), SOUP_WEBSOCKET_CONNECTION_SERVER,
        soup_message_headers_get_one (soup_server_message_get_request_headers (msg), "Origin"),
        nullptr, nullptr);
    g_object_unref (stream);
    try {
      pending->open (conn, pending->rest);
    } catch (const std::exception &e) {
      log (LogLevel::Error, "http.websocket.failed", {{"error", e.what ()}});
      soup_websocket_connection_close (conn, SOUP_WEBSOCKET_CLOSE_SERVER_ERROR, nullptr);
    }
    g_object_unref (conn);
  }
  g_object_unref (msg);
}

bool
isWebSocketUpgrade (SoupServerMessage *msg)
{
  SoupMessageHeaders *h = soup_server_message_get_request_headers (msg);
  return soup_message_headers_header_contains (h, "Upgrade", "websocket");
}

}  // namespace

/* Returns true when @path is a WebSocket route and the upgrade was handled
 * (answered, refused, or switched). */
bool
Server::dispatchWebSocket (SoupServerMessage *msg, const std::string &path)
{
  for (const auto &w : websocketRoutes_) {
    if (path.compare (0, w.prefix.size (), w.prefix) != 0)
      continue;
    try {
      w.accept (msg, path.substr (w.prefix.size ()));
    } catch (const std::exception &e) {
      log (LogLevel::Error, "http.handler.failed", {{"path", path}, {"error", e.what ()}});
      respondError (msg, SOUP_STATUS_INTERNAL_SERVER_ERROR, "internal error");
    }
    if (soup_server_message_get_status (msg) != 0)
      return true;  /* refused */
    /* Sets 101 and the handshake headers, or an error status. */
    if (!soup_websocket_server_process_handshake (msg, nullptr, nullptr, nullptr, nullptr)) {
      log (LogLevel::Warning, "http.websocket.bad_handshake", {{"path", path}, {"peer", peerAddress (msg)}});
      return true;
    }
    g_signal_connect_data (msg, "wrote-informational", G_CALLBACK (onWroteInformational),
        new PendingWebSocket{w.open, path.substr (w.prefix.size ())},
        [] (gpointer data, GClosure *) { delete static_cast<PendingWebSocket *> (data); },
        (GConnectFlags) 0);
    return true;
  }
  return false;
}

void
Server::onRequest (SoupServer *, SoupServerMessage *msg, const char *path,
    GHashTable *, gpointer self)
{
  static_cast<Server *> (self)->dispatch (msg, path);
}

void
Server::addCors (SoupServerMessage *msg) const
{
  SoupMessageHeaders *h = soup_server_message_get_response_headers (msg);
  soup_message_headers_replace (h, "Access-Control-Allow-Origin", settings_.corsOrigin.c_str ());
  soup_message_headers_replace (h, "Access-Control-Allow-Methods",
      "GET, POST, PATCH, DELETE, OPTIONS");
  soup_message_headers_replace (h, "Access-Control-Allow-Headers",
      "Content-Type, Authorization, If-Match");
  soup_message_headers_replace (h, "Access-Control-Expose-Headers", "Location, Link, ETag");
  soup_message_headers_replace (h, "Access-Control-Max-Age", "600");
}

void
Server::dispatch (SoupServerMessage *msg, const char *raw_path)
{
  addCors (msg);
  if (soup_server_message_get_status (msg) == SOUP_STATUS_REQUEST_ENTITY_TOO_LARGE)
    return;  /* answered in got-headers */

  std::string method = soup_server_message_get_method (msg);
  if (method == "OPTIONS") {
    soup_server_message_set_status (msg, SOUP_STATUS_NO_CONTENT, nullptr);
    return;
  }
  if (soup_server_message_get_request_body (msg)->length > (goffset) settings_.maxBodyBytes) {
    respondError (msg, SOUP_STATUS_REQUEST_ENTITY_TOO_LARGE,
        "request body is larger than " + std::to_string (settings_.maxBodyBytes) + " bytes");
    return;
  }

  gchar *decoded = g_uri_unescape_string (raw_path, nullptr);
  if (!decoded) {
    respondError (msg, SOUP_STATUS_BAD_REQUEST, "malformed path");
    return;
  }
  std::string path = decoded;
  g_free (decoded);

  if (!websocketRoutes_.empty () && method == "GET" && isWebSocketUpgrade (msg) &&
      dispatchWebSocket (msg, path))
    return;

  bool path_known = false;
  for (const auto &r : routes_) {
    if (path.compare (0, r.prefix.size (), r.prefix) != 0)
      continue;
    /* The root route answers "/" only, not every path below it. */
    if (r.prefix == "/" && path != "/")
      continue;
    path_known = true;
    if (r.method != method)
      continue;
    try {
      r.handler (msg, path.substr (r.prefix.size ()));
    } catch (const std::exception &e) {
      log (LogLevel::Error, "http.handler.failed", {{"path", path}, {"error", e.what ()}});
      respondError (msg, SOUP_STATUS_INTERNAL_SERVER_ERROR, "internal error");
    }
    return;
  }
  if (path_known)
    respondError (msg, SOUP_STATUS_METHOD_NOT_ALLOWED, method + " is not allowed on " + path);
  else
    respondError (msg, SOUP_STATUS_NOT_FOUND, "no such resource: " + path);
}

void
respond (SoupServerMessage *msg, guint status, const char *contentType, const std::string &body)
{
  soup_server_message_set_status (msg, status, nullptr);
  if (contentType)
    soup_server_message_set_response (msg, contentType, SOUP_MEMORY_COPY,
        body.data (), body.size ());
}

void
respondError (SoupServerMessage *msg, guint status, const std::string &message)
{
  JsonBuilder *b = json_builder_new ();
  json_builder_begin_object (b);
  json_builder_set_member_name (b, "error");
  json_builder_add_string_value (b, message.c_str ());
  json_builder_end_object (b);
  JsonNode *root = json_builder_get_root (b);
  gchar *text = json_to_string (root, FALSE);
  respond (msg, status, "application/json", std::string (text) + "\n");
  g_free (text);
  json_node_unref (root);
  g_object_unref (b);
}

std::string
requestBody (SoupServerMessage *msg)
{
  SoupMessageBody *body = soup_server_message_get_request_body (msg);
  GBytes *bytes = soup_message_body_flatten (body);
  gsize size = 0;
  const char *data = static_cast<const char *> (g_bytes_get_data (bytes, &size));
  std::string out (data ? data : "", size);
  g_bytes_unref (bytes);
  return out;
}

std::string
requestHeader (SoupServerMessage *msg, const char *name)
{
  const char *value = soup_message_headers_get_one (
      soup_server_message_get_request_headers (msg), name);
  return value ? value : "";
}

std::string
peerAddress (SoupServerMessage *msg)
{
  const char *host = soup_server_message_get_remote_host (msg);
  return host ? host : "";
}

std::string
bearerToken (SoupServerMessage *msg)
{
  std::string auth = requestHeader (msg, "Authorization");
  const std::string prefix = "Bearer ";
  if (auth.size () > prefix.size () && g_ascii_strncasecmp (auth.c_str (), prefix.c_str (), prefix.size ()) == 0)
    return auth.substr (prefix.size ());
  return "";
}

}  // namespace xdn::http
