/* SRT mode of xdnrelaysink / xdnrelaysrc: a stream carried between nodes.
 *
 * One SRT connection (live mode) per stream per hop, opened by the
 * downstream side (xdnrelaysrc, caller) with the streamid
 * `#!::r=NAME,m=request[,s=TOKEN]`. The upstream side (xdnrelaysink) serves
 * it on a socket the node accepted, or from a listener of its own. Every
 * track of the stream travels in that connection as messages of the relay
 * wire format (xdn-relay-wire.h, docs/relay-protocol.md).
 *
 * Threads: each publisher and each subscription has one I/O thread waiting
 * on an SRT epoll (accepts, reads, timers, reconnects). The publisher's
 * packets are written by the streaming thread that hands them over, with
 * non-blocking sends into the link's send buffer: it never waits for the
 * network. The subscription's I/O thread reads, parses and queues packets
 * in a SubscriberQueue that the element pops. */
#pragma once

#include <memory>
#include <string>

#include "xdn-relay-transport.h"

namespace xdn::relay {

/* srt://HOST:PORT (HOST may be a name, an IPv4 address or [IPv6]); an empty
 * HOST (srt://:PORT) means any local address, for a listener. */
struct SrtUri {
  std::string host;
  int port = 0;
};

/* False with @error saying why (not srt://, no port, query parameters). */
bool parseSrtUri (const std::string &uri, SrtUri &out, std::string &error);

/* The streamid a downstream node sends: `#!::r=NAME,m=request[,s=TOKEN]`. */
std::string srtRequestStreamId (const std::string &stream, const std::string &token);

/* A caller's streamid as a listener sees it: the access-control form
 * (`#!::r=NAME,m=MODE,s=TOKEN,...`, m defaults to `request`) or a plain
 * stream name. False when the text is neither. */
struct SrtStreamRequest {
  std::string resource;
  std::string mode = "request";
  std::string token;
};
bool parseSrtStreamRequest (const std::string &text, SrtStreamRequest &out);

/* Starts libsrt once per process (libsrt counts srt_startup calls, so it is
 * shared with the node's own SRT code and GStreamer's srt plugin). */
void ensureSrtStarted ();

/* Closes an SRT socket an element was given and never served. */
void closeSrtSocket (int socket);

class SrtTransport final : public RelayTransport {
public:
  explicit SrtTransport (TransportSettings settings);

  /* Serves @stream on settings.socket, or, with settings.uri, from a
   * listener of its own to every caller that requests @stream. Throws
   * RelayError (Network) when the socket is not a connected SRT socket or
   * the port cannot be bound. Destroying or unpublishing the publisher
   * closes the links (downstream nodes reconnect); only the end of every
   * track sends the downstream side the end of the stream. */
  std::unique_ptr<StreamPublisher> publish (const std::string &stream,
      KeyframeRequestHandler on_keyframe_request) override;

  /* Pulls @stream from settings.uri. Never fails for a stream that is not
   * there: it connects in the background and retries with backoff (100 ms
   * doubling to 2 s) until the subscription is destroyed or the stream
   * ends. initialTracks() is empty: tracks come as TrackAdded events. */
  std::unique_ptr<StreamSubscription> subscribe (const std::string &stream,
      const SubscriptionOptions &options) override;

private:
  TransportSettings settings_;
};

}  // namespace xdn::relay
