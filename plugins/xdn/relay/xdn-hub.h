/* The in-process hub: the RelayTransport that joins pipelines of one node.
 *
 * A registry of named streams. Each stream has tracks (caps, counters) and
 * subscriptions; each subscription has a bounded queue of RelayEvents. A
 * published RTP buffer is enqueued by reference on every subscription: no
 * copy, and the publisher never waits for a subscriber (when a queue is full
 * its oldest packets are dropped).
 *
 * Locks, always taken in this order, never held while calling out (keyframe
 * request handlers, pads, messages):
 *   Hub::lock_            registry: streams_ and waiting_
 *   HubStream::lock_      a stream's tracks, subscriber list, handler, ended flag
 *   HubSubscription::lock_  a subscription's queue, track gates, time base
 *
 * Lifetime: the hub and streams hold subscriptions by shared_ptr; a
 * subscription holds its stream by weak_ptr. The handles given to the
 * elements (StreamPublisher / StreamSubscription) unpublish / unsubscribe
 * when destroyed, so a viewer leaving and a publisher going away can race
 * in any order. */
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "xdn-relay-transport.h"

namespace xdn::relay {

class HubStream;
class HubSubscription;

class Hub final : public RelayTransport {
public:
  /* The process-wide hub. Unique in the process even when this code is
   * linked into both the plugin and an application. */
  static Hub &instance ();

  std::unique_ptr<StreamPublisher> publish (const std::string &stream,
      KeyframeRequestHandler on_keyframe_request) override;
  std::unique_ptr<StreamSubscription> subscribe (const std::string &stream,
      const SubscriptionOptions &options) override;

  /* For the node's API: what is published now. */
  std::vector<std::string> streamNames () const;
  bool isPublished (const std::string &stream) const;
  std::optional<StreamStats> streamStats (const std::string &stream) const;

  /* Internal (handles call back into the hub). */
  void removeStream (const std::shared_ptr<HubStream> &stream);
  void removeWaiting (const std::string &stream,
      const std::shared_ptr<HubSubscription> &subscription);

private:
  Hub () = default;

  mutable std::mutex lock_;
  /* lock_ */ std::map<std::string, std::shared_ptr<HubStream>> streams_;
  /* lock_: subscriptions (wait-for-stream) to names not published yet */
  std::map<std::string, std::vector<std::weak_ptr<HubSubscription>>> waiting_;
};

}  // namespace xdn::relay
