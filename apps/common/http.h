/* A small router over libsoup 3's SoupServer: routes by method and path
 * prefix, adds CORS headers to every response, refuses oversized bodies
 * before reading them, and writes JSON errors. Knows nothing of any app. */
#pragma once

#include <libsoup/soup.h>

#include <functional>
#include <string>
#include <vector>

namespace xdn::http {

struct ServerSettings {
  std::string address = "0.0.0.0";
  int port = 8080;
  size_t maxBodyBytes = 64 * 1024;
  std::string corsOrigin = "*";
};

/* @rest: the part of the path after the route's prefix, percent-decoded. */
using Handler = std::function<void (SoupServerMessage *msg, const std::string &rest)>;
/* A WebSocket route: @accept sees the upgrade request like a Handler and
 * refuses it by answering (respondError); left unanswered, the handshake
 * completes and @open gets the connection (borrowed: take a reference to
 * keep it). */
using WebSocketOpen = std::function<void (SoupWebsocketConnection *conn, const std::string &rest)>;
/* Sees every response the server finished (not upgraded connections). */
using ResponseObserver = std::function<void (SoupServerMessage *msg, guint status)>;

class Server {
public:
  explicit Server (ServerSettings settings);
  ~Server ();
  Server (const Server &) = delete;
  Server &operator= (const Server &) = delete;

  /* Routes @method requests whose path starts with @prefix; the longest
   * prefix wins. A prefix ending in '/' matches that folder only. */
  void route (const std::string &method, const std::string &prefix, Handler handler);
  /* Routes WebSocket upgrades (GET with `Upgrade: websocket`) under @prefix;
   * other requests to that path go to the ordinary routes. */
  void websocket (const std::string &prefix, Handler accept, WebSocketOpen open);
  void observeResponses (ResponseObserver observer) { observer_ = std::move (observer); }
  bool listen (std::string *error);
  void stop ();
  int port () const { return settings_.port; }
  const ServerSettings &settings () const { return settings_; }
  /* Adds the CORS headers of every response. */
  void addCors (SoupServerMessage *msg) const;

private:
  struct Route {
    std::string method, prefix;
    Handler handler;
  };
  static void onRequest (SoupServer *, SoupServerMessage *msg, const char *path,
      GHashTable *query, gpointer self);
  struct WebSocketRoute {
    std::string prefix;
    Handler accept;
    WebSocketOpen open;
  };
  static void onRequestStarted (SoupServer *, SoupServerMessage *msg, gpointer self);
  static void onRequestFinished (SoupServer *, SoupServerMessage *msg, gpointer self);
  void dispatch (SoupServerMessage *msg, const char *path);
  bool dispatchWebSocket (SoupServerMessage *msg, const std::string &path);

  ServerSettings settings_;
  SoupServer *server_ = nullptr;
  std::vector<Route> routes_;
  std::vector<WebSocketRoute> websocketRoutes_;
  ResponseObserver observer_;
};

void respond (SoupServerMessage *msg, guint status, const char *contentType,
    const std::string &body);
/* {"error": message} with @status; the usual answer to bad input. */
void respondError (SoupServerMessage *msg, guint status, const std::string &message);
std::string requestBody (SoupServerMessage *msg);
std::string requestHeader (SoupServerMessage *msg, const char *name);
std::string peerAddress (SoupServerMessage *msg);
/* The token of an `Authorization: Bearer TOKEN` header, or "". */
std::string bearerToken (SoupServerMessage *msg);

}  // namespace xdn::http
