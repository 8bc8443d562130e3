/* The Store over SQL, shared by the SQLite and PostgreSQL back ends. Every
 * mutation runs in one serialised write transaction (SqlConnection::
 * beginWrite) that reads the state, decides (placement.h) and writes, with
 * the database's clock; so two managers asked at once decide one after the
 * other and the second sees what the first wrote. Events are rows of the
 * `events` table whose ids grow in commit order (they are allocated under the
 * same lock), which every manager polls. */
#include "store.h"

#include "placement.h"
#include "sql.h"

#include <glib.h>

#include <algorithm>
#include <map>
#include <set>

namespace xdn::manager {

/* ---------------------------------------------------------------- rows */

std::string
SqlRows::text (size_t r, size_t c) const
{
  const auto &v = rows_.at (r).at (c);
  return v ? *v : std::string ();
}

int64_t
SqlRows::integer (size_t r, size_t c) const
{
  const auto &v = rows_.at (r).at (c);
  return v ? g_ascii_strtoll (v->c_str (), nullptr, 10) : 0;
}

double
SqlRows::real (size_t r, size_t c) const
{
  const auto &v = rows_.at (r).at (c);
  return v ? g_ascii_strtod (v->c_str (), nullptr) : 0.0;
}

namespace {

/* Advisory lock keys (PostgreSQL); "xdn" + a number. */
constexpr int64_t kWriteLockKey = 0x78646e0001;
constexpr int64_t kMigrationLockKey = 0x78646e0002;

struct Migration {
  int64_t version;
  const char *sql;  /* {{SERIAL}}: the auto-increment primary key of the dialect */
};

const Migration kMigrations[] = {
  {1, R"SQL(
CREATE TABLE nodes (
  id TEXT PRIMARY KEY,
  role TEXT NOT NULL,
  region TEXT NOT NULL DEFAULT '',
  http_url TEXT NOT NULL DEFAULT '',
  srt_url TEXT NOT NULL DEFAULT '',
  cap_viewers BIGINT NOT NULL DEFAULT 0,
  cap_downstream BIGINT NOT NULL DEFAULT 0,
  draining INTEGER NOT NULL DEFAULT 0,
  dead INTEGER NOT NULL DEFAULT 0,
  registered_ms BIGINT NOT NULL,
  heartbeat_ms BIGINT NOT NULL,
  load_cpu DOUBLE PRECISION NOT NULL DEFAULT 0,
  load_viewers BIGINT NOT NULL DEFAULT 0,
  load_streams BIGINT NOT NULL DEFAULT 0,
  load_bitrate_in BIGINT NOT NULL DEFAULT 0,
  load_bitrate_out BIGINT NOT NULL DEFAULT 0
);
CREATE TABLE streams (
  name TEXT PRIMARY KEY,
  origin TEXT NOT NULL,
  live INTEGER NOT NULL DEFAULT 0,
  placed_ms BIGINT NOT NULL,
  updated_ms BIGINT NOT NULL
);
CREATE INDEX streams_origin ON streams (origin);
CREATE TABLE node_streams (
  node TEXT NOT NULL,
  stream TEXT NOT NULL,
  publishing INTEGER NOT NULL DEFAULT 0,
  pulling INTEGER NOT NULL DEFAULT 0,
  viewers BIGINT NOT NULL DEFAULT 0,
  PRIMARY KEY (node, stream)
);
CREATE INDEX node_streams_stream ON node_streams (stream);
CREATE TABLE routes (
  stream TEXT NOT NULL,
  node TEXT NOT NULL,
  upstream TEXT NOT NULL,
  created_ms BIGINT NOT NULL,
  PRIMARY KEY (stream, node)
);
CREATE INDEX routes_upstream ON routes (upstream);
CREATE INDEX routes_node ON routes (node);
CREATE TABLE assignments (
  stream TEXT NOT NULL,
  node TEXT NOT NULL,
  expires_ms BIGINT NOT NULL,
  PRIMARY KEY (stream, node)
);
CREATE TABLE events (
  id {{SERIAL}},
  node TEXT NOT NULL,
  event TEXT NOT NULL,
  stream TEXT NOT NULL DEFAULT '',
  created_ms BIGINT NOT NULL
);
CREATE INDEX events_created ON events (created_ms);
)SQL"},
};

constexpr const char *kNodeColumns =
    "id, role, region, http_url, srt_url, cap_viewers, cap_downstream, draining, dead, "
    "heartbeat_ms, load_cpu, load_viewers, load_streams, load_bitrate_in, load_bitrate_out";

class SqlStore : public Store {
public:
  SqlStore (std::unique_ptr<SqlConnection> db, StoreSettings settings)
      : db_ (std::move (db)), s_ (settings) {}

  const char *kind () const override
  {
    return db_->dialect () == SqlConnection::Dialect::Sqlite ? "sqlite" : "postgresql";
  }
  std::string describe () const override { return db_->describe (); }

  StoreStatus migrate () override
  {
    return write ("migrate", [&] (int64_t now) {
      db_->execScript ("CREATE TABLE IF NOT EXISTS schema_version ("
          "version BIGINT PRIMARY KEY, applied_ms BIGINT NOT NULL)");
      int64_t current = db_->query ("SELECT COALESCE(MAX(version), 0) FROM schema_version").integer (0, 0);
      int64_t latest = kMigrations[G_N_ELEMENTS (kMigrations) - 1].version;
      if (current > latest)
        throw StoreError ("the database schema is version " + std::to_string (current) +
            ", newer than this manager knows (" + std::to_string (latest) + ")");
      for (const auto &m : kMigrations) {
        if (m.version <= current)
          continue;
        std::string sql = m.sql;
        std::string serial = db_->dialect () == SqlConnection::Dialect::Sqlite
            ? "INTEGER PRIMARY KEY AUTOINCREMENT" : "BIGSERIAL PRIMARY KEY";
        for (size_t at; (at = sql.find ("{{SERIAL}}")) != std::string::npos;)
          sql.replace (at, 10, serial);
        db_->execScript (sql);
        db_->query ("INSERT INTO schema_version (version, applied_ms) VALUES ($1, $2)",
            {m.version, now});
      }
    }, kMigrationLockKey);
  }

  StoreStatus schemaVersion (int64_t *version) override
  {
    return read ("schema version", [&] {
      *version = db_->query ("SELECT COALESCE(MAX(version), 0) FROM schema_version").integer (0, 0);
    });
  }

  StoreStatus ping () override
  {
    return read ("ping", [&] { db_->query ("SELECT 1"); });
  }

  StoreStatus registerNode (const NodeInfo &n, bool *created) override
  {
    return write ("register", [&] (int64_t now) {
      SqlRows rows = db_->query ("SELECT dead, heartbeat_ms FROM nodes WHERE id = $1", {n.id});
      *created = rows.empty ();
      if (*created) {
        db_->query ("INSERT INTO nodes (id, role, region, http_url, srt_url, cap_viewers, "
            "cap_downstream, draining, dead, registered_ms, heartbeat_ms) "
            "VALUES ($1, $2, $3, $4, $5, $6, $7, 0, 0, $8, $8)",
            {n.id, n.role, n.region, n.http, n.srt, n.capacityViewers, n.capacityDownstream, now});
        return;
      }
      bool wasDead = rows.integer (0, 0) != 0;
      if (!wasDead && rows.integer (0, 1) < now - s_.deadAfterMs ()) {
        /* Dead by its silence, not swept yet: the same fresh start. */
        dropPlacements (n.id, now);
        wasDead = true;
      }
      db_->query ("UPDATE nodes SET role = $2, region = $3, http_url = $4, srt_url = $5, "
          "cap_viewers = $6, cap_downstream = $7, heartbeat_ms = $8 WHERE id = $1",
          {n.id, n.role, n.region, n.http, n.srt, n.capacityViewers, n.capacityDownstream, now});
      if (wasDead)
        /* Back from the dead: a fresh start (its placements were dropped). */
        db_->query ("UPDATE nodes SET dead = 0, draining = 0, registered_ms = $2, load_cpu = 0, "
            "load_viewers = 0, load_streams = 0, load_bitrate_in = 0, load_bitrate_out = 0 "
            "WHERE id = $1", {n.id, now});
    });
  }

  StoreStatus heartbeat (const std::string &id, const NodeLoad &load,
      const std::vector<StreamReport> &reports, HeartbeatResult *result) override
  {
    return write ("heartbeat", [&] (int64_t now) {
      *result = HeartbeatResult ();
      /* A late heartbeat that no sweep has seen yet keeps the node: nothing
       * was dropped, so nothing is lost (after an outage of the managers or
       * of the store, every heartbeat is late). */
      SqlRows rows = db_->query ("SELECT dead, draining FROM nodes WHERE id = $1", {id});
      if (rows.empty () || rows.integer (0, 0) != 0)
        return;
      result->known = true;
      result->draining = rows.integer (0, 1) != 0;
      db_->query ("UPDATE nodes SET heartbeat_ms = $2, load_cpu = $3, load_viewers = $4, "
          "load_streams = $5, load_bitrate_in = $6, load_bitrate_out = $7 WHERE id = $1",
          {id, now, load.cpu, load.viewers, load.streams, load.bitrateIn, load.bitrateOut});

      std::map<std::string, StreamReport> byName;
      for (const auto &r : reports)
        byName[r.name] = r;

      /* Streams published here: this node is their origin. */
      std::set<std::string> publishing;
      for (const auto &entry : byName) {
        if (!entry.second.publishing)
          continue;
        const std::string &name = entry.first;
        SqlRows s = db_->query ("SELECT origin, live FROM streams WHERE name = $1", {name});
        if (s.empty ()) {
          db_->query ("INSERT INTO streams (name, origin, live, placed_ms, updated_ms) "
              "VALUES ($1, $2, 1, $3, $3)", {name, id, now});
        } else if (s.text (0, 0) == id) {
          if (s.integer (0, 1) == 0)
            db_->query ("UPDATE streams SET live = 1, updated_ms = $2 WHERE name = $1", {name, now});
        } else if (s.integer (0, 1) != 0 && nodeAlive (s.text (0, 0), now)) {
          /* Live on another alive origin: that one keeps it. */
          result->conflicts.push_back (name);
          continue;
        } else {
          db_->query ("UPDATE streams SET origin = $2, live = 1, placed_ms = $3, updated_ms = $3 "
              "WHERE name = $1", {name, id, now});
          rerouteStream (name, now);
        }
        publishing.insert (name);
      }
      /* Streams this node published and no longer does. */
      SqlRows old = db_->query ("SELECT name FROM streams WHERE origin = $1 AND live = 1", {id});
      for (size_t i = 0; i < old.size (); i++)
        if (!publishing.count (old.text (i, 0)))
          unpublish (old.text (i, 0), id, now);

      db_->query ("DELETE FROM node_streams WHERE node = $1", {id});
      for (const auto &entry : byName)
        db_->query ("INSERT INTO node_streams (node, stream, publishing, pulling, viewers) "
            "VALUES ($1, $2, $3, $4, $5)", {id, entry.first, publishing.count (entry.first) > 0,
            entry.second.pulling, entry.second.viewers});

      /* Routes handed to this node that it does not use (the pull ended or
       * never started) stop counting against their upstream's fan-out. */
      SqlRows routes = db_->query ("SELECT stream FROM routes WHERE node = $1 AND created_ms < $2",
          {id, now - s_.routeGraceMs});
      for (size_t i = 0; i < routes.size (); i++) {
        auto it = byName.find (routes.text (i, 0));
        if (it == byName.end () || !it->second.pulling)
          db_->query ("DELETE FROM routes WHERE stream = $1 AND node = $2", {routes.text (i, 0), id});
      }
    });
  }

  StoreStatus removeNode (const std::string &id, bool *found) override
  {
    return write ("remove node", [&] (int64_t now) {
      *found = !db_->query ("SELECT 1 FROM nodes WHERE id = $1", {id}).empty ();
      if (!*found)
        return;
      dropPlacements (id, now);
      db_->query ("DELETE FROM nodes WHERE id = $1", {id});
    });
  }

  StoreStatus drainNode (const std::string &id, bool *found) override
  {
    return write ("drain node", [&] (int64_t now) {
      *found = !db_->query ("SELECT 1 FROM nodes WHERE id = $1", {id}).empty ();
      if (!*found)
        return;
      db_->query ("UPDATE nodes SET draining = 1 WHERE id = $1", {id});
      queueEvent (id, "node.draining", "", now);
    });
  }

  StoreStatus nodeKnown (const std::string &id, bool *found) override
  {
    return read ("node", [&] {
      SqlRows rows = db_->query ("SELECT dead FROM nodes WHERE id = $1", {id});
      *found = !rows.empty () && rows.integer (0, 0) == 0;
    });
  }

  StoreStatus listNodes (std::vector<NodeRecord> *nodes) override
  {
    return read ("list nodes", [&] {
      int64_t now = db_->nowMs ();
      *nodes = loadNodes ("1 = 1", {}, now);
    });
  }

  StoreStatus placePublish (const std::string &stream, const std::string &region,
      PublishResult *result) override
  {
    return write ("publish", [&] (int64_t now) {
      *result = PublishResult ();
      std::vector<NodeRecord> origins = loadNodes (
          "role IN ('origin', 'all') AND dead = 0 AND heartbeat_ms >= $1", {now - s_.deadAfterMs ()}, now);
      SqlRows s = db_->query ("SELECT origin, live FROM streams WHERE name = $1", {stream});
      if (!s.empty ()) {
        for (const auto &o : origins) {
          /* Sticky: live there, or placed there and still open to publishers. */
          if (o.info.id == s.text (0, 0) && (s.integer (0, 1) != 0 || !o.draining)) {
            result->found = result->sticky = true;
            result->origin = o;
            return;
          }
        }
      }
      std::map<std::string, int64_t> placed;
      SqlRows counts = db_->query ("SELECT origin, COUNT(*) FROM streams "
          "WHERE live = 1 OR updated_ms >= $1 GROUP BY origin", {now - s_.pendingPublishMs});
      for (size_t i = 0; i < counts.size (); i++)
        placed[counts.text (i, 0)] = counts.integer (i, 1);
      std::vector<Candidate> candidates;
      for (const auto &o : origins)
        if (!o.draining)
          candidates.push_back ({&o, static_cast<double> (placed[o.info.id]), o.load.cpu, false, false});
      const NodeRecord *pick = pickNode (candidates, region);
      if (!pick)
        return;
      if (s.empty ())
        db_->query ("INSERT INTO streams (name, origin, live, placed_ms, updated_ms) "
            "VALUES ($1, $2, 0, $3, $3)", {stream, pick->info.id, now});
      else
        db_->query ("UPDATE streams SET origin = $2, live = 0, placed_ms = $3, updated_ms = $3 "
            "WHERE name = $1", {stream, pick->info.id, now});
      result->found = true;
      result->origin = *pick;
    });
  }

  StoreStatus placeSubscribe (const std::string &stream, const std::string &region,
      SubscribeResult *result) override
  {
    return write ("subscribe", [&] (int64_t now) {
      *result = SubscribeResult ();
      if (liveOrigin (stream, now).empty ())
        return;
      std::vector<NodeRecord> edges = loadNodes ("role IN ('edge', 'all') AND dead = 0 "
          "AND draining = 0 AND heartbeat_ms >= $1", {now - s_.deadAfterMs ()}, now);
      std::set<std::string> carrying;
      SqlRows c = db_->query ("SELECT node FROM routes WHERE stream = $1 "
          "UNION SELECT node FROM node_streams WHERE stream = $1 AND (pulling = 1 OR publishing = 1) "
          "UNION SELECT node FROM assignments WHERE stream = $1 AND expires_ms > $2", {stream, now});
      for (size_t i = 0; i < c.size (); i++)
        carrying.insert (c.text (i, 0));
      std::vector<Candidate> candidates;
      for (const auto &e : edges) {
        int64_t capacity = e.info.capacityViewers > 0 ? e.info.capacityViewers : s_.defaultViewerCapacity;
        candidates.push_back ({&e, static_cast<double> (e.load.viewers) / capacity, e.load.cpu,
            carrying.count (e.info.id) > 0, e.load.viewers >= capacity});
      }
      const NodeRecord *pick = pickNode (candidates, region);
      if (!pick) {
        result->outcome = SubscribeOutcome::NoEdge;
        return;
      }
      result->outcome = SubscribeOutcome::Ok;
      result->edge = *pick;
      result->carrying = carrying.count (pick->info.id) > 0;
      if (!result->carrying)
        /* Counts as carrying until the edge reports the pull. */
        db_->query ("INSERT INTO assignments (stream, node, expires_ms) VALUES ($1, $2, $3) "
            "ON CONFLICT (stream, node) DO UPDATE SET expires_ms = excluded.expires_ms",
            {stream, pick->info.id, now + s_.assignmentTtlMs});
    });
  }

  StoreStatus placeRoute (const std::string &stream, const std::string &nodeId,
      RouteResult *result) override
  {
    return write ("route", [&] (int64_t now) {
      *result = RouteResult ();
      int64_t cutoff = now - s_.deadAfterMs ();
      std::vector<NodeRecord> req = loadNodes ("id = $1 AND dead = 0 AND heartbeat_ms >= $2",
          {nodeId, cutoff}, now);
      if (req.empty ()) {
        result->outcome = RouteOutcome::UnknownNode;
        return;
      }
      std::vector<NodeRecord> origin = liveOrigin (stream, now);
      if (origin.empty ())
        return;  /* NotLive */
      if (origin[0].info.id == nodeId) {
        result->outcome = RouteOutcome::IsOrigin;
        return;
      }
      result->outcome = RouteOutcome::Ok;

      /* Sticky: the route given before, while its upstream lives and (for a
       * relay) still has its own route to the origin. */
      SqlRows existing = db_->query ("SELECT upstream FROM routes WHERE stream = $1 AND node = $2",
          {stream, nodeId});
      if (!existing.empty ()) {
        std::string up = existing.text (0, 0);
        std::vector<NodeRecord> upNode = loadNodes ("id = $1 AND dead = 0 AND heartbeat_ms >= $2",
            {up, cutoff}, now);
        bool chained = up == origin[0].info.id || !db_->query (
            "SELECT 1 FROM routes WHERE stream = $1 AND node = $2", {stream, up}).empty ();
        if (!upNode.empty () && chained) {
          result->upstream = upNode[0];
          result->viaRelay = up != origin[0].info.id;
          result->sticky = true;
          return;
        }
        db_->query ("DELETE FROM routes WHERE stream = $1 AND node = $2", {stream, nodeId});
      }

      const NodeRecord &o = origin[0];
      NodeRecord upstream = o;
      if (!isRelay (req[0].info.role) &&
          downstreamCount (stream, o.info.id) >= limitOf (o)) {
        std::vector<NodeRecord> relays = loadNodes ("role = 'relay' AND dead = 0 AND draining = 0 "
            "AND heartbeat_ms >= $1 AND id <> $2", {cutoff, nodeId}, now);
        std::map<std::string, int64_t> perStream, total;
        SqlRows ps = db_->query ("SELECT upstream, COUNT(*) FROM routes WHERE stream = $1 "
            "GROUP BY upstream", {stream});
        for (size_t i = 0; i < ps.size (); i++)
          perStream[ps.text (i, 0)] = ps.integer (i, 1);
        SqlRows t = db_->query ("SELECT upstream, COUNT(*) FROM routes GROUP BY upstream");
        for (size_t i = 0; i < t.size (); i++)
          total[t.text (i, 0)] = t.integer (i, 1);
        std::set<std::string> routed;
        SqlRows r = db_->query ("SELECT node FROM routes WHERE stream = $1 AND upstream = $2",
            {stream, o.info.id});
        for (size_t i = 0; i < r.size (); i++)
          routed.insert (r.text (i, 0));
        std::vector<Candidate> candidates;
        for (const auto &relay : relays) {
          double limit = static_cast<double> (limitOf (relay));
          candidates.push_back ({&relay, total[relay.info.id] / limit, relay.load.cpu,
              routed.count (relay.info.id) > 0, perStream[relay.info.id] >= limitOf (relay)});
        }
        const NodeRecord *pick = pickNode (candidates, req[0].info.region);
        if (pick && !(perStream[pick->info.id] >= limitOf (*pick))) {
          if (!routed.count (pick->info.id))
            /* The relay itself pulls from the origin; relays always may. */
            db_->query ("INSERT INTO routes (stream, node, upstream, created_ms) VALUES ($1, $2, $3, $4) "
                "ON CONFLICT (stream, node) DO UPDATE SET upstream = excluded.upstream, "
                "created_ms = excluded.created_ms", {stream, pick->info.id, o.info.id, now});
          upstream = *pick;
          result->viaRelay = true;
        } else {
          result->overLimit = true;
        }
      }
      db_->query ("INSERT INTO routes (stream, node, upstream, created_ms) VALUES ($1, $2, $3, $4) "
          "ON CONFLICT (stream, node) DO UPDATE SET upstream = excluded.upstream, "
          "created_ms = excluded.created_ms", {stream, nodeId, upstream.info.id, now});
      db_->query ("DELETE FROM assignments WHERE stream = $1 AND node = $2", {stream, nodeId});
      result->upstream = upstream;
    });
  }

  StoreStatus listStreams (std::vector<StreamRecord> *streams) override
  {
    return read ("list streams", [&] {
      streams->clear ();
      SqlRows s = db_->query ("SELECT name, origin FROM streams WHERE live = 1 ORDER BY name");
      std::map<std::string, std::set<std::string>> carriers;
      SqlRows c = db_->query ("SELECT stream, node FROM routes "
          "UNION SELECT stream, node FROM node_streams WHERE pulling = 1");
      for (size_t i = 0; i < c.size (); i++)
        carriers[c.text (i, 0)].insert (c.text (i, 1));
      for (size_t i = 0; i < s.size (); i++) {
        StreamRecord rec;
        rec.name = s.text (i, 0);
        rec.origin = s.text (i, 1);
        const auto &set = carriers[rec.name];
        rec.carriers.assign (set.begin (), set.end ());
        streams->push_back (std::move (rec));
      }
      std::sort (streams->begin (), streams->end (),
          [] (const StreamRecord &a, const StreamRecord &b) { return a.name < b.name; });
    });
  }

  StoreStatus sweep (SweepResult *result) override
  {
    result->dead.clear ();
    /* Most sweeps find nothing: ask before taking the write lock. */
    bool any = false;
    StoreStatus st = read ("sweep", [&] {
      int64_t now = db_->nowMs ();
      any = !db_->query ("SELECT id FROM nodes WHERE dead = 0 AND heartbeat_ms < $1 LIMIT 1",
          {now - s_.deadAfterMs ()}).empty ();
    });
    if (!st || !any)
      return st;
    return write ("sweep", [&] (int64_t now) {
      result->dead.clear ();
      SqlRows rows = db_->query ("SELECT id FROM nodes WHERE dead = 0 AND heartbeat_ms < $1 "
          "ORDER BY id", {now - s_.deadAfterMs ()});
      for (size_t i = 0; i < rows.size (); i++) {
        std::string id = rows.text (i, 0);
        db_->query ("UPDATE nodes SET dead = 1 WHERE id = $1", {id});
        dropPlacements (id, now);
        result->dead.push_back (id);
      }
    });
  }

  StoreStatus cleanup () override
  {
    return write ("cleanup", [&] (int64_t now) {
      db_->query ("DELETE FROM events WHERE created_ms < $1", {now - s_.eventsKeepMs});
      db_->query ("DELETE FROM assignments WHERE expires_ms < $1", {now});
      db_->query ("DELETE FROM streams WHERE live = 0 AND updated_ms < $1", {now - s_.pendingPublishMs});
      db_->query ("DELETE FROM nodes WHERE dead = 1 AND heartbeat_ms < $1", {now - s_.deadNodesKeepMs});
    });
  }

  StoreStatus eventsAfter (int64_t id, int limit, std::vector<Event> *events) override
  {
    return read ("events", [&] {
      events->clear ();
      SqlRows rows = db_->query ("SELECT id, node, event, stream FROM events WHERE id > $1 "
          "ORDER BY id LIMIT $2", {id, static_cast<int64_t> (limit)});
      for (size_t i = 0; i < rows.size (); i++)
        events->push_back ({rows.integer (i, 0), rows.text (i, 1), rows.text (i, 2), rows.text (i, 3)});
    });
  }

  StoreStatus lastEventId (int64_t *id) override
  {
    return read ("events", [&] {
      *id = db_->query ("SELECT COALESCE(MAX(id), 0) FROM events").integer (0, 0);
    });
  }

private:
  template <typename F>
  StoreStatus read (const char *what, F f)
  {
    try {
      f ();
      return {};
    } catch (const StoreError &e) {
      return StoreStatus::failure (std::string (what) + ": " + e.what ());
    }
  }

  template <typename F>
  StoreStatus write (const char *what, F f, int64_t lockKey = kWriteLockKey)
  {
    try {
      db_->beginWrite (lockKey);
      f (db_->nowMs ());
      db_->commit ();
      return {};
    } catch (const StoreError &e) {
      db_->rollback ();
      return StoreStatus::failure (std::string (what) + ": " + e.what ());
    }
  }

  std::vector<NodeRecord> loadNodes (const std::string &where, const std::vector<SqlValue> &params,
      int64_t now)
  {
    SqlRows rows = db_->query (std::string ("SELECT ") + kNodeColumns + " FROM nodes WHERE " +
        where + " ORDER BY id", params);
    std::vector<NodeRecord> nodes;
    for (size_t i = 0; i < rows.size (); i++) {
      NodeRecord n;
      n.info.id = rows.text (i, 0);
      n.info.role = rows.text (i, 1);
      n.info.region = rows.text (i, 2);
      n.info.http = rows.text (i, 3);
      n.info.srt = rows.text (i, 4);
      n.info.capacityViewers = rows.integer (i, 5);
      n.info.capacityDownstream = rows.integer (i, 6);
      n.draining = rows.integer (i, 7) != 0;
      n.lastHeartbeatMs = rows.integer (i, 9);
      n.heartbeatAgeMs = std::max<int64_t> (0, now - n.lastHeartbeatMs);
      n.dead = rows.integer (i, 8) != 0 || n.lastHeartbeatMs < now - s_.deadAfterMs ();
      n.load.cpu = rows.real (i, 10);
      n.load.viewers = rows.integer (i, 11);
      n.load.streams = rows.integer (i, 12);
      n.load.bitrateIn = rows.integer (i, 13);
      n.load.bitrateOut = rows.integer (i, 14);
      nodes.push_back (std::move (n));
    }
    return nodes;
  }

  bool nodeAlive (const std::string &id, int64_t now)
  {
    return !db_->query ("SELECT 1 FROM nodes WHERE id = $1 AND dead = 0 AND heartbeat_ms >= $2",
        {id, now - s_.deadAfterMs ()}).empty ();
  }

  /* The stream's origin when the stream is live on an alive origin. */
  std::vector<NodeRecord> liveOrigin (const std::string &stream, int64_t now)
  {
    SqlRows s = db_->query ("SELECT origin FROM streams WHERE name = $1 AND live = 1", {stream});
    if (s.empty ())
      return {};
    return loadNodes ("id = $1 AND dead = 0 AND heartbeat_ms >= $2",
        {s.text (0, 0), now - s_.deadAfterMs ()}, now);
  }

  int64_t limitOf (const NodeRecord &n) const
  {
    if (n.info.capacityDownstream > 0)
      return n.info.capacityDownstream;
    return isRelay (n.info.role) ? s_.relayFanout : s_.originFanout;
  }

  int64_t downstreamCount (const std::string &stream, const std::string &upstream)
  {
    return db_->query ("SELECT COUNT(*) FROM routes WHERE stream = $1 AND upstream = $2",
        {stream, upstream}).integer (0, 0);
  }

  void queueEvent (const std::string &node, const char *event, const std::string &stream, int64_t now)
  {
    db_->query ("INSERT INTO events (node, event, stream, created_ms) VALUES ($1, $2, $3, $4)",
        {node, event, stream, now});
  }

  /* The stream's publisher left (or its origin died): every node pulling it
   * hears so, and its routes go. @except: the origin itself. */
  void unpublish (const std::string &stream, const std::string &except, int64_t now)
  {
    db_->query ("UPDATE streams SET live = 0, updated_ms = $2 WHERE name = $1", {stream, now});
    SqlRows receivers = db_->query ("SELECT node FROM routes WHERE stream = $1 "
        "UNION SELECT node FROM node_streams WHERE stream = $1 AND pulling = 1", {stream});
    std::set<std::string> told;
    for (size_t i = 0; i < receivers.size (); i++) {
      std::string node = receivers.text (i, 0);
      if (node != except && told.insert (node).second)
        queueEvent (node, "stream.unpublished", stream, now);
    }
    db_->query ("DELETE FROM routes WHERE stream = $1", {stream});
    db_->query ("DELETE FROM assignments WHERE stream = $1", {stream});
  }

  /* The stream's origin changed: every node routed for it asks again. */
  void rerouteStream (const std::string &stream, int64_t now)
  {
    SqlRows routed = db_->query ("SELECT node FROM routes WHERE stream = $1", {stream});
    for (size_t i = 0; i < routed.size (); i++)
      queueEvent (routed.text (i, 0), "route.changed", stream, now);
    db_->query ("DELETE FROM routes WHERE stream = $1", {stream});
  }

  /* The node is gone (dead or left): its origin placements, its routes and
   * the routes through it. */
  void dropPlacements (const std::string &id, int64_t now)
  {
    SqlRows origin = db_->query ("SELECT name, live FROM streams WHERE origin = $1", {id});
    for (size_t i = 0; i < origin.size (); i++) {
      std::string name = origin.text (i, 0);
      if (origin.integer (i, 1) != 0)
        unpublish (name, id, now);
      db_->query ("DELETE FROM routes WHERE stream = $1", {name});
      db_->query ("DELETE FROM assignments WHERE stream = $1", {name});
      db_->query ("DELETE FROM streams WHERE name = $1", {name});
    }
    SqlRows through = db_->query ("SELECT stream, node FROM routes WHERE upstream = $1 "
        "ORDER BY stream, node", {id});
    for (size_t i = 0; i < through.size (); i++)
      queueEvent (through.text (i, 1), "route.changed", through.text (i, 0), now);
    db_->query ("DELETE FROM routes WHERE upstream = $1 OR node = $1", {id});
    db_->query ("DELETE FROM node_streams WHERE node = $1", {id});
    db_->query ("DELETE FROM assignments WHERE node = $1", {id});
  }

  std::unique_ptr<SqlConnection> db_;
  StoreSettings s_;
};

}  // namespace

std::unique_ptr<Store>
makeSqlStore (std::unique_ptr<SqlConnection> db, const StoreSettings &settings)
{
  return std::make_unique<SqlStore> (std::move (db), settings);
}

std::unique_ptr<Store>
openStore (const std::string &url, const StoreSettings &settings, std::string *error)
{
  try {
    if (g_str_has_prefix (url.c_str (), "sqlite:")) {
      std::string path = url.substr (7);
      if (path.empty ())
        throw StoreError ("sqlite: needs a file path (sqlite:PATH)");
      return makeSqlStore (openSqlite (path, settings.timeoutMs), settings);
    }
    if (g_str_has_prefix (url.c_str (), "postgresql://") || g_str_has_prefix (url.c_str (), "postgres://"))
      return makeSqlStore (openPostgres (url, settings.timeoutMs), settings);
    throw StoreError ("unknown database URL (use sqlite:PATH or postgresql://...)");
  } catch (const StoreError &e) {
    *error = e.what ();
    return nullptr;
  }
}

}  // namespace xdn::manager
