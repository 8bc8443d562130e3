#include "config.h"

#include <glib.h>

namespace xdn {

namespace {

bool
readKeyFile (const char *path, NodeConfig *c, std::string *error)
{
  GKeyFile *kf = g_key_file_new ();
  GError *err = nullptr;
  if (!g_key_file_load_from_file (kf, path, G_KEY_FILE_NONE, &err)) {
    *error = std::string ("cannot read config file ") + path + ": " + err->message;
    g_error_free (err);
    g_key_file_free (kf);
    return false;
  }

  auto str = [&] (const char *group, const char *key, std::string *out) {
    gchar *v = g_key_file_get_string (kf, group, key, nullptr);
    if (v)
      *out = v;
    g_free (v);
  };
  bool ok = true;
  auto num = [&] (const char *group, const char *key, int *out) {
    if (!g_key_file_has_key (kf, group, key, nullptr))
      return;
    GError *e = nullptr;
    int v = g_key_file_get_integer (kf, group, key, &e);
    if (e) {
      *error = std::string ("config file: [") + group + "] " + key + ": " + e->message;
      g_error_free (e);
      ok = false;
      return;
    }
    *out = v;
  };
  auto flag = [&] (const char *group, const char *key, bool *out) {
    if (g_key_file_has_key (kf, group, key, nullptr))
      *out = g_key_file_get_boolean (kf, group, key, nullptr);
  };

  str ("node", "role", &c->role);
  str ("http", "address", &c->httpAddress);
  num ("http", "port", &c->httpPort);
  num ("http", "max-body-bytes", &c->maxBodyBytes);
  str ("http", "cors-origin", &c->corsOrigin);
  str ("srt", "address", &c->srtAddress);
  num ("srt", "port", &c->srtPort);
  num ("srt", "latency-ms", &c->srtLatencyMs);
  str ("srt", "passphrase", &c->srtPassphrase);
  std::string addresses;
  str ("webrtc", "ice-addresses", &addresses);
  if (!addresses.empty ())
    c->ice.addresses = splitList (addresses);
  str ("webrtc", "stun-server", &c->ice.stunServer);
  str ("webrtc", "turn-server", &c->ice.turnServer);
  str ("webrtc", "public-address", &c->publicAddress);
  num ("webrtc", "connect-timeout", &c->connectTimeoutS);
  num ("webrtc", "peer-timeout", &c->peerTimeoutS);
  num ("webrtc", "max-sessions", &c->maxSessions);
  flag ("demo", "enabled", &c->demo);
  str ("demo", "stream", &c->demoStream);
  num ("demo", "width", &c->demoWidth);
  num ("demo", "height", &c->demoHeight);
  num ("demo", "bitrate-kbps", &c->demoBitrateKbps);
  str ("log", "level", &c->logLevel);
  g_key_file_free (kf);
  return ok;
}

bool
inRange (int v, int lo, int hi, const char *what, std::string *error)
{
  if (v >= lo && v <= hi)
    return true;
  *error = std::string (what) + " must be between " + std::to_string (lo) + " and " +
      std::to_string (hi) + " (got " + std::to_string (v) + ")";
  return false;
}

}  // namespace

bool
loadNodeConfig (int *argc, char ***argv, NodeConfig *c, std::string *error)
{
  gchar *config_file = nullptr, *role = nullptr, *http_address = nullptr,
      *ice_addresses = nullptr, *stun = nullptr, *turn = nullptr,
      *public_address = nullptr, *manager = nullptr, *log_level = nullptr,
      *srt_passphrase = nullptr;
  int http_port = -1, srt_port = -1, srt_latency = -1;
  gboolean demo = FALSE;

  GOptionEntry entries[] = {
    {"config", 'c', 0, G_OPTION_ARG_FILENAME, &config_file, "Key file with settings (see docs/configuration.md)", "FILE"},
    {"role", 0, 0, G_OPTION_ARG_STRING, &role, "all (default), origin, relay, edge or transcoder", "ROLE"},
    {"http-address", 0, 0, G_OPTION_ARG_STRING, &http_address, "HTTP listen address (default 0.0.0.0)", "ADDR"},
    {"http-port", 0, 0, G_OPTION_ARG_INT, &http_port, "HTTP port for WHIP, WHEP, the API and pages (default 8080)", "PORT"},
    {"srt-port", 0, 0, G_OPTION_ARG_INT, &srt_port, "SRT ingest port, 0 to disable (default 9000)", "PORT"},
    {"srt-latency", 0, 0, G_OPTION_ARG_INT, &srt_latency, "SRT latency in ms (default 120)", "MS"},
    {"srt-passphrase", 0, 0, G_OPTION_ARG_STRING, &srt_passphrase, "SRT encryption passphrase (10-79 characters)", "TEXT"},
    {"ice-addresses", 0, 0, G_OPTION_ARG_STRING, &ice_addresses, "Local addresses for WebRTC host candidates, comma separated (default: all interfaces)", "LIST"},
    {"stun-server", 0, 0, G_OPTION_ARG_STRING, &stun, "STUN server, stun://host:port", "URL"},
    {"turn-server", 0, 0, G_OPTION_ARG_STRING, &turn, "TURN server, turn://user:pass@host:port", "URL"},
    {"public-address", 0, 0, G_OPTION_ARG_STRING, &public_address, "Address announced in ICE candidates instead of the local one (1:1 NAT)", "ADDR"},
    {"manager", 0, 0, G_OPTION_ARG_STRING, &manager, "Stream manager URL (cluster mode; not used by the all-in-one node)", "URL"},
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
    if (demo) c->demo = true;
    if (log_level) c->logLevel = log_level;
  }

  for (gchar *s : {config_file, role, http_address, ice_addresses, stun, turn,
           public_address, manager, log_level, srt_passphrase})
    g_free (s);
  if (!ok)
    return false;

  if (c->role != "all") {
    *error = "role '" + c->role + "' is not available yet; this node runs as 'all' (origin + edge)";
    return false;
  }
  return inRange (c->httpPort, 0, 65535, "http port", error) &&
      inRange (c->srtPort, 0, 65535, "srt port", error) &&
      inRange (c->srtLatencyMs, 20, 8000, "srt latency", error) &&
      inRange (c->maxBodyBytes, 1024, 16 * 1024 * 1024, "max body bytes", error) &&
      inRange (c->connectTimeoutS, 1, 600, "connect timeout", error) &&
      inRange (c->peerTimeoutS, 1, 600, "peer timeout", error) &&
      inRange (c->maxSessions, 1, 100000, "max sessions", error);
}

}  // namespace xdn
