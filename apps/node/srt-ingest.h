/* The node's SRT listener. Two kinds of callers come to its one port:
 *
 *  - publishers (m=publish) send MPEG-TS (H.264 + AAC or Opus); each
 *    becomes a small pipeline whose RTP tracks go into an element the
 *    application provides (in the node: xdnrelaysink stream=NAME);
 *  - downstream nodes (m=request) ask for a stream; once admitted and
 *    accepted, the socket is handed to the application, which serves the
 *    stream on it (in the node: xdnrelaysrc ! xdnrelaysink socket=N). Their
 *    passphrase and latency are set per connection in the listener
 *    callback (SrtIngestSettings::request*).
 *
 * The stream is chosen by the streamid (`#!::r=live/x,m=publish,s=TOKEN`,
 * or a plain stream name to publish, see srt-streamid.h). The listener
 * callback refuses a bad streamid before the handshake completes, with an
 * SRT rejection code the caller sees:
 *
 *   1400 SRT_REJX_BAD_REQUEST   malformed streamid, invalid stream name
 *   1401 SRT_REJX_UNAUTHORIZED  m=request with a wrong token (admitRequest)
 *   1402 SRT_REJX_OVERLOAD      maxPublishers / maxRequests reached
 *   1403 SRT_REJX_FORBIDDEN     refused by Callbacks::admit (token)
 *   1404 SRT_REJX_NOTFOUND      m=request for a stream the node cannot serve
 *   1405 SRT_REJX_BAD_MODE      m=bidirectional, or a mode the node's role
 *                               does not serve (m=request without
 *                               Callbacks::admitRequest)
 *   1409 SRT_REJX_CONFLICT      the stream already has a publisher here
 *   1415 SRT_REJX_NOTSUP_MEDIA  t=file or t=auth
 *   1503 SRT_REJX_DOWN          the node is stopping or draining
 *
 * Per publisher:
 *
 *   appsrc (live, do-timestamp, bounded) ! tsdemux
 *     H.264 -> queue ! h264parse ! rtph264pay pt=96      -> sink.sink_%u
 *     AAC   -> queue ! aacparse ! avdec_aac ! audioconvert ! audioresample
 *                    ! opusenc ! rtpopuspay pt=111          -> sink.sink_%u
 *     Opus  -> queue ! opusparse ! rtpopuspay pt=111        -> sink.sink_%u
 *     other -> fakesink (logged)
 *
 * Threads: one I/O thread waits on all SRT sockets (srt_epoll), accepts,
 * reads and pushes into the appsrcs, and notices idle or failed publishers;
 * one teardown thread ends publishers (EOS, bounded wait, NULL) so a slow
 * pipeline never stalls the others. Both are joined by stop(). */
#pragma once

#include <gst/gst.h>

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

struct sockaddr;

namespace xdn {

struct SrtIngestSettings {
  std::string address = "0.0.0.0";
  int port = 9000;
  /* SRT receive latency (SRTO_RCVLATENCY), in ms. */
  int latencyMs = 120;
  /* Empty: no encryption. Otherwise 10 to 79 characters; callers must use
   * the same passphrase (SRTO_PASSPHRASE). */
  std::string passphrase;
  /* Publishers admitted at once (connected or still in the handshake). */
  int maxPublishers = 64;
  /* Downstream nodes (m=request): passphrase and latency set on each of
   * their sockets in the listener callback, in place of the ones above.
   * The passphrase is empty (no encryption) or 10 to 79 characters. */
  std::string requestPassphrase;
  int requestLatencyMs = 120;
  /* A publisher that sends nothing for this long is ended. */
  int idleTimeoutMs = 5000;
  /* A publisher without any H.264, AAC or Opus track after this long is
   * ended. */
  int trackTimeoutMs = 10000;
  /* tsdemux latency, in ms. */
  int demuxLatencyMs = 100;
  /* Upper bound of the wait for EOS to drain when a publisher ends. */
  int drainTimeoutMs = 2000;
};

/* Why connections were refused, counted for /metrics. */
struct SrtIngestRefusals {
  uint64_t badRequest = 0;   /* 1400 */
  uint64_t overload = 0;     /* 1402 */
  uint64_t forbidden = 0;    /* 1403 */
  uint64_t badMode = 0;      /* 1405 */
  uint64_t conflict = 0;     /* 1409 */
  uint64_t badType = 0;      /* 1415 */
  uint64_t notFound = 0;     /* 1404 */
  uint64_t unauthorized = 0; /* 1401 */
  uint64_t unavailable = 0;  /* 1503 */
};

struct SrtPublisherInfo {
  std::string stream;
  std::string peer;          /* "address:port" */
  uint64_t bytesReceived = 0;
  std::chrono::steady_clock::time_point since;
};

struct SrtIngestStats {
  std::vector<SrtPublisherInfo> publishers;
  uint64_t bytesReceived = 0;        /* over all publishers, ever */
  uint64_t publishersAccepted = 0;   /* ever */
  uint64_t requestsAccepted = 0;     /* m=request sockets handed over, ever */
  SrtIngestRefusals refused;
};

/* The answer to a publish request. Made from a string: "" admits, any
 * other text refuses with 1403 (forbidden) and says why. */
struct SrtAdmission {
  SrtAdmission () = default;
  SrtAdmission (std::string refusal) : reason (std::move (refusal)) {}
  SrtAdmission (const char *refusal) : reason (refusal ? refusal : "") {}
  /* Refuses with 1409: the stream is published by other means (WHIP). */
  static SrtAdmission conflict (std::string why) { return refuse (1409, std::move (why)); }
  /* Refuses with any SRT rejection code (1401, 1402, 1403, 1404, 1405,
   * 1409, 1503). */
  static SrtAdmission refuse (int code, std::string why)
  {
    SrtAdmission a (std::move (why));
    a.code = code;
    return a;
  }
  bool admitted () const { return reason.empty (); }

  std::string reason;
  int code = 1403;   /* SRT rejection code when refused */
};

class SrtIngestServer {
public:
  struct Callbacks {
    /* Decides on a publish request: returns "" to admit, else the reason
     * of the refusal (the caller sees 1403, or 1409 with
     * SrtAdmission::conflict). Called on libsrt's receiver thread during
     * the handshake, so it must answer quickly. An admitted name stays
     * reserved (later publishers of it get 1409) until onEnded has
     * returned. @token may be empty. Unset: everyone is admitted. */
    std::function<SrtAdmission (const std::string &stream, const std::string &token)> admit;
    /* Decides on an m=request from a downstream node: "" admits, else a
     * refusal with its code (SrtAdmission::refuse: 1404 unknown stream,
     * 1401 wrong token, 1402, 1405, 1503). libsrt's receiver thread, during
     * the handshake: answer quickly. Unset: m=request is refused (1405). */
    std::function<SrtAdmission (const std::string &stream, const std::string &token,
        const std::string &peer)> admitRequest;
    /* An admitted m=request connection is established: the callee owns
     * @socket (an SRTSOCKET, non-blocking for receiving as the listener)
     * from now on and must close it. I/O thread. Unset: the socket is
     * closed. */
    std::function<void (int socket, const std::string &stream, const std::string &peer)> onRequest;
    /* Builds the element that takes the stream's RTP tracks: it has
     * request sink pads "sink_%u" taking application/x-rtp. Returns a new
     * (floating or full) reference; nullptr ends the publisher. Called on
     * the I/O thread. */
    std::function<GstElement * (const std::string &stream)> makeSink;
    /* The publisher's pipeline is running. I/O thread. */
    std::function<void (const std::string &stream, const std::string &peer)> onStarted;
    /* Called exactly once for every admitted publisher, also for one whose
     * handshake never completed; the name is free again after it returns.
     * Teardown thread. */
    std::function<void (const std::string &stream, const std::string &reason)> onEnded;
  };

  SrtIngestServer (SrtIngestSettings settings, Callbacks callbacks);
  /* Stops everything, joins the threads, closes the sockets. */
  ~SrtIngestServer ();

  SrtIngestServer (const SrtIngestServer &) = delete;
  SrtIngestServer &operator= (const SrtIngestServer &) = delete;

  /* Binds and listens. On failure returns false with a sentence in @error
   * ("SRT port 9000 on 0.0.0.0 is already in use"). */
  bool start (std::string *error);
  /* Refuses new publishers, ends the current ones (onEnded is called for
   * each) and joins the threads. Idempotent. */
  void stop ();

  /* The port actually bound (useful with port 0). */
  int port () const;
  SrtIngestStats stats () const;

private:
  struct Publisher;
  struct Pending;

  static int listenCallback (void *self, int socket, int hsVersion,
      const ::sockaddr *peer, const char *streamId);
  int onConnectRequest (int socket, const ::sockaddr *peer, const char *streamId);

  void ioLoop ();
  void acceptOne ();
  void readFrom (std::shared_ptr<Publisher> publisher);
  void checkPublishers ();
  void expirePending ();
  void startPublisher (int socket, const std::string &stream, const std::string &peer);
  void endPublisher (std::shared_ptr<Publisher> publisher, std::string reason);

  void teardownLoop ();
  void finish (const std::shared_ptr<Publisher> &publisher);

  const SrtIngestSettings settings_;
  const Callbacks callbacks_;

  int listener_ = -1;       /* SRTSOCKET; set in start(), closed by the I/O thread */
  int epoll_ = -1;          /* srt_epoll id; I/O thread after start() */
  int boundPort_ = 0;
  std::thread ioThread_;
  std::thread teardownThread_;

  mutable std::mutex lock_; /* protects everything below */
  bool stopping_ = false;
  bool ioDone_ = false;       /* the I/O thread has handed over everything */
  /* Names admitted and not yet ended: pending, running or tearing down. */
  std::set<std::string> reserved_;
  /* Admitted in the listener callback, not yet returned by srt_accept. */
  std::map<int, std::shared_ptr<Pending>> pending_;
  /* Running publishers by socket; only the I/O thread changes it. */
  std::map<int, std::shared_ptr<Publisher>> publishers_;
  uint64_t bytesOfEnded_ = 0;
  uint64_t publishersAccepted_ = 0;
  uint64_t requestsAccepted_ = 0;
  SrtIngestRefusals refused_;
  /* Publishers handed to the teardown thread. */
  std::deque<std::shared_ptr<Publisher>> ending_;
  std::condition_variable endingCond_;
};

}  // namespace xdn
