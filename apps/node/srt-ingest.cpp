#include "srt-ingest.h"

#include "log.h"
#include "srt-streamid.h"
#include "xdn-gref.h"

#include <gst/app/gstappsrc.h>
#include <srt/access_control.h>
#include <srt/srt.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include <atomic>
#include <cerrno>

GST_DEBUG_CATEGORY_STATIC (xdn_srt_ingest_debug);
#define GST_CAT_DEFAULT xdn_srt_ingest_debug

namespace xdn {

namespace {

using Clock = std::chrono::steady_clock;

constexpr int kPayloadTypeH264 = 96;
constexpr int kPayloadTypeOpus = 111;
/* One SRT live message carries at most 1456 bytes (1316 = 7 TS packets
 * from every common sender). */
constexpr int kMaxSrtMessage = 1500;
/* Bytes read from one socket per wakeup and pushed as one buffer. */
constexpr size_t kReadChunk = 64 * 1024;
/* Bytes the appsrc holds before it drops the oldest. */
constexpr guint64 kAppSrcMaxBytes = 4 * 1024 * 1024;
/* Time a publisher admitted by the listener callback may take to come out
 * of srt_accept (the rest of the handshake, e.g. the passphrase check). */
constexpr auto kPendingTimeout = std::chrono::seconds (5);
constexpr int kEpollTickMs = 100;
constexpr int kMaxEvents = 64;

/* libsrt is started once per process and stays up until exit; GStreamer's
 * srt plugin in the same process shares it (libsrt counts the calls). */
void
ensureSrtStarted ()
{
  struct SrtLibrary {
    SrtLibrary () { srt_startup (); }
    ~SrtLibrary () { srt_cleanup (); }
  };
  static SrtLibrary library;
}

std::string
formatPeer (const struct sockaddr *sa)
{
  if (!sa)
    return "?";
  char host[INET6_ADDRSTRLEN] = "?";
  int port = 0;
  if (sa->sa_family == AF_INET) {
    auto *in = reinterpret_cast<const struct sockaddr_in *> (sa);
    inet_ntop (AF_INET, &in->sin_addr, host, sizeof host);
    port = ntohs (in->sin_port);
    return std::string (host) + ":" + std::to_string (port);
  }
  if (sa->sa_family == AF_INET6) {
    auto *in6 = reinterpret_cast<const struct sockaddr_in6 *> (sa);
    inet_ntop (AF_INET6, &in6->sin6_addr, host, sizeof host);
    port = ntohs (in6->sin6_port);
    return "[" + std::string (host) + "]:" + std::to_string (port);
  }
  return "?";
}

std::string
srtError ()
{
  return srt_getlasterror_str ();
}

GstElement *
makeElement (const char *factory, const std::string &stream)
{
  GstElement *e = gst_element_factory_make (factory, nullptr);
  if (!e)
    GST_ERROR ("stream %s: element %s is missing (GStreamer plugin not installed)",
        stream.c_str (), factory);
  return e;
}

}  // namespace

/* Admitted by the listener callback, waiting to come out of srt_accept. */
struct SrtIngestServer::Pending {
  std::string stream;
  std::string peer;
  Clock::time_point since;
  bool request = false;  /* m=request: handed to onRequest, no name reserved */
};

/* One publisher: its socket (I/O thread) and its pipeline. */
struct SrtIngestServer::Publisher {
  int socket = SRT_INVALID_SOCK;
  std::string stream;
  std::string peer;
  Clock::time_point since = Clock::now ();

  /* Set while building, then read-only until the teardown thread drops
   * them after the pipeline is in NULL. */
  GRef<GstElement> pipeline;
  GRef<GstElement> appsrc;
  GRef<GstElement> sink;

  /* I/O thread only. */
  Clock::time_point lastData = Clock::now ();
  std::string endReason;
  bool drain = false;

  std::atomic<uint64_t> bytes{0};
  std::atomic<bool> failed{false};

  /* Held while a branch is built and brought to PLAYING, and while the
   * teardown marks the pipeline as going down: a branch is either complete
   * before the pipeline goes to NULL (and goes down with it) or never
   * built. Separate from @lock because bringing a branch up may post an
   * error message synchronously. */
  std::mutex buildLock;
  bool tearingDown = false;     /* protected by buildLock */

  std::mutex lock;              /* protects the fields below */
  std::condition_variable cond; /* eos or failed changed */
  bool eos = false;
  std::string failure;          /* first pipeline error */
  int usableTracks = 0;
  std::vector<GRef<GstPad>> sinkPads;  /* requested from sink */

  static GstBusSyncReply onBusMessage (GstBus *bus, GstMessage *msg, gpointer data);
  static void onPadAdded (GstElement *demux, GstPad *pad, gpointer data);
  void linkTrack (GstPad *pad);
};

GstBusSyncReply
SrtIngestServer::Publisher::onBusMessage (GstBus *, GstMessage *msg, gpointer data)
{
  auto *self = static_cast<Publisher *> (data);
  switch (GST_MESSAGE_TYPE (msg)) {
    case GST_MESSAGE_ERROR: {
      GError *err = nullptr;
      gchar *dbg = nullptr;
      gst_message_parse_error (msg, &err, &dbg);
      GST_WARNING ("stream %s from %s: pipeline error from %s: %s (%s)",
          self->stream.c_str (), self->peer.c_str (), GST_MESSAGE_SRC_NAME (msg),
          err->message, dbg ? dbg : "");
      log (LogLevel::Warning, "srt.publish.error", {{"stream", self->stream},
          {"peer", self->peer}, {"element", GST_MESSAGE_SRC_NAME (msg)}, {"error", err->message}});
      {
        std::lock_guard<std::mutex> guard (self->lock);
        if (self->failure.empty ())
          self->failure = std::string ("pipeline error: ") + err->message;
      }
      self->failed = true;
      self->cond.notify_all ();
      g_clear_error (&err);
      g_free (dbg);
      break;
    }
    case GST_MESSAGE_WARNING: {
      GError *err = nullptr;
      gst_message_parse_warning (msg, &err, nullptr);
      GST_WARNING ("stream %s: %s: %s", self->stream.c_str (),
          GST_MESSAGE_SRC_NAME (msg), err->message);
      g_clear_error (&err);
      break;
    }
    case GST_MESSAGE_EOS: {
      std::lock_guard<std::mutex> guard (self->lock);
      self->eos = true;
      self->cond.notify_all ();
      break;
    }
    default:
      break;
  }
  /* Dropped here, so ours to unref: a message kept would keep its source
   * element (and the publisher's pipeline) alive. */
  gst_message_unref (msg);
  return GST_BUS_DROP;
}

void
SrtIngestServer::Publisher::onPadAdded (GstElement *, GstPad *pad, gpointer data)
{
  auto *self = static_cast<Publisher *> (data);
  std::lock_guard<std::mutex> guard (self->buildLock);
  if (self->tearingDown) {
    GST_DEBUG ("stream %s: not linking %s, tearing down", self->stream.c_str (), GST_PAD_NAME (pad));
    return;
  }
  self->linkTrack (pad);
}

/* Streaming thread of tsdemux: one branch per elementary stream, ending in
 * a request pad of the sink. */
void
SrtIngestServer::Publisher::linkTrack (GstPad *pad)
{
  GRef<GstCaps> caps = adoptGRef (gst_pad_get_current_caps (pad));
  if (!caps)
    caps = adoptGRef (gst_pad_query_caps (pad, nullptr));
  GUniquePtr<gchar> capsText (gst_caps_to_string (caps.get ()));
  const GstStructure *s = gst_caps_get_size (caps.get ()) > 0
      ? gst_caps_get_structure (caps.get (), 0) : nullptr;
  const std::string media = s ? gst_structure_get_name (s) : "";
  int mpegversion = 0;
  if (s)
    gst_structure_get_int (s, "mpegversion", &mpegversion);

  std::vector<const char *> chain;
  const char *kind = nullptr;
  if (media == "video/x-h264") {
    chain = {"queue", "h264parse", "rtph264pay"};
    kind = "H.264";
  } else if (media == "audio/mpeg" && (mpegversion == 2 || mpegversion == 4)) {
    chain = {"queue", "aacparse", "avdec_aac", "audioconvert", "audioresample",
        "capsfilter", "opusenc", "rtpopuspay"};
    kind = "AAC (to Opus)";
  } else if (media == "audio/x-opus") {
    chain = {"queue", "opusparse", "rtpopuspay"};
    kind = "Opus";
  }

  GstBin *bin = GST_BIN (pipeline.get ());
  if (!kind) {
    log (LogLevel::Warning, "srt.track.ignored", {{"stream", stream},
        {"track", GST_PAD_NAME (pad)}, {"caps", capsText.get ()},
        {"reason", "not H.264, AAC or Opus"}});
    GstElement *fakesink = gst_element_factory_make ("fakesink", nullptr);
    g_object_set (fakesink, "sync", FALSE, "async", FALSE, nullptr);
    gst_bin_add (bin, fakesink);
    gst_element_sync_state_with_parent (fakesink);
    GRef<GstPad> sinkpad = adoptGRef (gst_element_get_static_pad (fakesink, "sink"));
    gst_pad_link (pad, sinkpad.get ());
    return;
  }

  std::vector<GstElement *> elements;
  for (const char *factory : chain) {
    GstElement *e = makeElement (factory, stream);
    if (!e) {
      for (GstElement *made : elements)
        gst_object_unref (made);
      std::lock_guard<std::mutex> guard (lock);
      if (failure.empty ())
        failure = std::string ("cannot build the ") + kind + " branch: " + factory + " is missing";
      failed = true;
      return;
    }
    elements.push_back (e);
  }

  for (GstElement *e : elements) {
    const std::string factory = GST_OBJECT_NAME (gst_element_get_factory (e));
    if (factory == "queue") {
      /* Small and leaky: a stalled branch never blocks the demuxer. */
      g_object_set (e, "max-size-buffers", 0, "max-size-bytes", 0,
          "max-size-time", (guint64) 500 * GST_MSECOND, nullptr);
      gst_util_set_object_arg (G_OBJECT (e), "leaky", "downstream");
    } else if (factory == "h264parse") {
      g_object_set (e, "config-interval", -1, nullptr);
    } else if (factory == "rtph264pay") {
      g_object_set (e, "config-interval", -1, "pt", kPayloadTypeH264, nullptr);
      gst_util_set_object_arg (G_OBJECT (e), "aggregate-mode", "zero-latency");
    } else if (factory == "capsfilter") {
      GRef<GstCaps> rate = adoptGRef (gst_caps_from_string ("audio/x-raw,rate=48000"));
      g_object_set (e, "caps", rate.get (), nullptr);
    } else if (factory == "rtpopuspay") {
      g_object_set (e, "pt", kPayloadTypeOpus, nullptr);
    }
    gst_bin_add (bin, e);
  }
  for (size_t i = 0; i + 1 < elements.size (); i++) {
    if (!gst_element_link (elements[i], elements[i + 1])) {
      std::lock_guard<std::mutex> guard (lock);
      if (failure.empty ())
        failure = std::string ("cannot link the ") + kind + " branch";
      failed = true;
      return;
    }
  }

  GRef<GstPad> sinkpad = adoptGRef (gst_element_request_pad_simple (sink.get (), "sink_%u"));
  GRef<GstPad> paysrc = adoptGRef (gst_element_get_static_pad (elements.back (), "src"));
  if (!sinkpad || gst_pad_link (paysrc.get (), sinkpad.get ()) != GST_PAD_LINK_OK) {
    std::lock_guard<std::mutex> guard (lock);
    if (failure.empty ())
      failure = std::string ("the sink refused the ") + kind + " track";
    failed = true;
    return;
  }
  for (auto it = elements.rbegin (); it != elements.rend (); ++it)
    gst_element_sync_state_with_parent (*it);

  GRef<GstPad> queuesink = adoptGRef (gst_element_get_static_pad (elements.front (), "sink"));
  if (gst_pad_link (pad, queuesink.get ()) != GST_PAD_LINK_OK) {
    std::lock_guard<std::mutex> guard (lock);
    if (failure.empty ())
      failure = std::string ("cannot link the demuxer to the ") + kind + " branch";
    failed = true;
    return;
  }

  GST_INFO ("stream %s: %s track %s -> %s:%s", stream.c_str (), kind,
      GST_PAD_NAME (pad), GST_OBJECT_NAME (sink.get ()), GST_PAD_NAME (sinkpad.get ()));
  std::lock_guard<std::mutex> guard (lock);
  usableTracks++;
  sinkPads.push_back (std::move (sinkpad));
}

SrtIngestServer::SrtIngestServer (SrtIngestSettings settings, Callbacks callbacks)
    : settings_ (std::move (settings)), callbacks_ (std::move (callbacks))
{
  static std::once_flag debugOnce;
  std::call_once (debugOnce, [] {
    GST_DEBUG_CATEGORY_INIT (xdn_srt_ingest_debug, "xdnsrtingest", 0, "SRT ingest server");
  });
}

SrtIngestServer::~SrtIngestServer ()
{
  stop ();
}

bool
SrtIngestServer::start (std::string *error)
{
  auto failWith = [&] (const std::string &text) {
    GST_ERROR ("%s", text.c_str ());
    if (error)
      *error = text;
    return false;
  };

  if (ioThread_.joinable ())
    return failWith ("the SRT ingest server is already started");
  const size_t plen = settings_.passphrase.size ();
  if (plen != 0 && (plen < 10 || plen > 79))
    return failWith ("the SRT passphrase must be 10 to 79 characters long (it has "
        + std::to_string (plen) + ")");
  const size_t rlen = settings_.requestPassphrase.size ();
  if (rlen != 0 && (rlen < 10 || rlen > 79))
    return failWith ("the relay passphrase must be 10 to 79 characters long (it has "
        + std::to_string (rlen) + ")");
  if (settings_.port < 0 || settings_.port > 65535)
    return failWith ("SRT port " + std::to_string (settings_.port) + " is out of range");
  if (settings_.latencyMs < 0 || settings_.maxPublishers < 1)
    return failWith ("SRT latency must be >= 0 and max publishers >= 1");

  struct sockaddr_storage addr = {};
  socklen_t addrlen = 0;
  auto *in4 = reinterpret_cast<struct sockaddr_in *> (&addr);
  auto *in6 = reinterpret_cast<struct sockaddr_in6 *> (&addr);
  bool v6 = false;
  if (inet_pton (AF_INET, settings_.address.c_str (), &in4->sin_addr) == 1) {
    in4->sin_family = AF_INET;
    in4->sin_port = htons (settings_.port);
    addrlen = sizeof *in4;
  } else if (inet_pton (AF_INET6, settings_.address.c_str (), &in6->sin6_addr) == 1) {
    in6->sin6_family = AF_INET6;
    in6->sin6_port = htons (settings_.port);
    addrlen = sizeof *in6;
    v6 = true;
  } else {
    return failWith ("SRT listen address '" + settings_.address + "' is not an IP address");
  }

  ensureSrtStarted ();
  const std::string where = "SRT port " + std::to_string (settings_.port) + " on " + settings_.address;

  SRTSOCKET s = srt_create_socket ();
  if (s == SRT_INVALID_SOCK)
    return failWith ("cannot create an SRT socket: " + srtError ());
  auto closeAndFail = [&] (const std::string &text) {
    srt_close (s);
    return failWith (text);
  };

  const bool no = false;
  const int latency = settings_.latencyMs;
  if (srt_setsockflag (s, SRTO_RCVSYN, &no, sizeof no) != 0 ||
      srt_setsockflag (s, SRTO_REUSEADDR, &no, sizeof no) != 0 ||
      srt_setsockflag (s, SRTO_LATENCY, &latency, sizeof latency) != 0)
    return closeAndFail ("cannot set SRT socket options: " + srtError ());
  if (v6) {
    const int v6only = 0;
    srt_setsockflag (s, SRTO_IPV6ONLY, &v6only, sizeof v6only);
  }
  if (plen != 0 &&
      srt_setsockflag (s, SRTO_PASSPHRASE, settings_.passphrase.c_str (), (int) plen) != 0)
    return closeAndFail ("cannot set the SRT passphrase: " + srtError ());

  if (srt_bind (s, reinterpret_cast<struct sockaddr *> (&addr), addrlen) != 0) {
    int sysError = 0;
    const int code = srt_getlasterror (&sysError);
    const bool inUse = code == SRT_EDUPLISTEN || code == SRT_EBINDCONFLICT || sysError == EADDRINUSE;
    return closeAndFail (where + (inUse ? " is already in use" : " cannot be bound")
        + ": " + srtError ());
  }
  if (srt_listen_callback (s, &SrtIngestServer::listenCallback, this) != 0)
    return closeAndFail ("cannot install the SRT listener callback: " + srtError ());
  if (srt_listen (s, settings_.maxPublishers) != 0) {
    const bool inUse = srt_getlasterror (nullptr) == SRT_EDUPLISTEN;
    return closeAndFail (where + (inUse ? " is already in use" : ": cannot listen")
        + ": " + srtError ());
  }

  struct sockaddr_storage bound = {};
  int boundlen = sizeof bound;
  boundPort_ = settings_.port;
  if (srt_getsockname (s, reinterpret_cast<struct sockaddr *> (&bound), &boundlen) == 0) {
    boundPort_ = ntohs (bound.ss_family == AF_INET6
        ? reinterpret_cast<struct sockaddr_in6 *> (&bound)->sin6_port
        : reinterpret_cast<struct sockaddr_in *> (&bound)->sin_port);
  }

  int eid = srt_epoll_create ();
  const int events = SRT_EPOLL_IN | SRT_EPOLL_ERR;
  if (eid < 0 || srt_epoll_add_usock (eid, s, &events) != 0) {
    if (eid >= 0)
      srt_epoll_release (eid);
    return closeAndFail ("cannot create the SRT epoll: " + srtError ());
  }

  listener_ = s;
  epoll_ = eid;
  {
    std::lock_guard<std::mutex> guard (lock_);
    stopping_ = false;
    ioDone_ = false;
  }
  teardownThread_ = std::thread (&SrtIngestServer::teardownLoop, this);
  ioThread_ = std::thread (&SrtIngestServer::ioLoop, this);
  GST_INFO ("SRT ingest listening on %s:%d (latency %d ms, %s)", settings_.address.c_str (),
      boundPort_, settings_.latencyMs, plen ? "encrypted" : "no passphrase");
  return true;
}

void
SrtIngestServer::stop ()
{
  {
    std::lock_guard<std::mutex> guard (lock_);
    stopping_ = true;
  }
  if (ioThread_.joinable ())
    ioThread_.join ();
  endingCond_.notify_all ();
  if (teardownThread_.joinable ())
    teardownThread_.join ();
}

int
SrtIngestServer::port () const
{
  return boundPort_;
}

SrtIngestStats
SrtIngestServer::stats () const
{
  SrtIngestStats out;
  std::lock_guard<std::mutex> guard (lock_);
  out.bytesReceived = bytesOfEnded_;
  for (const auto &[socket, p] : publishers_) {
    SrtPublisherInfo info;
    info.stream = p->stream;
    info.peer = p->peer;
    info.bytesReceived = p->bytes;
    info.since = p->since;
    out.bytesReceived += info.bytesReceived;
    out.publishers.push_back (std::move (info));
  }
  out.publishersAccepted = publishersAccepted_;
  out.requestsAccepted = requestsAccepted_;
  out.refused = refused_;
  return out;
}

int
SrtIngestServer::listenCallback (void *self, SRTSOCKET socket, int,
    const struct sockaddr *peer, const char *streamId)
{
  try {
    return static_cast<SrtIngestServer *> (self)->onConnectRequest (socket, peer, streamId);
  } catch (const std::exception &e) {
    GST_ERROR ("refusing SRT caller: %s", e.what ());
  } catch (...) {
    GST_ERROR ("refusing SRT caller: unknown exception");
  }
  srt_setrejectreason (socket, SRT_REJX_ISE);
  return -1;
}

/* libsrt's receiver thread, before the handshake completes. */
int
SrtIngestServer::onConnectRequest (SRTSOCKET socket, const struct sockaddr *peerAddr,
    const char *streamIdText)
{
  const std::string peer = formatPeer (peerAddr);
  const std::string raw = streamIdText ? streamIdText : "";
  SrtStreamId id;
  auto refuse = [&] (int code, uint64_t SrtIngestRefusals::*counter, const std::string &why) {
    {
      std::lock_guard<std::mutex> guard (lock_);
      refused_.*counter += 1;
    }
    GUniquePtr<gchar> shown (g_strescape (redactSrtStreamId (raw.substr (0, 160)).c_str (), nullptr));
    log (LogLevel::Warning, id.mode == SrtStreamId::Mode::Request ? "srt.request.refused"
        : "srt.publish.refused", {{"peer", peer},
        {"streamid", shown.get ()}, {"code", std::to_string (code)}, {"reason", why}});
    srt_setrejectreason (socket, code);
    return -1;
  };
  /* A refusal from a callback, counted by its code. */
  auto refuseWith = [&] (const SrtAdmission &answer, const std::string &why) {
    switch (answer.code) {
      case SRT_REJX_CONFLICT: return refuse (answer.code, &SrtIngestRefusals::conflict, why);
      case SRT_REJX_NOTFOUND: return refuse (answer.code, &SrtIngestRefusals::notFound, why);
      case SRT_REJX_BAD_MODE: return refuse (answer.code, &SrtIngestRefusals::badMode, why);
      case SRT_REJX_OVERLOAD: return refuse (answer.code, &SrtIngestRefusals::overload, why);
      case SRT_REJX_UNAUTHORIZED: return refuse (answer.code, &SrtIngestRefusals::unauthorized, why);
      case SRT_REJX_DOWN: return refuse (answer.code, &SrtIngestRefusals::unavailable, why);
      default: return refuse (SRT_REJX_FORBIDDEN, &SrtIngestRefusals::forbidden, why);
    }
  };

  if (SrtStreamIdError e = parseSrtStreamId (raw, &id)) {
    switch (e.kind) {
      case SrtStreamIdError::Kind::UnsupportedMode:
        return refuse (SRT_REJX_BAD_MODE, &SrtIngestRefusals::badMode, e.reason);
      case SrtStreamIdError::Kind::UnsupportedType:
        return refuse (SRT_REJX_NOTSUP_MEDIA, &SrtIngestRefusals::badType, e.reason);
      default:
        return refuse (SRT_REJX_BAD_REQUEST, &SrtIngestRefusals::badRequest, e.reason);
    }
  }

  /* A downstream node asks for a stream: the application decides, nothing
   * is reserved, and the socket gets the relay passphrase and latency. */
  if (id.mode == SrtStreamId::Mode::Request) {
    {
      std::lock_guard<std::mutex> guard (lock_);
      if (stopping_) {
        srt_setrejectreason (socket, SRT_REJX_DOWN);
        return -1;
      }
    }
    if (!callbacks_.admitRequest)
      return refuse (SRT_REJX_BAD_MODE, &SrtIngestRefusals::badMode,
          "m=request is not served here; use m=publish");
    SrtAdmission answer;
    try {
      answer = callbacks_.admitRequest (id.resource, id.token, peer);
    } catch (const std::exception &e) {
      answer = SrtAdmission::refuse (SRT_REJX_ISE, std::string ("admission failed: ") + e.what ());
    } catch (...) {
      answer = SrtAdmission::refuse (SRT_REJX_ISE, "admission failed");
    }
    if (!answer.admitted ())
      return refuseWith (answer, "stream '" + id.resource + "': " + answer.reason);

    const std::string &pass = settings_.requestPassphrase;
    if (pass != settings_.passphrase &&
        srt_setsockflag (socket, SRTO_PASSPHRASE, pass.c_str (), (int) pass.size ()) != 0) {
      GST_ERROR ("cannot set the relay passphrase on the socket of %s: %s", peer.c_str (),
          srtError ().c_str ());
      srt_setrejectreason (socket, SRT_REJX_ISE);
      return -1;
    }
    const int latency = settings_.requestLatencyMs;
    if (latency != settings_.latencyMs &&
        srt_setsockflag (socket, SRTO_LATENCY, &latency, sizeof latency) != 0)
      GST_WARNING ("cannot set the relay latency on the socket of %s: %s", peer.c_str (),
          srtError ().c_str ());
    /* A downstream node's link: resend a lost packet on every loss report,
     * as xdnrelaysink does on its own sockets (libsrt's default, at most
     * once per RTT, leaves losses unrecovered at a latency of 4 x RTT). */
    const int retransmit_every_report = 0;
    if (srt_setsockflag (socket, SRTO_RETRANSMITALGO, &retransmit_every_report,
            sizeof retransmit_every_report) != 0)
      GST_WARNING ("cannot set SRTO_RETRANSMITALGO on the socket of %s: %s", peer.c_str (),
          srtError ().c_str ());

    auto pending = std::make_shared<Pending> ();
    pending->stream = id.resource;
    pending->peer = peer;
    pending->since = Clock::now ();
    pending->request = true;
    {
      std::lock_guard<std::mutex> guard (lock_);
      pending_[socket] = std::move (pending);
    }
    GST_INFO ("admitting SRT request for '%s' from %s", id.resource.c_str (), peer.c_str ());
    return 0;
  }

  bool conflict = false, overload = false;
  {
    std::lock_guard<std::mutex> guard (lock_);
    if (stopping_) {
      srt_setrejectreason (socket, SRT_REJX_DOWN);
      return -1;
    }
    if (reserved_.count (id.resource))
      conflict = true;
    else if (reserved_.size () >= (size_t) settings_.maxPublishers)
      overload = true;
    else
      reserved_.insert (id.resource);  /* held while admit() runs */
  }
  if (conflict)
    return refuse (SRT_REJX_CONFLICT, &SrtIngestRefusals::conflict,
        "stream '" + id.resource + "' already has a publisher");
  if (overload)
    return refuse (SRT_REJX_OVERLOAD, &SrtIngestRefusals::overload,
        "already " + std::to_string (settings_.maxPublishers) + " publishers");

  SrtAdmission answer;
  if (callbacks_.admit) {
    try {
      answer = callbacks_.admit (id.resource, id.token);
    } catch (const std::exception &e) {
      answer = SrtAdmission (std::string ("admission failed: ") + e.what ());
    } catch (...) {
      answer = SrtAdmission ("admission failed");
    }
  }
  if (!answer.admitted ()) {
    {
      std::lock_guard<std::mutex> guard (lock_);
      reserved_.erase (id.resource);
    }
    return refuseWith (answer, "stream '" + id.resource + "': " + answer.reason);
  }

  auto pending = std::make_shared<Pending> ();
  pending->stream = id.resource;
  pending->peer = peer;
  pending->since = Clock::now ();
  {
    std::lock_guard<std::mutex> guard (lock_);
    pending_[socket] = std::move (pending);
  }
  GST_INFO ("admitting SRT publisher of '%s' from %s", id.resource.c_str (), peer.c_str ());
  return 0;
}

void
SrtIngestServer::ioLoop ()
{
  SRT_EPOLL_EVENT events[kMaxEvents];
  while (true) {
    {
      std::lock_guard<std::mutex> guard (lock_);
      if (stopping_)
        break;
    }
    int n = srt_epoll_uwait (epoll_, events, kMaxEvents, kEpollTickMs);
    for (int i = 0; i < n; i++) {
      if (events[i].fd == listener_) {
        acceptOne ();
        continue;
      }
      auto it = publishers_.find (events[i].fd);
      if (it != publishers_.end ())
        readFrom (it->second);
    }
    checkPublishers ();
    expirePending ();
  }

  /* No callback runs once the listener is closed. */
  srt_close (listener_);
  listener_ = SRT_INVALID_SOCK;
  while (!publishers_.empty ())
    endPublisher (publishers_.begin ()->second, "server stopping");
  std::map<int, std::shared_ptr<Pending>> pending;
  {
    std::lock_guard<std::mutex> guard (lock_);
    pending.swap (pending_);
  }
  for (auto &[socket, p] : pending) {
    if (p->request)
      continue;
    auto stub = std::make_shared<Publisher> ();
    stub->stream = p->stream;
    stub->peer = p->peer;
    stub->endReason = "server stopping";
    std::lock_guard<std::mutex> guard (lock_);
    ending_.push_back (std::move (stub));
  }
  srt_epoll_release (epoll_);
  epoll_ = -1;
  {
    std::lock_guard<std::mutex> guard (lock_);
    ioDone_ = true;
  }
  endingCond_.notify_all ();
}

/* I/O thread: one connection per wakeup; the listener stays readable
 * (level-triggered) while more wait, and an empty srt_accept would log an
 * error inside libsrt. */
void
SrtIngestServer::acceptOne ()
{
  struct sockaddr_storage addr = {};
  int addrlen = sizeof addr;
  SRTSOCKET s = srt_accept (listener_, reinterpret_cast<struct sockaddr *> (&addr), &addrlen);
  if (s == SRT_INVALID_SOCK) {
    if (srt_getlasterror (nullptr) != SRT_EASYNCRCV)
      GST_WARNING ("SRT accept failed: %s", srtError ().c_str ());
    return;
  }
  std::shared_ptr<Pending> pending;
  {
    std::lock_guard<std::mutex> guard (lock_);
    auto it = pending_.find (s);
    if (it != pending_.end ()) {
      pending = it->second;
      pending_.erase (it);
    }
  }
  if (!pending) {
    /* Its admission expired; the publisher will retry. */
    GST_WARNING ("closing SRT connection from %s admitted too long ago",
        formatPeer (reinterpret_cast<struct sockaddr *> (&addr)).c_str ());
    srt_close (s);
    return;
  }
  if (pending->request) {
    {
      std::lock_guard<std::mutex> guard (lock_);
      requestsAccepted_++;
    }
    log (LogLevel::Info, "srt.request.accepted", {{"stream", pending->stream},
        {"peer", pending->peer}});
    if (!callbacks_.onRequest) {
      srt_close (s);
      return;
    }
    try {
      callbacks_.onRequest (s, pending->stream, pending->peer);
    } catch (const std::exception &e) {
      GST_ERROR ("stream %s: onRequest failed: %s", pending->stream.c_str (), e.what ());
    } catch (...) {
      GST_ERROR ("stream %s: onRequest failed", pending->stream.c_str ());
    }
    return;
  }
  startPublisher (s, pending->stream, pending->peer);
}

void
SrtIngestServer::startPublisher (SRTSOCKET s, const std::string &stream, const std::string &peer)
{
  auto p = std::make_shared<Publisher> ();
  p->socket = s;
  p->stream = stream;
  p->peer = peer;
  {
    std::lock_guard<std::mutex> guard (lock_);
    publishers_[s] = p;
    publishersAccepted_++;
  }

  std::string name = "srtingest-" + stream + "-" + std::to_string (s);
  for (char &c : name)
    if (c == '/')
      c = '_';
  p->pipeline = adoptGRef (GST_ELEMENT (gst_object_ref_sink (gst_pipeline_new (name.c_str ()))));

  GstElement *sink = nullptr;
  if (callbacks_.makeSink) {
    try {
      sink = callbacks_.makeSink (stream);
    } catch (const std::exception &e) {
      GST_ERROR ("stream %s: makeSink failed: %s", stream.c_str (), e.what ());
    } catch (...) {
      GST_ERROR ("stream %s: makeSink failed", stream.c_str ());
    }
  }
  if (!sink) {
    endPublisher (p, "no sink for the stream");
    return;
  }
  if (g_object_is_floating (sink))
    gst_object_ref_sink (sink);
  p->sink = adoptGRef (sink);

  GstElement *src = makeElement ("appsrc", stream);
  GstElement *demux = makeElement ("tsdemux", stream);
  if (!src || !demux) {
    if (src)
      gst_object_unref (src);
    if (demux)
      gst_object_unref (demux);
    endPublisher (p, "appsrc or tsdemux is missing");
    return;
  }
  p->appsrc = GRef<GstElement>::ref (src);
  GRef<GstCaps> caps = adoptGRef (gst_caps_from_string (
      "video/mpegts,systemstream=(boolean)true,packetsize=(int)188"));
  g_object_set (src, "is-live", TRUE, "format", GST_FORMAT_TIME, "do-timestamp", TRUE,
      "caps", caps.get (), "max-bytes", kAppSrcMaxBytes, "block", FALSE, nullptr);
  gst_util_set_object_arg (G_OBJECT (src), "leaky-type", "downstream");
  g_object_set (demux, "latency", settings_.demuxLatencyMs, nullptr);

  GstBin *bin = GST_BIN (p->pipeline.get ());
  gst_bin_add_many (bin, src, demux, p->sink.get (), nullptr);
  if (!gst_element_link (src, demux)) {
    endPublisher (p, "cannot link appsrc to tsdemux");
    return;
  }
  g_signal_connect (demux, "pad-added", G_CALLBACK (&Publisher::onPadAdded), p.get ());
  GRef<GstBus> bus = adoptGRef (gst_element_get_bus (p->pipeline.get ()));
  gst_bus_set_sync_handler (bus.get (), &Publisher::onBusMessage, p.get (), nullptr);

  if (gst_element_set_state (p->pipeline.get (), GST_STATE_PLAYING) == GST_STATE_CHANGE_FAILURE) {
    endPublisher (p, "the pipeline does not start");
    return;
  }

  const int events = SRT_EPOLL_IN | SRT_EPOLL_ERR;
  if (srt_epoll_add_usock (epoll_, s, &events) != 0) {
    endPublisher (p, "cannot watch the socket: " + srtError ());
    return;
  }
  GST_INFO ("stream %s: SRT publisher %s started", stream.c_str (), peer.c_str ());
  if (callbacks_.onStarted) {
    try {
      callbacks_.onStarted (stream, peer);
    } catch (const std::exception &e) {
      GST_ERROR ("stream %s: onStarted failed: %s", stream.c_str (), e.what ());
    } catch (...) {
      GST_ERROR ("stream %s: onStarted failed", stream.c_str ());
    }
  }
}

void
SrtIngestServer::readFrom (std::shared_ptr<Publisher> p)
{
  while (true) {
    GstBuffer *buf = gst_buffer_new_allocate (nullptr, kReadChunk, nullptr);
    GstMapInfo map;
    gst_buffer_map (buf, &map, GST_MAP_WRITE);
    size_t filled = 0;
    bool closed = false;
    std::string why;
    while (filled + kMaxSrtMessage <= kReadChunk) {
      int n = srt_recvmsg (p->socket, reinterpret_cast<char *> (map.data) + filled, kMaxSrtMessage);
      if (n > 0) {
        filled += n;
        continue;
      }
      if (n == SRT_ERROR && srt_getlasterror (nullptr) != SRT_EASYNCRCV) {
        closed = true;
        why = srt_getlasterror (nullptr) == SRT_ECONNLOST
            ? "connection closed by the publisher" : "connection broken: " + srtError ();
      }
      break;
    }
    gst_buffer_unmap (buf, &map);
    if (filled > 0) {
      gst_buffer_set_size (buf, filled);
      p->bytes += filled;
      p->lastData = Clock::now ();
      gst_app_src_push_buffer (GST_APP_SRC (p->appsrc.get ()), buf);
    } else {
      gst_buffer_unref (buf);
    }
    if (closed) {
      endPublisher (p, why);
      return;
    }
    if (filled + kMaxSrtMessage <= kReadChunk)
      return;  /* drained the socket */
  }
}

/* I/O thread, every tick: publishers that failed, went quiet or never
 * brought a usable track. */
void
SrtIngestServer::checkPublishers ()
{
  const auto now = Clock::now ();
  std::vector<std::pair<std::shared_ptr<Publisher>, std::string>> ended;
  for (const auto &[socket, p] : publishers_) {
    if (p->failed) {
      std::lock_guard<std::mutex> guard (p->lock);
      ended.emplace_back (p, p->failure.empty () ? "pipeline error" : p->failure);
      continue;
    }
    SRT_SOCKSTATUS st = srt_getsockstate (p->socket);
    if (st == SRTS_BROKEN || st == SRTS_CLOSED || st == SRTS_NONEXIST) {
      ended.emplace_back (p, "connection closed");
      continue;
    }
    if (now - p->lastData > std::chrono::milliseconds (settings_.idleTimeoutMs)) {
      ended.emplace_back (p, "no data for " + std::to_string (settings_.idleTimeoutMs) + " ms");
      continue;
    }
    int tracks;
    {
      std::lock_guard<std::mutex> guard (p->lock);
      tracks = p->usableTracks;
    }
    if (tracks == 0 && now - p->since > std::chrono::milliseconds (settings_.trackTimeoutMs))
      ended.emplace_back (p, "no H.264, AAC or Opus track within "
          + std::to_string (settings_.trackTimeoutMs) + " ms");
  }
  for (auto &[p, why] : ended)
    endPublisher (p, why);
}

/* I/O thread: admissions whose handshake failed after the listener
 * callback (wrong passphrase, caller gone) give their name back. */
void
SrtIngestServer::expirePending ()
{
  const auto now = Clock::now ();
  std::lock_guard<std::mutex> guard (lock_);
  for (auto it = pending_.begin (); it != pending_.end ();) {
    SRT_SOCKSTATUS st = srt_getsockstate (it->first);
    const bool gone = st == SRTS_BROKEN || st == SRTS_CLOSED || st == SRTS_NONEXIST
        || st == SRTS_CLOSING;
    const bool expired = (gone && now - it->second->since > std::chrono::milliseconds (500))
        || now - it->second->since > kPendingTimeout;
    if (expired && it->second->request) {
      /* Nothing reserved for a request. */
      it = pending_.erase (it);
    } else if (expired) {
      log (LogLevel::Warning, "srt.publish.ended", {{"stream", it->second->stream},
          {"peer", it->second->peer}, {"reason", "handshake did not complete"}});
      auto stub = std::make_shared<Publisher> ();
      stub->stream = it->second->stream;
      stub->peer = it->second->peer;
      stub->endReason = "handshake did not complete";
      ending_.push_back (std::move (stub));
      it = pending_.erase (it);
      endingCond_.notify_all ();
    } else {
      ++it;
    }
  }
}

/* I/O thread: closes the socket and hands the pipeline to the teardown
 * thread. Takes @p by value: the caller's reference may be the entry of
 * publishers_ that this erases. */
void
SrtIngestServer::endPublisher (std::shared_ptr<Publisher> p, std::string reason)
{
  if (p->socket != SRT_INVALID_SOCK) {
    if (epoll_ >= 0)
      srt_epoll_remove_usock (epoll_, p->socket);
    srt_close (p->socket);
  }
  log (LogLevel::Info, "srt.publish.ended", {{"stream", p->stream}, {"peer", p->peer},
      {"reason", reason}, {"bytes", std::to_string (p->bytes)}});
  p->endReason = std::move (reason);
  p->drain = !p->failed;
  {
    std::lock_guard<std::mutex> guard (lock_);
    publishers_.erase (p->socket);
    bytesOfEnded_ += p->bytes;
    ending_.push_back (std::move (p));
  }
  endingCond_.notify_all ();
}

void
SrtIngestServer::teardownLoop ()
{
  while (true) {
    std::shared_ptr<Publisher> p;
    {
      std::unique_lock<std::mutex> guard (lock_);
      endingCond_.wait (guard, [this] { return !ending_.empty () || ioDone_; });
      if (ending_.empty ())
        break;
      p = std::move (ending_.front ());
      ending_.pop_front ();
    }
    finish (p);
  }
}

/* Teardown thread: drains the pipeline with EOS (bounded), stops it, then
 * tells the application and frees the name. */
void
SrtIngestServer::finish (const std::shared_ptr<Publisher> &p)
{
  if (p->pipeline) {
    int tracks;
    {
      std::lock_guard<std::mutex> guard (p->lock);
      tracks = p->usableTracks;
    }
    /* Without a track no sink ever sees the EOS. */
    if (p->drain && p->appsrc && tracks > 0) {
      gst_app_src_end_of_stream (GST_APP_SRC (p->appsrc.get ()));
      std::unique_lock<std::mutex> guard (p->lock);
      p->cond.wait_for (guard, std::chrono::milliseconds (settings_.drainTimeoutMs),
          [&] { return p->eos || p->failed; });
    }
    {
      std::lock_guard<std::mutex> guard (p->buildLock);
      p->tearingDown = true;
    }
    gst_element_set_state (p->pipeline.get (), GST_STATE_NULL);
    GRef<GstBus> bus = adoptGRef (gst_element_get_bus (p->pipeline.get ()));
    gst_bus_set_sync_handler (bus.get (), nullptr, nullptr, nullptr);
    std::vector<GRef<GstPad>> pads;
    {
      std::lock_guard<std::mutex> guard (p->lock);
      pads.swap (p->sinkPads);
    }
    for (auto &pad : pads)
      gst_element_release_request_pad (p->sink.get (), pad.get ());
    pads.clear ();
    p->appsrc.reset ();
    p->sink.reset ();
    p->pipeline.reset ();
  }

  if (callbacks_.onEnded) {
    try {
      callbacks_.onEnded (p->stream, p->endReason);
    } catch (const std::exception &e) {
      GST_ERROR ("stream %s: onEnded failed: %s", p->stream.c_str (), e.what ());
    } catch (...) {
      GST_ERROR ("stream %s: onEnded failed", p->stream.c_str ());
    }
  }
  std::lock_guard<std::mutex> guard (lock_);
  reserved_.erase (p->stream);
}

}  // namespace xdn
