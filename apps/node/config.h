/* xdn-node configuration: defaults, a key file (`--config FILE`), then the
 * command line, each overriding the one before. docs/configuration.md lists
 * every key. */
#pragma once

#include "xdn-ice.h"

#include <string>

namespace xdn {

struct NodeConfig {
  std::string role = "all";
  /* [http] */
  std::string httpAddress = "0.0.0.0";
  int httpPort = 8080;
  int maxBodyBytes = 64 * 1024;
  std::string corsOrigin = "*";
  /* [srt] */
  std::string srtAddress = "0.0.0.0";
  int srtPort = 9000;  /* 0 disables SRT ingest */
  int srtLatencyMs = 120;
  std::string srtPassphrase;
  /* [webrtc] */
  IceSettings ice;
  std::string publicAddress;  /* replaces host candidate addresses in answers */
  int connectTimeoutS = 15;   /* answer sent, ICE/DTLS not connected yet */
  int peerTimeoutS = 10;      /* nothing heard from the peer */
  int maxSessions = 500;
  /* [demo] */
  bool demo = false;
  std::string demoStream = "demo";
  int demoWidth = 1280, demoHeight = 720, demoBitrateKbps = 1500;
  /* [log] */
  std::string logLevel;  /* empty: XDN_LOG_LEVEL, else info */
};

/* Parses argv (and the key file it names). On error returns false with a
 * message for the user; on --help prints usage and exits. */
bool loadNodeConfig (int *argc, char ***argv, NodeConfig *config, std::string *error);

}  // namespace xdn
