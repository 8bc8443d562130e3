#include "xdn-relay-srt.h"

#include <srt/access_control.h>
#include <srt/srt.h>

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <map>
#include <mutex>
#include <set>
#include <thread>
#include <vector>

#include "xdn-relay-queue.h"
#include "xdn-relay-wire.h"
#include "xdn-rtp-keyframe.h"

GST_DEBUG_CATEGORY_STATIC (xdn_relay_srt_debug);
#define GST_CAT_DEFAULT xdn_relay_srt_debug

namespace xdn::relay {

namespace {

using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

constexpr int kTickMs = 100;                    /* I/O thread wakes at least this often */
constexpr auto kDescriptionInterval = 1s;       /* description repeated this often */
constexpr auto kBackoffMin = 100ms;             /* first retry after a loss or refusal */
constexpr auto kBackoffMax = 2s;
constexpr int kConnectTimeoutMs = 2000;         /* SRTO_CONNTIMEO of the caller */
constexpr int kPeerIdleTimeoutMs = 5000;        /* SRTO_PEERIDLETIMEO */
constexpr auto kSilenceTimeout = 5s;            /* caller: nothing heard (not even a description) */
constexpr int kLingerSeconds = 1;               /* a closed link still delivers what it holds */
/* After the end of the stream: the downstream side has it once the link's
 * latency is over and every packet is acknowledged (it closes the link when
 * it reads it); waited for at most this long beyond the latency. */
constexpr auto kEndDeliveryMargin = 100ms;
constexpr auto kEndDeliveryMax = 1s;
constexpr auto kCountersInterval = 1s;          /* a link's counters are read this often */
constexpr int kMaxConnections = 64;             /* listener mode */
constexpr int kListenBacklog = 16;
constexpr size_t kRecvSize = 1500;              /* one SRT payload, whatever its size */

void
ensureDebugCategory ()
{
  static gsize once = 0;
  if (g_once_init_enter (&once)) {
    GST_DEBUG_CATEGORY_INIT (xdn_relay_srt_debug, "xdnrelaysrt", 0, "OpenXDN relay over SRT");
    g_once_init_leave (&once, 1);
  }
}

std::string
srtError ()
{
  return srt_getlasterror_str ();
}

bool
isGone (SRT_SOCKSTATUS st)
{
  return st == SRTS_BROKEN || st == SRTS_CLOSING || st == SRTS_CLOSED || st == SRTS_NONEXIST;
}

std::string
formatPeer (const struct sockaddr *sa)
{
  char host[INET6_ADDRSTRLEN] = "?";
  if (sa && sa->sa_family == AF_INET) {
    auto *in = reinterpret_cast<const struct sockaddr_in *> (sa);
    inet_ntop (AF_INET, &in->sin_addr, host, sizeof host);
    return "srt://" + std::string (host) + ":" + std::to_string (ntohs (in->sin_port));
  }
  if (sa && sa->sa_family == AF_INET6) {
    auto *in6 = reinterpret_cast<const struct sockaddr_in6 *> (sa);
    inet_ntop (AF_INET6, &in6->sin6_addr, host, sizeof host);
    return "srt://[" + std::string (host) + "]:" + std::to_string (ntohs (in6->sin6_port));
  }
  return "srt://?";
}

std::string
peerOf (SRTSOCKET s)
{
  struct sockaddr_storage addr = {};
  int len = sizeof addr;
  if (srt_getpeername (s, reinterpret_cast<struct sockaddr *> (&addr), &len) != 0)
    return "srt://?";
  return formatPeer (reinterpret_cast<struct sockaddr *> (&addr));
}

/* A reject reason as a sentence: the access-control codes this project
 * uses, libsrt's own words for the others. */
std::string
rejectReasonText (int code)
{
  switch (code) {
    case SRT_REJX_BAD_REQUEST:
      return "bad streamid (1400)";
    case SRT_REJX_UNAUTHORIZED:
      return "unauthorized (1401)";
    case SRT_REJX_OVERLOAD:
      return "upstream overloaded (1402)";
    case SRT_REJX_FORBIDDEN:
      return "forbidden (1403)";
    case SRT_REJX_NOTFOUND:
      return "stream not found upstream (1404)";
    case SRT_REJX_BAD_MODE:
      return "mode not served (1405)";
    case SRT_REJX_DOWN:
      return "upstream going down (1503)";
    default:
      break;
  }
  if (code >= SRT_REJC_PREDEFINED)
    return "refused by the upstream node (" + std::to_string (code) + ")";
  const char *text = srt_rejectreason_str (code);
  return text ? text : "refused";
}

template <typename T>
bool
setFlag (SRTSOCKET s, SRT_SOCKOPT opt, const T &value)
{
  return srt_setsockflag (s, opt, &value, sizeof value) == 0;
}

/* The latency the peer plays packets with (negotiated: the larger of both
 * ends' values). */
std::chrono::milliseconds
peerLatencyOf (SRTSOCKET s)
{
  int ms = 0;
  int len = sizeof ms;
  if (srt_getsockflag (s, SRTO_PEERLATENCY, &ms, &len) != 0 || ms < 0)
    ms = 0;
  return std::chrono::milliseconds (ms);
}

size_t
payloadSizeOf (SRTSOCKET s)
{
  int size = 0;
  int len = sizeof size;
  if (srt_getsockflag (s, SRTO_PAYLOADSIZE, &size, &len) != 0 || size <= 0)
    return SRT_LIVE_DEF_PLSIZE;
  return std::min<size_t> (size, wire::kMaxPayloadSize);
}

/* Options every relay link gets (before connect, or on a listener). */
void
setLinkOptions (SRTSOCKET s, const TransportSettings &settings)
{
  const bool no = false;
  const int latency = int (std::min<guint> (settings.latencyMs, G_MAXINT));
  const int payload = SRT_LIVE_MAX_PLSIZE;
  const int idle = kPeerIdleTimeoutMs;
  if (!setFlag (s, SRTO_RCVSYN, no) || !setFlag (s, SRTO_SNDSYN, no) ||
      !setFlag (s, SRTO_LATENCY, latency) || !setFlag (s, SRTO_PEERIDLETIMEO, idle))
    throw RelayError (RelayError::Code::Network, "cannot set SRT socket options: " + srtError ());
  /* Before the payload size: a filter (FEC) takes room from the payload. The
   * caller's filter is agreed with the listener in the handshake. */
  if (!settings.packetFilter.empty () &&
      srt_setsockflag (s, SRTO_PACKETFILTER, settings.packetFilter.c_str (),
          int (settings.packetFilter.size ())) != 0)
    throw RelayError (RelayError::Code::Unsupported,
        "SRT refused packet-filter '" + settings.packetFilter + "': " + srtError ());
  /* RTP packets up to 1452 bytes travel unfragmented. Not fatal: the sender
   * reads the size back and fragments what does not fit. */
  if (!setFlag (s, SRTO_PAYLOADSIZE, payload))
    GST_DEBUG ("SRTO_PAYLOADSIZE %d refused: %s", payload, srtError ().c_str ());
  /* Sending side: a lost packet is sent again on every loss report, the
   * periodic ones included. libsrt's default (at most about once per RTT)
   * leaves some losses unrecovered at a latency of 4 x RTT and a few percent
   * of loss. Accepted sockets inherit it from the listener. */
  const int retransmit_every_report = 0;
  if (!setFlag (s, SRTO_RETRANSMITALGO, retransmit_every_report))
    GST_DEBUG ("SRTO_RETRANSMITALGO refused: %s", srtError ().c_str ());
  if (!settings.passphrase.empty () &&
      srt_setsockflag (s, SRTO_PASSPHRASE, settings.passphrase.c_str (),
          int (settings.passphrase.size ())) != 0)
    throw RelayError (RelayError::Code::Unsupported,
        "cannot set the SRT passphrase: " + srtError ());
}

/* Options of a connected link (accepted, or given by the node). */
void
setConnectedOptions (SRTSOCKET s)
{
  const bool no = false;
  struct linger lin = {1, kLingerSeconds};
  setFlag (s, SRTO_RCVSYN, no);
  setFlag (s, SRTO_SNDSYN, no);
  setFlag (s, SRTO_LINGER, lin);
}

bool
resolve (const SrtUri &uri, struct sockaddr_storage &addr, int &len, std::string &error)
{
  struct addrinfo hints = {};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_DGRAM;
  hints.ai_flags = uri.host.empty () ? AI_PASSIVE : 0;
  struct addrinfo *res = nullptr;
  const std::string port = std::to_string (uri.port);
  int rc = getaddrinfo (uri.host.empty () ? nullptr : uri.host.c_str (), port.c_str (),
      &hints, &res);
  if (rc != 0 || !res) {
    error = "cannot resolve \"" + uri.host + "\": " + gai_strerror (rc);
    return false;
  }
  /* A listener on any address prefers IPv4 (IPv6 dual-stack is not
   * guaranteed in a private network namespace). */
  struct addrinfo *pick = res;
  if (uri.host.empty ())
    for (struct addrinfo *a = res; a; a = a->ai_next)
      if (a->ai_family == AF_INET) {
        pick = a;
        break;
      }
  memcpy (&addr, pick->ai_addr, pick->ai_addrlen);
  len = int (pick->ai_addrlen);
  freeaddrinfo (res);
  return true;
}

/* The receiving side's counters of a link, for the stats and the log. */
struct LinkCounters {
  guint64 received = 0;       /* data packets, retransmissions included */
  guint64 lost = 0;           /* found missing (a gap in the sequence) */
  guint64 retransmitted = 0;  /* retransmissions received */
  guint64 dropped = 0;        /* given up on: too late to play */
};

bool
linkCounters (SRTSOCKET s, LinkCounters &out)
{
  SRT_TRACEBSTATS perf;
  if (s == SRT_INVALID_SOCK || srt_bstats (s, &perf, 0) != 0)
    return false;
  out.received = guint64 (std::max<int64_t> (perf.pktRecvTotal, 0));
  out.lost = guint64 (std::max (perf.pktRcvLossTotal, 0));
  out.retransmitted = guint64 (std::max (perf.pktRcvRetrans, 0));
  out.dropped = guint64 (std::max (perf.pktRcvDropTotal, 0));
  return true;
}

/* The sending side's counters of a link. */
struct SenderCounters {
  bool valid = false;
  gint64 sent = 0;            /* data packets, retransmissions not included */
  int reported = 0;           /* reported lost by the peer */
  int retransmitted = 0;
  int dropped = 0;            /* given up on: too late to send */
  double rttMs = 0;
};

bool
senderCounters (SRTSOCKET s, SenderCounters &out)
{
  SRT_TRACEBSTATS perf;
  if (srt_bstats (s, &perf, 0) != 0)
    return false;
  out.valid = true;
  out.sent = perf.pktSentUniqueTotal;
  out.reported = perf.pktSndLossTotal;
  out.retransmitted = perf.pktRetransTotal;
  out.dropped = perf.pktSndDropTotal;
  out.rttMs = perf.msRTT;
  return true;
}

/* The sending side's view of a link as it closes, at INFO: now, or as last
 * read (@last) when the link is broken already. */
void
logSenderCounters (const std::string &stream, const std::string &peer, SRTSOCKET s,
    SenderCounters last)
{
  senderCounters (s, last);
  if (!last.valid)
    return;
  GST_INFO ("stream %s: link to %s closes: %" G_GINT64_FORMAT " packets sent, %d reported "
      "lost, %d retransmitted, %d dropped too late to send, RTT %.1f ms", stream.c_str (),
      peer.c_str (), last.sent, last.reported, last.retransmitted, last.dropped, last.rttMs);
}

void
callLinkHandler (const LinkHandler &handler, LinkState state)
{
  GST_INFO ("link %s: %s (%s, code %d)", state.uri.c_str (), state.state.c_str (),
      state.reason.c_str (), state.rejectCode);
  if (!handler)
    return;
  try {
    handler (state);
  } catch (const std::exception &e) {
    GST_ERROR ("link handler: %s", e.what ());
  }
}

}  // namespace

/* ---------------------------------------------------------------------- */

bool
parseSrtUri (const std::string &uri, SrtUri &out, std::string &error)
{
  static const std::string scheme = "srt://";
  if (uri.compare (0, scheme.size (), scheme) != 0) {
    error = "not an srt:// uri";
    return false;
  }
  std::string rest = uri.substr (scheme.size ());
  if (rest.find_first_of ("?#") != std::string::npos) {
    error = "srt:// uri with query parameters: use the element's properties instead";
    return false;
  }
  if (!rest.empty () && rest.back () == '/')
    rest.pop_back ();
  std::string host, port;
  if (!rest.empty () && rest[0] == '[') {
    const size_t close = rest.find (']');
    if (close == std::string::npos || close + 1 >= rest.size () || rest[close + 1] != ':') {
      error = "malformed IPv6 address (srt://[ADDR]:PORT)";
      return false;
    }
    host = rest.substr (1, close - 1);
    port = rest.substr (close + 2);
  } else {
    const size_t colon = rest.rfind (':');
    if (colon == std::string::npos) {
      error = "no port (srt://HOST:PORT)";
      return false;
    }
    host = rest.substr (0, colon);
    port = rest.substr (colon + 1);
    if (host.find_first_of (":/@ ") != std::string::npos) {
      error = "malformed host \"" + host + "\"";
      return false;
    }
  }
  if (port.empty () || port.size () > 5 ||
      port.find_first_not_of ("0123456789") != std::string::npos || std::stoi (port) > 65535) {
    error = "bad port \"" + port + "\"";
    return false;
  }
  out.host = host;
  out.port = std::stoi (port);
  return true;
}

std::string
srtRequestStreamId (const std::string &stream, const std::string &token)
{
  std::string id = "#!::r=" + stream + ",m=request";
  if (!token.empty ())
    id += ",s=" + token;
  return id;
}

bool
parseSrtStreamRequest (const std::string &text, SrtStreamRequest &out)
{
  out = SrtStreamRequest ();
  static const std::string prefix = "#!::";
  if (text.compare (0, prefix.size (), prefix) != 0) {
    if (text.empty () || text.find_first_of (",=#") != std::string::npos)
      return false;
    out.resource = text;
    return true;
  }
  const std::string body = text.substr (prefix.size ());
  size_t pos = 0;
  while (pos <= body.size ()) {
    size_t comma = body.find (',', pos);
    if (comma == std::string::npos)
      comma = body.size ();
    const std::string pair = body.substr (pos, comma - pos);
    const size_t eq = pair.find ('=');
    if (eq == std::string::npos || eq == 0)
      return false;
    const std::string key = pair.substr (0, eq), value = pair.substr (eq + 1);
    if (key == "r")
      out.resource = value;
    else if (key == "m")
      out.mode = value;
    else if (key == "s")
      out.token = value;
    pos = comma + 1;
  }
  return !out.resource.empty ();
}

void
ensureSrtStarted ()
{
  struct SrtLibrary {
    SrtLibrary () { srt_startup (); }
    ~SrtLibrary () { srt_cleanup (); }
  };
  static SrtLibrary library;
  ensureDebugCategory ();
}

void
closeSrtSocket (int socket)
{
  if (socket >= 0)
    srt_close (socket);
}

/* ====================================================================== */
/* Upstream side: serves one stream to downstream connections.            */

namespace {

class SrtServe : public std::enable_shared_from_this<SrtServe> {
public:
  SrtServe (std::string stream, TransportSettings settings, KeyframeRequestHandler handler)
      : name_ (std::move (stream)), settings_ (std::move (settings)),
        handler_ (std::move (handler)),
        connections_ (std::make_shared<const ConnList> ()) {}

  ~SrtServe () { cleanup (); }

  const std::string &name () const { return name_; }

  void start ();
  void stop ();

  void setTrack (guint id, GstCaps *caps);
  bool push (guint id, GstBuffer *buffer);
  /* True when it ended the stream (StreamEnd sent). */
  bool endTrack (guint id);
  /* After the StreamEnd: waits, bounded, until every link has delivered it. */
  void waitEndDelivered ();
  StreamStats stats () const;

private:
  struct Conn {
    SRTSOCKET socket = SRT_INVALID_SOCK;
    std::string uri;            /* srt://peer, for messages */
    size_t payloadSize = SRT_LIVE_DEF_PLSIZE;
    std::chrono::milliseconds peerLatency{0};  /* the peer holds packets this long */
    SenderCounters counters;    /* I/O thread: read every second, logged at the end */

    /* Held while sending on this connection: it orders the sends (a
     * description and its fragments are never interleaved with another
     * fragmented message) and guards the fields below. Taken before
     * SrtServe::lock_ when both are. */
    std::mutex sendLock;
    std::set<guint> waitingForKeyframe;  /* video tracks held back */
    guint16 nextMessageId = 0;
    bool closed = false;

    std::atomic<bool> broken{false};     /* a send failed: the I/O thread drops it */
  };
  using ConnList = std::vector<std::shared_ptr<Conn>>;

  struct Track {
    /* SrtServe::lock_ */
    TrackKind kind = TrackKind::Other;
    VideoCodec codec = VideoCodec::Unknown;
    GRef<GstCaps> caps;
    bool ended = false;
    /* lock-free counters */
    std::atomic<guint64> packets{0};
    std::atomic<guint64> bytes{0};
    std::atomic<guint64> keyframeRequests{0};
  };

  enum class Sent { Ok, Full, Broken };

  static int listenCallback (void *opaque, SRTSOCKET ns, int hsversion,
      const struct sockaddr *peer, const char *streamid);
  int onConnectRequest (SRTSOCKET ns, const struct sockaddr *peer, const char *streamid);

  void run ();
  void cleanup ();
  void acceptOne ();
  void addConnection (const std::shared_ptr<Conn> &conn);
  void dropConnection (const std::shared_ptr<Conn> &conn, const std::string &reason);
  void readFrom (const std::shared_ptr<Conn> &conn);
  void resendDescriptions ();
  void requestKeyframe (guint id);

  /* Rebuilds description_ from tracks_; lock_ held. */
  void describeLocked ();
  std::shared_ptr<const std::vector<uint8_t>> description () const;
  Sent sendLocked (Conn &c, const uint8_t *data, size_t size);
  void sendDescriptionLocked (Conn &c);
  std::shared_ptr<const ConnList> connections () const;

  const std::string name_;
  const TransportSettings settings_;
  const KeyframeRequestHandler handler_;

  /* I/O thread after start(); start() and cleanup() before and after it. */
  SRTSOCKET listener_ = SRT_INVALID_SOCK;
  int port_ = 0;
  int epoll_ = -1;
  std::thread io_;
  std::atomic<bool> stopping_{false};
  std::mutex stopLock_;          /* serialises stop () */

  mutable std::mutex lock_;      /* protects the fields below */
  std::map<guint, std::unique_ptr<Track>> tracks_;
  std::shared_ptr<const std::vector<uint8_t>> description_;  /* header + JSON */
  /* Copy-on-write: push () takes a reference and sends without lock_. */
  std::shared_ptr<const ConnList> connections_;
  bool ended_ = false;           /* every track ended: StreamEnd sent */
  Clock::time_point endSentAt_;  /* when the StreamEnd was sent */
  /* With lock_: signalled when a connection goes or the publisher stops
   * (waitEndDelivered () waits on it). */
  std::condition_variable changed_;

  std::atomic<guint64> dropped_{0};
  std::atomic<guint64> ignored_{0};
};

void
SrtServe::start ()
{
  ensureSrtStarted ();
  epoll_ = srt_epoll_create ();
  if (epoll_ < 0)
    throw RelayError (RelayError::Code::Network, "cannot create an SRT epoll: " + srtError ());
  srt_epoll_set (epoll_, SRT_EPOLL_ENABLE_EMPTY);
  {
    std::lock_guard<std::mutex> l (lock_);
    describeLocked ();
  }

  if (settings_.socket >= 0) {
    /* The node accepted it; from here on it is ours to close. */
    auto conn = std::make_shared<Conn> ();
    conn->socket = settings_.socket;
    SRT_SOCKSTATUS st = srt_getsockstate (conn->socket);
    if (st != SRTS_CONNECTED) {
      srt_close (conn->socket);
      throw RelayError (RelayError::Code::Network, "socket " +
          std::to_string (settings_.socket) + " is not a connected SRT socket");
    }
    setConnectedOptions (conn->socket);
    conn->uri = peerOf (conn->socket);
    conn->payloadSize = payloadSizeOf (conn->socket);
    conn->peerLatency = peerLatencyOf (conn->socket);
    const int events = SRT_EPOLL_IN | SRT_EPOLL_ERR;
    if (srt_epoll_add_usock (epoll_, conn->socket, &events) != 0) {
      srt_close (conn->socket);
      throw RelayError (RelayError::Code::Network, "cannot watch the SRT socket: " + srtError ());
    }
    addConnection (conn);
  } else {
    SrtUri uri;
    std::string error;
    if (!parseSrtUri (settings_.uri, uri, error))
      throw RelayError (RelayError::Code::Unsupported, settings_.uri + ": " + error);
    struct sockaddr_storage addr = {};
    int len = 0;
    if (!resolve (uri, addr, len, error))
      throw RelayError (RelayError::Code::Network, error);
    SRTSOCKET s = srt_create_socket ();
    if (s == SRT_INVALID_SOCK)
      throw RelayError (RelayError::Code::Network, "cannot create an SRT socket: " + srtError ());
    listener_ = s;  /* closed by cleanup () from here on */
    setLinkOptions (s, settings_);
    if (srt_bind (s, reinterpret_cast<struct sockaddr *> (&addr), len) != 0)
      throw RelayError (RelayError::Code::Network, "cannot bind " + settings_.uri + ": " + srtError ());
    if (srt_listen_callback (s, &SrtServe::listenCallback, this) != 0 ||
        srt_listen (s, kListenBacklog) != 0)
      throw RelayError (RelayError::Code::Network, "cannot listen on " + settings_.uri + ": " + srtError ());
    struct sockaddr_storage bound = {};
    int boundlen = sizeof bound;
    port_ = uri.port;
    if (srt_getsockname (s, reinterpret_cast<struct sockaddr *> (&bound), &boundlen) == 0)
      port_ = ntohs (bound.ss_family == AF_INET6
          ? reinterpret_cast<struct sockaddr_in6 *> (&bound)->sin6_port
          : reinterpret_cast<struct sockaddr_in *> (&bound)->sin_port);
    const int events = SRT_EPOLL_IN | SRT_EPOLL_ERR;
    if (srt_epoll_add_usock (epoll_, s, &events) != 0)
      throw RelayError (RelayError::Code::Network, "cannot watch the SRT listener: " + srtError ());
    GST_INFO ("stream %s: serving on SRT port %d (latency %u ms, %s)", name_.c_str (), port_,
        settings_.latencyMs, settings_.passphrase.empty () ? "no passphrase" : "encrypted");
  }

  auto self = shared_from_this ();
  io_ = std::thread ([self] { self->run (); });
}

void
SrtServe::stop ()
{
  std::lock_guard<std::mutex> l (stopLock_);
  {
    std::lock_guard<std::mutex> s (lock_);
    stopping_ = true;
  }
  changed_.notify_all ();
  if (!io_.joinable ())
    return;
  /* From a handler running on the I/O thread (a sync bus handler that
   * stops the pipeline): let the thread finish on its own; it holds a
   * reference to this object. */
  if (io_.get_id () == std::this_thread::get_id ())
    io_.detach ();
  else
    io_.join ();
}

/* Closes what is still open: on the I/O thread when it ends, or in the
 * destructor when the thread never ran. */
void
SrtServe::cleanup ()
{
  /* No listener callback runs once the listener is closed. */
  if (listener_ != SRT_INVALID_SOCK) {
    srt_close (listener_);
    listener_ = SRT_INVALID_SOCK;
  }
  std::shared_ptr<const ConnList> conns;
  {
    std::lock_guard<std::mutex> l (lock_);
    conns = std::exchange (connections_, std::make_shared<const ConnList> ());
  }
  for (const auto &c : *conns) {
    {
      std::lock_guard<std::mutex> l (c->sendLock);
      c->closed = true;
    }
    if (epoll_ >= 0)
      srt_epoll_remove_usock (epoll_, c->socket);
    logSenderCounters (name_, c->uri, c->socket, c->counters);
    /* With SRTO_LINGER set, what the link holds still goes out. */
    srt_close (c->socket);
  }
  if (epoll_ >= 0) {
    srt_epoll_release (epoll_);
    epoll_ = -1;
  }
}

int
SrtServe::listenCallback (void *opaque, SRTSOCKET ns, int, const struct sockaddr *peer,
    const char *streamid)
{
  try {
    return static_cast<SrtServe *> (opaque)->onConnectRequest (ns, peer, streamid);
  } catch (...) {
    srt_setrejectreason (ns, SRT_REJX_ISE);
    return -1;
  }
}

/* libsrt's receiver thread, during the caller's handshake. */
int
SrtServe::onConnectRequest (SRTSOCKET ns, const struct sockaddr *peer, const char *streamid)
{
  const std::string who = formatPeer (peer);
  SrtStreamRequest req;
  int code = 0;
  if (!parseSrtStreamRequest (streamid ? streamid : "", req)) {
    code = SRT_REJX_BAD_REQUEST;
  } else if (req.mode != "request") {
    code = SRT_REJX_BAD_MODE;
  } else if (req.resource != name_) {
    code = SRT_REJX_NOTFOUND;
  } else if (stopping_) {
    code = SRT_REJX_DOWN;
  } else {
    std::lock_guard<std::mutex> l (lock_);
    if (ended_)
      code = SRT_REJX_NOTFOUND;
    else if (connections_->size () >= size_t (kMaxConnections))
      code = SRT_REJX_OVERLOAD;
  }
  if (code) {
    GST_INFO ("stream %s: refusing %s (streamid \"%s\"): %d", name_.c_str (), who.c_str (),
        req.resource.c_str (), code);
    srt_setrejectreason (ns, code);
    return -1;
  }
  GST_DEBUG ("stream %s: admitting %s", name_.c_str (), who.c_str ());
  return 0;
}

void
SrtServe::run ()
{
  SRT_EPOLL_EVENT events[16];
  auto lastDescription = Clock::now ();
  while (!stopping_) {
    const int n = srt_epoll_uwait (epoll_, events, 16, kTickMs);
    for (int i = 0; i < n && !stopping_; i++) {
      if (events[i].fd == listener_) {
        acceptOne ();
        continue;
      }
      std::shared_ptr<Conn> conn;
      const auto conns = connections ();  /* the list lives while it is read */
      for (const auto &c : *conns)
        if (c->socket == events[i].fd)
          conn = c;
      if (!conn)
        continue;
      if (events[i].events & SRT_EPOLL_IN)
        readFrom (conn);
      if (events[i].events & SRT_EPOLL_ERR)
        dropConnection (conn, "connection closed by the downstream node");
    }
    const auto conns = connections ();
    for (const auto &c : *conns) {
      if (c->broken)
        dropConnection (c, "send failed: connection broken");
      else if (isGone (srt_getsockstate (c->socket)))
        dropConnection (c, "connection lost");
    }
    if (Clock::now () - lastDescription >= kDescriptionInterval) {
      resendDescriptions ();
      for (const auto &c : *connections ())
        senderCounters (c->socket, c->counters);
      lastDescription = Clock::now ();
    }
  }
  cleanup ();
}

/* One connection per wakeup: the listener stays readable while more wait. */
void
SrtServe::acceptOne ()
{
  struct sockaddr_storage addr = {};
  int len = sizeof addr;
  SRTSOCKET s = srt_accept (listener_, reinterpret_cast<struct sockaddr *> (&addr), &len);
  if (s == SRT_INVALID_SOCK) {
    if (srt_getlasterror (nullptr) != SRT_EASYNCRCV)
      GST_WARNING ("stream %s: SRT accept failed: %s", name_.c_str (), srtError ().c_str ());
    return;
  }
  auto conn = std::make_shared<Conn> ();
  conn->socket = s;
  conn->uri = formatPeer (reinterpret_cast<struct sockaddr *> (&addr));
  conn->payloadSize = payloadSizeOf (s);
  conn->peerLatency = peerLatencyOf (s);
  setConnectedOptions (s);
  const int events = SRT_EPOLL_IN | SRT_EPOLL_ERR;
  if (srt_epoll_add_usock (epoll_, s, &events) != 0) {
    GST_WARNING ("stream %s: cannot watch %s: %s", name_.c_str (), conn->uri.c_str (),
        srtError ().c_str ());
    srt_close (s);
    return;
  }
  addConnection (conn);
}

void
SrtServe::addConnection (const std::shared_ptr<Conn> &conn)
{
  std::vector<guint> video;
  {
    /* The description goes first on the new link: no packet can be sent
     * on it before this lock is released. */
    std::lock_guard<std::mutex> s (conn->sendLock);
    {
      std::lock_guard<std::mutex> l (lock_);
      for (const auto &[id, t] : tracks_)
        if (!t->ended && t->codec != VideoCodec::Unknown)
          video.push_back (id);
      auto list = std::make_shared<ConnList> (*connections_);
      list->push_back (conn);
      connections_ = std::move (list);
    }
    /* A downstream node joining mid-stream starts its video on a keyframe. */
    conn->waitingForKeyframe.insert (video.begin (), video.end ());
    sendDescriptionLocked (*conn);
  }
  GST_INFO ("stream %s: downstream %s connected (payload %zu)", name_.c_str (),
      conn->uri.c_str (), conn->payloadSize);
  callLinkHandler (settings_.onLink, {conn->uri, "connected", "downstream node connected", 0});
  for (guint id : video)
    requestKeyframe (id);
}

void
SrtServe::dropConnection (const std::shared_ptr<Conn> &conn, const std::string &reason)
{
  {
    std::lock_guard<std::mutex> s (conn->sendLock);
    if (conn->closed)
      return;
    conn->closed = true;
  }
  {
    std::lock_guard<std::mutex> l (lock_);
    auto list = std::make_shared<ConnList> ();
    for (const auto &c : *connections_)
      if (c != conn)
        list->push_back (c);
    connections_ = std::move (list);
  }
  changed_.notify_all ();
  srt_epoll_remove_usock (epoll_, conn->socket);
  logSenderCounters (name_, conn->uri, conn->socket, conn->counters);
  srt_close (conn->socket);
  bool ended;
  {
    std::lock_guard<std::mutex> l (lock_);
    ended = ended_;
  }
  /* After the StreamEnd the downstream side closing is the expected end. */
  const std::string why = ended ? "the stream ended (" + reason + ")" : reason;
  GST_INFO ("stream %s: downstream %s gone: %s", name_.c_str (), conn->uri.c_str (),
      why.c_str ());
  callLinkHandler (settings_.onLink, {conn->uri, "lost", why, 0});
}

/* Keyframe requests from downstream; anything else is not for this side. */
void
SrtServe::readFrom (const std::shared_ptr<Conn> &conn)
{
  uint8_t buf[kRecvSize];
  std::vector<guint> requests;
  while (true) {
    const int n = srt_recvmsg (conn->socket, reinterpret_cast<char *> (buf), sizeof buf);
    if (n == SRT_ERROR) {
      if (srt_getlasterror (nullptr) != SRT_EASYNCRCV) {
        dropConnection (conn, "connection lost: " + srtError ());
        return;
      }
      break;
    }
    wire::Message m;
    const wire::Error e = wire::parseMessage (buf, size_t (n), m);
    if (e == wire::Error::None && m.kind == wire::Kind::KeyframeRequest) {
      if (std::find (requests.begin (), requests.end (), m.track) == requests.end ())
        requests.push_back (m.track);
    } else {
      ignored_++;
      GST_LOG ("stream %s: ignoring a message from %s (%s, kind %d)", name_.c_str (),
          conn->uri.c_str (), wire::errorName (e), n >= 2 ? buf[1] : -1);
    }
  }
  for (guint id : requests) {
    GST_DEBUG ("stream %s: keyframe request on track %u from %s", name_.c_str (), id,
        conn->uri.c_str ());
    requestKeyframe (id);
  }
}

void
SrtServe::resendDescriptions ()
{
  const auto conns = connections ();
  for (const auto &c : *conns) {
    std::lock_guard<std::mutex> s (c->sendLock);
    sendDescriptionLocked (*c);
  }
}

void
SrtServe::requestKeyframe (guint id)
{
  {
    std::lock_guard<std::mutex> l (lock_);
    auto it = tracks_.find (id);
    if (ended_ || it == tracks_.end () || it->second->ended)
      return;
    it->second->keyframeRequests.fetch_add (1, std::memory_order_relaxed);
  }
  if (!handler_)
    return;
  try {
    handler_ (id);
  } catch (const std::exception &e) {
    GST_ERROR ("stream %s: keyframe request on track %u failed: %s", name_.c_str (), id, e.what ());
  }
}

void
SrtServe::describeLocked ()
{
  std::vector<TrackDescription> list;
  for (const auto &[id, t] : tracks_) {
    if (t->ended)
      continue;
    TrackDescription d;
    d.id = id;
    d.kind = t->kind;
    d.caps = t->caps;
    list.push_back (std::move (d));
  }
  const std::string json = wire::encodeDescription (name_, list);
  auto msg = std::make_shared<std::vector<uint8_t>> (wire::kHeaderSize + json.size ());
  wire::writeHeader (msg->data (), wire::Kind::Description, 0);
  memcpy (msg->data () + wire::kHeaderSize, json.data (), json.size ());
  description_ = std::move (msg);
}

std::shared_ptr<const std::vector<uint8_t>>
SrtServe::description () const
{
  std::lock_guard<std::mutex> l (lock_);
  return description_;
}

std::shared_ptr<const SrtServe::ConnList>
SrtServe::connections () const
{
  std::lock_guard<std::mutex> l (lock_);
  return connections_;
}

/* c.sendLock held. Non-blocking: a full send buffer is Full, never a wait. */
SrtServe::Sent
SrtServe::sendLocked (Conn &c, const uint8_t *data, size_t size)
{
  if (c.closed)
    return Sent::Ok;
  auto one = [&c] (const uint8_t *d, size_t n) {
    if (srt_sendmsg2 (c.socket, reinterpret_cast<const char *> (d), int (n), nullptr) != SRT_ERROR)
      return Sent::Ok;
    if (srt_getlasterror (nullptr) == SRT_EASYNCSND)
      return Sent::Full;
    c.broken = true;
    return Sent::Broken;
  };
  if (size <= c.payloadSize)
    return one (data, size);
  Sent result = Sent::Ok;
  if (!wire::fragmentMessage (data, size, c.payloadSize, c.nextMessageId++,
          [&] (const uint8_t *d, size_t n) {
            result = one (d, n);
            return result == Sent::Ok;
          }) && result == Sent::Ok)
    GST_WARNING ("stream %s: a %zu-byte message cannot be sent (payload size %zu)",
        name_.c_str (), size, c.payloadSize);
  return result;
}

/* c.sendLock held. The newest description, read under the send lock, so
 * that a link never gets an older description after a newer one. */
void
SrtServe::sendDescriptionLocked (Conn &c)
{
  auto msg = description ();
  if (msg && sendLocked (c, msg->data (), msg->size ()) == Sent::Full)
    GST_DEBUG ("stream %s: no room for the description to %s", name_.c_str (), c.uri.c_str ());
}

void
SrtServe::setTrack (guint id, GstCaps *caps)
{
  if (id > wire::kMaxTrackId)
    throw RelayError (RelayError::Code::Unsupported, "track " + std::to_string (id) +
        ": SRT mode carries track ids up to " + std::to_string (wire::kMaxTrackId));
  std::shared_ptr<const ConnList> conns;
  {
    std::lock_guard<std::mutex> l (lock_);
    if (ended_)
      return;
    auto &t = tracks_[id];
    if (!t) {
      t = std::make_unique<Track> ();
    } else if (!t->ended && t->caps && caps && gst_caps_is_equal (t->caps.get (), caps)) {
      return;
    }
    t->ended = false;
    t->caps = GRef<GstCaps>::ref (caps);
    t->kind = trackKindFromCaps (caps);
    TrackDescription d;
    d.kind = t->kind;
    d.caps = t->caps;
    t->codec = gateCodecOf (d);
    describeLocked ();
    conns = connections_;
  }
  GST_INFO ("stream %s: track %u %" GST_PTR_FORMAT, name_.c_str (), id, caps);
  /* Now, from the streaming thread: the new caps reach every link before
   * the packets that follow them. */
  for (const auto &c : *conns) {
    std::lock_guard<std::mutex> s (c->sendLock);
    sendDescriptionLocked (*c);
  }
}

bool
SrtServe::push (guint id, GstBuffer *buffer_full)
{
  GRef<GstBuffer> buffer = adoptGRef (buffer_full);
  Track *track;
  VideoCodec codec;
  std::shared_ptr<const ConnList> conns;
  {
    std::lock_guard<std::mutex> l (lock_);
    auto it = tracks_.find (id);
    if (ended_ || it == tracks_.end () || it->second->ended)
      return false;
    track = it->second.get ();  /* tracks are never erased while published */
    codec = track->codec;
    conns = connections_;
  }
  const size_t size = gst_buffer_get_size (buffer.get ());
  track->packets.fetch_add (1, std::memory_order_relaxed);
  track->bytes.fetch_add (size, std::memory_order_relaxed);
  if (conns->empty ())
    return true;

  const bool keyframe = codec != VideoCodec::Unknown
      && rtpBufferStartsKeyframe (codec, buffer.get ());

  /* One message on the stack: header, then the packet copied out of the
   * buffer's memories (never merged). Larger packets are rare: a heap copy. */
  uint8_t small[wire::kMaxPayloadSize];
  std::vector<uint8_t> large;
  uint8_t *msg = small;
  if (wire::kHeaderSize + size > sizeof small) {
    if (wire::kHeaderSize + size > wire::kMaxMessageSize)
      return true;  /* cannot be an RTP packet of a live stream: not sent */
    large.resize (wire::kHeaderSize + size);
    msg = large.data ();
  }
  wire::writeHeader (msg, wire::Kind::Rtp, guint16 (id));
  gst_buffer_extract (buffer.get (), 0, msg + wire::kHeaderSize, size);

  bool ask = false;
  for (const auto &c : *conns) {
    std::lock_guard<std::mutex> s (c->sendLock);
    if (!c->waitingForKeyframe.empty ()) {
      auto w = c->waitingForKeyframe.find (id);
      if (w != c->waitingForKeyframe.end ()) {
        if (!keyframe)
          continue;
        c->waitingForKeyframe.erase (w);
      }
    }
    if (sendLocked (*c, msg, wire::kHeaderSize + size) == Sent::Full) {
      /* The link's send buffer is full: this packet is dropped. Video on
       * this link then waits for a keyframe rather than send what cannot
       * be decoded. */
      dropped_++;
      if (codec != VideoCodec::Unknown) {
        c->waitingForKeyframe.insert (id);
        ask = true;
      }
    }
  }
  if (ask)
    requestKeyframe (id);
  return true;
}

bool
SrtServe::endTrack (guint id)
{
  std::shared_ptr<const ConnList> conns;
  bool all_ended = true;
  {
    std::lock_guard<std::mutex> l (lock_);
    auto it = tracks_.find (id);
    if (ended_ || it == tracks_.end () || it->second->ended)
      return false;
    it->second->ended = true;
    for (const auto &t : tracks_)
      all_ended = all_ended && t.second->ended;
    ended_ = all_ended;
    endSentAt_ = Clock::now ();
    describeLocked ();
    conns = connections_;
  }
  GST_INFO ("stream %s: track %u ended%s", name_.c_str (), id,
      all_ended ? ", and with it the stream" : "");
  uint8_t msg[wire::kHeaderSize];
  for (const auto &c : *conns) {
    std::lock_guard<std::mutex> s (c->sendLock);
    wire::writeHeader (msg, wire::Kind::TrackEnd, guint16 (id));
    sendLocked (*c, msg, sizeof msg);
    sendDescriptionLocked (*c);
    if (all_ended) {
      wire::writeHeader (msg, wire::Kind::StreamEnd, 0);
      sendLocked (*c, msg, sizeof msg);
    }
  }
  return all_ended;
}

/* The downstream side plays what it receives after the link's latency, and
 * a link that closes drops what its peer still holds: the StreamEnd is
 * delivered when the peer closes the link (it does when it reads it), or,
 * should that close go unheard, once every packet of the link is
 * acknowledged and the latency is over. Non-blocking sockets do not linger
 * in srt_close (), hence this wait before the links may close. */
void
SrtServe::waitEndDelivered ()
{
  Clock::time_point sentAt;
  {
    std::lock_guard<std::mutex> l (lock_);
    if (!ended_)
      return;
    sentAt = endSentAt_;
  }
  std::chrono::milliseconds longest{0};
  for (const auto &c : *connections ())
    longest = std::max (longest, c->peerLatency);
  const auto deadline = sentAt + longest + kEndDeliveryMargin + kEndDeliveryMax;
  while (true) {
    const auto conns = connections ();
    const auto now = Clock::now ();
    size_t pending = 0;
    for (const auto &c : *conns) {
      if (c->broken || isGone (srt_getsockstate (c->socket)))
        continue;  /* nothing more will reach that peer */
      size_t blocks = 0;
      if (srt_getsndbuffer (c->socket, &blocks, nullptr) == 0 && blocks == 0 &&
          now >= sentAt + c->peerLatency + kEndDeliveryMargin)
        continue;
      pending++;
    }
    if (pending == 0)
      return;
    if (now >= deadline) {
      GST_WARNING ("stream %s: the end of the stream may not have reached %zu downstream "
          "node(s)", name_.c_str (), pending);
      return;
    }
    std::unique_lock<std::mutex> l (lock_);
    changed_.wait_for (l, 10ms, [&] { return stopping_ || connections_ != conns; });
    if (stopping_)
      return;
  }
}

StreamStats
SrtServe::stats () const
{
  std::lock_guard<std::mutex> l (lock_);
  StreamStats s;
  s.name = name_;
  s.subscribers = connections_->size ();
  s.dropped = dropped_;
  s.ignored = ignored_;
  s.port = port_;
  for (const auto &[id, t] : tracks_) {
    TrackStats ts;
    ts.id = id;
    ts.kind = t->kind;
    ts.caps = t->caps;
    if (t->caps && gst_caps_get_size (t->caps.get ()) > 0) {
      const gchar *codec = gst_structure_get_string (
          gst_caps_get_structure (t->caps.get (), 0), "encoding-name");
      ts.codec = codec ? codec : "";
    }
    ts.packets = t->packets.load (std::memory_order_relaxed);
    ts.bytes = t->bytes.load (std::memory_order_relaxed);
    ts.keyframeRequests = t->keyframeRequests.load (std::memory_order_relaxed);
    ts.ended = t->ended;
    s.tracks.push_back (std::move (ts));
  }
  return s;
}

class SrtPublisherHandle final : public StreamPublisher {
public:
  explicit SrtPublisherHandle (std::shared_ptr<SrtServe> core) : core_ (std::move (core)) {}
  ~SrtPublisherHandle () override { core_->stop (); }

  const std::string &streamName () const override { return core_->name (); }
  void setTrack (guint track, GstCaps *caps) override { core_->setTrack (track, caps); }
  bool push (guint track, GstBuffer *buffer) override { return core_->push (track, buffer); }
  void endTrack (guint track) override
  {
    if (core_->endTrack (track))
      core_->waitEndDelivered ();
  }
  void unpublish () override { core_->stop (); }
  StreamStats stats () const override { return core_->stats (); }

private:
  std::shared_ptr<SrtServe> core_;
};

}  // namespace

/* ====================================================================== */
/* Downstream side: pulls one stream, reconnecting as needed.             */

namespace {

class SrtPull : public std::enable_shared_from_this<SrtPull> {
public:
  SrtPull (std::string stream, TransportSettings settings, const SubscriptionOptions &options,
      SrtUri uri)
      : name_ (std::move (stream)), settings_ (std::move (settings)), uri_ (std::move (uri)),
        queue_ (options.maxQueue) {}

  const std::string &name () const { return name_; }
  SubscriberQueue &queue () { return queue_; }

  void start ()
  {
    ensureSrtStarted ();
    auto self = shared_from_this ();
    io_ = std::thread ([self] { self->run (); });
  }

  void stop ()
  {
    std::lock_guard<std::mutex> l (stopLock_);
    stopping_ = true;
    if (!io_.joinable ())
      return;
    if (io_.get_id () == std::this_thread::get_id ())
      io_.detach ();  /* a link handler stopping the element: see SrtServe::stop */
    else
      io_.join ();
  }

  void requestKeyframe (guint track)
  {
    if (track > wire::kMaxTrackId)
      return;
    uint8_t msg[wire::kHeaderSize];
    wire::writeHeader (msg, wire::Kind::KeyframeRequest, guint16 (track));
    std::lock_guard<std::mutex> l (sendLock_);
    if (sendSocket_ != SRT_INVALID_SOCK)
      srt_sendmsg2 (sendSocket_, reinterpret_cast<const char *> (msg), sizeof msg, nullptr);
  }

  SubscriptionStats stats () const
  {
    SubscriptionStats s = queue_.stats ();
    static const char *const names[] = {"waiting", "connecting", "connected", "ended"};
    s.link = names[int (state_.load ())];
    s.connectAttempts = connectAttempts_;
    s.connects = connects_;
    s.ignored = ignored_;
    std::lock_guard<std::mutex> l (sendLock_);
    LinkCounters now;
    linkCounters (sendSocket_, now);
    s.linkDropped = before_.dropped + now.dropped;
    s.linkLost = before_.lost + now.lost;
    s.linkRetransmitted = before_.retransmitted + now.retransmitted;
    return s;
  }

private:
  enum class State { Waiting, Connecting, Connected, Ended };

  struct KnownTrack {
    TrackDescription desc;
    VideoCodec codec = VideoCodec::Unknown;
  };

  void run ();
  void connect ();
  void onConnecting (int events);
  void onConnected ();
  void failConnect (int code, const std::string &reason);
  void lose (const std::string &reason);
  void checkConnected ();
  void readCounters ();
  void closeSocket ();
  void readAll ();
  void handleMessage (const uint8_t *data, size_t size, std::vector<guint> &requests);
  void applyDescription (const uint8_t *body, size_t size, std::vector<guint> &requests);
  void post (const char *state, const std::string &reason, int code)
  {
    callLinkHandler (settings_.onLink, {settings_.uri, state, reason, code});
  }

  const std::string name_;
  const TransportSettings settings_;
  const SrtUri uri_;
  SubscriberQueue queue_;      /* thread-safe on its own */

  std::thread io_;
  std::atomic<bool> stopping_{false};
  std::mutex stopLock_;        /* serialises stop () */
  std::atomic<State> state_{State::Waiting};
  std::atomic<guint64> connectAttempts_{0};
  std::atomic<guint64> connects_{0};
  std::atomic<guint64> ignored_{0};

  mutable std::mutex sendLock_;  /* protects sendSocket_ and before_ */
  SRTSOCKET sendSocket_ = SRT_INVALID_SOCK;  /* the connected socket, for requests */
  LinkCounters before_;                      /* counters of the links already closed */

  /* I/O thread only. */
  int epoll_ = -1;
  SRTSOCKET sock_ = SRT_INVALID_SOCK;
  bool watched_ = false;       /* sock_ is in epoll_ (while connecting) */
  std::chrono::milliseconds backoff_ = kBackoffMin;
  Clock::time_point retryAt_;
  Clock::time_point connectStart_;
  Clock::time_point lastHeard_;
  std::map<guint, KnownTrack> tracks_;
  std::vector<uint8_t> lastDescription_;     /* body of the last one applied */
  LinkCounters counters_;                    /* of the current link, as last read */
  Clock::time_point countersReadAt_;
  wire::Reassembler reassembler_;
};

void
SrtPull::run ()
{
  epoll_ = srt_epoll_create ();
  if (epoll_ < 0) {
    post ("refused", "cannot create an SRT epoll: " + srtError (), 0);
    return;
  }
  srt_epoll_set (epoll_, SRT_EPOLL_ENABLE_EMPTY);
  retryAt_ = Clock::now ();
  SRT_EPOLL_EVENT events[4];
  while (!stopping_ && state_ != State::Ended) {
    if (state_ == State::Waiting && Clock::now () >= retryAt_)
      connect ();
    if (state_ == State::Connected) {
      /* Connected: a blocking read on the link's own socket, not an SRT
       * epoll (see readAll ()). */
      readAll ();
      checkConnected ();
      continue;
    }
    int timeout = kTickMs;
    if (state_ == State::Waiting) {
      auto wait = std::chrono::duration_cast<std::chrono::milliseconds> (retryAt_ - Clock::now ());
      timeout = int (std::clamp<gint64> (wait.count (), 1, kTickMs));
    }
    const int n = srt_epoll_uwait (epoll_, events, 4, timeout);
    for (int i = 0; i < n && !stopping_; i++) {
      if (events[i].fd != sock_)
        continue;
      if (state_ == State::Connecting) {
        onConnecting (events[i].events);
      }
    }
    if (state_ == State::Connecting &&
        Clock::now () - connectStart_ > std::chrono::milliseconds (kConnectTimeoutMs) + 1s)
      failConnect (SRT_REJ_TIMEOUT, "connection timed out");
  }
  closeSocket ();
  srt_epoll_release (epoll_);
  epoll_ = -1;
}

void
SrtPull::connect ()
{
  connectAttempts_++;
  state_ = State::Connecting;
  connectStart_ = Clock::now ();
  struct sockaddr_storage addr = {};
  int len = 0;
  std::string error;
  if (!resolve (uri_, addr, len, error)) {
    failConnect (0, error);
    return;
  }
  sock_ = srt_create_socket ();
  if (sock_ == SRT_INVALID_SOCK) {
    failConnect (0, "cannot create an SRT socket: " + srtError ());
    return;
  }
  try {
    setLinkOptions (sock_, settings_);
  } catch (const RelayError &e) {
    failConnect (0, e.what ());
    return;
  }
  const std::string streamid = srtRequestStreamId (name_, settings_.token);
  const int timeout = kConnectTimeoutMs;
  if (srt_setsockflag (sock_, SRTO_STREAMID, streamid.c_str (), int (streamid.size ())) != 0 ||
      !setFlag (sock_, SRTO_CONNTIMEO, timeout)) {
    failConnect (0, "cannot set the SRT streamid: " + srtError ());
    return;
  }
  const int events = SRT_EPOLL_IN | SRT_EPOLL_OUT | SRT_EPOLL_ERR;
  if (srt_epoll_add_usock (epoll_, sock_, &events) != 0) {
    failConnect (0, "cannot watch the SRT socket: " + srtError ());
    return;
  }
  watched_ = true;
  GST_DEBUG ("stream %s: connecting to %s (attempt %" G_GUINT64_FORMAT ")", name_.c_str (),
      settings_.uri.c_str (), connectAttempts_.load ());
  if (srt_connect (sock_, reinterpret_cast<struct sockaddr *> (&addr), len) == SRT_ERROR) {
    failConnect (srt_getrejectreason (sock_), "cannot connect: " + srtError ());
    return;
  }
}

void
SrtPull::onConnecting (int events)
{
  const SRT_SOCKSTATUS st = srt_getsockstate (sock_);
  if (st == SRTS_CONNECTED) {
    onConnected ();
    return;
  }
  if ((events & SRT_EPOLL_ERR) || isGone (st)) {
    const int code = srt_getrejectreason (sock_);
    failConnect (code, rejectReasonText (code));
  }
}

void
SrtPull::onConnected ()
{
  /* From here on the socket is read blocking, at most kTickMs at a time. */
  srt_epoll_remove_usock (epoll_, sock_);
  watched_ = false;
  const bool yes = true;
  const int timeout = kTickMs;
  if (!setFlag (sock_, SRTO_RCVSYN, yes) || !setFlag (sock_, SRTO_RCVTIMEO, timeout)) {
    failConnect (0, "cannot set the SRT receive mode: " + srtError ());
    return;
  }
  state_ = State::Connected;
  backoff_ = kBackoffMin;
  lastHeard_ = Clock::now ();
  connects_++;
  reassembler_.reset ();
  lastDescription_.clear ();
  counters_ = LinkCounters ();
  countersReadAt_ = Clock::now ();
  {
    std::lock_guard<std::mutex> l (sendLock_);
    sendSocket_ = sock_;
  }
  GST_INFO ("stream %s: connected to %s", name_.c_str (), settings_.uri.c_str ());
  post ("connected", "connected to the upstream node", 0);
  /* Known video tracks wait for a keyframe after a gap: ask at once. */
  for (const auto &[id, t] : tracks_)
    if (t.codec != VideoCodec::Unknown)
      requestKeyframe (id);
}

void
SrtPull::failConnect (int code, const std::string &reason)
{
  closeSocket ();
  state_ = State::Waiting;
  retryAt_ = Clock::now () + backoff_;
  GST_INFO ("stream %s: %s refused the link: %s (code %d); retrying in %d ms", name_.c_str (),
      settings_.uri.c_str (), reason.c_str (), code, int (backoff_.count ()));
  backoff_ = std::min<std::chrono::milliseconds> (backoff_ * 2, kBackoffMax);
  post ("refused", reason, code);
}

void
SrtPull::lose (const std::string &reason)
{
  closeSocket ();
  state_ = State::Waiting;
  backoff_ = kBackoffMin;
  retryAt_ = Clock::now () + backoff_;
  backoff_ = std::min<std::chrono::milliseconds> (backoff_ * 2, kBackoffMax);
  /* Pads stay; what comes after the gap is DISCONT, video from a keyframe. */
  std::vector<guint> video;
  queue_.breakTracks (video);
  GST_WARNING ("stream %s: link to %s lost: %s", name_.c_str (), settings_.uri.c_str (),
      reason.c_str ());
  post ("lost", reason, 0);
}

/* The checks of a connected link, after each read. */
void
SrtPull::checkConnected ()
{
  if (state_ != State::Connected)
    return;
  const auto now = Clock::now ();
  if (isGone (srt_getsockstate (sock_)))
    lose ("connection lost");
  else if (now - lastHeard_ > kSilenceTimeout)
    lose ("nothing heard from the upstream node for 5 s");
  else if (now - countersReadAt_ >= kCountersInterval)
    readCounters ();
}

/* Every second while connected: the counters, should the link break before
 * it closes, and a warning for what SRT gave up on. */
void
SrtPull::readCounters ()
{
  countersReadAt_ = Clock::now ();
  LinkCounters c;
  if (!linkCounters (sock_, c))
    return;
  if (c.dropped > counters_.dropped)
    GST_WARNING ("stream %s: %" G_GUINT64_FORMAT " packet(s) from %s not recovered in time and "
        "dropped (%" G_GUINT64_FORMAT " found lost, %" G_GUINT64_FORMAT " dropped on this link "
        "so far); a larger latency leaves more time to recover them", name_.c_str (),
        c.dropped - counters_.dropped, settings_.uri.c_str (), c.lost, c.dropped);
  counters_ = c;
}

void
SrtPull::closeSocket ()
{
  if (sock_ == SRT_INVALID_SOCK)
    return;
  {
    std::lock_guard<std::mutex> l (sendLock_);
    LinkCounters c = counters_;  /* as last read, should the link be broken now */
    if (sendSocket_ != SRT_INVALID_SOCK) {
      linkCounters (sendSocket_, c);
      GST_INFO ("stream %s: link to %s closes: %" G_GUINT64_FORMAT " packets received, %"
          G_GUINT64_FORMAT " found lost, %" G_GUINT64_FORMAT " retransmissions received, %"
          G_GUINT64_FORMAT " dropped for good", name_.c_str (), settings_.uri.c_str (),
          c.received, c.lost, c.retransmitted, c.dropped);
      before_.received += c.received;
      before_.lost += c.lost;
      before_.retransmitted += c.retransmitted;
      before_.dropped += c.dropped;
    }
    sendSocket_ = SRT_INVALID_SOCK;
  }
  if (epoll_ >= 0 && watched_)
    srt_epoll_remove_usock (epoll_, sock_);
  watched_ = false;
  srt_close (sock_);
  sock_ = SRT_INVALID_SOCK;
}

/* Reads the link for at most about kTickMs. Blocking on the socket itself:
 * the thread wakes when SRT hands it a packet at its play time. libsrt's
 * epoll (1.5) would wake the thread through one process-wide condition that
 * wakes a single waiter per event, and every other SRT epoll of the process
 * (the node's listener, each served stream) waits on it too: a packet then
 * waited up to 10 ms more for the next wakeup. */
void
SrtPull::readAll ()
{
  uint8_t buf[kRecvSize];
  std::vector<guint> requests;
  const auto until = Clock::now () + std::chrono::milliseconds (kTickMs);
  while (state_ == State::Connected && !stopping_) {
    const int n = srt_recvmsg (sock_, reinterpret_cast<char *> (buf), sizeof buf);
    if (n == SRT_ERROR) {
      const int code = srt_getlasterror (nullptr);
      if (code == SRT_ECONNLOST)
        lose ("connection closed by the upstream node");
      else if (code != SRT_ETIMEOUT && code != SRT_EASYNCRCV)
        lose ("connection lost: " + srtError ());
      break;
    }
    if (n == 0)
      break;  /* woken without a message (the link closing) */
    lastHeard_ = Clock::now ();
    handleMessage (buf, size_t (n), requests);
    if (!requests.empty ()) {
      std::sort (requests.begin (), requests.end ());
      requests.erase (std::unique (requests.begin (), requests.end ()), requests.end ());
      for (guint id : requests)
        requestKeyframe (id);
      requests.clear ();
    }
    if (lastHeard_ >= until)
      break;
  }
}

void
SrtPull::handleMessage (const uint8_t *data, size_t size, std::vector<guint> &requests)
{
  wire::Message m;
  const wire::Error e = wire::parseMessage (data, size, m);
  if (e != wire::Error::None) {
    ignored_++;
    GST_LOG ("stream %s: ignoring a message (%s)", name_.c_str (), wire::errorName (e));
    return;
  }
  switch (m.kind) {
    case wire::Kind::Rtp:{
      auto it = tracks_.find (m.track);
      if (it == tracks_.end ())
        return;  /* not described yet (or ended): nothing to play it with */
      const VideoCodec codec = it->second.codec;
      const bool keyframe = codec != VideoCodec::Unknown
          && rtpPacketStartsKeyframe (codec, m.body, m.bodySize);
      GstBuffer *buf = gst_buffer_new_allocate (nullptr, m.bodySize, nullptr);
      gst_buffer_fill (buf, 0, m.body, m.bodySize);
      ClockReadings clocks;
      queue_.enqueueBuffer (m.track, buf, keyframe, clocks, requests);
      gst_buffer_unref (buf);
      break;
    }
    case wire::Kind::Description:
      applyDescription (m.body, m.bodySize, requests);
      break;
    case wire::Kind::TrackEnd:
      if (tracks_.erase (m.track)) {
        GST_INFO ("stream %s: track %u ended upstream", name_.c_str (), m.track);
        queue_.trackEnded (m.track);
      }
      break;
    case wire::Kind::StreamEnd:
      GST_INFO ("stream %s: ended upstream", name_.c_str ());
      queue_.streamEnded ();
      state_ = State::Ended;
      break;
    case wire::Kind::KeyframeRequest:
      ignored_++;  /* goes the other way */
      break;
    case wire::Kind::Fragment:{
      std::vector<uint8_t> whole;
      wire::Error fe;
      switch (reassembler_.feed (m.body, m.bodySize, whole, fe)) {
        case wire::Reassembler::Result::Complete:
          handleMessage (whole.data (), whole.size (), requests);
          break;
        case wire::Reassembler::Result::Error:
          ignored_++;
          GST_LOG ("stream %s: bad fragment (%s)", name_.c_str (), wire::errorName (fe));
          break;
        case wire::Reassembler::Result::Incomplete:
          break;
      }
      break;
    }
  }
}

void
SrtPull::applyDescription (const uint8_t *body, size_t size, std::vector<guint> &requests)
{
  /* Repeated every second: the same bytes cost a compare, not a parse. */
  if (size == lastDescription_.size () && memcmp (body, lastDescription_.data (), size) == 0)
    return;
  wire::Description d;
  std::string error;
  if (!wire::decodeDescription (reinterpret_cast<const char *> (body), size, d, error)) {
    ignored_++;
    GST_WARNING ("stream %s: bad description from %s: %s", name_.c_str (),
        settings_.uri.c_str (), error.c_str ());
    return;
  }
  if (!d.stream.empty () && d.stream != name_) {
    ignored_++;
    GST_WARNING ("stream %s: %s describes stream \"%s\"", name_.c_str (),
        settings_.uri.c_str (), d.stream.c_str ());
    return;
  }
  lastDescription_.assign (body, body + size);

  std::set<guint> present;
  std::vector<TrackDescription> added;
  for (auto &t : d.tracks) {
    present.insert (t.id);
    auto it = tracks_.find (t.id);
    if (it == tracks_.end ()) {
      added.push_back (t);
    } else if (!gst_caps_is_equal (it->second.desc.caps.get (), t.caps.get ())) {
      GST_INFO ("stream %s: track %u has new caps", name_.c_str (), t.id);
      it->second.desc = t;
      it->second.codec = gateCodecOf (t);
      queue_.trackChanged (t, false);
    }
  }
  for (auto it = tracks_.begin (); it != tracks_.end ();) {
    if (present.count (it->first)) {
      ++it;
      continue;
    }
    GST_INFO ("stream %s: track %u no longer described: ended", name_.c_str (), it->first);
    queue_.trackEnded (it->first);
    it = tracks_.erase (it);
  }
  for (size_t i = 0; i < added.size (); i++) {
    const TrackDescription &t = added[i];
    KnownTrack k;
    k.desc = t;
    k.codec = gateCodecOf (t);
    GST_INFO ("stream %s: track %u (%s) %" GST_PTR_FORMAT, name_.c_str (), t.id,
        trackKindName (t.kind), t.caps.get ());
    queue_.trackChanged (t, true, i + 1 < added.size ());
    if (k.codec != VideoCodec::Unknown)
      requests.push_back (t.id);
    tracks_[t.id] = std::move (k);
  }
}

class SrtSubscriptionHandle final : public StreamSubscription {
public:
  explicit SrtSubscriptionHandle (std::shared_ptr<SrtPull> core) : core_ (std::move (core)) {}
  ~SrtSubscriptionHandle () override
  {
    core_->stop ();
    core_->queue ().close ();
  }

  const std::string &streamName () const override { return core_->name (); }
  std::vector<TrackDescription> initialTracks () const override { return {}; }
  bool pop (RelayEvent &event) override { return core_->queue ().pop (event); }
  void setDelivery (DeliverFunction deliver) override
  {
    core_->queue ().setDelivery (std::move (deliver));
  }
  bool deliverWaiting () override { return core_->queue ().deliverWaiting (); }
  void setInterrupted (bool interrupted) override { core_->queue ().setInterrupted (interrupted); }
  void setTimeBase (GstClock *clock, GstClockTime base_time) override
  {
    core_->queue ().setTimeBase (clock, base_time);
  }
  void requestKeyframe (guint track) override { core_->requestKeyframe (track); }
  SubscriptionStats stats () const override { return core_->stats (); }

private:
  std::shared_ptr<SrtPull> core_;
};

}  // namespace

/* ====================================================================== */

SrtTransport::SrtTransport (TransportSettings settings) : settings_ (std::move (settings))
{
  ensureDebugCategory ();
}

std::unique_ptr<StreamPublisher>
SrtTransport::publish (const std::string &stream, KeyframeRequestHandler on_keyframe_request)
{
  auto core = std::make_shared<SrtServe> (stream, settings_, std::move (on_keyframe_request));
  core->start ();
  return std::make_unique<SrtPublisherHandle> (std::move (core));
}

std::unique_ptr<StreamSubscription>
SrtTransport::subscribe (const std::string &stream, const SubscriptionOptions &options)
{
  SrtUri uri;
  std::string error;
  if (!parseSrtUri (settings_.uri, uri, error))
    throw RelayError (RelayError::Code::Unsupported, settings_.uri + ": " + error);
  if (uri.host.empty ())
    throw RelayError (RelayError::Code::Unsupported,
        settings_.uri + ": xdnrelaysrc needs the upstream node's address (srt://HOST:PORT)");
  auto core = std::make_shared<SrtPull> (stream, settings_, options, uri);
  core->start ();
  return std::make_unique<SrtSubscriptionHandle> (std::move (core));
}

}  // namespace xdn::relay
