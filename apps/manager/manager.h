/* xdn-manager: the control plane's HTTP API (docs/manager.md, docs/openapi.yaml)
 * over a Store. Stateless apart from the WebSocket clients it holds: any
 * number of managers over one database answer alike.
 *
 * Everything here runs on the thread of the default GLib main context (HTTP
 * handlers, timers, WebSocket signals), so the fields need no lock. Store
 * calls block that thread for at most the store timeout. */
#pragma once

#include "config.h"
#include "http.h"
#include "store.h"

#include <libsoup/soup.h>

#include <map>
#include <memory>
#include <string>

namespace xdn::manager {

class Manager {
public:
  explicit Manager (ManagerConfig config);
  ~Manager ();
  Manager (const Manager &) = delete;
  Manager &operator= (const Manager &) = delete;

  /* Opens and migrates the store, listens, starts the timers. */
  bool start (std::string *error);
  /* Stops the timers, closes the WebSocket clients and the listener. */
  void stop ();
  int httpPort () const { return http_.port (); }
  const char *storeKind () const { return store_ ? store_->kind () : "none"; }

private:
  struct Client {
    std::string node;
    gint64 since;  /* monotonic us */
  };

  /* HTTP */
  void handleRegister (SoupServerMessage *msg, const std::string &rest);
  void handleNodeGet (SoupServerMessage *msg, const std::string &rest);
  void handleNodePost (SoupServerMessage *msg, const std::string &rest);
  void handleNodeDelete (SoupServerMessage *msg, const std::string &rest);
  void handleHeartbeat (SoupServerMessage *msg, const std::string &id);
  void handleDrain (SoupServerMessage *msg, const std::string &id);
  void handleStreamList (SoupServerMessage *msg, const std::string &rest);
  void handleStream (SoupServerMessage *msg, const std::string &rest);
  void handlePublish (SoupServerMessage *msg, const std::string &name);
  void handleSubscribe (SoupServerMessage *msg, const std::string &name);
  void handleRoute (SoupServerMessage *msg, const std::string &name);
  void handleMetrics (SoupServerMessage *msg);
  void handleHealth (SoupServerMessage *msg);
  void handleResource (SoupServerMessage *msg, const std::string &path);
  void acceptEvents (SoupServerMessage *msg, const std::string &rest);
  void openEvents (SoupWebsocketConnection *conn, const std::string &rest);
  void onResponse (SoupServerMessage *msg, guint status);

  bool authorized (SoupServerMessage *msg, bool allowQueryToken);
  std::string query (SoupServerMessage *msg, const char *key, bool *present = nullptr);
  /* Answers {"error": message} with @status, logs it and counts @reason. */
  void refuse (SoupServerMessage *msg, guint status, const char *reason, const std::string &message);
  void storeFailed (SoupServerMessage *msg, const StoreStatus &status);
  void respondJson (SoupServerMessage *msg, guint status, const std::string &body);

  /* Timers */
  void sweep ();
  void holdSweeps ();
  void pollEvents ();
  void cleanup ();
  void deliver (const Event &event);
  static void onClientClosed (SoupWebsocketConnection *conn, gpointer self);
  void dropClient (SoupWebsocketConnection *conn);

  ManagerConfig config_;
  http::Server http_;
  std::unique_ptr<Store> store_;
  guint sweepTimer_ = 0, pollTimer_ = 0, cleanupTimer_ = 0;
  int64_t lastEventId_ = 0;
  gint64 sweepHoldUntil_ = 0;  /* monotonic us; no sweep before */
  bool eventsPrimed_ = false;
  /* WebSocket clients; each holds one reference to its connection. */
  std::map<SoupWebsocketConnection *, Client> clients_;
  gint64 startedAt_ = 0;

  /* Counters for /metrics. */
  std::map<std::string, uint64_t> placements_;  /* publish | subscribe | route */
  std::map<std::string, uint64_t> refusals_;    /* by reason */
  uint64_t storeErrors_ = 0;
  uint64_t eventsDelivered_ = 0;
  uint64_t nodesDeclaredDead_ = 0;
};

}  // namespace xdn::manager
