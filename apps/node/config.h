/* xdn-node configuration: defaults, a key file (`--config FILE`), then the
 * command line, each overriding the one before. docs/configuration.md lists
 * every key. */
#pragma once

#include "cluster.h"
#include "xdn-ice.h"

#include <string>

namespace xdn {

struct NodeConfig {
  /* [node] */
  std::string role = "all";
  NodeRole nodeRole = NodeRole::All;  /* parsed from role */
  std::string nodeId;      /* empty: <hostname>-<http port> (resolveClusterDefaults) */
  std::string region = "default";
  int maxViewers = 500;    /* WHEP viewers at once; announced to the manager */
  int maxDownstream = 0;   /* nodes pulling from this one; 0: not announced, no limit */
  /* [cluster] */
  std::string manager;     /* stream manager base URL; empty: no manager */
  std::string clusterToken;
  std::string publicUrl;   /* empty: http://<announce address>:<http port> */
  std::string publicSrt;   /* empty: srt://<announce address>:<srt port> */
  std::string upstream;    /* srt://HOST:PORT to pull from when there is no manager */
  /* [relay] */
  std::string relayPassphrase;
  int relayLatencyMs = 120;
  int relayLingerS = 10;
  std::string relayPacketFilter;  /* SRTO_PACKETFILTER of this node's pulls */
  std::string relayToken;
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
  IceSettings ice;           /* ice.minPort/maxPort: parsed from webrtcPorts */
  std::string webrtcPorts;   /* MIN-MAX: UDP ports of fan-outs and ICE agents; empty: any */
  std::string publicAddress;  /* replaces host candidate addresses in answers */
  int connectTimeoutS = 15;   /* answer sent, ICE/DTLS not connected yet */
  int peerTimeoutS = 10;      /* nothing heard from the peer */
  int maxSessions = 500;
  std::string egress = "fanout";  /* WHEP egress: "fanout" or "webrtcbin" */
  int fanoutThreads = 0;      /* xdnwebrtcfanout sending threads; 0: one per core */
  int viewerTimeoutS = 15;    /* fan-out viewer without STUN consent or RTCP */
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

/* Fills what depends on the bound ports: the node id and the public URLs.
 * @hostname: the machine's name (g_get_host_name ()). */
void resolveClusterDefaults (NodeConfig *config, int httpPort, int srtPort,
    const std::string &hostname);

}  // namespace xdn
