/* The node's manager client: the bodies it sends and the answers it reads,
 * then the client against a small fake manager (libsoup server, WebSocket
 * included) on 127.0.0.1: registration retried while the manager is away,
 * heartbeats at the given interval, registration again on 404, events,
 * goodbye on stop. */
#include "manager-client.h"

#include <gtest/gtest.h>

#include <json-glib/json-glib.h>
#include <libsoup/soup.h>

#include <condition_variable>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

using namespace xdn;

namespace {

JsonObject *
parseObject (JsonParser *parser, const std::string &text)
{
  if (!json_parser_load_from_data (parser, text.c_str (), -1, nullptr))
    return nullptr;
  JsonNode *root = json_parser_get_root (parser);
  return root && JSON_NODE_HOLDS_OBJECT (root) ? json_node_get_object (root) : nullptr;
}

}  // namespace

TEST (ManagerBodies, RegisterSaysWhoAndWhereTheNodeIs)
{
  ManagerSettings s;
  s.nodeId = "edge-1";
  s.role = "edge";
  s.region = "eu";
  s.http = "http://127.0.0.1:8081";
  s.srt = "srt://127.0.0.1:9001";
  s.maxViewers = 1000;
  s.maxDownstream = 4;
  JsonParser *p = json_parser_new ();
  JsonObject *o = parseObject (p, managerRegisterBody (s));
  ASSERT_NE (o, nullptr);
  EXPECT_STREQ (json_object_get_string_member (o, "id"), "edge-1");
  EXPECT_STREQ (json_object_get_string_member (o, "role"), "edge");
  EXPECT_STREQ (json_object_get_string_member (o, "region"), "eu");
  EXPECT_STREQ (json_object_get_string_member (o, "http"), "http://127.0.0.1:8081");
  EXPECT_STREQ (json_object_get_string_member (o, "srt"), "srt://127.0.0.1:9001");
  JsonObject *cap = json_object_get_object_member (o, "capacity");
  ASSERT_NE (cap, nullptr);
  EXPECT_EQ (json_object_get_int_member (cap, "viewers"), 1000);
  EXPECT_EQ (json_object_get_int_member (cap, "downstream"), 4);
  g_object_unref (p);

  s.maxDownstream = 0;  /* not announced: the manager's default applies */
  p = json_parser_new ();
  o = parseObject (p, managerRegisterBody (s));
  EXPECT_FALSE (json_object_has_member (json_object_get_object_member (o, "capacity"), "downstream"));
  g_object_unref (p);
}

TEST (ManagerBodies, HeartbeatCarriesLoadAndStreams)
{
  LoadReport load;
  load.viewers = 3;
  load.bitrateIn = 1500000;
  load.bitrateOut = 4500000;
  load.streams.push_back ({"live/a", true, false, 3});
  load.streams.push_back ({"live/b", false, true, 0});
  JsonParser *p = json_parser_new ();
  JsonObject *o = parseObject (p, managerHeartbeatBody (load, 0.25));
  ASSERT_NE (o, nullptr);
  JsonObject *l = json_object_get_object_member (o, "load");
  EXPECT_DOUBLE_EQ (json_object_get_double_member (l, "cpu"), 0.25);
  EXPECT_EQ (json_object_get_int_member (l, "viewers"), 3);
  EXPECT_EQ (json_object_get_int_member (l, "streams"), 2);
  EXPECT_EQ (json_object_get_int_member (l, "bitrateIn"), 1500000);
  EXPECT_EQ (json_object_get_int_member (l, "bitrateOut"), 4500000);
  JsonArray *streams = json_object_get_array_member (o, "streams");
  ASSERT_EQ (json_array_get_length (streams), 2u);
  JsonObject *a = json_array_get_object_element (streams, 0);
  EXPECT_STREQ (json_object_get_string_member (a, "name"), "live/a");
  EXPECT_TRUE (json_object_get_boolean_member (a, "publishing"));
  EXPECT_FALSE (json_object_get_boolean_member (a, "pulling"));
  EXPECT_EQ (json_object_get_int_member (a, "viewers"), 3);
  JsonObject *b = json_array_get_object_element (streams, 1);
  EXPECT_TRUE (json_object_get_boolean_member (b, "pulling"));
  g_object_unref (p);
}

TEST (ManagerAnswers, ReadsIntervalStateRouteEventsAndErrors)
{
  EXPECT_EQ (managerHeartbeatInterval (R"({"id":"e","heartbeatIntervalMs":500})", 1000), 500);
  EXPECT_EQ (managerHeartbeatInterval (R"({"id":"e"})", 1000), 1000);
  EXPECT_EQ (managerHeartbeatInterval ("not json", 1000), 1000);
  EXPECT_EQ (managerHeartbeatInterval (R"({"heartbeatIntervalMs":5})", 1000), 100);
  EXPECT_EQ (managerHeartbeatInterval (R"({"heartbeatIntervalMs":"x"})", 1000), 1000);
  EXPECT_EQ (managerHeartbeatState (R"({"state":"draining"})"), "draining");
  EXPECT_EQ (managerHeartbeatState ("[]"), "");

  RouteAnswer r;
  ASSERT_TRUE (parseRouteAnswer (R"({"node":"origin-1","upstream":"srt://127.0.0.1:9001"})", &r));
  EXPECT_EQ (r.status, RouteAnswer::Status::Ok);
  EXPECT_EQ (r.upstream, "srt://127.0.0.1:9001");
  EXPECT_EQ (r.node, "origin-1");
  EXPECT_FALSE (parseRouteAnswer (R"({"node":"origin-1","upstream":"http://x"})", &r));
  EXPECT_FALSE (parseRouteAnswer (R"({"node":"origin-1"})", &r));
  EXPECT_FALSE (parseRouteAnswer ("", &r));

  ManagerEvent e;
  ASSERT_TRUE (parseManagerEvent (R"({"event":"route.changed","stream":"live/a"})", &e));
  EXPECT_EQ (e.event, "route.changed");
  EXPECT_EQ (e.stream, "live/a");
  ASSERT_TRUE (parseManagerEvent (R"({"event":"node.draining"})", &e));
  EXPECT_EQ (e.event, "node.draining");
  EXPECT_TRUE (e.stream.empty ());
  EXPECT_FALSE (parseManagerEvent (R"({"stream":"x"})", &e));
  EXPECT_FALSE (parseManagerEvent ("{", &e));

  EXPECT_EQ (managerErrorText (R"({"error":"stream not live"})"), "stream not live");
  EXPECT_EQ (managerErrorText ("plain text"), "plain text");
  EXPECT_EQ (managerErrorText (std::string (500, 'x')).size (), 203u);
}

/* ------------------------------------------------------ fake manager */

namespace {

/* A manager that records requests and answers as told. It runs its own
 * main context on a thread of its own: the client's goodbye (DELETE) is a
 * blocking call on the test's thread. */
class FakeManager {
public:
  FakeManager ()
  {
    call ([this] {
      server_ = soup_server_new ("server-header", "fake-manager", nullptr);
      soup_server_add_handler (server_, "/api/v1", &FakeManager::onRequest, this, nullptr);
      soup_server_add_websocket_handler (server_, "/api/v1/nodes/edge-1/events", nullptr, nullptr,
          &FakeManager::onWebsocket, this, nullptr);
    });
  }
  ~FakeManager ()
  {
    call ([this] {
      for (auto *ws : sockets_)
        g_object_unref (ws);
      sockets_.clear ();
      soup_server_disconnect (server_);
      g_object_unref (server_);
    });
    g_main_loop_quit (loop_);
    thread_.join ();
    g_main_loop_unref (loop_);
    g_main_context_unref (context_);
  }
  /* Listens on @port (0: any); returns the port. */
  int listen (int port = 0)
  {
    int bound = 0;
    call ([&] {
      GError *err = nullptr;
      GInetAddress *lo = g_inet_address_new_loopback (G_SOCKET_FAMILY_IPV4);
      GSocketAddress *addr = g_inet_socket_address_new (lo, port);
      if (!soup_server_listen (server_, addr, (SoupServerListenOptions) 0, &err))
        ADD_FAILURE () << (err ? err->message : "listen failed");
      g_clear_error (&err);
      g_object_unref (addr);
      g_object_unref (lo);
      GSList *uris = soup_server_get_uris (server_);
      bound = uris ? g_uri_get_port (static_cast<GUri *> (uris->data)) : 0;
      g_slist_free_full (uris, (GDestroyNotify) g_uri_unref);
    });
    return bound;
  }
  void sendEvent (const std::string &json)
  {
    call ([&] {
      for (auto *ws : sockets_)
        if (soup_websocket_connection_get_state (ws) == SOUP_WEBSOCKET_STATE_OPEN)
          soup_websocket_connection_send_text (ws, json.c_str ());
    });
  }
  void closeEvents ()
  {
    call ([&] {
      for (auto *ws : sockets_)
        if (soup_websocket_connection_get_state (ws) == SOUP_WEBSOCKET_STATE_OPEN)
          soup_websocket_connection_close (ws, SOUP_WEBSOCKET_CLOSE_NORMAL, nullptr);
    });
  }

  int count (const std::string &method, const std::string &path)
  {
    std::lock_guard<std::mutex> l (lock_);
    int n = 0;
    for (const auto &s : seen_)
      n += s.method == method && s.path == path;
    return n;
  }
  std::vector<std::string> authorizations ()
  {
    std::lock_guard<std::mutex> l (lock_);
    std::vector<std::string> out;
    for (const auto &s : seen_)
      out.push_back (s.auth);
    return out;
  }
  std::string lastHeartbeat ()
  {
    std::lock_guard<std::mutex> l (lock_);
    for (auto it = seen_.rbegin (); it != seen_.rend (); ++it)
      if (it->path == "/api/v1/nodes/edge-1/heartbeat")
        return it->body;
    return "";
  }
  int eventConnections ()
  {
    std::lock_guard<std::mutex> l (lock_);
    return eventConnections_;
  }
  void answerHeartbeats (guint status)
  {
    std::lock_guard<std::mutex> l (lock_);
    heartbeatStatus_ = status;
  }

private:
  struct Seen {
    std::string method, path, body, auth;
  };

  /* Runs @fn on the manager's thread and waits for it. */
  void call (std::function<void ()> fn)
  {
    struct Call {
      std::function<void ()> fn;
      std::mutex m;
      std::condition_variable cv;
      bool done = false;
    } c;
    c.fn = std::move (fn);
    g_main_context_invoke (context_, [] (gpointer data) -> gboolean {
          auto *c = static_cast<Call *> (data);
          c->fn ();
          std::lock_guard<std::mutex> l (c->m);
          c->done = true;
          c->cv.notify_all ();
          return G_SOURCE_REMOVE;
        }, &c);
    std::unique_lock<std::mutex> l (c.m);
    c.cv.wait (l, [&] { return c.done; });
  }

  static void onRequest (SoupServer *, SoupServerMessage *msg, const char *path, GHashTable *,
      gpointer data)
  {
    auto *self = static_cast<FakeManager *> (data);
    SoupMessageBody *body = soup_server_message_get_request_body (msg);
    const char *auth = soup_message_headers_get_one (soup_server_message_get_request_headers (msg),
        "Authorization");
    GUri *uri = soup_server_message_get_uri (msg);
    std::string full = path;
    if (g_uri_get_query (uri))
      full += std::string ("?") + g_uri_get_query (uri);
    const std::string p = path;
    const std::string method = soup_server_message_get_method (msg);
    guint heartbeatStatus;
    {
      std::lock_guard<std::mutex> l (self->lock_);
      self->seen_.push_back ({method, full, body->data ? std::string (body->data, body->length) : "",
          auth ? auth : ""});
      heartbeatStatus = self->heartbeatStatus_;
    }
    auto answer = [&] (guint status, const std::string &json) {
      soup_server_message_set_status (msg, status, nullptr);
      soup_server_message_set_response (msg, "application/json", SOUP_MEMORY_COPY,
          json.c_str (), json.size ());
    };
    if (method == "POST" && p == "/api/v1/nodes")
      answer (201, R"({"id":"edge-1","heartbeatIntervalMs":200})");
    else if (method == "POST" && p == "/api/v1/nodes/edge-1/heartbeat")
      answer (heartbeatStatus, heartbeatStatus == 200 ? R"({"state":"active"})"
          : R"({"error":"unknown node"})");
    else if (method == "DELETE" && p == "/api/v1/nodes/edge-1")
      soup_server_message_set_status (msg, 204, nullptr);
    else if (method == "GET" && p == "/api/v1/streams/live/a/route")
      answer (200, R"({"node":"origin-1","upstream":"srt://127.0.0.1:9001"})");
    else if (method == "GET" && p == "/api/v1/streams/live/none/route")
      answer (404, R"({"error":"stream not live"})");
    else
      answer (404, R"({"error":"no such resource"})");
  }
  static void onWebsocket (SoupServer *, SoupServerMessage *, const char *,
      SoupWebsocketConnection *ws, gpointer data)
  {
    auto *self = static_cast<FakeManager *> (data);
    self->sockets_.push_back (SOUP_WEBSOCKET_CONNECTION (g_object_ref (ws)));
    std::lock_guard<std::mutex> l (self->lock_);
    self->eventConnections_++;
  }

  GMainContext *context_ = g_main_context_new ();
  GMainLoop *loop_ = g_main_loop_new (context_, FALSE);
  std::thread thread_{[this] {
    g_main_context_push_thread_default (context_);
    g_main_loop_run (loop_);
    g_main_context_pop_thread_default (context_);
  }};
  SoupServer *server_ = nullptr;                    /* manager thread */
  std::vector<SoupWebsocketConnection *> sockets_;  /* manager thread */
  std::mutex lock_;                                 /* protects the fields below */
  std::vector<Seen> seen_;
  guint heartbeatStatus_ = 200;
  int eventConnections_ = 0;
};

/* Runs the default main context until @done or @timeoutMs. */
bool
runUntil (std::function<bool ()> done, int timeoutMs)
{
  const gint64 deadline = g_get_monotonic_time () + gint64 (timeoutMs) * 1000;
  while (!done ()) {
    if (g_get_monotonic_time () > deadline)
      return false;
    g_main_context_iteration (nullptr, FALSE);
    g_usleep (1000);
  }
  return true;
}

ManagerSettings
settingsFor (int port)
{
  ManagerSettings s;
  s.url = "http://127.0.0.1:" + std::to_string (port);
  s.token = "cluster-secret";
  s.nodeId = "edge-1";
  s.role = "edge";
  s.region = "default";
  s.http = "http://127.0.0.1:8081";
  s.maxViewers = 100;
  s.requestTimeoutS = 2;
  return s;
}

int
freePort ()
{
  GSocket *s = g_socket_new (G_SOCKET_FAMILY_IPV4, G_SOCKET_TYPE_STREAM, G_SOCKET_PROTOCOL_TCP, nullptr);
  GInetAddress *lo = g_inet_address_new_loopback (G_SOCKET_FAMILY_IPV4);
  GSocketAddress *addr = g_inet_socket_address_new (lo, 0);
  g_socket_bind (s, addr, TRUE, nullptr);
  GSocketAddress *bound = g_socket_get_local_address (s, nullptr);
  int port = g_inet_socket_address_get_port (G_INET_SOCKET_ADDRESS (bound));
  g_object_unref (bound);
  g_object_unref (addr);
  g_object_unref (lo);
  g_object_unref (s);
  return port;
}

}  // namespace

TEST (ManagerClient, RegistersHeartbeatsAndSaysGoodbye)
{
  FakeManager manager;
  const int port = manager.listen ();
  int reports = 0;
  ManagerClient::Callbacks cb;
  cb.report = [&] {
    reports++;
    LoadReport r;
    r.streams.push_back ({"live/a", false, true, 2});
    return r;
  };
  auto client = std::make_unique<ManagerClient> (settingsFor (port), cb);
  client->start ();
  ASSERT_TRUE (runUntil ([&] { return manager.count ("POST", "/api/v1/nodes/edge-1/heartbeat") >= 4; }, 5000));
  EXPECT_TRUE (client->registered ());
  EXPECT_EQ (client->heartbeatIntervalMs (), 200);
  EXPECT_EQ (manager.count ("POST", "/api/v1/nodes"), 1);
  EXPECT_GE (reports, 4);
  for (const auto &auth : manager.authorizations ())
    EXPECT_EQ (auth, "Bearer cluster-secret");
  EXPECT_NE (manager.lastHeartbeat ().find ("\"pulling\":true"), std::string::npos);
  ASSERT_TRUE (runUntil ([&] { return client->eventsConnected (); }, 3000));

  client->stop ();
  EXPECT_EQ (manager.count ("DELETE", "/api/v1/nodes/edge-1"), 1);
  EXPECT_FALSE (client->registered ());
}

TEST (ManagerClient, RetriesRegistrationUntilTheManagerComes)
{
  const int port = freePort ();
  ManagerClient client (settingsFor (port), {});
  client.start ();
  /* Nobody listens: a few attempts fail (backoff 250 ms doubling). */
  runUntil ([] { return false; }, 700);
  EXPECT_FALSE (client.registered ());
  FakeManager manager;
  ASSERT_EQ (manager.listen (port), port);
  ASSERT_TRUE (runUntil ([&] { return client.registered (); }, 4000));
  EXPECT_EQ (manager.count ("POST", "/api/v1/nodes"), 1);
  client.stop ();
}

TEST (ManagerClient, RegistersAgainWhenTheManagerForgotTheNode)
{
  FakeManager manager;
  const int port = manager.listen ();
  ManagerClient client (settingsFor (port), {});
  client.start ();
  ASSERT_TRUE (runUntil ([&] { return client.registered (); }, 3000));
  manager.answerHeartbeats (404);
  ASSERT_TRUE (runUntil ([&] { return manager.count ("POST", "/api/v1/nodes") >= 2; }, 3000));
  manager.answerHeartbeats (200);
  ASSERT_TRUE (runUntil ([&] { return client.registered () && client.registrations () >= 2; }, 3000));
  client.stop ();
}

TEST (ManagerClient, ActsOnEventsAndReconnectsThem)
{
  FakeManager manager;
  const int port = manager.listen ();
  std::vector<std::string> changed, unpublished;
  std::vector<bool> draining;
  ManagerClient::Callbacks cb;
  cb.routeChanged = [&] (const std::string &s) { changed.push_back (s); };
  cb.streamUnpublished = [&] (const std::string &s) { unpublished.push_back (s); };
  cb.drainingChanged = [&] (bool d) { draining.push_back (d); };
  ManagerClient client (settingsFor (port), cb);
  client.start ();
  ASSERT_TRUE (runUntil ([&] { return client.eventsConnected (); }, 3000));

  manager.sendEvent (R"({"event":"route.changed","stream":"live/a"})");
  manager.sendEvent (R"({"event":"stream.unpublished","stream":"live/b"})");
  manager.sendEvent ("not json");
  manager.sendEvent (R"({"event":"node.draining"})");
  ASSERT_TRUE (runUntil ([&] { return client.draining (); }, 2000));
  EXPECT_EQ (changed, std::vector<std::string> ({"live/a"}));
  EXPECT_EQ (unpublished, std::vector<std::string> ({"live/b"}));
  EXPECT_EQ (draining, std::vector<bool> ({true}));

  /* The manager says active again in a heartbeat. */
  ASSERT_TRUE (runUntil ([&] { return !client.draining (); }, 2000));
  /* The manager drops the socket: the client comes back. */
  manager.closeEvents ();
  ASSERT_TRUE (runUntil ([&] { return manager.eventConnections () >= 2 && client.eventsConnected (); }, 4000));
  client.stop ();
}

TEST (ManagerClient, RouteAnswersComeFromTheLoop)
{
  FakeManager manager;
  const int port = manager.listen ();
  ManagerClient client (settingsFor (port), {});
  std::map<std::string, RouteAnswer> answers;
  for (const char *stream : {"live/a", "live/none"})
    client.route (stream, [&, stream] (const RouteAnswer &a) { answers[stream] = a; });
  EXPECT_TRUE (answers.empty ());
  ASSERT_TRUE (runUntil ([&] { return answers.size () == 2; }, 3000));
  EXPECT_EQ (answers["live/a"].status, RouteAnswer::Status::Ok);
  EXPECT_EQ (answers["live/a"].upstream, "srt://127.0.0.1:9001");
  EXPECT_EQ (answers["live/none"].status, RouteAnswer::Status::NotLive);
  EXPECT_EQ (manager.count ("GET", "/api/v1/streams/live/a/route?node=edge-1"), 1);

  ManagerClient away (settingsFor (freePort ()), {});
  bool done = false;
  RouteAnswer a;
  away.route ("live/a", [&] (const RouteAnswer &r) { a = r; done = true; });
  ASSERT_TRUE (runUntil ([&] { return done; }, 4000));
  EXPECT_EQ (a.status, RouteAnswer::Status::Unreachable);
}
