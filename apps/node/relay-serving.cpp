#include "relay-serving.h"

#include "log.h"
#include "relay-pads.h"

#include <srt/srt.h>

namespace xdn {

std::shared_ptr<RelayServing>
RelayServing::create (guint64 id, int socket, std::string stream, std::string peer, Ended ended)
{
  return std::shared_ptr<RelayServing> (new RelayServing (id, socket, std::move (stream),
      std::move (peer), std::move (ended)));
}

RelayServing::RelayServing (guint64 id, int socket, std::string stream, std::string peer,
    Ended ended)
    : id_ (id), socket_ (socket), stream_ (std::move (stream)), peer_ (std::move (peer)),
      ended_ (std::move (ended)), startedAt_ (g_get_monotonic_time ())
{
}

RelayServing::~RelayServing ()
{
  if (busWatch_)
    g_source_remove (busWatch_);
  if (pipeline_)
    gst_element_set_state (pipeline_.get (), GST_STATE_NULL);
  closeSocket ();
}

void
RelayServing::closeSocket ()
{
  if (socket_ >= 0)
    srt_close (socket_);
  socket_ = -1;
}

bool
RelayServing::start (std::string *error)
{
  std::string name = "serve-" + stream_ + "-" + std::to_string (id_);
  for (char &c : name)
    if (c == '/')
      c = '_';
  pipeline_ = adoptGRef (GST_ELEMENT (gst_object_ref_sink (gst_pipeline_new (name.c_str ()))));
  GstElement *src = gst_element_factory_make ("xdnrelaysrc", nullptr);
  GstElement *sink = gst_element_factory_make ("xdnrelaysink", nullptr);
  if (!src || !sink || !g_object_class_find_property (G_OBJECT_GET_CLASS (sink), "socket")) {
    if (src)
      gst_object_unref (gst_object_ref_sink (src));
    if (sink)
      gst_object_unref (gst_object_ref_sink (sink));
    closeSocket ();
    *error = "the xdn relay elements with SRT mode (xdnrelaysink socket=) are not available";
    return false;
  }
  g_object_set (src, "stream", stream_.c_str (), "wait-for-stream", TRUE, nullptr);
  g_object_set (sink, "stream", stream_.c_str (), "socket", socket_, nullptr);
  socket_ = -1;  /* the sink owns it now */
  sink_ = GRef<GstElement>::ref (sink);
  gst_bin_add_many (GST_BIN (pipeline_.get ()), src, sink, nullptr);
  g_signal_connect (src, "pad-added", G_CALLBACK (&RelayServing::onPadAdded), this);

  GRef<GstBus> bus = adoptGRef (gst_element_get_bus (pipeline_.get ()));
  busWatch_ = gst_bus_add_watch (bus.get (), &RelayServing::onBus, this);
  if (gst_element_set_state (pipeline_.get (), GST_STATE_PLAYING) == GST_STATE_CHANGE_FAILURE) {
    *error = "the serving pipeline does not start";
    return false;
  }
  log (LogLevel::Info, "relay.serving.started", {{"stream", stream_}, {"peer", peer_},
      {"id", std::to_string (id_)}});
  return true;
}

/* The hub source's streaming thread (or the thread bringing it up). */
void
RelayServing::onPadAdded (GstElement *, GstPad *pad, gpointer data)
{
  auto *self = static_cast<RelayServing *> (data);
  std::string why = linkRelayTrack (pad, self->sink_.get ());
  if (!why.empty ())
    log (LogLevel::Warning, "relay.serving.track_unlinked", {{"stream", self->stream_},
        {"pad", GST_PAD_NAME (pad)}, {"peer", self->peer_}, {"reason", why}});
}

gboolean
RelayServing::onBus (GstBus *, GstMessage *msg, gpointer data)
{
  auto *self = static_cast<RelayServing *> (data);
  auto keep = self->shared_from_this ();
  switch (GST_MESSAGE_TYPE (msg)) {
    case GST_MESSAGE_ELEMENT: {
      const GstStructure *s = gst_message_get_structure (msg);
      if (s && gst_structure_has_name (s, "xdn-relay-link")) {
        const gchar *state = gst_structure_get_string (s, "state");
        const gchar *reason = gst_structure_get_string (s, "reason");
        if (state && !g_str_equal (state, "connected"))
          self->stop (std::string ("link ") + state + (reason && *reason ? std::string (": ") + reason : ""));
      }
      break;
    }
    case GST_MESSAGE_EOS:
      /* The sink posts EOS once the downstream node has the end of the
       * stream: the socket may close now. */
      self->stop ("the stream ended");
      break;
    case GST_MESSAGE_ERROR: {
      GError *err = nullptr;
      gst_message_parse_error (msg, &err, nullptr);
      std::string why = std::string (GST_MESSAGE_SRC_NAME (msg)) + ": " + (err ? err->message : "error");
      g_clear_error (&err);
      self->stop ("pipeline error: " + why);
      break;
    }
    default:
      break;
  }
  return self->stopped_ ? G_SOURCE_REMOVE : G_SOURCE_CONTINUE;
}

void
RelayServing::stop (const std::string &reason)
{
  if (stopped_)
    return;
  stopped_ = true;
  auto keep = shared_from_this ();
  if (busWatch_)
    g_source_remove (busWatch_);
  busWatch_ = 0;
  if (pipeline_)
    gst_element_set_state (pipeline_.get (), GST_STATE_NULL);
  sink_.reset ();
  pipeline_.reset ();
  closeSocket ();
  log (LogLevel::Info, "relay.serving.ended", {{"stream", stream_}, {"peer", peer_},
      {"id", std::to_string (id_)}, {"reason", reason},
      {"seconds", std::to_string ((g_get_monotonic_time () - startedAt_) / G_USEC_PER_SEC)}});
  if (ended_)
    ended_ (*this, reason);
}

}  // namespace xdn
