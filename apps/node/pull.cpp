#include "pull.h"

#include "log.h"
#include "relay-pads.h"

#include <cstdlib>
#include <cstring>
#include <mutex>

GST_DEBUG_CATEGORY_STATIC (xdn_pull_debug);
#define GST_CAT_DEFAULT xdn_pull_debug

namespace xdn {

namespace {

constexpr guint kLiveCheckMs = 20;
/* Without no-more-pads, tracks are complete once none appeared for this
 * long. */
constexpr gint64 kPadsSettleUs = 300 * 1000;

/* Sets a numeric property whatever its integer type; false if the element
 * has no such property. */
bool
setNumber (GstElement *e, const char *name, gint64 value)
{
  GParamSpec *spec = g_object_class_find_property (G_OBJECT_GET_CLASS (e), name);
  if (!spec)
    return false;
  GValue from = G_VALUE_INIT, to = G_VALUE_INIT;
  g_value_init (&from, G_TYPE_INT64);
  g_value_set_int64 (&from, value);
  g_value_init (&to, spec->value_type);
  bool ok = g_value_transform (&from, &to);
  if (ok)
    g_object_set_property (G_OBJECT (e), name, &to);
  g_value_unset (&from);
  g_value_unset (&to);
  return ok;
}

bool
hasProperty (GstElement *e, const char *name)
{
  return g_object_class_find_property (G_OBJECT_GET_CLASS (e), name) != nullptr;
}

}  // namespace

std::shared_ptr<Pull>
Pull::create (std::string stream, PullSettings settings, Hooks hooks)
{
  static std::once_flag debugOnce;
  std::call_once (debugOnce, [] {
    GST_DEBUG_CATEGORY_INIT (xdn_pull_debug, "xdnpull", 0, "Streams pulled from upstream");
  });
  return std::shared_ptr<Pull> (new Pull (std::move (stream), std::move (settings), std::move (hooks)));
}

Pull::Pull (std::string stream, PullSettings settings, Hooks hooks)
    : stream_ (std::move (stream)), settings_ (std::move (settings)), hooks_ (std::move (hooks)),
      startedAt_ (g_get_monotonic_time ()),
      linger_ (gint64 (settings_.lingerS) * G_USEC_PER_SEC, g_get_monotonic_time ())
{
}

Pull::~Pull ()
{
  if (liveTimer_)
    g_source_remove (liveTimer_);
  if (busWatch_)
    g_source_remove (busWatch_);
  if (pipeline_)
    gst_element_set_state (pipeline_.get (), GST_STATE_NULL);
}

void
Pull::start ()
{
  log (LogLevel::Info, "pull.starting", {{"stream", stream_}});
  askRoute ("first viewer");
}

void
Pull::askRoute (const std::string &why)
{
  if (stopped_ || routing_)
    return;
  routing_ = true;
  std::weak_ptr<Pull> weak = weak_from_this ();
  hooks_.route (stream_, [weak, why] (const RouteAnswer &answer) {
    auto self = weak.lock ();
    if (!self || self->stopped_)
      return;
    self->routing_ = false;
    self->onRoute (answer);
  });
}

void
Pull::reroute (const std::string &why)
{
  if (stopped_)
    return;
  log (LogLevel::Info, "pull.rerouting", {{"stream", stream_}, {"reason", why},
      {"upstream", upstream_}});
  askRoute (why);
}

void
Pull::onRoute (const RouteAnswer &answer)
{
  using Status = RouteAnswer::Status;
  if (answer.status == Status::NotLive) {
    stop ("the stream is not live (" + answer.detail + ")", 404);
    return;
  }
  if (answer.status != Status::Ok) {
    log (LogLevel::Warning, "pull.no_route", {{"stream", stream_}, {"reason", answer.detail}});
    /* Without a pipeline there is nothing to keep: viewers are told. A
     * running pull keeps its link and asks again later. */
    if (!pipeline_)
      stop ("no route to the stream: " + answer.detail, 503);
    else if (!linkUp_)
      lostSince_ = g_get_monotonic_time ();
    return;
  }
  if (!pipeline_) {
    std::string error;
    if (!build (answer.upstream, &error))
      stop ("cannot pull: " + error, 502);
    return;
  }
  if (answer.upstream != upstream_)
    repoint (answer.upstream);
  else if (!linkUp_)
    lostSince_ = g_get_monotonic_time ();  /* same route: give the link time again */
}

GstElement *
Pull::makeSource (const std::string &uri, std::string *error)
{
  GstElement *src = gst_element_factory_make ("xdnrelaysrc", nullptr);
  if (!src) {
    *error = "xdnrelaysrc is not available (is GST_PLUGIN_PATH set to the xdn plugin?)";
    return nullptr;
  }
  g_object_set (src, "stream", stream_.c_str (), "uri", uri.c_str (), nullptr);
  if (!settings_.passphrase.empty ()) {
    if (!hasProperty (src, "passphrase")) {
      gst_object_unref (gst_object_ref_sink (src));
      *error = "xdnrelaysrc has no passphrase property (SRT mode missing)";
      return nullptr;
    }
    g_object_set (src, "passphrase", settings_.passphrase.c_str (), nullptr);
  }
  if (!settings_.token.empty () && hasProperty (src, "token"))
    g_object_set (src, "token", settings_.token.c_str (), nullptr);
  setNumber (src, "latency", settings_.latencyMs);
  if (!settings_.packetFilter.empty ())
    g_object_set (src, "packet-filter", settings_.packetFilter.c_str (), nullptr);
  g_signal_connect (src, "pad-added", G_CALLBACK (&Pull::onPadAdded), this);
  g_signal_connect (src, "no-more-pads", G_CALLBACK (+[] (GstElement *, gpointer data) {
        static_cast<Pull *> (data)->noMorePads_ = true;
      }), this);
  return src;
}

bool
Pull::build (const std::string &uri, std::string *error)
{
  std::string name = "pull-" + stream_;
  for (char &c : name)
    if (c == '/')
      c = '_';
  GstElement *pipeline = gst_pipeline_new (name.c_str ());
  pipeline_ = adoptGRef (GST_ELEMENT (gst_object_ref_sink (pipeline)));

  GstElement *sink = hooks_.makeSink ? hooks_.makeSink (stream_) : nullptr;
  if (!sink) {
    *error = "no hub sink for the stream";
    return false;
  }
  if (g_object_is_floating (sink))
    gst_object_ref_sink (sink);
  sink_ = adoptGRef (sink);
  GstElement *src = makeSource (uri, error);
  if (!src)
    return false;
  src_ = GRef<GstElement>::ref (src);
  gst_bin_add_many (GST_BIN (pipeline), src, sink_.get (), nullptr);

  GRef<GstBus> bus = adoptGRef (gst_element_get_bus (pipeline));
  busWatch_ = gst_bus_add_watch (bus.get (), &Pull::onBus, this);
  upstream_ = uri;
  if (gst_element_set_state (pipeline, GST_STATE_PLAYING) == GST_STATE_CHANGE_FAILURE) {
    *error = "the pull pipeline does not start (upstream " + uri + ")";
    return false;
  }
  log (LogLevel::Info, "pull.started", {{"stream", stream_}, {"upstream", uri}});
  liveTimer_ = g_timeout_add (kLiveCheckMs, [] (gpointer data) -> gboolean {
        static_cast<Pull *> (data)->checkLive ();
        return G_SOURCE_CONTINUE;
      }, this);
  return true;
}

/* A new upstream: only the source is replaced. The hub sink (and every
 * subscriber of the stream) stays; the new source's pads link to the same
 * sink pads by track id. */
void
Pull::repoint (const std::string &uri)
{
  std::string error;
  GstElement *src = makeSource (uri, &error);
  if (!src) {
    stop ("cannot re-point: " + error, 502);
    return;
  }
  log (LogLevel::Info, "pull.repointed", {{"stream", stream_}, {"from", upstream_}, {"to", uri}});
  if (src_) {
    g_signal_handlers_disconnect_by_data (src_.get (), this);
    gst_element_set_state (src_.get (), GST_STATE_NULL);
    gst_bin_remove (GST_BIN (pipeline_.get ()), src_.get ());
  }
  src_ = GRef<GstElement>::ref (src);
  gst_bin_add (GST_BIN (pipeline_.get ()), src);
  upstream_ = uri;
  restarts_++;
  linkUp_ = false;
  lostSince_ = g_get_monotonic_time ();
  gst_element_sync_state_with_parent (src);
}

/* The source's streaming thread (or the thread that brings it up). */
void
Pull::onPadAdded (GstElement *src, GstPad *pad, gpointer data)
{
  auto *self = static_cast<Pull *> (data);
  std::string why = linkRelayTrack (pad, self->sink_.get ());
  if (!why.empty ()) {
    log (LogLevel::Warning, "pull.track.unlinked", {{"stream", self->stream_},
        {"pad", GST_PAD_NAME (pad)}, {"reason", why}});
    /* Keep the source from stalling on an unlinked pad. */
    GstElement *fakesink = gst_element_factory_make ("fakesink", nullptr);
    g_object_set (fakesink, "sync", FALSE, "async", FALSE, nullptr);
    gst_bin_add (GST_BIN (GST_OBJECT_PARENT (src)), fakesink);
    GRef<GstPad> fsink = adoptGRef (gst_element_get_static_pad (fakesink, "sink"));
    gst_pad_link (pad, fsink.get ());
    gst_element_sync_state_with_parent (fakesink);
    return;
  }
  self->pads_++;
  self->lastPadAt_ = g_get_monotonic_time ();
  GST_INFO ("pull %s: track pad %s linked", self->stream_.c_str (), GST_PAD_NAME (pad));
}

/* Every kLiveCheckMs until live: each track the source exposed has its
 * caps in the hub, twice in a row (the sink records caps just before it
 * hands them to the hub). */
void
Pull::checkLive ()
{
  if (live_ || stopped_ || !sink_)
    return;
  const gint64 now = g_get_monotonic_time ();
  if (now - startedAt_ > gint64 (settings_.liveTimeoutS) * G_USEC_PER_SEC) {
    stop ("the stream did not arrive from " + upstream_ + " within " +
        std::to_string (settings_.liveTimeoutS) + " s", 504);
    return;
  }
  const unsigned pads = pads_;
  bool complete = pads > 0 && (noMorePads_ || now - lastPadAt_ > kPadsSettleUs);
  if (complete) {
    GstStructure *stats = nullptr;
    g_object_get (sink_.get (), "stats", &stats, nullptr);
    unsigned withCaps = 0;
    const GValue *tracks = stats ? gst_structure_get_value (stats, "tracks") : nullptr;
    if (tracks && GST_VALUE_HOLDS_ARRAY (tracks)) {
      for (guint i = 0; i < gst_value_array_get_size (tracks); i++) {
        const GstStructure *t = gst_value_get_structure (gst_value_array_get_value (tracks, i));
        const gchar *caps = t ? gst_structure_get_string (t, "caps") : nullptr;
        if (caps && *caps)
          withCaps++;
      }
    }
    if (stats)
      gst_structure_free (stats);
    complete = withCaps >= pads;
  }
  if (!complete) {
    liveCandidate_ = false;
    return;
  }
  if (!liveCandidate_) {
    liveCandidate_ = true;
    return;
  }
  live_ = true;
  if (liveTimer_)
    g_source_remove (liveTimer_);
  liveTimer_ = 0;
  log (LogLevel::Info, "pull.live", {{"stream", stream_}, {"upstream", upstream_},
      {"tracks", std::to_string (pads)},
      {"ms", std::to_string ((now - startedAt_) / 1000)}});
  if (hooks_.live)
    hooks_.live (stream_);
}

unsigned
Pull::subscribers () const
{
  if (!sink_)
    return 0;
  GstStructure *stats = nullptr;
  g_object_get (sink_.get (), "stats", &stats, nullptr);
  guint n = 0;
  if (stats) {
    gst_structure_get_uint (stats, "subscribers", &n);
    gst_structure_free (stats);
  }
  return n;
}

void
Pull::tick (unsigned waiting)
{
  if (stopped_)
    return;
  auto self = shared_from_this ();  /* stop () may drop the owner's reference */
  const gint64 now = g_get_monotonic_time ();
  if (linger_.update (subscribers () + waiting, now)) {
    stop ("no subscriber for " + std::to_string (settings_.lingerS) + " s", 404);
    return;
  }
  if (pipeline_ && !linkUp_ && lostSince_ &&
      now - lostSince_ > gint64 (settings_.lostRerouteMs) * 1000 && !routing_) {
    lostSince_ = now;
    reroute ("link down for more than " + std::to_string (settings_.lostRerouteMs) + " ms");
  }
}

void
Pull::onLinkMessage (const GstStructure *s)
{
  const gchar *state = gst_structure_get_string (s, "state");
  const gchar *reason = gst_structure_get_string (s, "reason");
  gint code = 0;
  gst_structure_get_int (s, "reject-code", &code);
  if (!state)
    return;
  if (g_str_equal (state, "connected")) {
    if (!linkUp_ && everLinked_)
      restarts_++;
    linkUp_ = everLinked_ = true;
    lostSince_ = 0;
    log (LogLevel::Info, "pull.link.connected", {{"stream", stream_}, {"upstream", upstream_}});
    return;
  }
  const bool wasUp = linkUp_;
  linkUp_ = false;
  if (!lostSince_)
    lostSince_ = g_get_monotonic_time ();
  if (wasUp || code)
    log (LogLevel::Warning, g_str_equal (state, "lost") ? "pull.link.lost" : "pull.link.refused",
        {{"stream", stream_}, {"upstream", upstream_}, {"reason", reason ? reason : ""},
         {"code", std::to_string (code)}});
  /* The upstream does not have the stream (any more): ask where it is now,
   * the route's 404 ends the pull; a fixed upstream has nothing else. */
  if (code == 1404 && settings_.staticRoute)
    stop ("the upstream " + upstream_ + " does not have the stream (1404)", 404);
  else if (code == 1404 && !routing_)
    reroute ("upstream answered 1404 (no such stream)");
}

gboolean
Pull::onBus (GstBus *, GstMessage *msg, gpointer data)
{
  auto *self = static_cast<Pull *> (data);
  auto keep = self->shared_from_this ();
  switch (GST_MESSAGE_TYPE (msg)) {
    case GST_MESSAGE_ELEMENT: {
      const GstStructure *s = gst_message_get_structure (msg);
      if (s && gst_structure_has_name (s, "xdn-relay-link") &&
          GST_MESSAGE_SRC (msg) == GST_OBJECT (self->src_.get ()))
        self->onLinkMessage (s);
      break;
    }
    case GST_MESSAGE_EOS:
      self->stop ("the stream ended upstream", 404);
      break;
    case GST_MESSAGE_ERROR: {
      GError *err = nullptr;
      gchar *dbg = nullptr;
      gst_message_parse_error (msg, &err, &dbg);
      std::string why = std::string (GST_MESSAGE_SRC_NAME (msg)) + ": " + (err ? err->message : "error");
      log (LogLevel::Warning, "pull.error", {{"stream", self->stream_}, {"error", why},
          {"detail", dbg ? dbg : ""}});
      g_clear_error (&err);
      g_free (dbg);
      self->stop ("pipeline error: " + why, 502);
      break;
    }
    default:
      break;
  }
  return self->stopped_ ? G_SOURCE_REMOVE : G_SOURCE_CONTINUE;
}

void
Pull::stop (const std::string &reason, guint status)
{
  if (stopped_)
    return;
  stopped_ = true;
  auto keep = shared_from_this ();
  if (liveTimer_)
    g_source_remove (liveTimer_);
  liveTimer_ = 0;
  if (busWatch_)
    g_source_remove (busWatch_);
  busWatch_ = 0;
  if (pipeline_) {
    if (src_)
      g_signal_handlers_disconnect_by_data (src_.get (), this);
    gst_element_set_state (pipeline_.get (), GST_STATE_NULL);
  }
  src_.reset ();
  sink_.reset ();
  pipeline_.reset ();
  log (LogLevel::Info, "pull.stopped", {{"stream", stream_}, {"upstream", upstream_},
      {"reason", reason}, {"restarts", std::to_string (restarts_)}});
  if (hooks_.ended)
    hooks_.ended (stream_, reason, status);
}

}  // namespace xdn
