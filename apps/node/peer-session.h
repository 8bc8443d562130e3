/* One WebRTC peer of the node, in a pipeline of its own joined to the
 * stream hub: a publisher (WHIP: webrtcbin -> xdnrelaysink) or a viewer
 * (WHEP: xdnrelaysrc -> RTP rewrite -> webrtcbin).
 *
 * A session lives on the main thread: webrtcbin's callbacks come from its
 * own threads and are handed to the main context. It ends once (DELETE,
 * ICE/DTLS failure, peer silent, stream ended, node stopping) and then
 * reports to its owner. */
#pragma once

#include "xdn-gref.h"
#include "xdn-ice.h"

#include <gst/gst.h>
#include <gst/webrtc/webrtc.h>

#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace xdn {

struct SessionSettings {
  IceSettings ice;
  std::string publicAddress;
  int connectTimeoutS = 15;
  int peerTimeoutS = 10;
};

class PeerSession : public std::enable_shared_from_this<PeerSession> {
public:
  enum class Kind { Publish, Play };

  /* Called once on the main thread with 201 + answer SDP, or an HTTP error
   * status + message. */
  using AnswerCallback = std::function<void (guint status, const std::string &body)>;
  /* Called once on the main thread when the session has ended. */
  using EndedCallback = std::function<void (const std::string &id, const std::string &reason)>;

  virtual ~PeerSession ();

  void start (const std::string &offer, AnswerCallback done);
  /* Ends the session (idempotent). */
  void stop (const std::string &reason);

  const std::string &id () const { return id_; }
  const std::string &stream () const { return stream_; }
  const std::string &peer () const { return peer_; }
  Kind kind () const { return kind_; }
  bool connected () const { return connected_; }
  guint64 bytesFromPeer () const { return peerBytes_; }
  gint64 startedAt () const { return startedAt_; }

protected:
  PeerSession (Kind kind, std::string id, std::string stream, std::string peer,
      SessionSettings settings, EndedCallback ended);

  /* After the offer is applied: set the transceivers up (directions, codec
   * preferences, pads). Returns an HTTP status (0: go on) and a message. */
  virtual guint prepare (GstSDPMessage *offer, std::string *error) = 0;
  /* Once the answer is out and the pipeline plays. */
  virtual void started () {}
  virtual void teardown () {}

  GstElement *pipeline () const { return pipeline_.get (); }
  GstElement *webrtc () const { return webrtc_.get (); }
  /* Runs @fn on the main thread if the session is still alive. */
  void onMain (std::function<void (PeerSession &)> fn);
  bool stopped () const { return stopped_; }
  void log (int level, const char *event, const std::string &detail = {});

  SessionSettings settings_;

private:
  void fail (guint status, const std::string &message);
  void afterRemoteDescription (GstPromise *promise);
  void afterAnswer (GstPromise *promise);
  void maybeSendAnswer ();
  void checkHealth ();
  void onIceConnectionState ();
  void watchPeerTraffic (GstElement *element);
  static gboolean onBusMessage (GstBus *, GstMessage *msg, gpointer data);

  Kind kind_;
  std::string id_, stream_, peer_;
  EndedCallback ended_;
  AnswerCallback answerDone_;
  GRef<GstElement> pipeline_, webrtc_;
  /* Main-thread state. */
  bool stopped_ = false;
  bool answerSent_ = false;
  bool gatheringDone_ = false;
  bool connected_ = false;
  gint64 startedAt_ = 0;
  gint64 answeredAt_ = 0;
  gint64 disconnectedSince_ = 0;
  guint healthTimer_ = 0;
  guint gatherTimer_ = 0;
  guint busWatch_ = 0;
  std::string localSdp_;
  /* Written by the streaming thread of the transport's source. */
  std::atomic<guint64> peerBytes_{0};
  std::atomic<gint64> lastHeard_{0};
};

class PublishSession : public PeerSession {
public:
  /* Builds the element the tracks go into (xdnrelaysink stream=NAME in the
   * node), told how many tracks to expect. */
  using MakeSink = std::function<GstElement * (const std::string &stream, unsigned tracks)>;
  static std::shared_ptr<PublishSession> create (std::string id, std::string stream,
      std::string peer, SessionSettings settings, EndedCallback ended, MakeSink makeSink);

private:
  using PeerSession::PeerSession;
  guint prepare (GstSDPMessage *offer, std::string *error) override;
  void teardown () override;
  void onPadAdded (GstPad *pad);

  MakeSink makeSink_;
  GRef<GstElement> relaySink_;
  unsigned expectedTracks_ = 0;
};

class PlaySession : public PeerSession {
public:
  static std::shared_ptr<PlaySession> create (std::string id, std::string stream,
      std::string peer, SessionSettings settings, EndedCallback ended);

private:
  using PeerSession::PeerSession;
  guint prepare (GstSDPMessage *offer, std::string *error) override;
  void teardown () override;
  void discard (GstPad *pad);

  GRef<GstElement> relaySrc_;
  std::atomic<bool> prepared_{false};
  std::vector<GRef<GstPad>> sourcePads_;
};

}  // namespace xdn
