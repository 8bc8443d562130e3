#include "config.h"

#include "keyfile.h"
#include "port-pool.h"

#include <glib.h>

namespace xdn {

namespace {

bool
readKeyFile (const char *path, NodeConfig *c, std::string *error)
{
  KeyFileReader kf;
  if (!kf.load (path, error))
    return false;

  kf.str ("node", "role", &c->role);
  kf.str ("node", "id", &c->nodeId);
  kf.str ("node", "region", &c->region);
  kf.num ("node", "max-viewers", &c->maxViewers);
  kf.num ("node", "max-downstream", &c->maxDownstream);
  kf.str ("cluster", "manager", &c->manager);
  kf.str ("cluster", "token", &c->clusterToken);
  kf.str ("cluster", "public-url", &c->publicUrl);
  kf.str ("cluster", "public-srt", &c->publicSrt);
  kf.str ("cluster", "upstream", &c->upstream);
  kf.str ("relay", "passphrase", &c->relayPassphrase);
  kf.num ("relay", "latency", &c->relayLatencyMs);
  kf.num ("relay", "linger", &c->relayLingerS);
  kf.str ("relay", "token", &c->relayToken);
  kf.str ("relay", "packet-filter", &c->relayPacketFilter);
  kf.str ("http", "address", &c->httpAddress);
  kf.num ("http", "port", &c->httpPort);
  kf.num ("http", "max-body-bytes", &c->maxBodyBytes);
  kf.str ("http", "cors-origin", &c->corsOrigin);
  kf.str ("srt", "address", &c->srtAddress);
  kf.num ("srt", "port", &c->srtPort);
  kf.num ("srt", "latency-ms", &c->srtLatencyMs);
  kf.str ("srt", "passphrase", &c->srtPassphrase);
  std::string addresses;
  kf.str ("webrtc", "ice-addresses", &addresses);
  if (!addresses.empty ())
    c->ice.addresses = splitList (addresses);
  kf.str ("webrtc", "stun-server", &c->ice.stunServer);
  kf.str ("webrtc", "turn-server", &c->ice.turnServer);
  kf.str ("webrtc", "public-address", &c->publicAddress);
  kf.str ("webrtc", "ports", &c->webrtcPorts);
  kf.num ("webrtc", "connect-timeout", &c->connectTimeoutS);
  kf.num ("webrtc", "peer-timeout", &c->peerTimeoutS);
  kf.num ("webrtc", "max-sessions", &c->maxSessions);
  kf.str ("webrtc", "egress", &c->egress);
  kf.num ("webrtc", "fanout-threads", &c->fanoutThreads);
  kf.num ("webrtc", "viewer-timeout", &c->viewerTimeoutS);
  kf.flag ("demo", "enabled", &c->demo);
  kf.str ("demo", "stream", &c->demoStream);
  kf.num ("demo", "width", &c->demoWidth);
  kf.num ("demo", "height", &c->demoHeight);
  kf.num ("demo", "bitrate-kbps", &c->demoBitrateKbps);
  kf.str ("log", "level", &c->logLevel);
  return kf.ok (error);
}

bool
checkEgress (const std::string &egress, std::string *error)
{
  if (egress == "fanout" || egress == "webrtcbin")
    return true;
  *error = "unknown egress '" + egress + "' (fanout or webrtcbin)";
  return false;
}

/* [webrtc] ports / --webrtc-ports into the ICE settings. */
bool
checkWebRtcPorts (NodeConfig *c, std::string *error)
{
  c->ice.minPort = c->ice.maxPort = 0;
  if (c->webrtcPorts.empty ())
    return true;
  int min = 0, max = 0;
  if (!parsePortRange (c->webrtcPorts, &min, &max, error))
    return false;
  c->ice.minPort = static_cast<guint> (min);
  c->ice.maxPort = static_cast<guint> (max);
  return true;
}

/* Role and cluster settings, after the file and the options are read. */
bool
checkCluster (NodeConfig *c, std::string *error)
{
  if (c->role == "transcoder") {
    *error = "role 'transcoder' is not available yet (roles: all, origin, relay, edge)";
    return false;
  }
  if (!parseNodeRole (c->role, &c->nodeRole)) {
    *error = "unknown role '" + c->role + "' (roles: all, origin, relay, edge)";
    return false;
  }
  if (!c->nodeId.empty ()) {
    std::string why = clusterIdError (c->nodeId);
    if (!why.empty ()) {
      *error = "node id '" + c->nodeId + "' " + why;
      return false;
    }
  }
  std::string why = clusterIdError (c->region);
  if (!why.empty ()) {
    *error = "region '" + c->region + "' " + why;
    return false;
  }
  if (!c->manager.empty () && !isHttpUrl (c->manager)) {
    *error = "manager URL '" + c->manager + "' must start with http:// or https://";
    return false;
  }
  while (!c->manager.empty () && c->manager.back () == '/')
    c->manager.pop_back ();
  if (!c->publicUrl.empty () && !isHttpUrl (c->publicUrl)) {
    *error = "public URL '" + c->publicUrl + "' must start with http:// or https://";
    return false;
  }
  if (!c->publicSrt.empty () && !parseSrtUri (c->publicSrt, nullptr, nullptr)) {
    *error = "public SRT address '" + c->publicSrt + "' must be srt://HOST:PORT";
    return false;
  }
  if (!c->upstream.empty () && !parseSrtUri (c->upstream, nullptr, nullptr)) {
    *error = "upstream '" + c->upstream + "' must be srt://HOST:PORT";
    return false;
  }
  if (!c->relayPassphrase.empty () &&
      (c->relayPassphrase.size () < 10 || c->relayPassphrase.size () > 79)) {
    *error = "the relay passphrase must be 10 to 79 characters long (got " +
        std::to_string (c->relayPassphrase.size ()) + ")";
    return false;
  }
  if (c->nodeRole == NodeRole::Origin && !c->upstream.empty ()) {
    *error = "an origin does not pull streams: --upstream needs role edge, relay or all";
    return false;
  }
  if ((c->nodeRole == NodeRole::Edge || c->nodeRole == NodeRole::Relay) &&
      c->manager.empty () && c->upstream.empty ()) {
    *error = std::string ("role ") + nodeRoleName (c->nodeRole) +
        " pulls its streams: give --manager URL or --upstream srt://HOST:PORT";
    return false;
  }
  return true;
}

}  // namespace

bool
loadNodeConfig (int *argc, char ***argv, NodeConfig *c, std::string *error)
{
  gchar *config_file = nullptr, *role = nullptr, *egress = nullptr, *http_address = nullptr,
      *ice_addresses = nullptr, *stun = nullptr, *turn = nullptr,
      *public_address = nullptr, *manager = nullptr, *log_level = nullptr,
      *srt_passphrase = nullptr, *cluster_token = nullptr, *node_id = nullptr,
      *region = nullptr, *public_url = nullptr, *public_srt = nullptr, *upstream = nullptr,
      *relay_passphrase = nullptr, *relay_token = nullptr, *relay_packet_filter = nullptr,
      *webrtc_ports = nullptr;
  int http_port = -1, srt_port = -1, srt_latency = -1;
  /* G_MININT: not given, so that a negative value is seen (and refused). */
  int relay_latency = G_MININT, relay_linger = G_MININT, max_viewers = G_MININT, max_sessions = G_MININT,
      max_downstream = G_MININT;
  gboolean demo = FALSE;

  GOptionEntry entries[] = {
    {"config", 'c', 0, G_OPTION_ARG_FILENAME, &config_file, "Key file with settings (see docs/configuration.md)", "FILE"},
    {"role", 0, 0, G_OPTION_ARG_STRING, &role, "all (default: origin + edge), origin, relay or edge", "ROLE"},
    {"node-id", 0, 0, G_OPTION_ARG_STRING, &node_id, "Name of this node in the cluster (default: <hostname>-<http port>)", "ID"},
    {"region", 0, 0, G_OPTION_ARG_STRING, &region, "Region announced to the manager (default 'default')", "NAME"},
    {"max-viewers", 0, 0, G_OPTION_ARG_INT, &max_viewers, "WHEP viewers at once, announced as capacity (default 500)", "N"},
    {"max-sessions", 0, 0, G_OPTION_ARG_INT, &max_sessions, "WebRTC sessions at once, WHIP and WHEP together (default 500)", "N"},
    {"max-downstream", 0, 0, G_OPTION_ARG_INT, &max_downstream, "Nodes pulling from this one at once, 0: no limit, not announced (default 0)", "N"},
    {"http-address", 0, 0, G_OPTION_ARG_STRING, &http_address, "HTTP listen address (default 0.0.0.0)", "ADDR"},
    {"http-port", 0, 0, G_OPTION_ARG_INT, &http_port, "HTTP port for WHIP, WHEP, the API and pages (default 8080)", "PORT"},
    {"srt-port", 0, 0, G_OPTION_ARG_INT, &srt_port, "SRT port for publishers and downstream nodes, 0 to disable (default 9000)", "PORT"},
    {"srt-latency", 0, 0, G_OPTION_ARG_INT, &srt_latency, "SRT latency in ms (default 120)", "MS"},
    {"srt-passphrase", 0, 0, G_OPTION_ARG_STRING, &srt_passphrase, "SRT encryption passphrase (10-79 characters)", "TEXT"},
    {"ice-addresses", 0, 0, G_OPTION_ARG_STRING, &ice_addresses, "Local addresses for WebRTC host candidates, comma separated (default: all interfaces)", "LIST"},
    {"stun-server", 0, 0, G_OPTION_ARG_STRING, &stun, "STUN server, stun://host:port", "URL"},
    {"turn-server", 0, 0, G_OPTION_ARG_STRING, &turn, "TURN server, turn://user:pass@host:port", "URL"},
    {"egress", 0, 0, G_OPTION_ARG_STRING, &egress, "How WHEP viewers are served: fanout (default: one xdnwebrtcfanout per stream) or webrtcbin (one per viewer)", "KIND"},
    {"webrtc-ports", 0, 0, G_OPTION_ARG_STRING, &webrtc_ports, "UDP ports for WebRTC, MIN-MAX: fan-outs and ICE agents bind only these (default: any)", "MIN-MAX"},
    {"public-address", 0, 0, G_OPTION_ARG_STRING, &public_address, "Address announced in ICE candidates instead of the local one (1:1 NAT)", "ADDR"},
    {"manager", 0, 0, G_OPTION_ARG_STRING, &manager, "Stream manager URL, http://host:port (cluster mode)", "URL"},
    {"cluster-token", 0, 0, G_OPTION_ARG_STRING, &cluster_token, "Bearer token for the manager's node API", "TOKEN"},
    {"public-url", 0, 0, G_OPTION_ARG_STRING, &public_url, "Base URL of this node for players and the manager (default http://<address>:<http port>)", "URL"},
    {"public-srt", 0, 0, G_OPTION_ARG_STRING, &public_srt, "SRT address of this node for publishers and downstream nodes (default srt://<address>:<srt port>)", "URL"},
    {"upstream", 0, 0, G_OPTION_ARG_STRING, &upstream, "Node to pull streams from when there is no manager, srt://HOST:PORT", "URL"},
    {"relay-passphrase", 0, 0, G_OPTION_ARG_STRING, &relay_passphrase, "SRT passphrase of the links between nodes (10-79 characters)", "TEXT"},
    {"relay-latency", 0, 0, G_OPTION_ARG_INT, &relay_latency, "SRT latency of the links between nodes in ms (default 120)", "MS"},
    {"relay-linger", 0, 0, G_OPTION_ARG_INT, &relay_linger, "Seconds a pulled stream is kept after its last viewer left (default 10)", "S"},
    {"relay-token", 0, 0, G_OPTION_ARG_STRING, &relay_token, "Token downstream nodes send (s=) and this node sends when it pulls", "TOKEN"},
    {"relay-packet-filter", 0, 0, G_OPTION_ARG_STRING, &relay_packet_filter, "SRT packet filter of this node's pulls, e.g. fec,cols:10,rows:1,arq:always (default none)", "FILTER"},
    {"demo", 0, 0, G_OPTION_ARG_NONE, &demo, "Publish a live test stream named 'demo'", nullptr},
    {"log-level", 0, 0, G_OPTION_ARG_STRING, &log_level, "debug, info (default), warning or error", "LEVEL"},
    {nullptr}
  };

  GOptionContext *ctx = g_option_context_new ("- OpenXDN streaming node");
  g_option_context_set_summary (ctx,
      "Takes publishers over WHIP and SRT and serves viewers over WHEP.\n"
      "Settings come from defaults, then --config FILE, then these options.");
  g_option_context_add_main_entries (ctx, entries, nullptr);
  GError *err = nullptr;
  bool ok = g_option_context_parse (ctx, argc, argv, &err);
  g_option_context_free (ctx);
  if (!ok) {
    *error = err->message;
    g_error_free (err);
  }

  if (ok && config_file)
    ok = readKeyFile (config_file, c, error);

  if (ok) {
    if (role) c->role = role;
    if (http_address) c->httpAddress = http_address;
    if (http_port >= 0) c->httpPort = http_port;
    if (srt_port >= 0) c->srtPort = srt_port;
    if (srt_latency >= 0) c->srtLatencyMs = srt_latency;
    if (srt_passphrase) c->srtPassphrase = srt_passphrase;
    if (ice_addresses) c->ice.addresses = splitList (ice_addresses);
    if (stun) c->ice.stunServer = stun;
    if (turn) c->ice.turnServer = turn;
    if (public_address) c->publicAddress = public_address;
    if (webrtc_ports) c->webrtcPorts = webrtc_ports;
    if (egress) c->egress = egress;
    if (demo) c->demo = true;
    if (log_level) c->logLevel = log_level;
    if (node_id) c->nodeId = node_id;
    if (region) c->region = region;
    if (max_viewers != G_MININT) c->maxViewers = max_viewers;
    if (max_sessions != G_MININT) c->maxSessions = max_sessions;
    if (max_downstream != G_MININT) c->maxDownstream = max_downstream;
    if (manager) c->manager = manager;
    if (cluster_token) c->clusterToken = cluster_token;
    if (public_url) c->publicUrl = public_url;
    if (public_srt) c->publicSrt = public_srt;
    if (upstream) c->upstream = upstream;
    if (relay_passphrase) c->relayPassphrase = relay_passphrase;
    if (relay_latency != G_MININT) c->relayLatencyMs = relay_latency;
    if (relay_linger != G_MININT) c->relayLingerS = relay_linger;
    if (relay_token) c->relayToken = relay_token;
    if (relay_packet_filter) c->relayPacketFilter = relay_packet_filter;
  }

  for (gchar *s : {config_file, role, egress, http_address, ice_addresses, stun, turn,
           public_address, manager, log_level, srt_passphrase, cluster_token, node_id, region,
           public_url, public_srt, upstream, relay_passphrase, relay_token, relay_packet_filter,
           webrtc_ports})
    g_free (s);
  if (!ok)
    return false;
  return checkCluster (c, error) &&
      inRange (c->httpPort, 0, 65535, "http port", error) &&
      inRange (c->srtPort, 0, 65535, "srt port", error) &&
      inRange (c->srtLatencyMs, 20, 8000, "srt latency", error) &&
      inRange (c->maxBodyBytes, 1024, 16 * 1024 * 1024, "max body bytes", error) &&
      inRange (c->connectTimeoutS, 1, 600, "connect timeout", error) &&
      inRange (c->peerTimeoutS, 1, 600, "peer timeout", error) &&
      inRange (c->maxSessions, 1, 100000, "max sessions", error) &&
      inRange (c->maxViewers, 1, 1000000, "max viewers", error) &&
      inRange (c->maxDownstream, 0, 100000, "max downstream", error) &&
      inRange (c->relayLatencyMs, 20, 8000, "relay latency", error) &&
      inRange (c->relayLingerS, 0, 3600, "relay linger", error) &&
      inRange (c->fanoutThreads, 0, 256, "fanout threads", error) &&
      inRange (c->viewerTimeoutS, 2, 3600, "viewer timeout", error) &&
      checkEgress (c->egress, error) &&
      checkWebRtcPorts (c, error);
}

void
resolveClusterDefaults (NodeConfig *c, int httpPort, int srtPort, const std::string &hostname)
{
  if (c->nodeId.empty ()) {
    /* A host name may hold characters a node id may not. */
    std::string host;
    for (char ch : hostname)
      host += (g_ascii_isalnum (ch) || ch == '.' || ch == '_' || ch == '-') ? ch : '-';
    if (host.empty ())
      host = "node";
    c->nodeId = host.substr (0, 58) + "-" + std::to_string (httpPort);
  }
  std::string address = urlHost (announceAddress (c->publicAddress, c->httpAddress,
      c->ice.addresses.empty () ? "" : c->ice.addresses.front (), hostname));
  if (c->publicUrl.empty ())
    c->publicUrl = "http://" + address + ":" + std::to_string (httpPort);
  while (c->publicUrl.size () > 8 && c->publicUrl.back () == '/')
    c->publicUrl.pop_back ();
  if (c->publicSrt.empty () && srtPort > 0)
    c->publicSrt = "srt://" + address + ":" + std::to_string (srtPort);
}

}  // namespace xdn
