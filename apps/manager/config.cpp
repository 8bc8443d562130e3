#include "config.h"

#include "keyfile.h"

#include <glib.h>

namespace xdn::manager {

namespace {

bool
readKeyFile (const char *path, ManagerConfig *c, std::string *error)
{
  KeyFileReader kf;
  if (!kf.load (path, error))
    return false;

  kf.str ("http", "address", &c->httpAddress);
  kf.num ("http", "port", &c->httpPort);
  kf.num ("http", "max-body-bytes", &c->maxBodyBytes);
  kf.str ("http", "cors-origin", &c->corsOrigin);
  kf.str ("store", "db", &c->db);
  kf.num ("store", "timeout-ms", &c->storeTimeoutMs);
  kf.str ("cluster", "token", &c->clusterToken);
  kf.num ("cluster", "heartbeat-interval-ms", &c->heartbeatIntervalMs);
  kf.num ("cluster", "events-poll-ms", &c->eventsPollMs);
  kf.num ("placement", "origin-fanout", &c->originFanout);
  kf.num ("placement", "relay-fanout", &c->relayFanout);
  kf.num ("placement", "viewer-capacity", &c->viewerCapacity);
  kf.str ("log", "level", &c->logLevel);
  return kf.ok (error);
}

}  // namespace

bool
validateManagerConfig (const ManagerConfig &c, std::string *error)
{
  if (!g_str_has_prefix (c.db.c_str (), "sqlite:") &&
      !g_str_has_prefix (c.db.c_str (), "postgresql://") &&
      !g_str_has_prefix (c.db.c_str (), "postgres://")) {
    *error = "db must be sqlite:PATH or postgresql://... (got '" + c.db + "')";
    return false;
  }
  if (c.db == "sqlite:") {
    *error = "db sqlite: needs a file path (sqlite:PATH)";
    return false;
  }
  if (!g_utf8_validate (c.clusterToken.c_str (), c.clusterToken.size (), nullptr) ||
      c.clusterToken.find_first_of (" \t\r\n") != std::string::npos) {
    *error = "cluster token must be printable text without spaces";
    return false;
  }
  return inRange (c.httpPort, 0, 65535, "http port", error) &&
      inRange (c.maxBodyBytes, 1024, 1024 * 1024, "max body bytes", error) &&
      inRange (c.storeTimeoutMs, 100, 60000, "store timeout", error) &&
      inRange (c.heartbeatIntervalMs, 100, 60000, "heartbeat interval", error) &&
      inRange (c.eventsPollMs, 20, 5000, "events poll interval", error) &&
      inRange (c.originFanout, 1, 10000, "origin fan-out", error) &&
      inRange (c.relayFanout, 1, 10000, "relay fan-out", error) &&
      inRange (c.viewerCapacity, 1, 10000000, "viewer capacity", error);
}

bool
loadManagerConfig (int *argc, char ***argv, ManagerConfig *c, std::string *error)
{
  gchar *config_file = nullptr, *http_address = nullptr, *db = nullptr, *token = nullptr,
      *log_level = nullptr;
  const int unset = G_MININT;
  int http_port = unset, heartbeat = unset, fanout = unset;

  GOptionEntry entries[] = {
    {"config", 'c', 0, G_OPTION_ARG_FILENAME, &config_file, "Key file with settings (see docs/configuration.md)", "FILE"},
    {"http-address", 0, 0, G_OPTION_ARG_STRING, &http_address, "HTTP listen address (default 0.0.0.0)", "ADDR"},
    {"http-port", 0, 0, G_OPTION_ARG_INT, &http_port, "HTTP port of the API and pages (default 8090)", "PORT"},
    {"db", 0, 0, G_OPTION_ARG_STRING, &db, "Database: sqlite:PATH (default sqlite:xdn-manager.db) or postgresql://...", "URL"},
    {"cluster-token", 0, 0, G_OPTION_ARG_STRING, &token, "Bearer token of node and admin calls (default: none, open)", "TOKEN"},
    {"heartbeat-interval-ms", 0, 0, G_OPTION_ARG_INT, &heartbeat, "Heartbeat interval given to nodes; dead after 3 (default 1000)", "MS"},
    {"origin-fanout", 0, 0, G_OPTION_ARG_INT, &fanout, "Downstream nodes per stream an origin feeds before a relay tier (default 4)", "N"},
    {"log-level", 0, 0, G_OPTION_ARG_STRING, &log_level, "debug, info (default), warning or error", "LEVEL"},
    {nullptr}
  };

  GOptionContext *ctx = g_option_context_new ("- OpenXDN stream manager");
  g_option_context_set_summary (ctx,
      "Places publishers on origins and viewers on edges, routes edges to their\n"
      "upstream and tracks node health. Several managers may share one PostgreSQL.\n"
      "Settings come from defaults, then --config FILE, then these options.");
  g_option_context_add_main_entries (ctx, entries, nullptr);
  GError *err = nullptr;
  bool ok = g_option_context_parse (ctx, argc, argv, &err);
  g_option_context_free (ctx);
  if (!ok) {
    *error = err->message;
    g_error_free (err);
  }
  if (ok && *argc > 1) {
    *error = std::string ("unexpected argument '") + (*argv)[1] + "'";
    ok = false;
  }

  if (ok && config_file)
    ok = readKeyFile (config_file, c, error);

  if (ok) {
    if (http_address) c->httpAddress = http_address;
    if (http_port != unset) c->httpPort = http_port;
    if (db) c->db = db;
    if (token) c->clusterToken = token;
    if (heartbeat != unset) c->heartbeatIntervalMs = heartbeat;
    if (fanout != unset) c->originFanout = fanout;
    if (log_level) c->logLevel = log_level;
  }

  for (gchar *s : {config_file, http_address, db, token, log_level})
    g_free (s);
  if (!ok)
    return false;
  return validateManagerConfig (*c, error);
}

}  // namespace xdn::manager
