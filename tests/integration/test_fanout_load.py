"""WHEP through the fan-out (xdn-node --egress fanout) under load: xdn-loadtest
viewers of a 360p 600 kbit/s demo stream on loopback each receive at least
99.9 % of their packets, sampled viewers decode and read latency stamps;
after they all leave the node counts no viewer, its fan-out goes, its
resident memory is back within 10 % of what it was before the run and its
file descriptors are back to what they were. A second crowd then comes and
goes and leaves neither descriptors nor more than a little memory behind
(a leaked bus message once kept every fan-out pipeline alive, and a kept-
alive HTTP connection closed by its client once stayed open for good).

Viewers behind a slow link starve nobody: with a few xdn-loadtest viewers
on an emulated 250 kbit/s, 5 % lossy link (far below the stream's rate)
that NACK their holes and ask for keyframes, every other viewer still
receives at least 99.9 % of its packets, the sampled viewers' latency
stays within 30 ms of a run without slow viewers, the fan-out answers the
NACKs (its retransmit counter rises), and the node stays healthy.

The number of viewers is XDN_FANOUT_LOAD_VIEWERS (default 200)."""
import os
import sys
import tempfile
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from xdnnode import start_demo_node, wait_for  # noqa: E402
from xdnnode import run_loadtest as loadtest  # noqa: E402

VIEWERS = int(os.environ.get("XDN_FANOUT_LOAD_VIEWERS", "200"))


def rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError(f"no VmRSS for {pid}")


def open_fds(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


class FanoutLoad(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        cls.node = start_demo_node(cls.tmp.name, "--egress", "fanout")

    @classmethod
    def tearDownClass(cls):
        cls.node.stop()
        cls.tmp.cleanup()

    def viewers_on_node(self):
        s = self.node.stream("demo")
        return s["viewers"] if s else None

    def fanout_gone(self):
        return self.node.metric("xdn_fanout_viewers", 'stream="demo"') is None

    def test_many_viewers_receive_everything_and_memory_returns_after_they_leave(self):
        # A short warm-up first, so that what is set up once per process (DTLS
        # certificate, plugin and codec state) is in the baseline.
        rc, r, out, err = loadtest("--whep", self.node.whep_url("demo"), "--viewers", "2",
                                   "--duration", "2", "--ice-address", "127.0.0.1", timeout=30)
        self.assertEqual(rc, 0, f"{out}\n{err[-2000:]}")
        wait_for(lambda: self.viewers_on_node() == 0 and self.fanout_gone(), 15,
                 "the warm-up viewers and the fan-out to be gone")
        baseline = rss_kb(self.node.proc.pid)
        fds = open_fds(self.node.proc.pid)

        rc, r, out, err = loadtest("--whep", self.node.whep_url("demo"), "--viewers", str(VIEWERS),
                                   "--ramp", "50/s", "--duration", "30", "--sample", "2",
                                   "--ice-address", "127.0.0.1",
                                   "--server-pid", str(self.node.proc.pid), "--server-idle", "2",
                                   timeout=150)
        print(out)
        self.assertEqual(rc, 0, f"{out}\n{err[-3000:]}")
        self.assertEqual(r["connected"], VIEWERS, r["failures"])
        self.assertEqual(r["failed"], 0, r["failures"])
        for v in r["viewerResults"]:
            self.assertGreater(v["packets"], 0, v)
            self.assertGreaterEqual(v["packets"], 0.999 * v["expected"], v)
            self.assertEqual(v["authFailures"], 0, v)
        sampled = [v for v in r["viewerResults"] if v.get("sampled")]
        self.assertEqual(len(sampled), 2)
        for v in sampled:
            self.assertGreater(v["framesRead"], 0, v)
            self.assertGreater(v["latencyP50Ms"], 0, v)
        cpu = r.get("cpu") or {}
        print(f"xdn-node fan-out, {VIEWERS} viewers: "
              f"{cpu.get('serverSteadyMsPerViewerSecond')} ms CPU per viewer-second")

        # Everyone left (DELETE): no viewer, the fan-out goes, memory comes back.
        wait_for(lambda: self.viewers_on_node() == 0, 15, "the node to have no viewers left")
        wait_for(self.fanout_gone, 15, "the fan-out to be torn down after its last viewer")
        # Freed memory goes back to the system a little after; bounded wait.
        try:
            wait_for(lambda: rss_kb(self.node.proc.pid) <= baseline * 1.10, 15,
                     "the node's RSS to return within 10 % of its baseline")
        except TimeoutError:
            self.fail(f"RSS {rss_kb(self.node.proc.pid)} kB, baseline {baseline} kB")
        print(f"RSS: baseline {baseline} kB, after {rss_kb(self.node.proc.pid)} kB")
        wait_for(lambda: open_fds(self.node.proc.pid) <= fds, 10,
                 f"the node's file descriptors to return to {fds}")

        # A second crowd: nothing of it stays.
        after_first = rss_kb(self.node.proc.pid)
        rc, r, out, err = loadtest("--whep", self.node.whep_url("demo"), "--viewers", str(VIEWERS),
                                   "--ramp", "100/s", "--duration", "3", "--ice-address", "127.0.0.1",
                                   timeout=60)
        self.assertEqual(rc, 0, f"{out}\n{err[-3000:]}")
        self.assertEqual(r["connected"], VIEWERS, r["failures"])
        wait_for(lambda: self.viewers_on_node() == 0 and self.fanout_gone(), 15,
                 "the second crowd and its fan-out to be gone")
        wait_for(lambda: open_fds(self.node.proc.pid) <= fds, 10,
                 f"the node's file descriptors to return to {fds} after the second crowd")
        # 200 viewers leaked about 1.8 MB before; what is left (libsoup before
        # 3.4 keeps a few hundred bytes per accepted connection) is far less.
        try:
            wait_for(lambda: rss_kb(self.node.proc.pid) <= after_first + 1024, 15,
                     "the second crowd to leave at most 1 MB behind")
        except TimeoutError:
            self.fail(f"RSS {rss_kb(self.node.proc.pid)} kB after the second crowd, "
                      f"{after_first} kB after the first")
        print(f"RSS after the second crowd: {rss_kb(self.node.proc.pid)} kB")

    def test_slow_viewers_do_not_starve_the_others(self):
        viewers, slow, hold = 60, 6, 20
        common = ["--whep", self.node.whep_url("demo"), "--viewers", str(viewers), "--ramp", "60/s",
                  "--sample", "2", "--ice-address", "127.0.0.1"]
        wait_for(lambda: self.viewers_on_node() == 0, 15, "the node to have no viewers")

        # The same crowd without slow viewers first: the latency to compare with.
        rc, base, out, err = loadtest(*common, "--duration", "8", timeout=40)
        print(out)
        self.assertEqual(rc, 0, f"{out}\n{err[-3000:]}")
        base_p95 = base["latency"]["p95Ms"]
        self.assertGreater(base["latency"]["framesRead"], 0, base["latency"])
        wait_for(lambda: self.viewers_on_node() == 0, 15, "the first crowd to leave")

        # Then with slow viewers, on a fresh fan-out (the first crowd's stops
        # 3 s after its last viewer left): its counters start at 0, and live
        # with it, so they are read while the crowd plays.
        wait_for(lambda: self.node.metric("xdn_fanout_viewers", 'stream="demo"') is None, 10,
                 "the first crowd's fan-out to stop")
        counters = ("retransmits", "nacked_packets", "plis", "keyframe_requests")
        seen = {c: [] for c in counters}
        done = threading.Event()

        def watch():
            while not done.is_set():
                for c in counters:
                    v = self.node.metric(f"xdn_fanout_{c}_total", 'stream="demo"')
                    if v is not None:
                        seen[c].append(v)
                done.wait(0.5)

        watcher = threading.Thread(target=watch)
        started = time.monotonic()
        watcher.start()
        try:
            rc, r, out, err = loadtest(*common, "--duration", str(hold), "--slow", str(slow),
                                       "--slow-rate", "250", "--slow-loss", "5", timeout=60)
        finally:
            done.set()
            watcher.join()
        watched = time.monotonic() - started
        print(out)
        s = r["slow"] if r else {}
        p95 = r["latency"]["p95Ms"] if r else None
        # The figures to look at when this fails.
        print(f"normal viewers: worst {r and r['worstReceivedPercent']} % received, "
              f"sampled p95 {p95} ms (without slow viewers {base_p95} ms); slow viewers: "
              f"{s.get('nacksSent')} NACKs for {s.get('packetsNacked')} packets, "
              f"{s.get('retransmissions')} retransmissions received, {s.get('plisSent')} PLIs, "
              f"{s.get('receivedPercent')} % received; node counters "
              f"{ {c: max(v, default=None) for c, v in seen.items()} }")
        self.assertEqual(rc, 0, f"{out}\n{err[-3000:]}")

        # Everyone joined and stayed to the end.
        self.assertEqual(r["connected"], viewers, r["failures"])
        self.assertEqual(r["failed"], 0, r["failures"])
        self.assertEqual(s["viewers"], slow)
        self.assertEqual(s["connected"], slow)
        for v in r["viewerResults"]:
            self.assertGreaterEqual(v["mediaSeconds"], hold - 1, v)
            self.assertEqual(v["authFailures"], 0, v)

        # Normal viewers get everything, as if nobody were slow.
        normal = [v for v in r["viewerResults"] if not v.get("slow")]
        self.assertEqual(len(normal), viewers - slow)
        for v in normal:
            self.assertGreaterEqual(v["packets"], 0.999 * v["expected"], v)
            self.assertNotIn("nacksSent", v)
        self.assertGreaterEqual(r["worstReceivedPercent"], 99.9)

        # Their latency: within 30 ms of the run without slow viewers (one
        # frame at 30 fps, plus a little; a fan-out held up by retransmissions
        # or by keyframes asked for by the slow viewers would add more), and
        # under the 200 ms the network aims to stay well below on a LAN.
        sampled = [v for v in r["viewerResults"] if v.get("sampled")]
        self.assertEqual(len(sampled), 2)
        for v in sampled:
            self.assertFalse(v.get("slow"), v)
            self.assertGreater(v["framesRead"], 0, v)
        self.assertLessEqual(p95, base_p95 + 30, f"p95 {p95} ms, without slow viewers {base_p95} ms")
        self.assertLess(p95, 200)

        # The slow viewers lost packets on their link, asked for them and got
        # some again; the fan-out counted retransmissions.
        slow_viewers = [v for v in r["viewerResults"] if v.get("slow")]
        self.assertEqual(len(slow_viewers), slow)
        for v in slow_viewers:
            self.assertFalse(v.get("sampled"), v)
            self.assertGreater(v["droppedByRate"], 0, v)
            self.assertGreater(v["nacksSent"], 0, v)
            self.assertGreater(v["retransmissions"], 0, v)
            self.assertLessEqual(v["retransmissions"], v["packetsNacked"], v)
            self.assertLess(v["packets"], v["expected"], v)
            # Far too slow for the stream: holes past repair, a keyframe asked
            # for about once a second (never more).
            self.assertGreater(v["plisSent"], 0, v)
            self.assertLessEqual(v["plisSent"], hold + 3, v)
        self.assertGreater(s["retransmissions"], 0)
        # The node's counters saw the same (read every half second, so the
        # last reading may miss the final moments, never overtake the
        # viewers' own counts).
        top = {c: max(v, default=0) for c, v in seen.items()}
        self.assertGreater(top["retransmits"], 0, seen)
        self.assertGreater(top["nacked_packets"], 0, seen)
        self.assertLessEqual(top["nacked_packets"], s["packetsNacked"])
        self.assertLessEqual(top["retransmits"], top["nacked_packets"])
        # Every viewer asks for a keyframe when it starts, the two sampled
        # ones until they have decoded a picture, the slow ones when video
        # is past repair.
        self.assertGreaterEqual(top["plis"], viewers, seen)
        self.assertLessEqual(top["plis"], s["plisSent"] + viewers + 2 * watched, seen)
        # All of that went upstream as at most one keyframe request per
        # 500 ms (the fan-out's default limit) for the one video track.
        self.assertGreater(top["keyframe_requests"], 0, seen)
        self.assertLessEqual(top["keyframe_requests"], 2 * watched + 1, seen)

        # The node is healthy after: nobody left on it, the stream live, and a
        # new viewer gets everything.
        wait_for(lambda: self.viewers_on_node() == 0, 15, "the slow crowd to leave")
        self.assertIsNone(self.node.proc.poll(), "xdn-node exited")
        self.assertEqual(self.node.api("/node")[0], 200)
        self.node.wait_stream("demo", timeout=5, tracks=2)
        rc, after, out, err = loadtest("--whep", self.node.whep_url("demo"), "--viewers", "1",
                                       "--duration", "2", "--ice-address", "127.0.0.1", timeout=30)
        self.assertEqual(rc, 0, f"{out}\n{err[-3000:]}")
        self.assertGreaterEqual(after["worstReceivedPercent"], 99.9, after)


if __name__ == "__main__":
    unittest.main(verbosity=2)
