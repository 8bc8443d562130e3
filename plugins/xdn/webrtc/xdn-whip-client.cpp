#include "xdn-whip-client.h"

#include <libsoup/soup.h>

#include <utility>

namespace xdn {

namespace {

/* SOUP_HTTP_URI_FLAGS, spelled so that C++ accepts it. */
const GUriFlags kHttpUriFlags = static_cast<GUriFlags> (G_URI_FLAGS_HAS_PASSWORD
    | G_URI_FLAGS_ENCODED_PATH | G_URI_FLAGS_ENCODED_QUERY | G_URI_FLAGS_ENCODED_FRAGMENT
    | G_URI_FLAGS_SCHEME_NORMALIZE);

struct GErrorDeleter {
  void operator() (GError *e) const { g_error_free (e); }
};
using GErrorPtr = std::unique_ptr<GError, GErrorDeleter>;

/* A libsoup session for one call, made in the calling thread. */
GRef<SoupSession>
makeSession (unsigned timeoutSeconds)
{
  return adoptGRef (soup_session_new_with_options ("timeout", timeoutSeconds,
          "idle-timeout", timeoutSeconds, "user-agent", "OpenXDN-whip/" VERSION,
          NULL));
}

bool
isHttpUrl (const std::string &url)
{
  GErrorPtr err;
  GError *e = nullptr;
  GUri *uri = g_uri_parse (url.c_str (), kHttpUriFlags, &e);
  err.reset (e);
  if (!uri)
    return false;
  const char *scheme = g_uri_get_scheme (uri);
  bool ok = scheme && (g_ascii_strcasecmp (scheme, "http") == 0
      || g_ascii_strcasecmp (scheme, "https") == 0) && g_uri_get_host (uri);
  g_uri_unref (uri);
  return ok;
}

/* Sends @msg and reads at most @maxBytes of the body. */
bool
sendAndRead (SoupSession *session, SoupMessage *msg, GCancellable *cancellable,
    size_t maxBytes, std::string *body, std::string *error)
{
  GError *e = nullptr;
  GRef<GInputStream> in = adoptGRef (soup_session_send (session, msg, cancellable, &e));
  if (!in) {
    GErrorPtr err (e);
    *error = err->message;
    return false;
  }

  goffset announced = soup_message_headers_get_content_length (
      soup_message_get_response_headers (msg));
  if (announced > 0 && static_cast<guint64> (announced) > maxBytes) {
    *error = "response of " + std::to_string (announced) + " bytes is larger than the "
        + std::to_string (maxBytes) + " bytes allowed";
    g_input_stream_close (in.get (), nullptr, nullptr);
    return false;
  }

  body->clear ();
  char buf[8192];
  for (;;) {
    gssize n = g_input_stream_read (in.get (), buf, sizeof buf, cancellable, &e);
    if (n < 0) {
      GErrorPtr err (e);
      *error = std::string ("reading the response failed: ") + err->message;
      g_input_stream_close (in.get (), nullptr, nullptr);
      return false;
    }
    if (n == 0)
      break;
    if (body->size () + static_cast<size_t> (n) > maxBytes) {
      *error = "response is larger than the " + std::to_string (maxBytes) + " bytes allowed";
      g_input_stream_close (in.get (), nullptr, nullptr);
      return false;
    }
    body->append (buf, static_cast<size_t> (n));
  }
  g_input_stream_close (in.get (), nullptr, nullptr);
  return true;
}

/* The start of @body, on one line, for an error message. */
std::string
excerpt (const std::string &body, size_t max)
{
  std::string out = body.substr (0, max);
  for (auto &c : out)
    if (c == '\r' || c == '\n' || c == '\t')
      c = ' ';
    else if (static_cast<unsigned char> (c) < 0x20)
      c = '?';
  if (body.size () > max)
    out += "...";
  return out;
}

}  // namespace

WhipClient::WhipClient (WhipClientOptions options)
    : options_ (std::move (options)), cancellable_ (adoptGRef (g_cancellable_new ()))
{
}

WhipClient::~WhipClient () = default;

bool
WhipClient::postOffer (const std::string &offer, std::string *answer, std::string *error)
{
  const std::string &url = options_.url;
  if (!isHttpUrl (url)) {
    *error = "'" + url + "' is not an http(s) URL";
    return false;
  }

  GRef<SoupSession> session = makeSession (options_.timeoutSeconds);
  GRef<SoupMessage> msg = adoptGRef (soup_message_new (SOUP_METHOD_POST, url.c_str ()));
  if (!msg) {
    *error = "'" + url + "' is not a valid URL";
    return false;
  }
  GRef<GBytes> bytes = adoptGRef (g_bytes_new (offer.data (), offer.size ()));
  soup_message_set_request_body_from_bytes (msg.get (), "application/sdp", bytes.get ());
  SoupMessageHeaders *headers = soup_message_get_request_headers (msg.get ());
  soup_message_headers_replace (headers, "Accept", "application/sdp");
  if (!options_.authToken.empty ())
    soup_message_headers_replace (headers, "Authorization",
        ("Bearer " + options_.authToken).c_str ());

  std::string body, ioError;
  if (!sendAndRead (session.get (), msg.get (), cancellable_.get (),
          options_.maxResponseBytes, &body, &ioError)) {
    *error = "POST " + url + " failed: " + ioError;
    return false;
  }

  guint status = soup_message_get_status (msg.get ());
  const char *reason = soup_message_get_reason_phrase (msg.get ());
  if (status != SOUP_STATUS_CREATED) {
    *error = "POST " + url + " answered " + std::to_string (status) + " "
        + (reason ? reason : "") ;
    if (!body.empty ())
      *error += ": " + excerpt (body, options_.errorBodyExcerpt);
    return false;
  }
  if (body.empty ()) {
    *error = "POST " + url + " answered 201 without an SDP answer";
    return false;
  }

  const char *location = soup_message_headers_get_one (
      soup_message_get_response_headers (msg.get ()), "Location");
  std::string resource;
  if (location && *location) {
    GError *e = nullptr;
    char *resolved = g_uri_resolve_relative (url.c_str (), location,
        kHttpUriFlags, &e);
    if (!resolved) {
      GErrorPtr err (e);
      *error = "POST " + url + " answered with a bad Location '" + location + "': "
          + err->message;
      return false;
    }
    resource = resolved;
    g_free (resolved);
  }

  {
    std::lock_guard<std::mutex> guard (lock_);
    resourceUrl_ = resource;
  }
  *answer = std::move (body);
  return true;
}

bool
WhipClient::deleteSession (std::string *error)
{
  std::string url;
  {
    std::lock_guard<std::mutex> guard (lock_);
    url = std::exchange (resourceUrl_, std::string ());
  }
  if (url.empty ())
    return true;

  GRef<SoupSession> session = makeSession (options_.deleteTimeoutSeconds);
  GRef<SoupMessage> msg = adoptGRef (soup_message_new (SOUP_METHOD_DELETE, url.c_str ()));
  if (!msg) {
    *error = "'" + url + "' is not a valid URL";
    return false;
  }
  if (!options_.authToken.empty ())
    soup_message_headers_replace (soup_message_get_request_headers (msg.get ()),
        "Authorization", ("Bearer " + options_.authToken).c_str ());

  /* Not cancellable: a stop must still end the session on the server. */
  std::string body, ioError;
  if (!sendAndRead (session.get (), msg.get (), nullptr, options_.maxResponseBytes,
          &body, &ioError)) {
    *error = "DELETE " + url + " failed: " + ioError;
    return false;
  }
  guint status = soup_message_get_status (msg.get ());
  if (!SOUP_STATUS_IS_SUCCESSFUL (status)) {
    const char *reason = soup_message_get_reason_phrase (msg.get ());
    *error = "DELETE " + url + " answered " + std::to_string (status) + " "
        + (reason ? reason : "");
    return false;
  }
  return true;
}

void
WhipClient::cancel ()
{
  g_cancellable_cancel (cancellable_.get ());
}

std::string
WhipClient::resourceUrl () const
{
  std::lock_guard<std::mutex> guard (lock_);
  return resourceUrl_;
}

}  // namespace xdn
