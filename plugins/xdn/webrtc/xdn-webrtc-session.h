/* One WHIP or WHEP session of a webrtcbin: the offer/answer exchange
 * without trickle ICE, shared by xdnwhipsink and xdnwhepsrc.
 *
 * start() runs, in a signalling thread of its own: create-offer,
 * set-local-description, wait for ICE gathering to complete (capped), POST
 * the offer with its candidates through WhipClient, set the answer as the
 * remote description. Connection failures reported by webrtcbin
 * (ice-connection-state or connection-state `failed`) and every failure of
 * the exchange reach the owner through onError, once.
 *
 * stop() interrupts whatever the thread waits on, joins it and DELETEs the
 * session on the server (bounded by the client's delete timeout). Call it
 * from the element's state change, with the webrtcbin still alive; destroy
 * the session after the webrtcbin has been shut down, since its signal
 * handlers point at this object. */
#pragma once

#include <gst/gst.h>
#include <gst/sdp/sdp.h>

#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "xdn-gref.h"
#include "xdn-whip-client.h"

namespace xdn {

struct WebRtcSessionCallbacks {
  /* A failure of the session: @message for the user, @detail for the log. */
  std::function<void (const std::string &message, const std::string &detail)> onError;
  /* The session URL is known, or cleared (empty) once the session ended. */
  std::function<void (const std::string &url)> onResourceUrl;
  /* The answer is set: media may flow. */
  std::function<void ()> onNegotiated;
};

class WebRtcSession {
public:
  WebRtcSession (GstElement *webrtcbin, WhipClientOptions options,
      WebRtcSessionCallbacks callbacks);
  ~WebRtcSession ();

  WebRtcSession (const WebRtcSession &) = delete;
  WebRtcSession &operator= (const WebRtcSession &) = delete;

  /* How long to wait for ICE gathering before sending the candidates found
   * so far. */
  void setGatheringTimeoutMs (unsigned ms) { gatheringTimeoutMs_ = ms; }

  /* Rewrites the offer before it is set and sent (codec parameters). */
  void setOfferFilter (std::function<void (GstSDPMessage *)> filter)
  {
    offerFilter_ = std::move (filter);
  }

  void start ();
  void stop ();

  std::string resourceUrl () const { return client_.resourceUrl (); }
  const std::string &url () const { return client_.options ().url; }

private:
  void run ();
  bool negotiate (std::string *message, std::string *detail);
  GstPromiseResult waitPromise (GstPromise *promise);
  void fail (const std::string &message, const std::string &detail);

  static void onGatheringStateNotify (GstElement *webrtcbin, GParamSpec *pspec,
      WebRtcSession *self);
  static void onConnectionStateNotify (GstElement *webrtcbin, GParamSpec *pspec,
      WebRtcSession *self);

  GRef<GstElement> webrtcbin_;
  WhipClient client_;
  WebRtcSessionCallbacks callbacks_;
  unsigned gatheringTimeoutMs_ = 2000;
  std::function<void (GstSDPMessage *)> offerFilter_;
  gulong gatheringHandler_ = 0;
  gulong iceStateHandler_ = 0;
  gulong connectionStateHandler_ = 0;

  std::thread thread_;               /* the signalling thread; start/stop only */

  std::mutex lock_;                  /* protects the fields below */
  std::condition_variable cond_;     /* gathering complete, or stopping */
  bool stopping_ = false;
  bool gatheringComplete_ = false;
  bool failed_ = false;              /* onError already called */
  GRef<GstPromise> pendingPromise_;  /* what the thread waits on, to interrupt */
};

}  // namespace xdn
