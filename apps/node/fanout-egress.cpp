#include "fanout-egress.h"

#include "codecs.h"
#include "log.h"
#include "relay-pads.h"

namespace xdn {

std::shared_ptr<FanoutEgress>
FanoutEgress::create (std::string stream, FanoutSettings settings, Hooks hooks)
{
  return std::shared_ptr<FanoutEgress> (
      new FanoutEgress (std::move (stream), std::move (settings), std::move (hooks)));
}

FanoutEgress::FanoutEgress (std::string stream, FanoutSettings settings, Hooks hooks)
    : stream_ (std::move (stream)), settings_ (std::move (settings)), hooks_ (std::move (hooks))
{
}

FanoutEgress::~FanoutEgress ()
{
  stop ();
}

void
FanoutEgress::onMain (std::function<void (FanoutEgress &)> fn)
{
  struct Call {
    std::weak_ptr<FanoutEgress> self;
    std::function<void (FanoutEgress &)> fn;
  };
  g_idle_add_full (G_PRIORITY_DEFAULT, [] (gpointer data) -> gboolean {
        auto *c = static_cast<Call *> (data);
        if (auto self = c->self.lock ())
          c->fn (*self);
        return G_SOURCE_REMOVE;
      }, new Call{weak_from_this (), std::move (fn)},
      [] (gpointer data) { delete static_cast<Call *> (data); });
}

/* The fan-out opens its port in NULL->READY. It is brought there before
 * it joins the pipeline, on a bus of its own: its error for a port already
 * taken says why for the log, and does not reach the pipeline's bus, where
 * it would end the egress. */
bool
FanoutEgress::bindPort (GstElement *fanout, std::string *error, guint *status)
{
  GstBus *bus = gst_bus_new ();
  gst_element_set_bus (fanout, bus);
  std::string why;
  auto tryPort = [fanout, bus, &why] (int port) {
    g_object_set (fanout, "port", static_cast<guint> (port), NULL);
    if (gst_element_set_state (fanout, GST_STATE_READY) != GST_STATE_CHANGE_FAILURE)
      return true;
    GstMessage *msg = gst_bus_pop_filtered (bus, GST_MESSAGE_ERROR);
    if (msg) {
      GError *err = nullptr;
      gst_message_parse_error (msg, &err, nullptr);
      why = err ? err->message : "";
      g_clear_error (&err);
      gst_message_unref (msg);
    }
    return false;
  };
  bool bound;
  if (settings_.ports && settings_.ports->limited ()) {
    port_ = settings_.ports->acquire (tryPort);
    bound = port_ != 0;
    if (!bound) {
      *status = 503;
      *error = "no free WebRTC port in " + settings_.ports->range ();
    }
  } else {
    bound = tryPort (0);
    if (!bound) {
      *status = 500;
      *error = "cannot start the fan-out of stream '" + stream_ + "' on " + settings_.address +
          " (is it a numeric local address?)";
    }
  }
  gst_element_set_bus (fanout, nullptr);
  gst_object_unref (bus);
  if (!bound)
    log (LogLevel::Warning, "fanout.bind_failed", {{"stream", stream_}, {"address", settings_.address},
        {"reason", *error}, {"last_bind_error", why}});
  return bound;
}

bool
FanoutEgress::start (std::string *error, guint *status)
{
  GstElement *src = gst_element_factory_make ("xdnrelaysrc", "relay");
  GstElement *fanout = gst_element_factory_make ("xdnwebrtcfanout", "fanout");
  if (!src || !fanout) {
    if (src)
      gst_object_unref (gst_object_ref_sink (src));
    if (fanout)
      gst_object_unref (gst_object_ref_sink (fanout));
    *error = "the xdn plugin (xdnrelaysrc, xdnwebrtcfanout) is not available";
    return false;
  }
  g_object_set (fanout, "address", settings_.address.c_str (), "threads", settings_.threads,
      "viewer-timeout", (guint64) settings_.viewerTimeoutS * GST_SECOND, NULL);
  if (!bindPort (fanout, error, status)) {
    gst_object_unref (gst_object_ref_sink (src));
    gst_object_unref (gst_object_ref_sink (fanout));
    return false;
  }
  pipeline_ = adoptGRef (GST_ELEMENT (gst_object_ref_sink (gst_pipeline_new (
      ("fanout-" + stream_).c_str ()))));
  fanout_ = GRef<GstElement>::ref (fanout);
  /* The fan-out only queues each packet for its sending threads: it takes
   * them on the publisher's thread, without a thread of its own between. */
  g_object_set (src, "stream", stream_.c_str (), "direct", TRUE, NULL);
  gst_bin_add_many (GST_BIN (pipeline_.get ()), src, fanout, NULL);

  /* Each track of the stream goes to the fan-out pad of the same number. */
  g_signal_connect (src, "pad-added", G_CALLBACK (+[] (GstElement *, GstPad *pad, gpointer data) {
        std::string why = linkRelayTrack (pad, GST_ELEMENT (data));
        if (!why.empty ())
          log (LogLevel::Warning, "fanout.track_not_linked", {{"pad", GST_PAD_NAME (pad)},
              {"reason", why}});
      }), fanout);
  /* The element emits this from its receiving thread. */
  g_signal_connect_data (fanout, "viewer-removed", G_CALLBACK (+[] (GstElement *, const gchar *id,
          const gchar *reason, gpointer data) {
        auto *weak = static_cast<std::weak_ptr<FanoutEgress> *> (data);
        auto self = weak->lock ();
        if (!self)
          return;
        std::string viewer = id ? id : "";
        std::string why = reason ? reason : "";
        self->onMain ([viewer, why] (FanoutEgress &e) {
          if (e.hooks_.viewerRemoved)
            e.hooks_.viewerRemoved (viewer, why);
        });
      }), new std::weak_ptr<FanoutEgress> (weak_from_this ()),
      [] (gpointer data, GClosure *) { delete static_cast<std::weak_ptr<FanoutEgress> *> (data); },
      GConnectFlags (0));

  GstBus *bus = gst_element_get_bus (pipeline_.get ());
  gst_bus_set_sync_handler (bus, &FanoutEgress::onBusSync,
      new std::weak_ptr<FanoutEgress> (weak_from_this ()),
      [] (gpointer data) { delete static_cast<std::weak_ptr<FanoutEgress> *> (data); });
  gst_object_unref (bus);

  if (gst_element_set_state (pipeline_.get (), GST_STATE_PLAYING) == GST_STATE_CHANGE_FAILURE) {
    *status = 500;
    *error = "cannot start the fan-out of stream '" + stream_ + "'";
    stop ();
    return false;
  }
  log (LogLevel::Info, "fanout.started", {{"stream", stream_}, {"address", settings_.address},
      {"port", std::to_string (stats ().port)}});
  return true;
}

void
FanoutEgress::stop ()
{
  if (stopped_ || !pipeline_)
    return;
  stopped_ = true;
  gst_element_set_state (pipeline_.get (), GST_STATE_NULL);
  GstBus *bus = gst_element_get_bus (pipeline_.get ());
  gst_bus_set_sync_handler (bus, nullptr, nullptr, nullptr);
  gst_object_unref (bus);
  /* READY->NULL closed the socket. */
  if (port_ && settings_.ports)
    settings_.ports->release (port_);
  port_ = 0;
  log (LogLevel::Info, "fanout.stopped", {{"stream", stream_}});
}

/* Any thread: the element's warning for a refused offer comes from the thread
 * that called add-viewer; the end of the stream from a streaming thread.
 * Every message is dropped here, and a sync handler that drops a message owns
 * it: unreffed on every path, or each one (two per viewer, and the state
 * changes) would keep its source element, and with it the whole pipeline,
 * alive for good. */
GstBusSyncReply
FanoutEgress::onBusSync (GstBus *, GstMessage *msg, gpointer data)
{
  auto self = static_cast<std::weak_ptr<FanoutEgress> *> (data)->lock ();
  if (!self) {
    gst_message_unref (msg);
    return GST_BUS_DROP;
  }
  switch (GST_MESSAGE_TYPE (msg)) {
    case GST_MESSAGE_WARNING: {
      GError *err = nullptr;
      gchar *debug = nullptr;
      gst_message_parse_warning (msg, &err, &debug);
      std::string text = err ? err->message : "refused";
      if (debug && *debug)
        text += std::string (": ") + debug;
      {
        std::lock_guard<std::mutex> lock (self->refusalLock_);
        if (self->addingThread_ == g_thread_self ())
          self->refusal_ = text;
      }
      g_clear_error (&err);
      g_free (debug);
      break;
    }
    case GST_MESSAGE_EOS:
    case GST_MESSAGE_ERROR: {
      std::string reason = "the stream ended";
      if (GST_MESSAGE_TYPE (msg) == GST_MESSAGE_ERROR) {
        GError *err = nullptr;
        gst_message_parse_error (msg, &err, nullptr);
        reason = std::string ("fan-out error: ") + (err ? err->message : "unknown");
        g_clear_error (&err);
      }
      self->onMain ([reason] (FanoutEgress &e) {
        if (e.endedSent_ || e.stopped_)
          return;
        e.endedSent_ = true;
        if (e.hooks_.ended)
          e.hooks_.ended (e, reason);
      });
      break;
    }
    default:
      break;
  }
  gst_message_unref (msg);
  return GST_BUS_DROP;
}

FanoutStats
FanoutEgress::stats () const
{
  FanoutStats s;
  if (!fanout_)
    return s;
  GstStructure *st = nullptr;
  g_object_get (fanout_.get (), "stats", &st, NULL);
  if (!st)
    return s;
  gst_structure_get_uint64 (st, "viewers", &s.viewers);
  gst_structure_get_uint64 (st, "connected", &s.connected);
  gst_structure_get_uint64 (st, "tracks", &s.tracks);
  gst_structure_get_uint64 (st, "packets-sent", &s.packetsSent);
  gst_structure_get_uint64 (st, "bytes-sent", &s.bytesSent);
  gst_structure_get_uint64 (st, "retransmits", &s.retransmits);
  gst_structure_get_uint64 (st, "dropped", &s.dropped);
  gst_structure_get_uint64 (st, "nacks", &s.nacks);
  gst_structure_get_uint64 (st, "nack-misses", &s.nackMisses);
  gst_structure_get_uint64 (st, "plis", &s.plis);
  gst_structure_get_uint64 (st, "firs", &s.firs);
  gst_structure_get_uint64 (st, "keyframe-requests", &s.keyframeRequests);
  gst_structure_get_uint64 (st, "keyframe-requests-limited", &s.keyframeRequestsLimited);
  gst_structure_get_uint64 (st, "transport-cc-feedbacks", &s.transportCcFeedbacks);
  gst_structure_get_uint64 (st, "transport-cc-received", &s.transportCcReceived);
  gst_structure_get_uint64 (st, "transport-cc-lost", &s.transportCcLost);
  gst_structure_get_int (st, "bound-port", &s.port);
  gst_structure_free (st);
  return s;
}

bool
FanoutEgress::ready (unsigned tracks) const
{
  if (stopped_ || tracks == 0)
    return false;
  return stats ().tracks >= tracks;
}

guint
FanoutEgress::addViewer (const std::string &offer, std::string *viewer, std::string *answer)
{
  if (stopped_) {
    *answer = "the stream's fan-out has stopped";
    return 503;
  }
  {
    std::lock_guard<std::mutex> lock (refusalLock_);
    addingThread_ = g_thread_self ();
    refusal_.clear ();
  }
  GstStructure *result = nullptr;
  g_signal_emit_by_name (fanout_.get (), "add-viewer", offer.c_str (), &result);
  std::string refusal;
  {
    std::lock_guard<std::mutex> lock (refusalLock_);
    addingThread_ = nullptr;
    refusal = refusal_;
  }
  if (!result) {
    *answer = refusal.empty () ? "the offer was refused" : refusal;
    /* Over max-viewers is the node's limit, not the offer's fault. */
    return 406;
  }
  const gchar *id = gst_structure_get_string (result, "id");
  const gchar *sdp = gst_structure_get_string (result, "answer");
  *viewer = id ? id : "";
  std::string text = sdp ? sdp : "";
  if (!settings_.publicAddress.empty ())
    for (const auto &address : settings_.localAddresses)
      text = announceAddress (text, address, settings_.publicAddress);
  *answer = text;
  gst_structure_free (result);
  return 201;
}

bool
FanoutEgress::removeViewer (const std::string &viewer)
{
  if (stopped_ || !fanout_)
    return false;
  gboolean removed = FALSE;
  g_signal_emit_by_name (fanout_.get (), "remove-viewer", viewer.c_str (), &removed);
  return removed;
}

}  // namespace xdn
