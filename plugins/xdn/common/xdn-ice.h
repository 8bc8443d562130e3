/* ICE settings every webrtcbin of the project gets: no UPnP (libnice turns
 * it on by default and multicasts SSDP off the machine), host candidates
 * only on the configured addresses and ports, optional STUN/TURN, UDP
 * only. */
#pragma once

#include <gst/gst.h>

#include <string>
#include <vector>

namespace xdn {

struct IceSettings {
  /* Local addresses to gather host candidates on. Empty: every interface
   * libnice finds (still without UPnP). */
  std::vector<std::string> addresses;
  std::string stunServer;  /* stun://host:port, empty for none */
  std::string turnServer;  /* turn(s)://user:pass@host:port, empty for none */
  /* UDP ports the agent binds its host candidates on, inclusive, so that a
   * firewall can let them through; 0 and 0: any port. */
  guint minPort = 0, maxPort = 0;
};

/* Applies @settings to a webrtcbin before it gathers, and turns off the
 * clock pacing of what it sends (see the .cpp). Returns false and
 * fills @error when an address is refused by the agent. */
bool configureWebRtcBin (GstElement *webrtcbin, const IceSettings &settings,
    std::string *error);

/* Splits "a, b ,c" into {"a","b","c"}, dropping empty items. */
std::vector<std::string> splitList (const std::string &list);

}  // namespace xdn
