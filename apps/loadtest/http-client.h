/* The load test's HTTP client: WHEP POSTs and DELETEs on libsoup 3, run on
 * a thread of its own (its own GMainContext), so that the media thread
 * never waits for a server. Completions are handed back through @deliver,
 * which runs them on the caller's thread. */
#pragma once

#include <gio/gio.h>

#include <functional>
#include <memory>
#include <string>
#include <thread>

typedef struct _SoupSession SoupSession;

namespace xdn::loadtest {

struct HttpRequest {
  std::string method;        /* POST, DELETE */
  std::string url;
  std::string body;
  std::string contentType;
  std::string bearerToken;   /* sent as Authorization: Bearer when not empty */
};

struct HttpResponse {
  int status = 0;            /* 0: no HTTP answer (see error) */
  std::string body;
  std::string location;      /* Location header, made absolute */
  std::string error;         /* transport error: refused, timeout, bad URL */
};

class HttpClient {
public:
  using Done = std::function<void (const HttpResponse &)>;
  /* Called on the HTTP thread with a completion to run on the caller's. */
  using Deliver = std::function<void (std::function<void ()>)>;

  HttpClient (unsigned maxConnections, unsigned timeoutS, Deliver deliver);
  ~HttpClient ();
  HttpClient (const HttpClient &) = delete;
  HttpClient &operator= (const HttpClient &) = delete;

  /* Thread-safe. @done runs through deliver once the request completes or
   * fails; never after the destructor started. */
  void send (HttpRequest request, Done done);

  /* CPU time of the HTTP thread so far, milliseconds. */
  double cpuMs () const;

private:
  struct Pending;
  void run ();
  void start (Pending *p);
  static void onFinished (GObject *source, GAsyncResult *result, gpointer data);

  unsigned maxConnections_;
  unsigned timeoutS_;
  Deliver deliver_;
  GMainContext *context_ = nullptr;
  GMainLoop *loop_ = nullptr;
  GCancellable *cancellable_ = nullptr;
  SoupSession *session_ = nullptr;  /* used on the HTTP thread only */
  std::thread thread_;
};

}  // namespace xdn::loadtest
