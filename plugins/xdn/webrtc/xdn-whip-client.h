/* WHIP / WHEP signalling client (RFC 9725 and the WHEP draft).
 *
 * A plain C++ class on libsoup 3 that knows nothing of GStreamer elements:
 * it POSTs an SDP offer, expects `201 Created` with the answer and a
 * `Location` for the session, and DELETEs that location when the session
 * ends. WHIP and WHEP use the same exchange; only the direction of the
 * media differs, which is the business of the SDP.
 *
 * Every call is blocking and bounded by the configured timeout. A libsoup
 * session is not thread-safe, so each call makes its own session in the
 * calling thread: call from a worker thread, never from a streaming thread
 * or from one of webrtcbin's threads. cancel() may be called from any
 * thread and makes a pending postOffer() return promptly. */
#pragma once

#include <gio/gio.h>

#include <mutex>
#include <string>

#include "xdn-gref.h"

namespace xdn {

struct WhipClientOptions {
  std::string url;                 /* WHIP or WHEP endpoint, http(s):// */
  std::string authToken;           /* sent as `Authorization: Bearer ...` when not empty */
  unsigned timeoutSeconds = 10;    /* connect and I/O timeout of the POST */
  unsigned deleteTimeoutSeconds = 3;
  size_t maxResponseBytes = 256 * 1024;
  size_t errorBodyExcerpt = 200;   /* bytes of a refusal's body quoted in the error */
};

class WhipClient {
public:
  explicit WhipClient (WhipClientOptions options);
  ~WhipClient ();

  WhipClient (const WhipClient &) = delete;
  WhipClient &operator= (const WhipClient &) = delete;

  /* POSTs @offer (Content-Type application/sdp). On `201` returns true,
   * fills @answer and remembers the session URL (the `Location`, resolved
   * against the endpoint URL). Otherwise returns false and fills @error
   * with the URL, the status, the reason and the start of the body. */
  bool postOffer (const std::string &offer, std::string *answer, std::string *error);

  /* DELETEs the session URL, if there is one, and forgets it. Returns
   * false and fills @error when the server could not be reached or did not
   * answer with a 2xx; the session is forgotten either way. */
  bool deleteSession (std::string *error);

  /* Aborts a postOffer() running in another thread. Thread-safe. */
  void cancel ();

  /* The session URL once postOffer() succeeded, else empty. Thread-safe. */
  std::string resourceUrl () const;

  const WhipClientOptions &options () const { return options_; }

private:
  WhipClientOptions options_;
  GRef<GCancellable> cancellable_;   /* cancels the POST; thread-safe itself */

  mutable std::mutex lock_;          /* protects resourceUrl_ */
  std::string resourceUrl_;
};

}  // namespace xdn
