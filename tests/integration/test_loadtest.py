"""xdn-loadtest against a real all-in-one xdn-node --demo on loopback: 20
viewers for 10 s all connect and receive at least 99.9 % of their packets,
two sampled viewers decode and read latency stamps, and the load test costs
far less CPU per viewer-second than the node; a WHEP refusal (a stream that
is not live) is reported per viewer with its status and body; a vanished
viewer is left to the node's timeout; SIGINT ends a run cleanly, the
sessions DELETEd; publishers send a stream through the node to viewers of
the same run, and a refused publisher is reported."""
import json
import os
import signal
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from xdnnode import LOADTEST_BINARY as LOADTEST, start_demo_node, wait_for  # noqa: E402
from xdnnode import run_loadtest as loadtest  # noqa: E402


class LoadTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        # webrtcbin per viewer: the server cost the load tool is compared with
        # below (the fan-out costs about as little as the tool itself).
        cls.node = start_demo_node(cls.tmp.name, "--egress", "webrtcbin")

    @classmethod
    def tearDownClass(cls):
        cls.node.stop()
        cls.tmp.cleanup()

    def viewers_on_node(self):
        s = self.node.stream("demo")
        return s["viewers"] if s else None

    def test_twenty_viewers_receive_everything_and_sampled_viewers_read_latency(self):
        rc, r, out, err = loadtest("--whep", self.node.whep_url("demo"), "--viewers", "20", "--ramp", "20/s",
                                   "--duration", "10", "--sample", "2", "--ice-address", "127.0.0.1",
                                   "--server-pid", str(self.node.proc.pid), "--server-idle", "2")
        print(out)
        self.assertEqual(rc, 0, f"{out}\n{err[-3000:]}")
        self.assertEqual(r["viewers"], 20)
        self.assertEqual(r["connected"], 20, r["failures"])
        self.assertEqual(r["failed"], 0, r["failures"])
        for v in r["viewerResults"]:
            self.assertGreater(v["packets"], 0, v)
            self.assertGreaterEqual(v["packets"], 0.999 * v["expected"], v)
            self.assertEqual(v["authFailures"], 0, v)
            self.assertGreater(v["rtcpSent"], 0, v)
            self.assertGreater(v["mediaSeconds"], 9, v)
        self.assertLessEqual(r["lossPercent"], 0.1)
        # 600 kbit/s of video plus Opus
        self.assertGreater(r["bitrateMinBps"], 300_000)

        sampled = [v for v in r["viewerResults"] if v.get("sampled")]
        self.assertEqual(len(sampled), 2)
        for v in sampled:
            self.assertGreaterEqual(v["framesRead"], 100, v)  # 30 fps for about 10 s
            self.assertGreater(v["latencyP50Ms"], 0, v)
        self.assertGreater(r["latency"]["p95Ms"], 0)
        self.assertLess(r["latency"]["p95Ms"], 500)

        cpu = r["cpu"]
        print(f"CPU per viewer-second, steady state: xdn-loadtest network threads "
              f"{cpu['loadtestNetworkSteadyMsPerViewerSecond']:.3f} ms (whole process "
              f"{cpu['loadtestSteadyMsPerViewerSecond']:.3f} ms with 2 decoders), "
              f"xdn-node {cpu['serverSteadyMsPerViewerSecond']:.3f} ms")
        # The load client must cost well under what the server spends per viewer.
        self.assertLess(cpu["loadtestNetworkSteadyMsPerViewerSecond"],
                        cpu["serverSteadyMsPerViewerSecond"] / 3)

        # Every session was DELETEd at the end.
        wait_for(lambda: self.viewers_on_node() == 0, 10, "the node to have no viewers left")

    def test_refusal_is_reported_with_status_and_body(self):
        rc, r, out, err = loadtest("--whep", self.node.whep_url("missing"), "--viewers", "2",
                                   "--duration", "30", "--ice-address", "127.0.0.1", timeout=20)
        self.assertEqual(rc, 1, out)
        self.assertEqual(r["connected"], 0)
        self.assertEqual(r["failed"], 2)
        self.assertEqual(len(r["failures"]), 1, r["failures"])
        f = r["failures"][0]
        self.assertEqual((f["phase"], f["kind"], f["count"]), ("whep", "404", 2))
        self.assertIn("404", f["example"])
        self.assertIn("not live", f["example"])
        for v in r["viewerResults"]:
            self.assertEqual(v["httpStatus"], 404)
        self.assertIn("whep 404", out)
        # Everyone failed: the run ends without holding for --duration.
        self.assertLess(r["elapsedS"], 10)

    def test_vanished_viewer_is_not_deleted_and_the_node_times_it_out(self):
        rc, r, out, err = loadtest("--whep", self.node.whep_url("demo"), "--viewers", "3", "--duration", "3",
                                   "--vanish", "1", "--vanish-after", "1", "--ice-address", "127.0.0.1",
                                   timeout=30)
        self.assertEqual(rc, 0, f"{out}\n{err[-2000:]}")
        self.assertEqual((r["connected"], r["failed"], r["vanished"]), (3, 0, 1))
        gone = [v for v in r["viewerResults"] if v.get("vanished")]
        self.assertEqual(len(gone), 1)
        # It stopped counting when it left; the others went on to the end.
        self.assertLess(gone[0]["mediaSeconds"], 2)
        # The two others were DELETEd; the vanished one is left to the node's peer timeout.
        wait_for(lambda: self.viewers_on_node() == 1, 3, "the two DELETEd viewers to be gone")
        wait_for(lambda: self.viewers_on_node() == 0, 20, "the node to time the vanished viewer out")

    def test_publishers_reach_viewers_of_the_same_run(self):
        rc, r, out, err = loadtest("--whip", self.node.whip_url("live/lt-{n}"), "--publishers", "2",
                                   "--whep", self.node.whep_url("live/lt-{n}"), "--viewers", "4",
                                   "--sample", "1", "--duration", "4", "--play-delay", "1",
                                   "--ice-address", "127.0.0.1", timeout=40)
        print(out)
        self.assertEqual(rc, 0, f"{out}\n{err[-3000:]}")
        p = r["publishers"]
        self.assertEqual((p["started"], p["connected"], p["failed"]), (2, 2, 0))
        self.assertGreater(p["packetsSent"], 200)
        self.assertEqual(r["connected"], 4, r["failures"])
        for v in r["viewerResults"]:
            if v.get("publisher"):
                continue
            self.assertGreater(v["packets"], 0, v)
            self.assertGreaterEqual(v["packets"], 0.999 * v["expected"], v)
        # The publishers' own encoder stamps the pictures; a viewer reads them back.
        self.assertGreater(r["latency"]["framesRead"], 30)
        # The streams end with their publishers.
        wait_for(lambda: self.node.stream("live/lt-0") is None and self.node.stream("live/lt-1") is None,
                 10, "the published streams to end")

    def test_refused_publisher_is_reported(self):
        rc, r, out, err = loadtest("--whip", self.node.whip_url("demo"), "--duration", "5",
                                   "--ice-address", "127.0.0.1", timeout=20)
        self.assertEqual(rc, 1, out)
        self.assertEqual(r["publishers"]["failed"], 1)
        f = r["failures"][0]
        self.assertEqual((f["role"], f["phase"], f["kind"]), ("publisher", "whip", "409"))
        self.assertIn("already has a publisher", f["example"])

    def test_sigint_ends_the_run_cleanly_and_deletes_the_sessions(self):
        with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as f:
            path = f.name
        proc = subprocess.Popen([LOADTEST, "--whep", self.node.whep_url("demo"), "--viewers", "3",
                                 "--duration", "60", "--ice-address", "127.0.0.1", "--progress", "0",
                                 "--json", path],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                start_new_session=True)
        try:
            wait_for(lambda: self.viewers_on_node() == 3, 15, "3 viewers on the node")
            proc.send_signal(signal.SIGINT)
            out, err = proc.communicate(timeout=10)
            with open(path) as f:
                r = json.load(f)
            self.assertTrue(r["interrupted"])
            self.assertEqual(r["connected"], 3, out)
            self.assertIn("interrupted", out)
            wait_for(lambda: self.viewers_on_node() == 0, 5, "the node to have no viewers left")
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
            os.unlink(path)


if __name__ == "__main__":
    unittest.main(verbosity=2)
