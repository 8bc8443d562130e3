"""The stream manager on SQLite, over HTTP, with fake nodes (registration
and heartbeats from threads, no media): placement answers, the relay tier,
dead-node detection moving viewers to another edge, events over WebSocket,
and hostile input refused with a 4xx while the store stays as it was."""
import json
import os
import shutil
import socket
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from xdnnode import (FakeNode, Manager, MANAGER_BINARY, WebSocket, WebSocketRefused,  # noqa: E402
                     http, wait_for)

TOKEN = "test-cluster-token"
INTERVAL_MS = 500


def publishing(name):
    return {"name": name, "publishing": True, "viewers": 0, "pulling": False}


def pulling(name):
    return {"name": name, "publishing": False, "viewers": 1, "pulling": True}


class ManagerTest(unittest.TestCase):
    """One fresh manager and SQLite file per test."""

    origin_fanout = 2

    def setUp(self):
        if not os.access(MANAGER_BINARY, os.X_OK):
            self.fail(f"{MANAGER_BINARY} is not built")
        self.dir = tempfile.mkdtemp(prefix="xdn-manager-test-")
        self.db = "sqlite:" + os.path.join(self.dir, "manager.db")
        self.manager = Manager(self.db, token=TOKEN, heartbeat_ms=INTERVAL_MS,
                               origin_fanout=self.origin_fanout).start()
        self.nodes = []

    def tearDown(self):
        for n in self.nodes:
            n.stop_heartbeats()
        self.manager.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def node(self, node_id, role, **kw):
        n = FakeNode(self.manager, node_id, role, **kw).wait_beating()
        self.nodes.append(n)
        return n

    def get(self, path, **kw):
        status, body, raw = self.manager.request("GET", path, **kw)
        return status, body

    def live(self, origin, name):
        origin.set_streams([publishing(name)])
        wait_for(lambda: name in self.manager.streams(), 5, f"{name} to be live")


class PlacementAnswers(ManagerTest):

    def test_publish_subscribe_and_route_answer_with_the_nodes_urls(self):
        o1 = self.node("origin-1", "origin", region="eu")
        e1 = self.node("edge-1", "edge", region="eu")

        status, body = self.get("/api/v1/streams/live/a/publish?region=eu", token="")
        self.assertEqual(status, 200, body)
        self.assertEqual(body["node"], "origin-1")
        self.assertEqual(body["whip"], o1.info["http"] + "/whip/live/a")
        self.assertEqual(body["srt"], o1.info["srt"] + "?streamid=#!::r=live/a,m=publish")

        status, body = self.get("/api/v1/streams/live/a/subscribe", token="")
        self.assertEqual((status, body), (404, {"error": "stream not live"}))

        self.live(o1, "live/a")
        status, body = self.get("/api/v1/streams/live/a/subscribe?region=eu", token="")
        self.assertEqual(status, 200, body)
        self.assertEqual(body, {"node": "edge-1", "whep": e1.info["http"] + "/whep/live/a"})

        status, body = self.get("/api/v1/streams/live/a/route?node=edge-1")
        self.assertEqual((status, body), (200, {"node": "origin-1", "upstream": o1.info["srt"]}))

        e1.set_streams([pulling("live/a")])
        wait_for(lambda: self.manager.streams()["live/a"]["carriers"] == ["edge-1"], 5, "edge-1 as carrier")
        nodes = self.manager.nodes()
        self.assertEqual(nodes["origin-1"]["state"], "alive")
        self.assertEqual(nodes["edge-1"]["role"], "edge")
        self.assertEqual(nodes["edge-1"]["region"], "eu")
        self.assertIn("lastHeartbeatMs", nodes["edge-1"])
        self.assertEqual(set(nodes["edge-1"]["load"]), {"cpu", "viewers", "streams", "bitrateIn", "bitrateOut"})

    def test_publish_is_sticky_and_spreads_new_streams(self):
        self.node("origin-1", "origin")
        self.node("origin-2", "origin")
        first = self.get("/api/v1/streams/live/a/publish")[1]["node"]
        second = self.get("/api/v1/streams/live/b/publish")[1]["node"]
        self.assertNotEqual(first, second)
        for _ in range(3):
            self.assertEqual(self.get("/api/v1/streams/live/a/publish")[1]["node"], first)

    def test_no_origin_or_no_edge_is_503(self):
        status, body = self.get("/api/v1/streams/live/a/publish")
        self.assertEqual(status, 503, body)
        o1 = self.node("origin-1", "origin")
        self.live(o1, "live/a")
        status, body = self.get("/api/v1/streams/live/a/subscribe")
        self.assertEqual(status, 503, body)

    def test_relay_tier_takes_the_edges_past_the_origin_fanout(self):
        o1 = self.node("origin-1", "origin")
        r1 = self.node("relay-1", "relay")
        for i in range(1, 5):
            self.node(f"edge-{i}", "edge")
        self.live(o1, "live/a")
        ups = {}
        for i in range(1, 5):
            status, body = self.get(f"/api/v1/streams/live/a/route?node=edge-{i}")
            self.assertEqual(status, 200, body)
            ups[f"edge-{i}"] = body
        self.assertEqual([ups[f"edge-{i}"]["node"] for i in range(1, 5)],
                         ["origin-1", "origin-1", "relay-1", "relay-1"])
        self.assertEqual(ups["edge-3"]["upstream"], r1.info["srt"])
        status, body = self.get("/api/v1/streams/live/a/route?node=relay-1")
        self.assertEqual((status, body["node"]), (200, "origin-1"))
        # Sticky: asking again gives the same upstream.
        self.assertEqual(self.get("/api/v1/streams/live/a/route?node=edge-4")[1], ups["edge-4"])


class Liveness(ManagerTest):

    def test_silent_edge_is_declared_dead_within_three_intervals_and_viewers_move(self):
        o1 = self.node("origin-1", "origin")
        e1 = self.node("edge-1", "edge")
        e2 = self.node("edge-2", "edge")
        self.live(o1, "live/a")
        e1.set_streams([pulling("live/a")])
        wait_for(lambda: self.manager.streams()["live/a"]["carriers"] == ["edge-1"], 5, "edge-1 carrying")
        self.assertEqual(self.get("/api/v1/streams/live/a/subscribe")[1]["node"], "edge-1")

        last = e1.stop_heartbeats()
        dead_at = wait_for(lambda: self.manager.nodes()["edge-1"]["state"] == "dead" and time.monotonic(),
                           10, "edge-1 to be declared dead", interval=0.02)
        elapsed = dead_at - last
        limit = 3 * INTERVAL_MS / 1000
        self.assertLessEqual(elapsed, limit + 0.75, "declared dead too late")
        self.assertGreaterEqual(elapsed, limit - 0.2, "declared dead too early")
        self.assertEqual(self.manager.nodes()["edge-2"]["state"], "alive")

        status, body = self.get("/api/v1/streams/live/a/subscribe")
        self.assertEqual((status, body["node"]), (200, "edge-2"))
        wait_for(lambda: self.manager.streams()["live/a"]["carriers"] == [], 5, "edge-1's route to go")
        self.assertGreaterEqual(self.manager.metric("xdn_manager_nodes", 'state="dead"'), 1)

    def test_heartbeat_of_a_dead_node_asks_it_to_register_again(self):
        e1 = self.node("edge-1", "edge")
        e1.stop_heartbeats()
        wait_for(lambda: self.manager.metric("xdn_manager_nodes_declared_dead_total") == 1, 10,
                 "edge-1 to be declared dead")
        status, body = self.manager.heartbeat("edge-1")[:2]
        self.assertEqual(status, 404, body)
        self.manager.register("edge-1", "edge", http_url=e1.info["http"])
        self.assertEqual(self.manager.heartbeat("edge-1")[0], 200)
        self.assertEqual(self.manager.nodes()["edge-1"]["state"], "alive")

    def test_node_leaving_cleanly_is_forgotten(self):
        e1 = self.node("edge-1", "edge")
        e1.stop_heartbeats()
        status, _, raw = self.manager.request("DELETE", "/api/v1/nodes/edge-1")
        self.assertEqual((status, raw), (204, b""))
        self.assertNotIn("edge-1", self.manager.nodes())
        self.assertEqual(self.manager.request("DELETE", "/api/v1/nodes/edge-1")[0], 404)


class Events(ManagerTest):

    def test_websocket_receives_route_changed_when_the_upstream_dies(self):
        o1 = self.node("origin-1", "origin")
        r1 = self.node("relay-1", "relay")
        e1 = self.node("edge-1", "edge")
        e2 = self.node("edge-2", "edge")
        e3 = self.node("edge-3", "edge")
        self.live(o1, "live/a")
        for e in ("edge-1", "edge-2", "edge-3"):
            self.assertEqual(self.get(f"/api/v1/streams/live/a/route?node={e}")[0], 200)
        self.assertEqual(self.get("/api/v1/streams/live/a/route?node=edge-3")[1]["node"], "relay-1")
        for n in (e1, e2, e3, r1):
            n.set_streams([pulling("live/a")])

        ws = self.manager.events("edge-3")
        other = self.manager.events("edge-1")
        try:
            r1.stop_heartbeats()
            msg = ws.recv_json_until(lambda m: m.get("event") == "route.changed",
                                     3 * INTERVAL_MS / 1000 + 3)
            self.assertEqual(msg["stream"], "live/a")
            # Asking again: no relay left, the origin directly.
            status, body = self.get("/api/v1/streams/live/a/route?node=edge-3")
            self.assertEqual((status, body["node"]), (200, "origin-1"))
            # edge-1 pulls from the origin: nothing for it.
            with self.assertRaises(TimeoutError):
                other.recv_json_until(lambda m: True, 0.5)
        finally:
            ws.close()
            other.close()

    def test_websocket_receives_drain_and_unpublished(self):
        o1 = self.node("origin-1", "origin")
        e1 = self.node("edge-1", "edge")
        self.live(o1, "live/a")
        self.assertEqual(self.get("/api/v1/streams/live/a/route?node=edge-1")[0], 200)
        ws = WebSocket("127.0.0.1", self.manager.http_port,
                       f"/api/v1/nodes/edge-1/events?token={TOKEN}")
        try:
            status, body, _ = self.manager.request("POST", "/api/v1/nodes/edge-1/drain")
            self.assertEqual(status, 200, body)
            msg = ws.recv_json_until(lambda m: True, 3)
            self.assertEqual(msg["event"], "node.draining")
            wait_for(lambda: e1.state == "draining", 3, "heartbeat answer 'draining'")

            o1.set_streams([])  # the publisher left
            msg = ws.recv_json_until(lambda m: m.get("event") == "stream.unpublished", 3)
            self.assertEqual(msg["stream"], "live/a")
        finally:
            ws.close()
        self.assertGreaterEqual(self.manager.metric("xdn_manager_events_delivered_total"), 2)


class HostileInput(ManagerTest):

    def snapshot(self):
        nodes = {k: {f: v[f] for f in ("role", "region", "http", "srt", "state", "capacity")}
                 for k, v in self.manager.nodes().items()}
        return nodes, self.manager.streams()

    def test_hostile_requests_get_a_4xx_and_leave_the_store_as_it_was(self):
        o1 = self.node("origin-1", "origin")
        self.node("edge-1", "edge")
        self.live(o1, "live/a")
        before = self.snapshot()
        m = self.manager
        deep = "[" * 5000 + "]" * 5000
        big = json.dumps({"id": "big", "role": "edge", "http": "http://127.0.0.1:1",
                          "pad": "x" * (100 * 1024)})
        cases = [
            ("POST", "/api/v1/nodes", "{not json", None, 400),
            ("POST", "/api/v1/nodes", "", None, 400),
            ("POST", "/api/v1/nodes", "[1,2,3]", None, 400),
            ("POST", "/api/v1/nodes", big, None, 413),
            ("POST", "/api/v1/nodes", '{"id":' + deep + "}", None, 400),
            ("POST", "/api/v1/nodes", {"id": "x", "role": "origin", "http": "javascript:alert(1)",
                                       "srt": "srt://127.0.0.1:1"}, None, 400),
            ("POST", "/api/v1/nodes", {"id": "../../etc", "role": "edge", "http": "http://h:1"}, None, 400),
            ("POST", "/api/v1/nodes", {"id": "x", "role": "king", "http": "http://h:1"}, None, 400),
            ("POST", "/api/v1/nodes", {"id": "x", "role": "edge", "http": "http://h:1",
                                       "capacity": {"viewers": -5}}, None, 400),
            ("POST", "/api/v1/nodes", {"id": "x", "role": "edge", "http": "http://h:1"}, "", 401),
            ("POST", "/api/v1/nodes/ghost/heartbeat", {}, None, 404),
            ("POST", "/api/v1/nodes/origin-1/heartbeat", {"streams": []}, "", 401),
            ("POST", "/api/v1/nodes/origin-1/heartbeat", {"streams": []}, "wrong", 401),
            ("POST", "/api/v1/nodes/origin-1/heartbeat", {"streams": []}, TOKEN + "x", 401),
            ("POST", "/api/v1/nodes/origin-1/heartbeat",
             {"streams": [{"name": "../x", "publishing": True}]}, None, 400),
            ("POST", "/api/v1/nodes/origin-1/heartbeat", {"load": {"cpu": "lots"}}, None, 400),
            ("POST", "/api/v1/nodes/origin-1/heartbeat", "{", None, 400),
            ("POST", "/api/v1/nodes/bad%20id/heartbeat", {}, None, 400),
            ("POST", "/api/v1/nodes/origin-1/bogus", {}, None, 404),
            ("DELETE", "/api/v1/nodes/origin-1", None, "", 401),
            ("POST", "/api/v1/nodes/origin-1/drain", None, "", 401),
            ("GET", "/api/v1/nodes", None, "", 401),
            ("GET", "/api/v1/nodes/origin-1/events", None, None, 400),
            ("GET", "/api/v1/streams/live//a/subscribe", None, None, 400),
            ("GET", "/api/v1/streams/" + "a" * 200 + "/publish", None, None, 400),
            ("GET", "/api/v1/streams/live%20a/publish", None, None, 400),
            ("GET", "/api/v1/streams/live/a%00/publish", None, None, 400),  # refused by libsoup
            # Parsing the URL removes dot segments: this asks about stream "publish".
            ("GET", "/api/v1/streams/live/%2e%2e/publish", None, None, 404),
            ("GET", "/api/v1/streams/live/a/subscribe?region=eu%20west", None, None, 400),
            ("GET", "/api/v1/streams/live/a/route", None, None, 400),
            ("GET", "/api/v1/streams/live/a/route?node=ghost", None, None, 404),
            ("GET", "/api/v1/streams/live/a/route?node=edge-1", None, "", 401),
            ("GET", "/api/v1/streams/live/a/route?node=origin-1", None, None, 409),
            ("PUT", "/api/v1/nodes", {}, None, 405),
            ("PATCH", "/api/v1/nodes/origin-1/heartbeat", {}, None, 405),
            ("DELETE", "/api/v1/streams/live/a/publish", None, None, 405),
        ]
        for method, path, body, token, expected in cases:
            with self.subTest(method=method, path=path[:60]):
                status, parsed, raw = m.request(method, path, body, token=token)
                self.assertEqual(status, expected, raw[:200])
                if "%00" not in path and (expected != 413 or parsed is not None):
                    self.assertIsInstance(parsed, dict, raw[:200])
                    self.assertIn("error", parsed)

        for path, token, expected in [("/api/v1/nodes/edge-1/events", "", 401),
                                      ("/api/v1/nodes/edge-1/events", "wrong", 401),
                                      ("/api/v1/nodes/ghost/events", TOKEN, 404),
                                      ("/api/v1/nodes/bad%20id/events", TOKEN, 400)]:
            with self.subTest(websocket=path, token=token):
                with self.assertRaises(WebSocketRefused) as refused:
                    m.events(path.split("/")[4], token=token) if "%" not in path else \
                        WebSocket("127.0.0.1", m.http_port, path, {"Authorization": "Bearer " + token})
                self.assertEqual(refused.exception.status, expected)

        self.assertIsNone(m.proc.poll(), "the manager died")
        self.assertEqual(http("GET", m.url + "/healthz")[0], 200)
        self.assertEqual(self.snapshot(), before)
        self.assertGreaterEqual(m.metric("xdn_manager_refusals_total", 'reason="unauthorized"'), 7)
        self.assertGreaterEqual(m.metric("xdn_manager_refusals_total", 'reason="too_large"'), 1)
        self.assertGreaterEqual(m.metric("xdn_manager_refusals_total", 'reason="method_not_allowed"'), 3)
        logs = m.logs()
        self.assertIn("event=manager.refused reason=unauthorized", logs)
        self.assertIn("event=manager.refused reason=bad_name", logs)

    def test_connection_that_never_finishes_its_body_does_not_block_others(self):
        s = socket.create_connection(("127.0.0.1", self.manager.http_port), timeout=5)
        try:
            s.sendall(b"POST /api/v1/nodes HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n{")
            status, body = self.get("/api/v1/streams", token="")
            self.assertEqual(status, 200, body)
        finally:
            s.close()


class Service(ManagerTest):

    def test_health_metrics_config_and_pages(self):
        o1 = self.node("origin-1", "origin")
        self.live(o1, "live/a")
        self.get("/api/v1/streams/live/a/publish")
        status, _, body = http("GET", self.manager.url + "/healthz")
        self.assertEqual((status, json.loads(body)), (200, {"status": "ok", "store": "sqlite"}))
        self.assertEqual(self.get("/api/v1/config", token=""), (200, {"role": "manager"}))
        self.assertEqual(self.manager.metric("xdn_manager_nodes", 'state="alive"'), 1)
        self.assertEqual(self.manager.metric("xdn_manager_placements_total", 'kind="publish"'), 1)
        self.assertEqual(self.manager.metric("xdn_manager_store_errors_total"), 0)
        status, headers, body = http("GET", self.manager.url + "/play/live/a")
        self.assertEqual(status, 200)
        self.assertIn("text/html", headers.get("Content-Type", ""))
        self.assertEqual(headers.get("X-XDN-Role"), "manager")

    def test_manager_away_longer_than_three_intervals_declares_no_one_dead(self):
        e1 = self.node("edge-1", "edge")
        self.manager.stop()
        away = time.monotonic()
        wait_for(lambda: time.monotonic() - away > 4 * INTERVAL_MS / 1000, 5, "4 intervals away")
        self.manager = Manager(self.db, token=TOKEN, heartbeat_ms=INTERVAL_MS).start()
        e1.managers = [self.manager]
        back = time.monotonic()
        wait_for(lambda: e1.last_ok > back, 5, "edge-1 to heartbeat the restarted manager")
        # The sweeps wait 3 intervals after the start; then two more sweeps.
        wait_for(lambda: time.monotonic() - back > 3 * INTERVAL_MS / 1000 + 0.3, 5, "the hold to pass")
        self.assertEqual(self.manager.nodes()["edge-1"]["state"], "alive")
        self.assertEqual(self.manager.metric("xdn_manager_nodes_declared_dead_total"), 0)

    def test_restart_on_the_same_file_keeps_the_nodes(self):
        self.node("origin-1", "origin")
        self.manager.stop()
        self.manager = Manager(self.db, token=TOKEN, heartbeat_ms=INTERVAL_MS).start()
        self.nodes[0].managers = [self.manager]
        self.assertIn("origin-1", self.manager.nodes())
        self.assertIn("schema=1", self.manager.logs())


if __name__ == "__main__":
    unittest.main(verbosity=2)
