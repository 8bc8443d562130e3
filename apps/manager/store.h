/* The manager's state, kept in a database so that several managers over one
 * database give the same answers. Every decision that two managers must
 * agree on (a stream's origin, a node's upstream) is made inside one write
 * transaction of the database, serialised between managers (SQLite: BEGIN
 * IMMEDIATE; PostgreSQL: a transaction-scoped advisory lock), with the
 * database's clock.
 *
 * A Store is used from one thread (the manager's main loop). Its calls block
 * for at most the store timeout; a failed call returns a StoreStatus with
 * the reason and leaves the database as it was (the transaction is rolled
 * back). */
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace xdn::manager {

struct NodeInfo {
  std::string id;
  std::string role;    /* origin | relay | edge | all */
  std::string region;  /* may be empty */
  std::string http;    /* base URL of the node's HTTP server */
  std::string srt;     /* srt://host:port, may be empty for an edge */
  int64_t capacityViewers = 0;     /* 0: the manager's default */
  int64_t capacityDownstream = 0;  /* 0: the manager's fan-out setting */
};

struct NodeLoad {
  double cpu = 0;
  int64_t viewers = 0;
  int64_t streams = 0;
  int64_t bitrateIn = 0;
  int64_t bitrateOut = 0;
};

struct NodeRecord {
  NodeInfo info;
  NodeLoad load;
  bool draining = false;
  bool dead = false;             /* declared dead, or heartbeat older than the limit */
  int64_t lastHeartbeatMs = 0;   /* store clock, ms since the epoch */
  int64_t heartbeatAgeMs = 0;    /* store clock now - lastHeartbeatMs */

  /* alive | draining | dead, as the API shows it. */
  const char *state () const { return dead ? "dead" : draining ? "draining" : "alive"; }
};

struct StreamReport {
  std::string name;
  bool publishing = false;
  bool pulling = false;
  int64_t viewers = 0;
};

struct StreamRecord {
  std::string name;
  std::string origin;
  std::vector<std::string> carriers;  /* nodes pulling it (routed or reporting), sorted */
};

struct Event {
  int64_t id = 0;
  std::string node;
  std::string event;   /* node.draining | route.changed | stream.unpublished */
  std::string stream;  /* empty for node.draining */
};

struct HeartbeatResult {
  bool known = false;     /* false: unknown or declared dead; the node registers again */
  bool draining = false;
  std::vector<std::string> conflicts;  /* streams this node publishes but another live origin holds */
};

struct PublishResult {
  bool found = false;  /* false: no alive origin */
  bool sticky = false; /* the stream's existing placement */
  NodeRecord origin;
};

enum class SubscribeOutcome { Ok, NotLive, NoEdge };
struct SubscribeResult {
  SubscribeOutcome outcome = SubscribeOutcome::NotLive;
  NodeRecord edge;
  bool carrying = false;  /* the edge already carries (or was just given) the stream */
};

enum class RouteOutcome { Ok, UnknownNode, NotLive, IsOrigin };
struct RouteResult {
  RouteOutcome outcome = RouteOutcome::NotLive;
  NodeRecord upstream;
  bool viaRelay = false;
  bool overLimit = false;  /* origin past its fan-out and no relay to take it */
  bool sticky = false;
};

struct SweepResult {
  std::vector<std::string> dead;
};

struct StoreSettings {
  int64_t heartbeatIntervalMs = 1000;
  int64_t deadAfterIntervals = 3;
  int64_t originFanout = 4;            /* downstream nodes per stream per origin */
  int64_t relayFanout = 16;            /* downstream nodes per stream per relay */
  int64_t defaultViewerCapacity = 1000;
  int64_t timeoutMs = 2000;            /* bound of every store call */
  int64_t routeGraceMs = 15000;        /* a route not reported as pulled is dropped after this */
  int64_t assignmentTtlMs = 10000;     /* a subscribe placement counts as carrying for this long */
  int64_t pendingPublishMs = 60000;    /* a publish placement not yet live is kept this long */
  int64_t eventsKeepMs = 600000;
  int64_t deadNodesKeepMs = 3600000;

  int64_t deadAfterMs () const { return heartbeatIntervalMs * deadAfterIntervals; }
};

struct StoreStatus {
  bool ok = true;
  std::string error;

  static StoreStatus failure (std::string e) { return {false, std::move (e)}; }
  explicit operator bool () const { return ok; }
};

class Store {
public:
  virtual ~Store () = default;

  /* "sqlite" or "postgresql" */
  virtual const char *kind () const = 0;
  /* Where the data is, without secrets. */
  virtual std::string describe () const = 0;
  /* Creates or upgrades the schema; safe when several managers start at once. */
  virtual StoreStatus migrate () = 0;
  virtual StoreStatus schemaVersion (int64_t *version) = 0;
  virtual StoreStatus ping () = 0;

  /* @created: true for a new id, false when an existing one was updated. */
  virtual StoreStatus registerNode (const NodeInfo &node, bool *created) = 0;
  virtual StoreStatus heartbeat (const std::string &id, const NodeLoad &load,
      const std::vector<StreamReport> &streams, HeartbeatResult *result) = 0;
  virtual StoreStatus removeNode (const std::string &id, bool *found) = 0;
  virtual StoreStatus drainNode (const std::string &id, bool *found) = 0;
  /* @found: registered and not declared dead. */
  virtual StoreStatus nodeKnown (const std::string &id, bool *found) = 0;
  virtual StoreStatus listNodes (std::vector<NodeRecord> *nodes) = 0;

  virtual StoreStatus placePublish (const std::string &stream, const std::string &region,
      PublishResult *result) = 0;
  virtual StoreStatus placeSubscribe (const std::string &stream, const std::string &region,
      SubscribeResult *result) = 0;
  virtual StoreStatus placeRoute (const std::string &stream, const std::string &node,
      RouteResult *result) = 0;
  virtual StoreStatus listStreams (std::vector<StreamRecord> *streams) = 0;

  /* Declares dead the nodes whose heartbeat is older than the limit, drops
   * their placements and routes, and queues the events. */
  virtual StoreStatus sweep (SweepResult *result) = 0;
  /* Forgets old events, expired placements and long-dead nodes. */
  virtual StoreStatus cleanup () = 0;
  virtual StoreStatus eventsAfter (int64_t id, int limit, std::vector<Event> *events) = 0;
  virtual StoreStatus lastEventId (int64_t *id) = 0;
};

/* @url: `sqlite:PATH` or `postgresql://...` (also `postgres://`). Connects
 * (PostgreSQL) or opens the file (SQLite); does not migrate. */
std::unique_ptr<Store> openStore (const std::string &url, const StoreSettings &settings,
    std::string *error);

}  // namespace xdn::manager
