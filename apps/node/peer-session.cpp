#include "peer-session.h"

#include "codecs.h"
#include "log.h"
#include "xdn-rtp-rewriter.h"

#include <gst/rtp/rtp.h>
#include <libsoup/soup.h>
#include <gst/sdp/sdp.h>

namespace xdn {

namespace {

constexpr guint kGatherTimeoutMs = 3000;
constexpr gint64 kDisconnectGraceUs = 5 * G_USEC_PER_SEC;

struct MainCall {
  std::weak_ptr<PeerSession> session;
  std::function<void (PeerSession &)> fn;
};

const char *
kindName (PeerSession::Kind kind)
{
  return kind == PeerSession::Kind::Publish ? "whip" : "whep";
}

std::string
promiseError (GstPromise *promise)
{
  if (gst_promise_wait (promise) != GST_PROMISE_RESULT_REPLIED)
    return "no reply";
  const GstStructure *reply = gst_promise_get_reply (promise);
  if (!reply)
    return "";
  GError *err = nullptr;
  if (gst_structure_has_field (reply, "error")) {
    gst_structure_get (reply, "error", G_TYPE_ERROR, &err, NULL);
    std::string message = err ? err->message : "unknown error";
    g_clear_error (&err);
    return message;
  }
  return "";
}

}  // namespace

/* ---------------------------------------------------------------- session */

PeerSession::PeerSession (Kind kind, std::string id, std::string stream,
    std::string peer, SessionSettings settings, EndedCallback ended)
    : settings_ (std::move (settings)), kind_ (kind), id_ (std::move (id)),
      stream_ (std::move (stream)), peer_ (std::move (peer)), ended_ (std::move (ended))
{
  startedAt_ = g_get_monotonic_time ();
}

PeerSession::~PeerSession ()
{
  if (pipeline_)
    gst_element_set_state (pipeline_.get (), GST_STATE_NULL);
}

void
PeerSession::log (int level, const char *event, const std::string &detail)
{
  std::string name = std::string (kindName (kind_)) + "." + event;
  xdn::log (static_cast<LogLevel> (level), name.c_str (),
      {{"session", id_}, {"stream", stream_}, {"peer", peer_}, {"detail", detail}});
}

void
PeerSession::onMain (std::function<void (PeerSession &)> fn)
{
  auto *call = new MainCall{weak_from_this (), std::move (fn)};
  g_idle_add_full (G_PRIORITY_DEFAULT, [] (gpointer data) -> gboolean {
        auto *c = static_cast<MainCall *> (data);
        if (auto self = c->session.lock ())
          if (!self->stopped_)
            c->fn (*self);
        return G_SOURCE_REMOVE;
      }, call, [] (gpointer data) { delete static_cast<MainCall *> (data); });
}

void
PeerSession::start (const std::string &offer_text, AnswerCallback done)
{
  answerDone_ = std::move (done);

  GstSDPMessage *offer = nullptr;
  gst_sdp_message_new_from_text (offer_text.c_str (), &offer);
  if (!offer || gst_sdp_message_medias_len (offer) == 0) {
    if (offer)
      gst_sdp_message_free (offer);
    fail (SOUP_STATUS_BAD_REQUEST, "the body is not an SDP offer with media");
    return;
  }

  pipeline_ = adoptGRef (GST_ELEMENT (gst_object_ref_sink (gst_pipeline_new (("session-" + id_).c_str ()))));
  webrtc_ = GRef<GstElement>::ref (gst_element_factory_make ("webrtcbin", "webrtc"));
  if (!webrtc_) {
    gst_sdp_message_free (offer);
    fail (SOUP_STATUS_INTERNAL_SERVER_ERROR, "webrtcbin is not installed (gstreamer1.0-plugins-bad)");
    return;
  }
  std::string error;
  if (!configureWebRtcBin (webrtc_.get (), settings_.ice, &error)) {
    gst_sdp_message_free (offer);
    fail (SOUP_STATUS_INTERNAL_SERVER_ERROR, error);
    return;
  }
  g_signal_connect_data (pipeline_.get (), "deep-element-added",
      G_CALLBACK (+[] (GstBin *, GstBin *, GstElement *element, gpointer data) {
        static_cast<PeerSession *> (data)->watchPeerTraffic (element);
      }), this, nullptr, (GConnectFlags) 0);
  gst_bin_add (GST_BIN (pipeline_.get ()), webrtc_.get ());

  auto weak = new std::weak_ptr<PeerSession> (weak_from_this ());
  auto on_state = +[] (GObject *, GParamSpec *, gpointer data) {
    auto *w = static_cast<std::weak_ptr<PeerSession> *> (data);
    if (auto self = w->lock ())
      self->onMain ([] (PeerSession &s) { s.onIceConnectionState (); });
  };
  auto destroy = +[] (gpointer data, GClosure *) {
    delete static_cast<std::weak_ptr<PeerSession> *> (data);
  };
  g_signal_connect_data (webrtc_.get (), "notify::connection-state", G_CALLBACK (on_state),
      weak, destroy, (GConnectFlags) 0);
  g_signal_connect_data (webrtc_.get (), "notify::ice-connection-state", G_CALLBACK (on_state),
      new std::weak_ptr<PeerSession> (weak_from_this ()), destroy, (GConnectFlags) 0);
  g_signal_connect_data (webrtc_.get (), "notify::ice-gathering-state",
      G_CALLBACK (+[] (GObject *obj, GParamSpec *, gpointer data) {
        GstWebRTCICEGatheringState state;
        g_object_get (obj, "ice-gathering-state", &state, NULL);
        if (state != GST_WEBRTC_ICE_GATHERING_STATE_COMPLETE)
          return;
        auto *w = static_cast<std::weak_ptr<PeerSession> *> (data);
        if (auto self = w->lock ())
          self->onMain ([] (PeerSession &s) {
            s.gatheringDone_ = true;
            s.maybeSendAnswer ();
          });
      }), new std::weak_ptr<PeerSession> (weak_from_this ()), destroy, (GConnectFlags) 0);

  GstBus *bus = gst_element_get_bus (pipeline_.get ());
  busWatch_ = gst_bus_add_watch_full (bus, G_PRIORITY_DEFAULT, &PeerSession::onBusMessage,
      new std::weak_ptr<PeerSession> (weak_from_this ()),
      [] (gpointer data) { delete static_cast<std::weak_ptr<PeerSession> *> (data); });
  gst_object_unref (bus);

  if (gst_element_set_state (pipeline_.get (), GST_STATE_READY) == GST_STATE_CHANGE_FAILURE) {
    gst_sdp_message_free (offer);
    fail (SOUP_STATUS_INTERNAL_SERVER_ERROR, "cannot start the session pipeline");
    return;
  }

  /* Transceivers made before the offer is applied are matched to its
   * m-lines by kind, in order, and answer with their codec preferences. */
  guint status = prepare (offer, &error);
  if (status) {
    gst_sdp_message_free (offer);
    fail (status, error);
    return;
  }

  GstWebRTCSessionDescription *desc =
      gst_webrtc_session_description_new (GST_WEBRTC_SDP_TYPE_OFFER, offer);
  GstPromise *promise = gst_promise_new_with_change_func (
      [] (GstPromise *p, gpointer data) {
        auto *w = static_cast<std::weak_ptr<PeerSession> *> (data);
        if (auto self = w->lock ()) {
          gst_promise_ref (p);
          self->onMain ([p] (PeerSession &s) {
            s.afterRemoteDescription (p);
            gst_promise_unref (p);
          });
        }
      },
      new std::weak_ptr<PeerSession> (weak_from_this ()),
      [] (gpointer data) { delete static_cast<std::weak_ptr<PeerSession> *> (data); });
  g_signal_emit_by_name (webrtc_.get (), "set-remote-description", desc, promise);
  gst_promise_unref (promise);
  gst_webrtc_session_description_free (desc);

  healthTimer_ = g_timeout_add_seconds_full (G_PRIORITY_DEFAULT, 1, [] (gpointer data) -> gboolean {
        auto *w = static_cast<std::weak_ptr<PeerSession> *> (data);
        if (auto self = w->lock ())
          self->checkHealth ();
        return G_SOURCE_CONTINUE;
      }, new std::weak_ptr<PeerSession> (weak_from_this ()),
      [] (gpointer data) { delete static_cast<std::weak_ptr<PeerSession> *> (data); });
}

void
PeerSession::afterRemoteDescription (GstPromise *promise)
{
  std::string error = promiseError (promise);
  if (!error.empty ()) {
    fail (SOUP_STATUS_BAD_REQUEST, "the offer was refused: " + error);
    return;
  }
  GstPromise *answer = gst_promise_new_with_change_func (
      [] (GstPromise *p, gpointer data) {
        auto *w = static_cast<std::weak_ptr<PeerSession> *> (data);
        if (auto self = w->lock ()) {
          gst_promise_ref (p);
          self->onMain ([p] (PeerSession &s) {
            s.afterAnswer (p);
            gst_promise_unref (p);
          });
        }
      },
      new std::weak_ptr<PeerSession> (weak_from_this ()),
      [] (gpointer data) { delete static_cast<std::weak_ptr<PeerSession> *> (data); });
  g_signal_emit_by_name (webrtc_.get (), "create-answer", nullptr, answer);
  gst_promise_unref (answer);
}

void
PeerSession::afterAnswer (GstPromise *promise)
{
  std::string error = promiseError (promise);
  const GstStructure *reply = gst_promise_get_reply (promise);
  GstWebRTCSessionDescription *answer = nullptr;
  if (error.empty () && reply)
    gst_structure_get (reply, "answer", GST_TYPE_WEBRTC_SESSION_DESCRIPTION, &answer, NULL);
  if (!answer) {
    fail (SOUP_STATUS_BAD_REQUEST, "cannot answer the offer: " + (error.empty () ? "no answer" : error));
    return;
  }
  g_signal_emit_by_name (webrtc_.get (), "set-local-description", answer, nullptr);
  gst_webrtc_session_description_free (answer);

  if (gst_element_set_state (pipeline_.get (), GST_STATE_PLAYING) == GST_STATE_CHANGE_FAILURE) {
    fail (SOUP_STATUS_INTERNAL_SERVER_ERROR, "cannot start the session pipeline");
    return;
  }

  gatherTimer_ = g_timeout_add_full (G_PRIORITY_DEFAULT, kGatherTimeoutMs, [] (gpointer data) -> gboolean {
        auto *w = static_cast<std::weak_ptr<PeerSession> *> (data);
        if (auto self = w->lock ()) {
          self->gatherTimer_ = 0;
          self->gatheringDone_ = true;
          self->maybeSendAnswer ();
        }
        return G_SOURCE_REMOVE;
      }, new std::weak_ptr<PeerSession> (weak_from_this ()),
      [] (gpointer data) { delete static_cast<std::weak_ptr<PeerSession> *> (data); });

  GstWebRTCICEGatheringState state;
  g_object_get (webrtc_.get (), "ice-gathering-state", &state, NULL);
  if (state == GST_WEBRTC_ICE_GATHERING_STATE_COMPLETE)
    gatheringDone_ = true;
  maybeSendAnswer ();
}

void
PeerSession::maybeSendAnswer ()
{
  if (answerSent_ || !gatheringDone_ || stopped_)
    return;
  GstWebRTCSessionDescription *local = nullptr;
  g_object_get (webrtc_.get (), "local-description", &local, NULL);
  if (!local)
    return;
  gchar *text = gst_sdp_message_as_text (local->sdp);
  std::string sdp = text;
  g_free (text);
  gst_webrtc_session_description_free (local);

  if (!settings_.publicAddress.empty ())
    for (const auto &address : settings_.ice.addresses)
      sdp = announceAddress (sdp, address, settings_.publicAddress);

  if (gatherTimer_) {
    g_source_remove (gatherTimer_);
    gatherTimer_ = 0;
  }
  /* Without a candidate the peer has nowhere to connect: with a port range,
   * another session or process holds every port of it. */
  if (sdp.find ("a=candidate:") == std::string::npos) {
    const IceSettings &ice = settings_.ice;
    if (ice.maxPort)
      fail (SOUP_STATUS_SERVICE_UNAVAILABLE, "no free WebRTC port in " +
          std::to_string (ice.minPort) + "-" + std::to_string (ice.maxPort));
    else
      fail (SOUP_STATUS_SERVICE_UNAVAILABLE, "no ICE candidate could be gathered");
    return;
  }
  answerSent_ = true;
  answeredAt_ = g_get_monotonic_time ();
  log (1, "session.answered");
  if (auto done = std::move (answerDone_))
    done (SOUP_STATUS_CREATED, sdp);
  started ();
}

void
PeerSession::fail (guint status, const std::string &message)
{
  log (2, "session.refused", std::to_string (status) + " " + message);
  if (auto done = std::move (answerDone_))
    done (status, message);
  stop (message);
}

void
PeerSession::onIceConnectionState ()
{
  GstWebRTCPeerConnectionState pc;
  GstWebRTCICEConnectionState ice;
  g_object_get (webrtc_.get (), "connection-state", &pc, "ice-connection-state", &ice, NULL);
  if (pc == GST_WEBRTC_PEER_CONNECTION_STATE_CONNECTED && !connected_) {
    connected_ = true;
    lastHeard_ = g_get_monotonic_time ();
    log (1, "session.connected");
  }
  if (pc == GST_WEBRTC_PEER_CONNECTION_STATE_FAILED || ice == GST_WEBRTC_ICE_CONNECTION_STATE_FAILED) {
    stop (pc == GST_WEBRTC_PEER_CONNECTION_STATE_FAILED && ice != GST_WEBRTC_ICE_CONNECTION_STATE_FAILED
        ? "DTLS failed" : "ICE failed");
    return;
  }
  if (pc == GST_WEBRTC_PEER_CONNECTION_STATE_CLOSED && connected_) {
    stop ("peer closed the connection");
    return;
  }
  if (ice == GST_WEBRTC_ICE_CONNECTION_STATE_DISCONNECTED) {
    if (!disconnectedSince_)
      disconnectedSince_ = g_get_monotonic_time ();
  } else {
    disconnectedSince_ = 0;
  }
}

void
PeerSession::checkHealth ()
{
  if (stopped_)
    return;
  gint64 now = g_get_monotonic_time ();
  if (answerSent_ && !connected_ &&
      now - answeredAt_ > settings_.connectTimeoutS * G_USEC_PER_SEC) {
    stop ("not connected within " + std::to_string (settings_.connectTimeoutS) + " s");
    return;
  }
  if (connected_ && now - lastHeard_ > settings_.peerTimeoutS * G_USEC_PER_SEC) {
    stop ("nothing heard from the peer for " + std::to_string (settings_.peerTimeoutS) + " s");
    return;
  }
  if (disconnectedSince_ && now - disconnectedSince_ > kDisconnectGraceUs)
    stop ("ICE disconnected");
}

void
PeerSession::watchPeerTraffic (GstElement *element)
{
  GstElementFactory *factory = gst_element_get_factory (element);
  if (!factory || g_strcmp0 (GST_OBJECT_NAME (factory), "nicesrc") != 0)
    return;
  GstPad *pad = gst_element_get_static_pad (element, "src");
  if (!pad)
    return;
  /* Anything from the peer (RTP, RTCP, DTLS) proves it is still there. */
  gst_pad_add_probe (pad, (GstPadProbeType) (GST_PAD_PROBE_TYPE_BUFFER | GST_PAD_PROBE_TYPE_BUFFER_LIST),
      [] (GstPad *, GstPadProbeInfo *info, gpointer data) -> GstPadProbeReturn {
        auto *self = static_cast<PeerSession *> (data);
        gsize size = 0;
        if (GST_PAD_PROBE_INFO_TYPE (info) & GST_PAD_PROBE_TYPE_BUFFER)
          size = gst_buffer_get_size (GST_PAD_PROBE_INFO_BUFFER (info));
        else
          size = gst_buffer_list_calculate_size (GST_PAD_PROBE_INFO_BUFFER_LIST (info));
        self->peerBytes_ += size;
        self->lastHeard_ = g_get_monotonic_time ();
        return GST_PAD_PROBE_OK;
      }, this, nullptr);
  gst_object_unref (pad);
}

gboolean
PeerSession::onBusMessage (GstBus *, GstMessage *msg, gpointer data)
{
  auto *w = static_cast<std::weak_ptr<PeerSession> *> (data);
  auto self = w->lock ();
  if (!self || self->stopped_)
    return G_SOURCE_CONTINUE;
  if (GST_MESSAGE_TYPE (msg) == GST_MESSAGE_ERROR) {
    GError *err = nullptr;
    gchar *debug = nullptr;
    gst_message_parse_error (msg, &err, &debug);
    std::string reason = std::string ("pipeline error from ") + GST_OBJECT_NAME (GST_MESSAGE_SRC (msg)) +
        ": " + (err ? err->message : "unknown");
    self->log (3, "session.error", reason + (debug ? std::string (" (") + debug + ")" : ""));
    g_clear_error (&err);
    g_free (debug);
    if (self->answerSent_)
      self->stop (reason);
    else
      self->fail (SOUP_STATUS_INTERNAL_SERVER_ERROR, reason);
  }
  return G_SOURCE_CONTINUE;
}

void
PeerSession::stop (const std::string &reason)
{
  if (stopped_)
    return;
  stopped_ = true;
  auto keep = shared_from_this ();

  if (auto done = std::move (answerDone_))
    done (SOUP_STATUS_INTERNAL_SERVER_ERROR, reason);
  for (guint *source : {&healthTimer_, &gatherTimer_, &busWatch_}) {
    if (*source)
      g_source_remove (*source);
    *source = 0;
  }
  teardown ();
  if (pipeline_)
    gst_element_set_state (pipeline_.get (), GST_STATE_NULL);
  log (1, "session.ended", reason);
  if (auto ended = std::move (ended_))
    ended (id_, reason);
}

/* ---------------------------------------------------------------- publish */

std::shared_ptr<PublishSession>
PublishSession::create (std::string id, std::string stream, std::string peer,
    SessionSettings settings, EndedCallback ended, MakeSink makeSink)
{
  std::shared_ptr<PublishSession> s (new PublishSession (Kind::Publish, std::move (id),
      std::move (stream), std::move (peer), std::move (settings), std::move (ended)));
  s->makeSink_ = std::move (makeSink);
  return s;
}

/* Copies the transport-wide congestion control extension of the offer into
 * @caps, so that the publisher gets feedback to estimate its bandwidth. */
static void
keepTransportCc (GstCaps *caps, const GstSDPMedia *media)
{
  for (guint i = 0; i < gst_sdp_media_attributes_len (media); i++) {
    const GstSDPAttribute *attr = gst_sdp_media_get_attribute (media, i);
    if (g_strcmp0 (attr->key, "extmap") != 0 || !attr->value ||
        !strstr (attr->value, "transport-wide-cc"))
      continue;
    guint id = 0;
    gchar uri[256];
    if (sscanf (attr->value, "%u %255s", &id, uri) == 2 && id > 0 && id < 15) {
      gchar *field = g_strdup_printf ("extmap-%u", id);
      gst_caps_set_simple (caps, field, G_TYPE_STRING, uri, NULL);
      g_free (field);
    }
  }
}

guint
PublishSession::prepare (GstSDPMessage *offer, std::string *error)
{
  for (guint mline = 0; mline < gst_sdp_message_medias_len (offer); mline++) {
    const GstSDPMedia *media = gst_sdp_message_get_media (offer, mline);
    std::string kind = gst_sdp_media_get_media (media);
    if (kind != "audio" && kind != "video")
      continue;
    GstCaps *caps = chooseOfferedCodec (media, "");
    if (!caps) {
      *error = "m-line " + std::to_string (mline) + " (" + kind + ") offers no codec this node takes: " +
          (kind == "video" ? "H264 constrained baseline with packetization-mode=1, or VP8" : "Opus");
      return SOUP_STATUS_NOT_ACCEPTABLE;
    }
    keepTransportCc (caps, media);
    GstWebRTCRTPTransceiver *trans = nullptr;
    g_signal_emit_by_name (webrtc (), "add-transceiver",
        GST_WEBRTC_RTP_TRANSCEIVER_DIRECTION_RECVONLY, caps, &trans);
    gst_caps_unref (caps);
    if (!trans) {
      *error = "cannot receive m-line " + std::to_string (mline);
      return SOUP_STATUS_INTERNAL_SERVER_ERROR;
    }
    gst_object_unref (trans);
    expectedTracks_++;
  }
  if (expectedTracks_ == 0) {
    *error = "the offer has no audio or video to publish";
    return SOUP_STATUS_BAD_REQUEST;
  }

  relaySink_ = GRef<GstElement>::ref (makeSink_ (stream (), expectedTracks_));
  if (!relaySink_) {
    *error = "the xdn plugin (xdnrelaysink) is not available";
    return SOUP_STATUS_INTERNAL_SERVER_ERROR;
  }
  gst_bin_add (GST_BIN (pipeline ()), relaySink_.get ());
  gst_element_sync_state_with_parent (relaySink_.get ());

  g_signal_connect_data (webrtc (), "pad-added",
      G_CALLBACK (+[] (GstElement *, GstPad *pad, gpointer data) {
        if (GST_PAD_DIRECTION (pad) != GST_PAD_SRC)
          return;
        auto *w = static_cast<std::weak_ptr<PeerSession> *> (data);
        if (auto self = std::static_pointer_cast<PublishSession> (w->lock ()))
          self->onPadAdded (pad);
      }), new std::weak_ptr<PeerSession> (weak_from_this ()),
      [] (gpointer data, GClosure *) { delete static_cast<std::weak_ptr<PeerSession> *> (data); },
      (GConnectFlags) 0);
  return 0;
}

/* On webrtcbin's streaming thread: the first packet of a track arrived. */
void
PublishSession::onPadAdded (GstPad *pad)
{
  GstPad *sink = gst_element_request_pad_simple (relaySink_.get (), "sink_%u");
  if (!sink || gst_pad_link (pad, sink) != GST_PAD_LINK_OK) {
    GST_ELEMENT_ERROR (pipeline (), CORE, NEGOTIATION, ("cannot link a track into the hub"), (NULL));
    if (sink)
      gst_object_unref (sink);
    return;
  }
  gst_object_unref (sink);
}

void
PublishSession::teardown ()
{
}

/* ------------------------------------------------------------------- play */

std::shared_ptr<PlaySession>
PlaySession::create (std::string id, std::string stream, std::string peer,
    SessionSettings settings, EndedCallback ended)
{
  return std::shared_ptr<PlaySession> (new PlaySession (Kind::Play, std::move (id),
      std::move (stream), std::move (peer), std::move (settings), std::move (ended)));
}

namespace {

/* The per-viewer rewrite of one track, on the relay source's pad. */
struct TrackRewrite {
  RtpRewriter rewriter;
  GRef<GstCaps> caps;
  std::weak_ptr<PeerSession> session;
};

GstPadProbeReturn
rewriteProbe (GstPad *, GstPadProbeInfo *info, gpointer data)
{
  auto *tr = static_cast<TrackRewrite *> (data);
  if (GST_PAD_PROBE_INFO_TYPE (info) & GST_PAD_PROBE_TYPE_BUFFER) {
    GstBuffer *buf = gst_buffer_make_writable (GST_PAD_PROBE_INFO_BUFFER (info));
    GST_PAD_PROBE_INFO_DATA (info) = buf;
    GstMapInfo map;
    if (gst_buffer_map (buf, &map, GST_MAP_READWRITE)) {
      bool ok = tr->rewriter.rewrite (map.data, map.size);
      gst_buffer_unmap (buf, &map);
      if (!ok)
        return GST_PAD_PROBE_DROP;
    }
    return GST_PAD_PROBE_OK;
  }
  if (GST_PAD_PROBE_INFO_TYPE (info) & GST_PAD_PROBE_TYPE_QUERY_UPSTREAM) {
    /* webrtcbin checks the track's caps against what was negotiated: answer
     * with the caps as the viewer will see them. */
    GstQuery *query = GST_PAD_PROBE_INFO_QUERY (info);
    if (GST_QUERY_TYPE (query) == GST_QUERY_CAPS) {
      gst_query_set_caps_result (query, tr->caps.get ());
      return GST_PAD_PROBE_HANDLED;
    }
    return GST_PAD_PROBE_OK;
  }
  GstEvent *event = GST_PAD_PROBE_INFO_EVENT (info);
  if (GST_EVENT_TYPE (event) == GST_EVENT_CAPS) {
    gst_event_unref (event);
    GST_PAD_PROBE_INFO_DATA (info) = gst_event_new_caps (tr->caps.get ());
  } else if (GST_EVENT_TYPE (event) == GST_EVENT_EOS) {
    /* The publisher is gone: let the EOS reach webrtcbin (RTCP BYE), then end. */
    if (auto self = tr->session.lock ())
      g_timeout_add_full (G_PRIORITY_DEFAULT, 200, [] (gpointer d) -> gboolean {
            auto *w = static_cast<std::weak_ptr<PeerSession> *> (d);
            if (auto s = w->lock ())
              s->stop ("the stream ended");
            return G_SOURCE_REMOVE;
          }, new std::weak_ptr<PeerSession> (self),
          [] (gpointer d) { delete static_cast<std::weak_ptr<PeerSession> *> (d); });
  }
  return GST_PAD_PROBE_OK;
}

}  // namespace

guint
PlaySession::prepare (GstSDPMessage *offer, std::string *error)
{
  relaySrc_ = GRef<GstElement>::ref (gst_element_factory_make ("xdnrelaysrc", "relay"));
  if (!relaySrc_) {
    *error = "the xdn plugin (xdnrelaysrc) is not available";
    return SOUP_STATUS_INTERNAL_SERVER_ERROR;
  }
  g_object_set (relaySrc_.get (), "stream", stream ().c_str (), NULL);
  g_signal_connect (relaySrc_.get (), "pad-added", G_CALLBACK (+[] (GstElement *, GstPad *pad, gpointer data) {
        auto *self = static_cast<PlaySession *> (data);
        /* A track that appears after the answer cannot be negotiated. */
        if (self->prepared_)
          self->discard (pad);
        else
          self->sourcePads_.push_back (GRef<GstPad>::ref (pad));
      }), this);
  gst_bin_add (GST_BIN (pipeline ()), relaySrc_.get ());
  /* Subscribing creates one pad per track of the stream, with its caps. */
  if (gst_element_set_state (relaySrc_.get (), GST_STATE_PAUSED) == GST_STATE_CHANGE_FAILURE) {
    *error = "stream '" + stream () + "' is not live";
    return SOUP_STATUS_NOT_FOUND;
  }

  std::vector<bool> used (sourcePads_.size (), false);
  unsigned matched = 0;
  for (guint mline = 0; mline < gst_sdp_message_medias_len (offer); mline++) {
    const GstSDPMedia *media = gst_sdp_message_get_media (offer, mline);
    std::string kind = gst_sdp_media_get_media (media);
    if (kind != "audio" && kind != "video")
      continue;

    GstCaps *chosen = nullptr;
    size_t index = 0;
    for (; index < sourcePads_.size () && !chosen; index++) {
      if (used[index])
        continue;
      GRef<GstCaps> caps = adoptGRef (gst_pad_get_current_caps (sourcePads_[index].get ()));
      if (!caps)
        caps = adoptGRef (gst_pad_query_caps (sourcePads_[index].get (), nullptr));
      if (!caps || !gst_caps_is_fixed (caps.get ()))
        continue;
      const gchar *track_kind = gst_structure_get_string (gst_caps_get_structure (caps.get (), 0), "media");
      if (!track_kind || kind != track_kind)
        continue;
      chosen = chooseOfferedCodec (media, encodingNameOf (caps.get ()));
    }
    if (!chosen) {
      /* Nothing to send on this m-line: answer it inactive. */
      GstCaps *any = chooseOfferedCodec (media, "");
      if (any) {
        GstWebRTCRTPTransceiver *trans = nullptr;
        g_signal_emit_by_name (webrtc (), "add-transceiver",
            GST_WEBRTC_RTP_TRANSCEIVER_DIRECTION_INACTIVE, any, &trans);
        if (trans)
          gst_object_unref (trans);
        gst_caps_unref (any);
      }
      continue;
    }
    index--;
    used[index] = true;

    guint32 ssrc = g_random_int ();
    gst_caps_set_simple (chosen, "ssrc", G_TYPE_UINT, ssrc, NULL);
    gint pt = 0;
    gst_structure_get_int (gst_caps_get_structure (chosen, 0), "payload", &pt);

    GstPadTemplate *templ = gst_element_get_pad_template (webrtc (), "sink_%u");
    GstPad *sink = gst_element_request_pad (webrtc (), templ, nullptr, chosen);
    if (!sink) {
      gst_caps_unref (chosen);
      *error = "cannot send on m-line " + std::to_string (mline);
      return SOUP_STATUS_INTERNAL_SERVER_ERROR;
    }
    GstWebRTCRTPTransceiver *trans = nullptr;
    g_object_get (sink, "transceiver", &trans, NULL);
    if (trans) {
      g_object_set (trans, "direction", GST_WEBRTC_RTP_TRANSCEIVER_DIRECTION_SENDONLY,
          "codec-preferences", chosen, NULL);
      gst_object_unref (trans);
    }

    auto *tr = new TrackRewrite{RtpRewriter (static_cast<uint8_t> (pt), ssrc),
        adoptGRef (chosen), weak_from_this ()};
    GstPad *src = sourcePads_[index].get ();
    gst_pad_add_probe (src, (GstPadProbeType) (GST_PAD_PROBE_TYPE_BUFFER |
            GST_PAD_PROBE_TYPE_EVENT_DOWNSTREAM | GST_PAD_PROBE_TYPE_QUERY_UPSTREAM), rewriteProbe, tr,
        [] (gpointer d) { delete static_cast<TrackRewrite *> (d); });
    GstPadLinkReturn linked = gst_pad_link_full (src, sink, GST_PAD_LINK_CHECK_NOTHING);
    gst_object_unref (sink);
    if (linked != GST_PAD_LINK_OK) {
      *error = "cannot attach a track to m-line " + std::to_string (mline);
      return SOUP_STATUS_INTERNAL_SERVER_ERROR;
    }
    matched++;
  }
  /* Tracks this viewer does not take still flow, into a fakesink, so that
   * the relay source never sees an unlinked pad. */
  for (size_t i = 0; i < sourcePads_.size (); i++)
    if (!used[i])
      discard (sourcePads_[i].get ());
  prepared_ = true;

  if (matched == 0) {
    *error = "the offer accepts none of the stream's tracks (the node sends H264 constrained "
        "baseline packetization-mode=1 or VP8 video, and Opus audio)";
    return SOUP_STATUS_NOT_ACCEPTABLE;
  }
  return 0;
}

void
PlaySession::discard (GstPad *pad)
{
  GstElement *sink = gst_element_factory_make ("fakesink", nullptr);
  g_object_set (sink, "sync", FALSE, "async", FALSE, NULL);
  gst_bin_add (GST_BIN (pipeline ()), sink);
  GstPad *sinkpad = gst_element_get_static_pad (sink, "sink");
  gst_pad_link (pad, sinkpad);
  gst_object_unref (sinkpad);
  gst_element_sync_state_with_parent (sink);
}

void
PlaySession::teardown ()
{
  sourcePads_.clear ();
}

}  // namespace xdn
