/* WHEP egress through one xdnwebrtcfanout per stream: a pipeline
 * `xdnrelaysrc stream=NAME` (hub) -> each track pad -> the fan-out's
 * `sink_N`, built for the stream's first viewer. Viewers are added with the
 * element's `add-viewer` (their offer in, the answer out) and removed with
 * `remove-viewer`; the node keeps its HTTP sessions apart (node.cpp).
 *
 * Lives on the main thread; what the element reports from its own threads
 * (viewer removed, end of stream, errors) is handed to the main context. */
#pragma once

#include "port-pool.h"
#include "xdn-gref.h"

#include <gst/gst.h>

#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace xdn {

struct FanoutSettings {
  std::string address;                    /* the one local address the element binds */
  std::vector<std::string> localAddresses; /* rewritten to publicAddress in answers */
  std::string publicAddress;              /* empty: answers carry the local address */
  unsigned threads = 0;                   /* sending threads; 0: one per core */
  int viewerTimeoutS = 15;
  /* The node's WebRTC port range, shared by its fan-outs; null or not
   * limited: the system picks the port. */
  std::shared_ptr<PortPool> ports;
};

struct FanoutStats {
  guint64 viewers = 0, connected = 0, tracks = 0, packetsSent = 0, bytesSent = 0,
      retransmits = 0, dropped = 0;
  /* From the viewers: packets their NACKs reported lost (and those no longer
   * in the history), PLIs and FIRs; keyframe requests passed upstream, and
   * those the rate limit held back to make once, later. */
  guint64 nacks = 0, nackMisses = 0, plis = 0, firs = 0, keyframeRequests = 0,
      keyframeRequestsLimited = 0;
  /* Transport-cc feedback from the viewers: messages, and the packets they
   * reported received and not received. */
  guint64 transportCcFeedbacks = 0, transportCcReceived = 0, transportCcLost = 0;
  int port = 0;
};

class FanoutEgress : public std::enable_shared_from_this<FanoutEgress> {
public:
  struct Hooks {
    /* A viewer is gone (its id from addViewer). Main thread. */
    std::function<void (const std::string &viewer, const std::string &reason)> viewerRemoved;
    /* The stream ended (EOS) or the pipeline failed. Main thread, once. */
    std::function<void (FanoutEgress &egress, const std::string &reason)> ended;
  };

  static std::shared_ptr<FanoutEgress> create (std::string stream, FanoutSettings settings,
      Hooks hooks);
  ~FanoutEgress ();

  /* Builds the pipeline and sets it playing. Returns false, why not, and
   * the HTTP status for the viewer: 503 when every port of the range is
   * taken, 500 otherwise. */
  bool start (std::string *error, guint *status);
  /* Stops the pipeline (every viewer is removed) and gives its port back
   * to the range. Idempotent. */
  void stop ();

  /* True once the fan-out has caps on @tracks track pads. */
  bool ready (unsigned tracks) const;
  /* Answers a viewer's offer: 201 with @answer and @viewer (the element's
   * id), or a 4xx/5xx status with the element's reason in @answer. */
  guint addViewer (const std::string &offer, std::string *viewer, std::string *answer);
  bool removeViewer (const std::string &viewer);
  FanoutStats stats () const;

  const std::string &stream () const { return stream_; }
  /* Monotonic us since the egress has had no viewer (0: it has some). Kept
   * by the node. */
  gint64 idleSince = 0;

private:
  FanoutEgress (std::string stream, FanoutSettings settings, Hooks hooks);
  static GstBusSyncReply onBusSync (GstBus *, GstMessage *msg, gpointer data);
  void onMain (std::function<void (FanoutEgress &)> fn);
  bool bindPort (GstElement *fanout, std::string *error, guint *status);

  std::string stream_;
  FanoutSettings settings_;
  Hooks hooks_;
  GRef<GstElement> pipeline_, fanout_;
  bool stopped_ = false;   /* main thread */
  bool endedSent_ = false; /* main thread */
  int port_ = 0;           /* main thread: held in settings_.ports, 0: none */

  std::mutex refusalLock_;
  GThread *addingThread_ = nullptr;  /* protected by refusalLock_ */
  std::string refusal_;              /* protected by refusalLock_ */
};

}  // namespace xdn
