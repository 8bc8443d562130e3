/* One downstream node served over SRT: the node accepted its m=request
 * socket and plays the stream from the hub into it.
 *
 *   xdnrelaysrc stream=NAME wait-for-stream=true (hub)
 *     pad video_N / audio_N / track_N ──▶ xdnrelaysink socket=S sink_N
 *
 * The relay sink owns the socket (and closes it). The serving ends when the
 * sink reports the link lost (xdn-relay-link state=lost), when the stream
 * ends (EOS), on an error, or when the node stops it. Main thread. */
#pragma once

#include "xdn-gref.h"

#include <gst/gst.h>

#include <functional>
#include <memory>
#include <string>

namespace xdn {

class RelayServing : public std::enable_shared_from_this<RelayServing> {
public:
  /* Called once on the main thread when the serving has ended and its
   * pipeline is down; the owner may drop it from within. */
  using Ended = std::function<void (RelayServing &serving, const std::string &reason)>;

  /* Takes @socket (an accepted SRTSOCKET). */
  static std::shared_ptr<RelayServing> create (guint64 id, int socket, std::string stream,
      std::string peer, Ended ended);
  ~RelayServing ();

  /* Builds and plays the pipeline; on failure closes the socket and says
   * why. */
  bool start (std::string *error);
  /* Ends the serving (idempotent). */
  void stop (const std::string &reason);

  guint64 id () const { return id_; }
  const std::string &stream () const { return stream_; }
  const std::string &peer () const { return peer_; }
  gint64 startedAt () const { return startedAt_; }

private:
  RelayServing (guint64 id, int socket, std::string stream, std::string peer, Ended ended);
  static gboolean onBus (GstBus *, GstMessage *msg, gpointer data);
  static void onPadAdded (GstElement *src, GstPad *pad, gpointer data);
  void closeSocket ();

  const guint64 id_;
  int socket_;              /* ours until the sink has taken it */
  const std::string stream_, peer_;
  Ended ended_;
  GRef<GstElement> pipeline_, sink_;
  guint busWatch_ = 0;
  bool stopped_ = false;
  gint64 startedAt_ = 0;
};

}  // namespace xdn
