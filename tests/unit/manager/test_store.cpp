/* The store on SQLite in a temporary file, with a clock the test moves. */
#include "sql.h"
#include "store.h"

#include <glib.h>
#include <glib/gstdio.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <memory>

using namespace xdn::manager;

namespace {

class StoreTest : public ::testing::Test {
protected:
  void SetUp () override
  {
    GError *err = nullptr;
    dir_ = g_dir_make_tmp ("xdn-manager-test-XXXXXX", &err);
    ASSERT_NE (dir_, nullptr) << err->message;
    path_ = std::string (dir_) + "/store.db";
    settings_.heartbeatIntervalMs = 1000;
    settings_.originFanout = 2;
    settings_.relayFanout = 3;
    store_ = open ();
    ASSERT_TRUE (store_->migrate ());
  }

  void TearDown () override
  {
    store_.reset ();
    for (const char *suffix : {"", "-wal", "-shm"})
      g_remove ((path_ + suffix).c_str ());
    g_rmdir (dir_);
    g_free (dir_);
  }

  std::unique_ptr<Store> open ()
  {
    std::unique_ptr<SqlConnection> db = openSqlite (path_, 2000);
    setSqliteClock (db.get (), [this] { return now_; });
    return makeSqlStore (std::move (db), settings_);
  }

  void add (const std::string &id, const std::string &role, const std::string &region = "",
      int64_t downstream = 0, int64_t viewers = 0)
  {
    NodeInfo n;
    n.id = id;
    n.role = role;
    n.region = region;
    n.http = "http://" + id + ":8080";
    n.srt = role == "edge" ? "" : "srt://" + id + ":9000";
    n.capacityDownstream = downstream;
    n.capacityViewers = viewers;
    bool created = false;
    ASSERT_TRUE (store_->registerNode (n, &created));
    ASSERT_TRUE (created);
  }

  HeartbeatResult beat (const std::string &id, std::vector<StreamReport> streams = {},
      NodeLoad load = {})
  {
    HeartbeatResult r;
    EXPECT_TRUE (store_->heartbeat (id, load, streams, &r));
    return r;
  }

  StreamReport publishing (const std::string &name) { return {name, true, false, 0}; }
  StreamReport pulling (const std::string &name) { return {name, false, true, 1}; }

  std::string publishOn (const std::string &stream, const std::string &region = "")
  {
    PublishResult r;
    EXPECT_TRUE (store_->placePublish (stream, region, &r));
    return r.found ? r.origin.info.id : "";
  }

  RouteResult route (const std::string &stream, const std::string &node)
  {
    RouteResult r;
    EXPECT_TRUE (store_->placeRoute (stream, node, &r));
    return r;
  }

  SubscribeResult subscribe (const std::string &stream, const std::string &region = "")
  {
    SubscribeResult r;
    EXPECT_TRUE (store_->placeSubscribe (stream, region, &r));
    return r;
  }

  std::vector<Event> events (int64_t after = 0)
  {
    std::vector<Event> e;
    EXPECT_TRUE (store_->eventsAfter (after, 1000, &e));
    return e;
  }

  std::string stateOf (const std::string &id)
  {
    std::vector<NodeRecord> nodes;
    EXPECT_TRUE (store_->listNodes (&nodes));
    for (const auto &n : nodes)
      if (n.info.id == id)
        return n.state ();
    return "absent";
  }

  void advance (int64_t ms) { now_ += ms; }

  /* Moves the clock on by @ms in steps of one heartbeat interval; at each
   * step the nodes of @alive heartbeat with their reports. */
  void passTime (int64_t ms, const std::map<std::string, std::vector<StreamReport>> &alive)
  {
    while (ms > 0) {
      int64_t step = std::min<int64_t> (ms, settings_.heartbeatIntervalMs);
      advance (step);
      ms -= step;
      for (const auto &n : alive)
        beat (n.first, n.second);
    }
  }

  gchar *dir_ = nullptr;
  std::string path_;
  int64_t now_ = 1700000000000;
  StoreSettings settings_;
  std::unique_ptr<Store> store_;
};

bool
hasEvent (const std::vector<Event> &events, const std::string &node, const std::string &event,
    const std::string &stream)
{
  return std::any_of (events.begin (), events.end (), [&] (const Event &e) {
    return e.node == node && e.event == event && e.stream == stream;
  });
}

}  // namespace

TEST_F (StoreTest, MigrationsAreIdempotentAndKeepData)
{
  add ("o1", "origin");
  ASSERT_TRUE (store_->migrate ());
  int64_t version = 0;
  ASSERT_TRUE (store_->schemaVersion (&version));
  EXPECT_EQ (version, 1);
  /* A second manager on the same file. */
  std::unique_ptr<Store> other = open ();
  ASSERT_TRUE (other->migrate ());
  std::vector<NodeRecord> nodes;
  ASSERT_TRUE (other->listNodes (&nodes));
  ASSERT_EQ (nodes.size (), 1u);
  EXPECT_EQ (nodes[0].info.id, "o1");
}

TEST_F (StoreTest, ReregisteringUpdatesTheNode)
{
  add ("e1", "edge", "eu");
  NodeInfo n;
  n.id = "e1";
  n.role = "edge";
  n.region = "us";
  n.http = "http://e1:9999";
  bool created = true;
  ASSERT_TRUE (store_->registerNode (n, &created));
  EXPECT_FALSE (created);
  std::vector<NodeRecord> nodes;
  ASSERT_TRUE (store_->listNodes (&nodes));
  ASSERT_EQ (nodes.size (), 1u);
  EXPECT_EQ (nodes[0].info.region, "us");
  EXPECT_EQ (nodes[0].info.http, "http://e1:9999");
}

TEST_F (StoreTest, HeartbeatOfAnUnknownNodeIsNotKnown)
{
  EXPECT_FALSE (beat ("ghost").known);
  std::vector<NodeRecord> nodes;
  ASSERT_TRUE (store_->listNodes (&nodes));
  EXPECT_TRUE (nodes.empty ());
}

TEST_F (StoreTest, PublishGoesToTheLeastLoadedOriginAndIsSticky)
{
  add ("o1", "origin");
  add ("o2", "origin");
  add ("e1", "edge");
  EXPECT_EQ (publishOn ("live/a"), "o1");  /* tie: smaller id */
  EXPECT_EQ (publishOn ("live/b"), "o2");  /* o1 holds one placement */
  EXPECT_EQ (publishOn ("live/a"), "o1");  /* sticky before it is live */
  beat ("o1", {publishing ("live/a")});
  beat ("o2");
  EXPECT_EQ (publishOn ("live/a"), "o1");  /* sticky while live */
}

TEST_F (StoreTest, PublishWithoutOriginFindsNothing)
{
  add ("e1", "edge");
  PublishResult r;
  ASSERT_TRUE (store_->placePublish ("live/a", "", &r));
  EXPECT_FALSE (r.found);
}

TEST_F (StoreTest, PublishPrefersTheRegionAndFallsBackToAny)
{
  add ("a-us", "origin", "us");
  add ("b-eu", "all", "eu");
  EXPECT_EQ (publishOn ("live/x", "eu"), "b-eu");
  EXPECT_EQ (publishOn ("live/y", "ap"), "a-us");
}

TEST_F (StoreTest, StreamPublishedWithoutAskingBecomesLiveOnItsOrigin)
{
  add ("o1", "origin");
  beat ("o1", {publishing ("live/a")});
  std::vector<StreamRecord> streams;
  ASSERT_TRUE (store_->listStreams (&streams));
  ASSERT_EQ (streams.size (), 1u);
  EXPECT_EQ (streams[0].name, "live/a");
  EXPECT_EQ (streams[0].origin, "o1");
}

TEST_F (StoreTest, SubscribeNeedsALiveStream)
{
  add ("o1", "origin");
  add ("e1", "edge");
  EXPECT_EQ (subscribe ("live/a").outcome, SubscribeOutcome::NotLive);
  publishOn ("live/a");  /* placed, not live */
  EXPECT_EQ (subscribe ("live/a").outcome, SubscribeOutcome::NotLive);
  beat ("o1", {publishing ("live/a")});
  EXPECT_EQ (subscribe ("live/a").outcome, SubscribeOutcome::Ok);
}

TEST_F (StoreTest, SubscribeWithoutEdgeFindsNone)
{
  add ("o1", "origin");
  beat ("o1", {publishing ("live/a")});
  EXPECT_EQ (subscribe ("live/a").outcome, SubscribeOutcome::NoEdge);
}

TEST_F (StoreTest, SubscribePrefersAnEdgeCarryingTheStream)
{
  add ("o1", "origin");
  add ("e1", "edge");
  add ("e2", "edge");
  beat ("o1", {publishing ("live/a")});
  beat ("e1", {}, NodeLoad{0, 500});
  beat ("e2", {pulling ("live/a")}, NodeLoad{0, 900});
  SubscribeResult r = subscribe ("live/a");
  ASSERT_EQ (r.outcome, SubscribeOutcome::Ok);
  EXPECT_EQ (r.edge.info.id, "e2");
  EXPECT_TRUE (r.carrying);
}

TEST_F (StoreTest, SubscribeSpreadsNewStreamsAndKeepsABurstTogether)
{
  add ("o1", "origin");
  add ("e1", "edge");
  add ("e2", "edge");
  beat ("o1", {publishing ("live/a"), publishing ("live/b")});
  beat ("e1", {}, NodeLoad{0, 10});
  beat ("e2", {}, NodeLoad{0, 0});
  EXPECT_EQ (subscribe ("live/a").edge.info.id, "e2");  /* least loaded */
  /* Before e2 reports the pull, the next viewers still go there. */
  beat ("e2", {}, NodeLoad{0, 20});
  EXPECT_EQ (subscribe ("live/a").edge.info.id, "e2");
  EXPECT_EQ (subscribe ("live/b").edge.info.id, "e1");
}

TEST_F (StoreTest, FullEdgeIsAvoided)
{
  add ("o1", "origin");
  add ("e1", "edge", "", 0, 10);
  add ("e2", "edge", "", 0, 10);
  beat ("o1", {publishing ("live/a")});
  beat ("e1", {pulling ("live/a")}, NodeLoad{0, 10});
  beat ("e2", {}, NodeLoad{0, 9});
  EXPECT_EQ (subscribe ("live/a").edge.info.id, "e2");
}

TEST_F (StoreTest, RouteGoesToTheOriginThenToARelayPastTheFanout)
{
  add ("o1", "origin");
  add ("r1", "relay");
  for (const char *e : {"e1", "e2", "e3", "e4"})
    add (e, "edge");
  beat ("o1", {publishing ("live/a")});
  EXPECT_EQ (route ("live/a", "e1").upstream.info.id, "o1");
  EXPECT_EQ (route ("live/a", "e2").upstream.info.id, "o1");
  RouteResult third = route ("live/a", "e3");  /* fan-out 2 reached */
  EXPECT_EQ (third.upstream.info.id, "r1");
  EXPECT_TRUE (third.viaRelay);
  EXPECT_EQ (route ("live/a", "e4").upstream.info.id, "r1");
  /* The relay itself pulls from the origin. */
  EXPECT_EQ (route ("live/a", "r1").upstream.info.id, "o1");
  std::vector<StreamRecord> streams;
  ASSERT_TRUE (store_->listStreams (&streams));
  ASSERT_EQ (streams.size (), 1u);
  EXPECT_EQ (streams[0].carriers, (std::vector<std::string>{"e1", "e2", "e3", "e4", "r1"}));
}

TEST_F (StoreTest, RouteCapacityOfTheOriginOverridesTheFanout)
{
  add ("o1", "origin", "", 1);
  add ("r1", "relay");
  add ("e1", "edge");
  add ("e2", "edge");
  beat ("o1", {publishing ("live/a")});
  EXPECT_EQ (route ("live/a", "e1").upstream.info.id, "o1");
  EXPECT_EQ (route ("live/a", "e2").upstream.info.id, "r1");
}

TEST_F (StoreTest, RouteOpensASecondRelayWhenTheFirstIsFull)
{
  settings_.relayFanout = 1;
  store_ = open ();
  add ("o1", "origin", "", 1);
  add ("r1", "relay");
  add ("r2", "relay");
  for (const char *e : {"e1", "e2", "e3"})
    add (e, "edge");
  beat ("o1", {publishing ("live/a")});
  EXPECT_EQ (route ("live/a", "e1").upstream.info.id, "o1");
  EXPECT_EQ (route ("live/a", "e2").upstream.info.id, "r1");
  EXPECT_EQ (route ("live/a", "e3").upstream.info.id, "r2");
}

TEST_F (StoreTest, RouteIsStickyAndExplainsRefusals)
{
  add ("o1", "origin");
  add ("e1", "edge");
  beat ("o1", {publishing ("live/a")});
  EXPECT_EQ (route ("live/a", "e1").upstream.info.id, "o1");
  RouteResult again = route ("live/a", "e1");
  EXPECT_EQ (again.upstream.info.id, "o1");
  EXPECT_TRUE (again.sticky);
  EXPECT_EQ (route ("live/a", "ghost").outcome, RouteOutcome::UnknownNode);
  EXPECT_EQ (route ("live/none", "e1").outcome, RouteOutcome::NotLive);
  EXPECT_EQ (route ("live/a", "o1").outcome, RouteOutcome::IsOrigin);
}

TEST_F (StoreTest, SilentNodeIsDeclaredDeadAfterThreeIntervals)
{
  add ("o1", "origin");
  add ("e1", "edge");
  advance (2999);
  beat ("o1");
  SweepResult s;
  ASSERT_TRUE (store_->sweep (&s));
  EXPECT_TRUE (s.dead.empty ());
  EXPECT_EQ (stateOf ("e1"), "alive");
  advance (2);  /* e1: 3001 ms without heartbeat */
  ASSERT_TRUE (store_->sweep (&s));
  EXPECT_EQ (s.dead, std::vector<std::string>{"e1"});
  EXPECT_EQ (stateOf ("e1"), "dead");
  EXPECT_EQ (stateOf ("o1"), "alive");
  /* A late heartbeat is refused: the node registers again. */
  EXPECT_FALSE (beat ("e1").known);
  bool known = true;
  ASSERT_TRUE (store_->nodeKnown ("e1", &known));
  EXPECT_FALSE (known);
}

TEST_F (StoreTest, DeadNodeIsNotPlacedEvenBeforeTheSweep)
{
  add ("o1", "origin");
  add ("o2", "origin");
  advance (2000);
  beat ("o2");
  advance (1500);  /* o1 silent for 3.5 s, no sweep yet */
  beat ("o2");
  EXPECT_EQ (publishOn ("live/a"), "o2");
  EXPECT_EQ (stateOf ("o1"), "dead");
}

TEST_F (StoreTest, DeadOriginDropsItsStreamsAndTellsItsPullers)
{
  add ("o1", "origin");
  add ("e1", "edge");
  beat ("o1", {publishing ("live/a")});
  route ("live/a", "e1");
  beat ("e1", {pulling ("live/a")});
  int64_t before = 0;
  ASSERT_TRUE (store_->lastEventId (&before));
  advance (2000);
  beat ("e1", {pulling ("live/a")});
  advance (1500);
  beat ("e1", {pulling ("live/a")});
  SweepResult s;
  ASSERT_TRUE (store_->sweep (&s));
  EXPECT_EQ (s.dead, std::vector<std::string>{"o1"});
  EXPECT_TRUE (hasEvent (events (before), "e1", "stream.unpublished", "live/a"));
  EXPECT_EQ (subscribe ("live/a").outcome, SubscribeOutcome::NotLive);
  std::vector<StreamRecord> streams;
  ASSERT_TRUE (store_->listStreams (&streams));
  EXPECT_TRUE (streams.empty ());
}

TEST_F (StoreTest, DeadRelayReroutesTheNodesBehindIt)
{
  add ("o1", "origin", "", 1);
  add ("r1", "relay");
  add ("e1", "edge");
  add ("e2", "edge");
  beat ("o1", {publishing ("live/a")});
  route ("live/a", "e1");
  ASSERT_EQ (route ("live/a", "e2").upstream.info.id, "r1");
  passTime (3500, {{"o1", {publishing ("live/a")}}, {"e1", {pulling ("live/a")}},
      {"e2", {pulling ("live/a")}}});
  SweepResult s;
  ASSERT_TRUE (store_->sweep (&s));
  EXPECT_EQ (s.dead, std::vector<std::string>{"r1"});
  std::vector<Event> e = events ();
  EXPECT_TRUE (hasEvent (e, "e2", "route.changed", "live/a"));
  EXPECT_FALSE (hasEvent (e, "e1", "route.changed", "live/a"));
  /* e2 asks again: no relay left, so the origin past its fan-out. */
  RouteResult r = route ("live/a", "e2");
  EXPECT_EQ (r.upstream.info.id, "o1");
  EXPECT_TRUE (r.overLimit);
}

TEST_F (StoreTest, StreamEndingTellsItsPullers)
{
  add ("o1", "origin");
  add ("e1", "edge");
  beat ("o1", {publishing ("live/a")});
  route ("live/a", "e1");
  beat ("o1");  /* the publisher left */
  EXPECT_TRUE (hasEvent (events (), "e1", "stream.unpublished", "live/a"));
  EXPECT_EQ (route ("live/a", "e1").outcome, RouteOutcome::NotLive);
}

TEST_F (StoreTest, NodeLeavingIsForgottenAndItsPlacementsGo)
{
  add ("o1", "origin");
  add ("e1", "edge");
  beat ("o1", {publishing ("live/a")});
  route ("live/a", "e1");
  bool found = false;
  ASSERT_TRUE (store_->removeNode ("o1", &found));
  EXPECT_TRUE (found);
  EXPECT_EQ (stateOf ("o1"), "absent");
  EXPECT_TRUE (hasEvent (events (), "e1", "stream.unpublished", "live/a"));
  ASSERT_TRUE (store_->removeNode ("o1", &found));
  EXPECT_FALSE (found);
}

TEST_F (StoreTest, DrainedNodesGetNoNewPlacements)
{
  add ("o1", "origin");
  add ("o2", "origin");
  add ("e1", "edge");
  add ("e2", "edge");
  beat ("o1", {publishing ("live/a")});
  bool found = false;
  ASSERT_TRUE (store_->drainNode ("o1", &found));
  ASSERT_TRUE (store_->drainNode ("e1", &found));
  EXPECT_TRUE (found);
  EXPECT_TRUE (hasEvent (events (), "o1", "node.draining", ""));
  EXPECT_EQ (stateOf ("o1"), "draining");
  EXPECT_TRUE (beat ("o1", {publishing ("live/a")}).draining);
  EXPECT_EQ (publishOn ("live/a"), "o1");  /* live there: sticky */
  EXPECT_EQ (publishOn ("live/new"), "o2");
  EXPECT_EQ (subscribe ("live/a").edge.info.id, "e2");
  ASSERT_TRUE (store_->drainNode ("ghost", &found));
  EXPECT_FALSE (found);
}

TEST_F (StoreTest, RoutesNotPulledAreDroppedAfterTheGrace)
{
  add ("o1", "origin", "", 1);
  add ("r1", "relay");
  add ("e1", "edge");
  add ("e2", "edge");
  beat ("o1", {publishing ("live/a")});
  route ("live/a", "e1");
  EXPECT_EQ (route ("live/a", "e2").upstream.info.id, "r1");
  /* e1 never pulls: past the grace its route goes and stops counting
   * against the origin's fan-out. */
  for (int i = 0; i < 16; i++) {
    advance (1000);
    beat ("o1", {publishing ("live/a")});
    beat ("r1", {pulling ("live/a")});
    beat ("e1");
    beat ("e2", {pulling ("live/a")});
  }
  std::vector<StreamRecord> streams;
  ASSERT_TRUE (store_->listStreams (&streams));
  ASSERT_EQ (streams.size (), 1u);
  EXPECT_EQ (streams[0].carriers, (std::vector<std::string>{"e2", "r1"}));
}

TEST_F (StoreTest, EventIdsGrow)
{
  add ("o1", "origin");
  add ("e1", "edge");
  bool found = false;
  store_->drainNode ("o1", &found);
  store_->drainNode ("e1", &found);
  std::vector<Event> e = events ();
  ASSERT_EQ (e.size (), 2u);
  EXPECT_LT (e[0].id, e[1].id);
  EXPECT_EQ (events (e[0].id).size (), 1u);
  int64_t last = 0;
  ASSERT_TRUE (store_->lastEventId (&last));
  EXPECT_EQ (last, e[1].id);
}

TEST_F (StoreTest, TwoStoresOnOneFileGiveTheSameAnswers)
{
  std::unique_ptr<Store> other = open ();
  add ("o1", "origin");
  add ("o2", "origin");
  PublishResult a, b;
  ASSERT_TRUE (store_->placePublish ("live/a", "", &a));
  ASSERT_TRUE (other->placePublish ("live/a", "", &b));
  EXPECT_EQ (a.origin.info.id, b.origin.info.id);
}

TEST_F (StoreTest, CleanupForgetsOldEventsAndExpiredPlacements)
{
  settings_.eventsKeepMs = 5000;
  settings_.pendingPublishMs = 5000;
  store_ = open ();
  add ("o1", "origin");
  add ("e1", "edge");
  EXPECT_EQ (publishOn ("live/a"), "o1");  /* placed, never live */
  bool found = false;
  store_->drainNode ("e1", &found);
  passTime (6000, {{"o1", {}}, {"e1", {}}});
  ASSERT_TRUE (store_->cleanup ());
  EXPECT_TRUE (events ().empty ());
  /* The placement is gone: a fresh choice (the new, smaller id). */
  add ("a0", "origin");
  EXPECT_EQ (publishOn ("live/a"), "a0");
}

TEST_F (StoreTest, LateHeartbeatBeforeAnySweepKeepsTheNodeAndItsStreams)
{
  add ("o1", "origin");
  add ("e1", "edge");
  beat ("o1", {publishing ("live/a")});
  route ("live/a", "e1");
  passTime (5000, {{"e1", {pulling ("live/a")}}});
  EXPECT_EQ (stateOf ("o1"), "dead");  /* by its silence */
  HeartbeatResult late = beat ("o1", {publishing ("live/a")});
  EXPECT_TRUE (late.known);
  EXPECT_EQ (stateOf ("o1"), "alive");
  EXPECT_TRUE (events ().empty ());
  EXPECT_EQ (route ("live/a", "e1").upstream.info.id, "o1");
}
