/* The UDP ports of the node's WebRTC port range (`[webrtc] ports`, or
 * `--webrtc-ports MIN-MAX`) that its fan-outs bind, one per stream with
 * viewers. Each fan-out takes the lowest port no other fan-out of the node
 * holds; a port another process holds (the bind fails) is skipped for the
 * next one. The port comes back when its fan-out stops.
 *
 * Knows nothing of sockets: the caller binds. Main thread only. */
#pragma once

#include <functional>
#include <set>
#include <string>

namespace xdn {

/* Parses "MIN-MAX" (1 <= MIN <= MAX <= 65535). Returns false with a
 * message naming @text otherwise. */
bool parsePortRange (const std::string &text, int *min, int *max, std::string *error);

class PortPool {
public:
  /* @min and @max: the range, inclusive; 0 and 0: no range (limited () is
   * false and the system picks the ports). */
  PortPool (int min, int max) : min_ (min), max_ (max) {}

  bool limited () const { return min_ > 0; }
  /* "MIN-MAX", for messages. */
  std::string range () const;

  /* Calls @bind with each port of the range no one here holds, lowest
   * first, until it returns true; that port is then held and returned.
   * 0 when every port is held or refused. */
  int acquire (const std::function<bool (int port)> &bind);
  /* Gives back a port from acquire (). Ignores 0 and ports not held. */
  void release (int port);

  size_t held () const { return held_.size (); }

private:
  int min_, max_;
  std::set<int> held_;
};

}  // namespace xdn
