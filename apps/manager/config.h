/* xdn-manager configuration: defaults, a key file (`--config FILE`), then
 * the command line, each overriding the one before. docs/configuration.md
 * (section "xdn-manager") lists every key. */
#pragma once

#include <string>

namespace xdn::manager {

struct ManagerConfig {
  /* [http] */
  std::string httpAddress = "0.0.0.0";
  int httpPort = 8090;
  int maxBodyBytes = 64 * 1024;
  std::string corsOrigin = "*";
  /* [store] */
  std::string db = "sqlite:xdn-manager.db";
  int storeTimeoutMs = 2000;
  /* [cluster] */
  std::string clusterToken;  /* empty: node and admin calls are open */
  int heartbeatIntervalMs = 1000;
  int eventsPollMs = 200;
  /* [placement] */
  int originFanout = 4;
  int relayFanout = 16;
  int viewerCapacity = 1000;
  /* [log] */
  std::string logLevel;  /* empty: XDN_LOG_LEVEL, else info */
};

/* Parses argv (and the key file it names). On error returns false with a
 * message for the user; on --help prints usage and exits. */
bool loadManagerConfig (int *argc, char ***argv, ManagerConfig *config, std::string *error);

/* The checks loadManagerConfig applies after reading everything. */
bool validateManagerConfig (const ManagerConfig &config, std::string *error);

}  // namespace xdn::manager
