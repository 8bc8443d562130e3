"""Two stream managers on one real PostgreSQL (a throwaway server started
by the test): answers asked of both at once agree (publish origin, route
upstream, relay tier), an event one manager creates reaches a node
connected to the other, and with one manager stopped the other serves and
still declares silent nodes dead. Fails with a clear message when the
PostgreSQL server binaries are missing."""
import os
import subprocess
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from xdnnode import BUILD_ROOT, FakeNode, Manager, MANAGER_BINARY, wait_for  # noqa: E402
from pgserver import PgServer, PgUnavailable  # noqa: E402

TOKEN = "pg-cluster-token"
INTERVAL_MS = 500


def publishing(name):
    return {"name": name, "publishing": True}


def pulling(name):
    return {"name": name, "pulling": True, "viewers": 1}


def at_once(calls):
    """Runs the callables in threads released together; returns their results."""
    barrier = threading.Barrier(len(calls))
    results = [None] * len(calls)

    def run(i, fn):
        barrier.wait(5)
        results[i] = fn()

    threads = [threading.Thread(target=run, args=(i, fn)) for i, fn in enumerate(calls)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    return results


class TwoManagersOnPostgres(unittest.TestCase):
    pg = None
    counter = 0

    @classmethod
    def setUpClass(cls):
        if not os.access(MANAGER_BINARY, os.X_OK):
            raise AssertionError(f"{MANAGER_BINARY} is not built")
        try:
            cls.pg = PgServer(log_dir=os.path.join(BUILD_ROOT, "tests", "logs")).start()
        except PgUnavailable as e:
            raise AssertionError(f"this test needs a PostgreSQL server: {e}") from None

    @classmethod
    def tearDownClass(cls):
        if cls.pg:
            cls.pg.stop()

    def setUp(self):
        TwoManagersOnPostgres.counter += 1
        self.dbname = f"xdn_{TwoManagersOnPostgres.counter}"
        self.url = self.pg.create_database(self.dbname)
        self.a = Manager(self.url, token=TOKEN, heartbeat_ms=INTERVAL_MS, origin_fanout=2)
        self.b = Manager(self.url, token=TOKEN, heartbeat_ms=INTERVAL_MS, origin_fanout=2)
        self.a.start()
        self.b.start()
        self.nodes = []

    def tearDown(self):
        for n in self.nodes:
            n.stop_heartbeats()
        self.a.stop()
        self.b.stop()

    def node(self, node_id, role, **kw):
        n = FakeNode([self.a, self.b], node_id, role, **kw).wait_beating()
        self.nodes.append(n)
        return n

    def ask(self, manager, path):
        status, body, raw = manager.request("GET", path)
        return status, body

    def test_concurrent_migrations_apply_once(self):
        url = self.pg.create_database("xdn_migrations")
        managers = [Manager(url, token=TOKEN) for _ in range(3)]
        procs = []
        try:
            for m in managers:  # started together, not one after the other
                m.log = open(m.log_path, "a")
                m.proc = subprocess.Popen(m.args, stdout=m.log, stderr=subprocess.STDOUT,
                                          start_new_session=True)
                procs.append(m)
            for m in managers:
                wait_for(lambda: m.proc.poll() is None and m.request("GET", "/healthz")[0] == 200,
                         15, "every manager to start on the same empty database")
            versions = self.pg.psql("SELECT version FROM schema_version ORDER BY version", "xdn_migrations")
            self.assertEqual(versions.split(), ["1"], versions)
        finally:
            for m in procs:
                m.stop()

    def test_publish_asked_of_both_managers_at_once_gives_one_origin(self):
        for i in range(1, 4):
            self.node(f"origin-{i}", "origin")
        origins = set()
        for i in range(12):
            path = f"/api/v1/streams/live/s{i}/publish"
            (sa, ba), (sb, bb) = at_once([lambda: self.ask(self.a, path), lambda: self.ask(self.b, path)])
            self.assertEqual((sa, sb), (200, 200), (ba, bb))
            self.assertEqual(ba, bb, f"stream s{i}")
            origins.add(ba["node"])
        self.assertEqual(origins, {"origin-1", "origin-2", "origin-3"}, "placements are spread")

    def test_subscribe_and_route_answers_agree_and_build_one_relay_tier(self):
        o1 = self.node("origin-1", "origin")
        for r in ("relay-1", "relay-2"):
            self.node(r, "relay")
        edges = [self.node(f"edge-{i}", "edge") for i in range(1, 7)]
        o1.set_streams([publishing("live/a")])
        wait_for(lambda: "live/a" in self.b.streams(), 5, "live/a live")
        path = "/api/v1/streams/live/a/subscribe"
        (sa, ba), (sb, bb) = at_once([lambda: self.ask(self.a, path), lambda: self.ask(self.b, path)])
        self.assertEqual((sa, sb), (200, 200), (ba, bb))
        self.assertEqual(ba, bb, "both managers send the first viewers to one edge")
        answers = {}
        for e in edges:
            path = f"/api/v1/streams/live/a/route?node={e.id}"
            (sa, ba), (sb, bb) = at_once([lambda: self.ask(self.a, path), lambda: self.ask(self.b, path)])
            self.assertEqual((sa, sb), (200, 200), (ba, bb))
            self.assertEqual(ba, bb, e.id)
            answers[e.id] = ba["node"]
        self.assertEqual([answers[f"edge-{i}"] for i in (1, 2)], ["origin-1", "origin-1"])
        relays = {answers[f"edge-{i}"] for i in range(3, 7)}
        self.assertEqual(len(relays), 1, f"one relay takes the rest: {answers}")
        self.assertTrue(relays <= {"relay-1", "relay-2"})
        self.assertEqual(self.a.streams(), self.b.streams())

    def test_event_created_by_one_manager_reaches_a_client_of_the_other(self):
        o1 = self.node("origin-1", "origin")
        r1 = self.node("relay-1", "relay")
        e1, e2, e3 = (self.node(f"edge-{i}", "edge") for i in (1, 2, 3))
        o1.set_streams([publishing("live/a")])
        wait_for(lambda: "live/a" in self.a.streams(), 5, "live/a live")
        for e in (e1, e2, e3):
            self.assertEqual(self.ask(self.a, f"/api/v1/streams/live/a/route?node={e.id}")[0], 200)
        self.assertEqual(self.ask(self.a, "/api/v1/streams/live/a/route?node=edge-3")[1]["node"], "relay-1")
        for n in (e1, e2, e3, r1):
            n.set_streams([pulling("live/a")])

        ws1 = self.b.events("edge-1")
        ws3 = self.b.events("edge-3")
        try:
            status, body, _ = self.a.request("POST", "/api/v1/nodes/edge-1/drain")
            self.assertEqual(status, 200, body)
            self.assertEqual(ws1.recv_json_until(lambda m: True, 3)["event"], "node.draining")

            r1.stop_heartbeats()
            msg = ws3.recv_json_until(lambda m: m.get("event") == "route.changed",
                                      3 * INTERVAL_MS / 1000 + 3)
            self.assertEqual(msg["stream"], "live/a")
        finally:
            ws1.close()
            ws3.close()

    def test_with_one_manager_stopped_the_other_serves_and_declares_the_dead(self):
        o1 = self.node("origin-1", "origin")
        e1 = self.node("edge-1", "edge")
        self.node("edge-2", "edge")
        o1.set_streams([publishing("live/a")])
        e1.set_streams([pulling("live/a")])
        wait_for(lambda: self.b.streams().get("live/a", {}).get("carriers") == ["edge-1"], 5, "edge-1 carrying")

        self.a.stop()
        self.assertEqual(self.ask(self.b, "/api/v1/streams/live/a/publish")[1]["node"], "origin-1")
        self.assertEqual(self.ask(self.b, "/api/v1/streams/live/a/subscribe")[1]["node"], "edge-1")

        last = e1.stop_heartbeats()
        dead_at = wait_for(lambda: self.b.nodes()["edge-1"]["state"] == "dead" and time.monotonic(),
                           10, "edge-1 to be declared dead by the manager left", interval=0.02)
        self.assertLessEqual(dead_at - last, 3 * INTERVAL_MS / 1000 + 0.5)
        wait_for(lambda: "node.dead node=edge-1" in self.b.logs(), 3, "the sweep of the manager left")
        status, body = self.ask(self.b, "/api/v1/streams/live/a/subscribe")
        self.assertEqual((status, body["node"]), (200, "edge-2"))
        self.assertEqual(self.b.request("GET", "/healthz")[0], 200)


class StoreOutage(unittest.TestCase):
    """A manager whose PostgreSQL stops answering, drops its connection or
    goes away: bounded 503s, never a hang, and service again afterwards."""

    def setUp(self):
        if not os.access(MANAGER_BINARY, os.X_OK):
            raise AssertionError(f"{MANAGER_BINARY} is not built")
        try:
            self.pg = PgServer(log_dir=os.path.join(BUILD_ROOT, "tests", "logs")).start()
        except PgUnavailable as e:
            raise AssertionError(f"this test needs a PostgreSQL server: {e}") from None
        self.conf = os.path.join(self.pg.dir, "manager.conf")
        with open(self.conf, "w") as f:
            f.write("[store]\ntimeout-ms=500\n")
        self.m = Manager(self.pg.url, "--config", self.conf, token=TOKEN, heartbeat_ms=INTERVAL_MS).start()
        self.stopped = False

    def tearDown(self):
        if self.stopped:
            self.pg.resume()
        self.m.stop()
        self.pg.stop()

    def test_dropped_connection_is_replaced_without_a_failed_request(self):
        self.m.register("origin-1", "origin")
        self.pg.psql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                     "WHERE application_name = 'xdn-manager'")
        status, body, _ = self.m.request("GET", "/api/v1/streams/live/a/publish")
        self.assertEqual((status, body["node"]), (200, "origin-1"))

    def test_database_that_stops_answering_gives_bounded_503s_then_service_again(self):
        self.m.register("origin-1", "origin")
        self.pg.pause()
        self.stopped = True
        for path in ("/api/v1/streams/live/a/publish", "/healthz", "/api/v1/streams/live/a/publish"):
            started = time.monotonic()
            status, body, raw = self.m.request("GET", path, timeout=10)
            self.assertEqual(status, 503, raw)
            self.assertLess(time.monotonic() - started, 3.0, f"{path} took too long")
        self.assertIsNone(self.m.proc.poll())
        self.pg.resume()
        self.stopped = False
        wait_for(lambda: self.m.request("GET", "/healthz")[0] == 200, 10, "the store to answer again")
        self.m.register("origin-1", "origin")
        status, body, _ = self.m.request("GET", "/api/v1/streams/live/a/publish")
        self.assertEqual((status, body["node"]), (200, "origin-1"))
        self.assertGreaterEqual(self.m.metric("xdn_manager_store_errors_total"), 2)


if __name__ == "__main__":
    unittest.main(verbosity=2)
