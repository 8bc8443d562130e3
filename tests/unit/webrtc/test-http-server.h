/* A small HTTP server for the WHIP/WHEP tests: a SoupServer on 127.0.0.1
 * (random port) running in a thread and GMainContext of its own. Each
 * request is recorded and answered by a handler that runs in that thread
 * (it may block: nothing else runs there). */
#pragma once

#include <libsoup/soup.h>

#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace xdntest {

struct HttpRequest {
  std::string method;
  std::string path;
  std::string contentType;
  std::string authorization;
  std::string body;
};

struct HttpResponse {
  guint status = 201;
  std::string contentType = "application/sdp";
  std::string body;
  std::string location;   /* sent as `Location` when not empty */
  bool hang = false;      /* never answer (the message stays paused) */
};

class TestHttpServer {
public:
  using Handler = std::function<HttpResponse (const HttpRequest &)>;

  explicit TestHttpServer (Handler handler) : handler_ (std::move (handler))
  {
    thread_ = std::thread ([this] { run (); });
    std::unique_lock<std::mutex> guard (lock_);
    cond_.wait (guard, [this] { return port_ != 0 || failed_; });
  }

  ~TestHttpServer () { stop (); }

  void stop ()
  {
    if (!thread_.joinable ())
      return;
    g_main_context_invoke (context_, [] (gpointer loop) -> gboolean {
      g_main_loop_quit (static_cast<GMainLoop *> (loop));
      return G_SOURCE_REMOVE;
    }, loop_);
    thread_.join ();
  }

  guint port () const { return port_; }
  bool ok () const { return !failed_; }

  std::string url (const std::string &path) const
  {
    return "http://127.0.0.1:" + std::to_string (port_) + path;
  }

  std::vector<HttpRequest> requests () const
  {
    std::lock_guard<std::mutex> guard (lock_);
    return requests_;
  }

  /* Waits until a request with @method (and @path, if not empty) came in. */
  bool waitForRequest (const std::string &method, const std::string &path,
      std::chrono::milliseconds timeout)
  {
    std::unique_lock<std::mutex> guard (lock_);
    return cond_.wait_for (guard, timeout, [&] {
      for (const auto &r : requests_)
        if (r.method == method && (path.empty () || r.path == path))
          return true;
      return false;
    });
  }

private:
  static void onRequest (SoupServer *, SoupServerMessage *msg, const char *path,
      GHashTable *, gpointer data)
  {
    auto *self = static_cast<TestHttpServer *> (data);
    HttpRequest req;
    req.method = soup_server_message_get_method (msg);
    req.path = path;
    SoupMessageHeaders *headers = soup_server_message_get_request_headers (msg);
    const char *ct = soup_message_headers_get_content_type (headers, nullptr);
    req.contentType = ct ? ct : "";
    const char *auth = soup_message_headers_get_one (headers, "Authorization");
    req.authorization = auth ? auth : "";
    GBytes *body = soup_message_body_flatten (soup_server_message_get_request_body (msg));
    gsize size = 0;
    const char *data_ = static_cast<const char *> (g_bytes_get_data (body, &size));
    req.body.assign (data_ ? data_ : "", size);
    g_bytes_unref (body);

    HttpResponse resp = self->handler_ (req);
    {
      std::lock_guard<std::mutex> guard (self->lock_);
      self->requests_.push_back (req);
    }
    self->cond_.notify_all ();

    if (resp.hang) {
      soup_server_message_pause (msg);
      return;
    }
    soup_server_message_set_status (msg, resp.status, nullptr);
    if (!resp.location.empty ())
      soup_message_headers_replace (soup_server_message_get_response_headers (msg),
          "Location", resp.location.c_str ());
    if (!resp.body.empty ())
      soup_server_message_set_response (msg, resp.contentType.c_str (), SOUP_MEMORY_COPY,
          resp.body.data (), resp.body.size ());
  }

  void run ()
  {
    context_ = g_main_context_new ();
    g_main_context_push_thread_default (context_);
    loop_ = g_main_loop_new (context_, FALSE);
    SoupServer *server = soup_server_new (nullptr, nullptr);
    soup_server_add_handler (server, nullptr, onRequest, this, nullptr);
    GError *error = nullptr;
    GInetAddress *any = g_inet_address_new_loopback (G_SOCKET_FAMILY_IPV4);
    GSocketAddress *addr = g_inet_socket_address_new (any, 0);
    g_object_unref (any);
    gboolean listening = soup_server_listen (server, addr, (SoupServerListenOptions) 0, &error);
    g_object_unref (addr);
    {
      std::lock_guard<std::mutex> guard (lock_);
      if (listening) {
        GSList *uris = soup_server_get_uris (server);
        port_ = g_uri_get_port (static_cast<GUri *> (uris->data));
        g_slist_free_full (uris, (GDestroyNotify) g_uri_unref);
      } else {
        failed_ = true;
        g_clear_error (&error);
      }
    }
    cond_.notify_all ();
    if (listening)
      g_main_loop_run (loop_);
    soup_server_disconnect (server);
    g_object_unref (server);
    g_main_loop_unref (loop_);
    g_main_context_pop_thread_default (context_);
    g_main_context_unref (context_);
  }

  Handler handler_;
  std::thread thread_;
  GMainContext *context_ = nullptr;   /* the server thread's */
  GMainLoop *loop_ = nullptr;

  mutable std::mutex lock_;           /* protects the fields below */
  std::condition_variable cond_;
  std::vector<HttpRequest> requests_;
  guint port_ = 0;
  bool failed_ = false;
};

}  // namespace xdntest
