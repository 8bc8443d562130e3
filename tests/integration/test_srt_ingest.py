"""Whole-node tests of SRT ingest on loopback: ffmpeg and srt-live-transmit
publish MPEG-TS (H.264 + AAC) to the node's SRT port; the stream shows up in
the API with a video and an audio track whose packet counts grow, and goes
away when the publisher stops. Bad streamids and a second publisher of a
live stream are refused while the node keeps serving."""
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from xdnnode import Node, http, wait_for  # noqa: E402

FFMPEG = shutil.which("ffmpeg")
SRT_LIVE_TRANSMIT = shutil.which("srt-live-transmit")

AV_INPUT = ["-f", "lavfi", "-i", "testsrc2=size=320x180:rate=30",
            "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000"]
AV_CODECS = ["-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency", "-g", "30",
             "-c:a", "aac"]


def ffmpeg_publish(url, seconds):
    """Starts ffmpeg sending a live test picture and tone to @url."""
    cmd = [FFMPEG, "-nostdin", "-loglevel", "warning", "-re", *AV_INPUT, *AV_CODECS,
           "-t", str(seconds), "-f", "mpegts", url]
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            start_new_session=True)


def stop(proc, timeout=5):
    """Ends @proc and everything it started."""
    if proc and proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        except ProcessLookupError:
            pass
    if proc and proc.stderr:
        proc.stderr.close()


@unittest.skipUnless(FFMPEG, "ffmpeg is not installed")
class SrtIngest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="xdn-srt-")
        cls.node = Node().start()

    @classmethod
    def tearDownClass(cls):
        cls.node.stop()
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def setUp(self):
        self.procs = []

    def tearDown(self):
        for p in self.procs:
            stop(p)

    def start(self, proc):
        self.procs.append(proc)
        return proc

    def assert_live_with_growing_tracks(self, name):
        # A track has its kind once its caps are known (video: after the
        # first SPS/PPS).
        def both_kinds():
            s = self.node.stream(name)
            return s and sorted(t["kind"] for t in s["tracks"]) == ["audio", "video"] and s
        stream = wait_for(both_kinds, 20, f"{name} to have a video and an audio track")
        first = {t["id"]: t["packets"] for t in stream["tracks"]}

        def grown():
            s = self.node.stream(name)
            return s and all(t["packets"] > first.get(t["id"], 0) for t in s["tracks"]) and s
        wait_for(grown, 10, f"packet counts of {name} to grow")

    def wait_gone(self, name, timeout=15):
        wait_for(lambda: self.node.stream(name) is None, timeout, f"stream {name} to end")

    def test_ffmpeg_publishes_video_and_audio(self):
        name = "live/srt-ffmpeg"
        proc = self.start(ffmpeg_publish(self.node.srt_url(name), 8))
        self.assert_live_with_growing_tracks(name)
        proc.wait(20)
        self.assertEqual(proc.returncode, 0, proc.stderr.read().decode()[-2000:])
        self.wait_gone(name)

    @unittest.skipUnless(SRT_LIVE_TRANSMIT, "srt-live-transmit is not installed")
    def test_srt_live_transmit_publishes_a_ts_file(self):
        ts = os.path.join(self.tmp, "av.ts")
        subprocess.run([FFMPEG, "-nostdin", "-loglevel", "error", "-y", *AV_INPUT, *AV_CODECS,
                        "-t", "8", "-f", "mpegts", ts], check=True, timeout=60)
        name = "live/srt-slt"
        # srt-live-transmit reads stdin only as a pipe and does not exit at
        # its end: ffmpeg paces the file, -t ends srt-live-transmit.
        shell = (f"'{FFMPEG}' -nostdin -loglevel error -re -i '{ts}' -c copy -f mpegts - | "
                 f"'{SRT_LIVE_TRANSMIT}' -a:no -c:1316 -t:10 file://con '{self.node.srt_url(name)}'")
        proc = self.start(subprocess.Popen(["sh", "-c", shell], stdout=subprocess.DEVNULL,
                                           stderr=subprocess.DEVNULL, start_new_session=True))
        self.assert_live_with_growing_tracks(name)
        proc.wait(20)
        self.wait_gone(name)

    def test_bad_streamid_is_refused(self):
        refused0 = self.node.metric("xdn_srt_refused_total", 'reason="bad_request"') or 0
        url = self.node.srt_url("../x")
        proc = self.start(ffmpeg_publish(url, 3))
        proc.wait(15)
        self.assertNotEqual(proc.returncode, 0)
        self.assertIsNone(self.node.stream("../x"))
        wait_for(lambda: (self.node.metric("xdn_srt_refused_total", 'reason="bad_request"') or 0)
                 > refused0, 5, "the refusal to be counted")
        # The node keeps serving.
        self.assertEqual(http("GET", self.node.url + "/api/v1/streams")[0], 200)

    def test_request_mode_is_refused(self):
        proc = self.start(ffmpeg_publish(self.node.srt_url("live/srt-mode", mode="request"), 3))
        proc.wait(15)
        self.assertNotEqual(proc.returncode, 0)
        self.assertIsNone(self.node.stream("live/srt-mode"))

    def test_second_publisher_is_refused(self):
        name = "live/srt-dup"
        first = self.start(ffmpeg_publish(self.node.srt_url(name), 30))
        self.node.wait_stream(name, timeout=20, tracks=2)
        second = self.start(ffmpeg_publish(self.node.srt_url(name), 3))
        second.wait(15)
        self.assertNotEqual(second.returncode, 0)
        self.assertIsNone(first.poll(), "the first publisher must keep publishing")
        self.assertIsNotNone(self.node.stream(name))
        stop(first)
        self.wait_gone(name)


if __name__ == "__main__":
    unittest.main(verbosity=2)
