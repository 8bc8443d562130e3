/* The node's side of the stream manager's API (docs/api.md, "Cluster"):
 * registers the node (retrying with backoff while the manager is away),
 * heartbeats its load and streams at the interval the manager gives,
 * registers again when the manager has forgotten it (404), keeps a
 * WebSocket open for the manager's events (reconnecting with backoff),
 * answers "where do I pull this stream from" (/route), and says goodbye
 * (DELETE) when the node stops.
 *
 * Everything runs on the main loop and is asynchronous: no call waits on
 * the manager, and every request is bounded by the session timeout. Only
 * stop () waits, at most ManagerSettings::goodbyeTimeoutS, for the DELETE. */
#pragma once

#include "cluster.h"

#include <libsoup/soup.h>

#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace xdn {

struct ManagerSettings {
  std::string url;          /* http://host:port, no trailing '/' */
  std::string token;        /* Bearer token; empty: none sent */
  std::string nodeId;
  std::string role;         /* "all", "origin", "relay", "edge" */
  std::string region;
  std::string http;         /* public base URL of the node */
  std::string srt;          /* public SRT address, srt://host:port, or empty */
  int maxViewers = 0;       /* capacity.viewers */
  int maxDownstream = 0;    /* capacity.downstream; 0: not sent */
  int requestTimeoutS = 3;  /* every request to the manager */
  int goodbyeTimeoutS = 2;  /* the DELETE on stop () */
};

/* One stream in a heartbeat. */
struct StreamReport {
  std::string name;
  bool publishing = false;  /* published here (this node is its origin) */
  bool pulling = false;     /* pulled from upstream */
  int viewers = 0;          /* WHEP viewers here */
};

/* What a heartbeat says, besides the CPU the client measures itself. */
struct LoadReport {
  int viewers = 0;
  double bitrateIn = 0;     /* bit/s */
  double bitrateOut = 0;    /* bit/s */
  std::vector<StreamReport> streams;
};

/* An event pushed by the manager over the WebSocket. */
struct ManagerEvent {
  std::string event;        /* "node.draining", "route.changed", "stream.unpublished", ... */
  std::string stream;       /* for stream events */
};

/* The answer to /route. */
struct RouteAnswer {
  enum class Status {
    Ok,           /* upstream is set */
    NotLive,      /* 404: the stream is not published anywhere */
    Unreachable,  /* no answer (manager away, timeout) */
    Error,        /* any other answer; detail says what */
  };
  Status status = Status::Error;
  std::string upstream;     /* srt://host:port */
  std::string node;         /* the upstream node's id */
  std::string detail;
};

/* Bodies and answers of the API, plain functions for the tests. */
std::string managerRegisterBody (const ManagerSettings &settings);
std::string managerHeartbeatBody (const LoadReport &load, double cpu);
/* heartbeatIntervalMs of a register answer, clamped to 100..60000; @fallback
 * when absent or unreadable. */
int managerHeartbeatInterval (const std::string &body, int fallback);
/* "state" of a heartbeat answer ("active", "draining"), "" if none. */
std::string managerHeartbeatState (const std::string &body);
bool parseManagerEvent (const std::string &text, ManagerEvent *event);
/* A 200 answer of /route; false if it has no usable srt:// upstream. */
bool parseRouteAnswer (const std::string &body, RouteAnswer *answer);
/* The "error" member of an error answer, or the body itself (shortened). */
std::string managerErrorText (const std::string &body);

class ManagerClient {
public:
  struct Callbacks {
    /* Main thread, at each heartbeat. */
    std::function<LoadReport ()> report;
    /* Main thread: the manager's events. */
    std::function<void (const std::string &stream)> routeChanged;
    std::function<void (const std::string &stream)> streamUnpublished;
    /* The node was drained (true) or is active again (false). */
    std::function<void (bool draining)> drainingChanged;
  };
  using RouteCallback = std::function<void (const RouteAnswer &answer)>;

  ManagerClient (ManagerSettings settings, Callbacks callbacks);
  ~ManagerClient ();
  ManagerClient (const ManagerClient &) = delete;
  ManagerClient &operator= (const ManagerClient &) = delete;

  /* Registers (and goes on by itself). Main thread. */
  void start ();
  /* Stops heartbeats and events, then DELETEs the node if it is
   * registered, waiting at most goodbyeTimeoutS. Idempotent. */
  void stop ();

  /* Asks where this node pulls @stream from. @done runs once on the main
   * loop, never from within route (). */
  void route (const std::string &stream, RouteCallback done);

  bool registered () const { return registered_; }
  bool draining () const { return draining_; }
  bool eventsConnected () const { return ws_ != nullptr; }
  int heartbeatIntervalMs () const { return intervalMs_; }
  guint64 registrations () const { return registrations_; }
  guint64 heartbeatsFailed () const { return heartbeatsFailed_; }

private:
  struct Guard;
  using Done = std::function<void (guint status, const std::string &body, const std::string &error)>;

  void send (const char *method, const std::string &path, const std::string &body, Done done);
  void registerNode ();
  void scheduleRegister ();
  void heartbeat ();
  void setDraining (bool draining);
  void connectEvents ();
  void scheduleEvents ();
  void onEvent (const std::string &text);
  void dropEvents ();

  ManagerSettings settings_;
  Callbacks callbacks_;
  /* Main thread only, like everything below. */
  SoupSession *session_ = nullptr;
  GCancellable *cancel_ = nullptr;
  std::shared_ptr<Guard> guard_;
  SoupWebsocketConnection *ws_ = nullptr;
  bool connectingEvents_ = false;
  bool stopped_ = false;
  bool registered_ = false;
  bool registering_ = false;
  bool draining_ = false;
  bool heartbeatInFlight_ = false;
  bool managerAway_ = false;   /* for logging an outage once */
  int intervalMs_ = 1000;
  guint registerTimer_ = 0, heartbeatTimer_ = 0, eventsTimer_ = 0;
  Backoff registerBackoff_{250, 5000, 0.2};
  Backoff eventsBackoff_{250, 5000, 0.2};
  CpuSampler cpu_;
  guint64 registrations_ = 0, heartbeatsFailed_ = 0;
};

}  // namespace xdn
