"""WHEP through the fan-out (xdn-node --egress fanout) under load: xdn-loadtest
viewers of a 360p 600 kbit/s demo stream on loopback each receive at least
99.9 % of their packets, sampled viewers decode and read latency stamps;
after they all leave the node counts no viewer, its fan-out goes, its
resident memory is back within 10 % of what it was before the run and its
file descriptors are back to what they were. A second crowd then comes and
goes and leaves neither descriptors nor more than a little memory behind
(a leaked bus message once kept every fan-out pipeline alive, and a kept-
alive HTTP connection closed by its client once stayed open for good).

The number of viewers is XDN_FANOUT_LOAD_VIEWERS (default 200)."""
import os
import sys
import tempfile
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


if __name__ == "__main__":
    unittest.main(verbosity=2)
