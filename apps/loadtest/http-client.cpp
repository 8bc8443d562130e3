#include "http-client.h"

#include <libsoup/soup.h>
#include <pthread.h>
#include <time.h>

#include <future>

namespace xdn::loadtest {

struct HttpClient::Pending {
  HttpClient *client;
  HttpRequest request;
  Done done;
  SoupMessage *message = nullptr;
};

HttpClient::HttpClient (unsigned maxConnections, unsigned timeoutS, Deliver deliver)
    : maxConnections_ (maxConnections ? maxConnections : 1), timeoutS_ (timeoutS),
      deliver_ (std::move (deliver))
{
  context_ = g_main_context_new ();
  loop_ = g_main_loop_new (context_, FALSE);
  cancellable_ = g_cancellable_new ();
  std::promise<void> ready;
  auto started = ready.get_future ();
  thread_ = std::thread ([this, &ready] {
    g_main_context_push_thread_default (context_);
    session_ = SOUP_SESSION (g_object_new (SOUP_TYPE_SESSION,
        "max-conns", static_cast<int> (maxConnections_),
        "max-conns-per-host", static_cast<int> (maxConnections_),
        "timeout", static_cast<guint> (timeoutS_),
        "user-agent", "xdn-loadtest", NULL));
    ready.set_value ();
    run ();
  });
  started.wait ();
}

HttpClient::~HttpClient ()
{
  g_cancellable_cancel (cancellable_);
  g_main_context_invoke (context_, [] (gpointer loop) -> gboolean {
    g_main_loop_quit (static_cast<GMainLoop *> (loop));
    return G_SOURCE_REMOVE;
  }, loop_);
  if (thread_.joinable ())
    thread_.join ();
  g_object_unref (cancellable_);
  g_main_loop_unref (loop_);
  g_main_context_unref (context_);
}

void
HttpClient::run ()
{
  g_main_loop_run (loop_);
  /* Let cancelled requests finish their callbacks (they deliver nothing
   * once cancelled), then drop the session on its own thread. */
  while (g_main_context_iteration (context_, FALSE)) {
  }
  g_object_unref (session_);
  session_ = nullptr;
  while (g_main_context_iteration (context_, FALSE)) {
  }
  g_main_context_pop_thread_default (context_);
}

void
HttpClient::send (HttpRequest request, Done done)
{
  auto *p = new Pending{this, std::move (request), std::move (done)};
  g_main_context_invoke_full (context_, G_PRIORITY_DEFAULT, [] (gpointer data) -> gboolean {
    auto *p = static_cast<Pending *> (data);
    p->client->start (p);
    return G_SOURCE_REMOVE;
  }, p, nullptr);
}

void
HttpClient::start (Pending *p)
{
  if (g_cancellable_is_cancelled (cancellable_)) {
    delete p;
    return;
  }
  GError *err = nullptr;
  GUri *uri = g_uri_parse (p->request.url.c_str (), static_cast<GUriFlags> (SOUP_HTTP_URI_FLAGS), &err);
  if (uri) {
    const char *scheme = g_uri_get_scheme (uri);
    if (!scheme || (g_ascii_strcasecmp (scheme, "http") && g_ascii_strcasecmp (scheme, "https")) ||
        !g_uri_get_host (uri) || !*g_uri_get_host (uri)) {
      g_uri_unref (uri);
      uri = nullptr;
    }
  }
  if (!uri) {
    HttpResponse r;
    r.error = "bad URL '" + p->request.url + "'" + (err ? std::string (": ") + err->message : "");
    g_clear_error (&err);
    Done done = std::move (p->done);
    deliver_ ([done, r] { done (r); });
    delete p;
    return;
  }
  p->message = soup_message_new_from_uri (p->request.method.c_str (), uri);
  g_uri_unref (uri);
  SoupMessageHeaders *headers = soup_message_get_request_headers (p->message);
  if (!p->request.bearerToken.empty ())
    soup_message_headers_replace (headers, "Authorization",
        ("Bearer " + p->request.bearerToken).c_str ());
  if (p->request.method == "POST") {
    soup_message_headers_replace (headers, "Accept", "application/sdp");
    GBytes *body = g_bytes_new (p->request.body.data (), p->request.body.size ());
    soup_message_set_request_body_from_bytes (p->message, p->request.contentType.c_str (), body);
    g_bytes_unref (body);
  }
  soup_session_send_and_read_async (session_, p->message, G_PRIORITY_DEFAULT, cancellable_,
      &HttpClient::onFinished, p);
}

void
HttpClient::onFinished (GObject *source, GAsyncResult *result, gpointer data)
{
  auto *p = static_cast<Pending *> (data);
  GError *err = nullptr;
  GBytes *body = soup_session_send_and_read_finish (SOUP_SESSION (source), result, &err);
  const bool cancelled = err && g_error_matches (err, G_IO_ERROR, G_IO_ERROR_CANCELLED);
  HttpResponse r;
  if (err) {
    r.error = err->message;
    g_clear_error (&err);
  } else {
    r.status = static_cast<int> (soup_message_get_status (p->message));
    gsize size = 0;
    const char *bytes = static_cast<const char *> (g_bytes_get_data (body, &size));
    r.body.assign (bytes ? bytes : "", size);
    const char *location = soup_message_headers_get_one (
        soup_message_get_response_headers (p->message), "Location");
    if (location) {
      gchar *absolute = g_uri_resolve_relative (p->request.url.c_str (), location,
          G_URI_FLAGS_NONE, nullptr);
      r.location = absolute ? absolute : location;
      g_free (absolute);
    }
  }
  if (body)
    g_bytes_unref (body);
  g_object_unref (p->message);
  if (!cancelled) {
    Done done = std::move (p->done);
    p->client->deliver_ ([done, r] { done (r); });
  }
  delete p;
}

double
HttpClient::cpuMs () const
{
  clockid_t clock;
  if (pthread_getcpuclockid (const_cast<std::thread &> (thread_).native_handle (), &clock) != 0)
    return 0;
  timespec ts{};
  if (clock_gettime (clock, &ts) != 0)
    return 0;
  return static_cast<double> (ts.tv_sec) * 1e3 + static_cast<double> (ts.tv_nsec) / 1e6;
}

}  // namespace xdn::loadtest
