"""Whole-node tests on loopback: publish with xdnwhipsink, play with
xdnwhepsrc, read the latency stamps; hostile WHIP/WHEP requests get clear
errors while the node keeps serving. WHEP goes through the fan-out
(--egress fanout); one case plays through a webrtcbin per viewer
(--egress webrtcbin), the fallback."""
import http.client as httpclient
import os
import re
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from xdnnode import Node, gst_env, http, wait_for  # noqa: E402

GST_LAUNCH = "gst-launch-1.0"


def play(url, frames=60, timeout=40):
    """Plays @frames video frames from a WHEP URL through the latency meter;
    returns the meter's summary as a dict."""
    cmd = [GST_LAUNCH, "-m", "xdnwhepsrc", f"location={url}", "ice-addresses=127.0.0.1", "audio=false",
           "!", "videoconvert", "!", "identity", f"eos-after={frames}", "!", "xdnlatencymeter",
           "post-messages=false", "!", "fakesink"]
    out = subprocess.run(cmd, env=gst_env(), capture_output=True, text=True, timeout=timeout)
    summary = re.search(r"xdn-latency-summary, (.*);", out.stdout)
    if out.returncode != 0 or not summary:
        raise AssertionError(f"playback failed (rc {out.returncode}):\n{out.stdout[-2000:]}\n{out.stderr[-2000:]}")
    fields = dict(re.findall(r"([a-z0-9-]+)=\([a-z0-9]+\)([0-9.]+)", summary.group(1)))
    return {k: float(v) for k, v in fields.items()}


def publish(url):
    """Starts a WHIP publisher (stamped test picture + tone); returns the process."""
    cmd = [GST_LAUNCH, "videotestsrc", "is-live=true", "pattern=ball", "!",
           "video/x-raw,width=640,height=360,framerate=30/1", "!", "xdnlatencystamp", "!",
           "x264enc", "tune=zerolatency", "speed-preset=ultrafast", "bitrate=800", "key-int-max=30", "!",
           "xdnwhipsink", "name=whip", f"location={url}", "ice-addresses=127.0.0.1",
           "audiotestsrc", "is-live=true", "!", "opusenc", "!", "whip."]
    return subprocess.Popen(cmd, env=gst_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            start_new_session=True)


OFFER = ("v=0\r\no=- 1 0 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 0\r\n"
         "m=video 9 UDP/TLS/RTP/SAVPF 96\r\nc=IN IP4 0.0.0.0\r\na=mid:0\r\na=recvonly\r\na=rtcp-mux\r\n"
         "a=ice-ufrag:abcd\r\na=ice-pwd:abcdefghijklmnopqrstuvwx\r\n"
         "a=fingerprint:sha-256 00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:"
         "00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF\r\na=setup:actpass\r\n"
         "a=rtpmap:96 H264/90000\r\na=fmtp:96 packetization-mode=1;profile-level-id=42e01f\r\n"
         "a=rtcp-fb:96 nack pli\r\n")
SDP = {"Content-Type": "application/sdp"}


class NodeWebRtc(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.node = Node("--egress", "fanout", demo=True).start()
        cls.node.wait_stream("demo", timeout=20, tracks=2)

    @classmethod
    def tearDownClass(cls):
        cls.node.stop()

    def test_demo_plays_with_measured_latency(self):
        s = play(self.node.whep_url("demo"))
        print(f"demo via WHEP: {s}")
        self.assertGreaterEqual(s["frames-read"], 50)
        self.assertLess(s["p95-ms"], 500)
        self.assertGreater(s["p50-ms"], 0)

    def test_whip_publisher_reaches_whep_viewers_and_second_publisher_gets_409(self):
        name = "live/race-7"
        pub = publish(self.node.whip_url(name))
        try:
            stream = self.node.wait_stream(name, timeout=20, tracks=2)
            self.assertEqual(sorted(t["kind"] for t in stream["tracks"]), ["audio", "video"])
            status, _, body = http("POST", self.node.whip_url(name), OFFER.encode(), SDP)
            self.assertEqual(status, 409, body)
            self.assertIn(b"already has a publisher", body)
            s = play(self.node.whep_url(name))
            self.assertGreaterEqual(s["frames-read"], 50)
        finally:
            os.killpg(pub.pid, 15)
            pub.wait(10)
        # The publisher vanished: the stream goes away.
        wait_for(lambda: self.node.stream(name) is None, 30, f"{name} to end after its publisher left")

    def test_srt_publisher_plays_over_whep_with_latency_stamps(self):
        """gst-launch publishes stamped H.264 + AAC as MPEG-TS over SRT; the
        node transcodes AAC to Opus once and a WHEP viewer reads the stamps."""
        name = "live/srt-cam"
        uri = f"srt://127.0.0.1:{self.node.srt_port}?latency=60"
        cmd = [GST_LAUNCH, "videotestsrc", "is-live=true", "pattern=ball", "!",
               "video/x-raw,width=640,height=360,framerate=30/1", "!", "xdnlatencystamp", "!",
               "x264enc", "tune=zerolatency", "speed-preset=ultrafast", "bitrate=800", "key-int-max=30", "!",
               "h264parse", "!", "mpegtsmux", "name=mux", "alignment=7", "!", "srtsink", f"uri={uri}", f"streamid=#!::r={name},m=publish",
               "wait-for-connection=false", "audiotestsrc", "is-live=true", "!", "audioconvert", "!",
               "avenc_aac", "!", "aacparse", "!", "mux."]
        pub = subprocess.Popen(cmd, env=gst_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                               start_new_session=True)
        try:
            stream = self.node.wait_stream(name, timeout=20, tracks=2)
            self.assertEqual(sorted(t["codec"] for t in stream["tracks"]), ["H264", "OPUS"])
            s = play(self.node.whep_url(name))
            print(f"SRT -> WHEP: {s}")
            self.assertGreaterEqual(s["frames-read"], 50)
        finally:
            os.killpg(pub.pid, 15)
            pub.wait(10)
        wait_for(lambda: self.node.stream(name) is None, 30, f"{name} to end after its publisher left")

    def test_hostile_requests_get_clear_errors(self):
        url = self.node.url
        cases = [
            ("POST", "/whep/nope", OFFER.encode(), SDP, 404),
            ("POST", "/whep/" + "x" * 129, OFFER.encode(), SDP, 400),
            ("POST", "/whip/x%20y", OFFER.encode(), SDP, 400),
            ("POST", "/whip/x", b"not sdp at all", SDP, 400),
            ("POST", "/whip/x", OFFER.encode(), {"Content-Type": "text/plain"}, 415),
            ("POST", "/whip/x", b"v=0\r\n" + b"a" * (1024 * 1024), SDP, 413),
            ("POST", "/whip/x", b"v=0\r\nm=video garbage\r\n", SDP, 406),
            ("POST", "/whip/x", b"v=0\r\nthis is no session description\r\n", SDP, 400),
            ("PATCH", "/sessions/abc", b"a=candidate", {"Content-Type": "application/trickle-ice-sdpfrag"}, 405),
            ("DELETE", "/sessions/does-not-exist", None, {}, 404),
            ("GET", "/api/v1/streams/nope", None, {}, 404),
        ]
        for method, path, body, headers, expected in cases:
            with self.subTest(path=path, expected=expected):
                status, hdrs, answer = http(method, url + path, body, headers)
                self.assertEqual(status, expected, answer[:300])
                if expected != 405:
                    self.assertIn(b"error", answer)
                self.assertEqual(hdrs.get("Access-Control-Allow-Origin"), "*")
        # The node still serves the demo.
        self.assertIsNotNone(self.node.stream("demo"))

    def test_endless_chunked_body_is_cut_off(self):
        conn = httpclient.HTTPConnection("127.0.0.1", self.node.http_port, timeout=10)

        def endless():
            for _ in range(10000):  # 40 MB unless the node stops reading
                yield b"a=x" * 1365 + b"\r\n"
        with self.assertRaises((ConnectionError, httpclient.HTTPException, OSError)):
            conn.request("POST", "/whip/chunked", body=endless(), encode_chunked=True,
                         headers={"Content-Type": "application/sdp", "Transfer-Encoding": "chunked"})
            conn.getresponse().read()
        conn.close()
        wait_for(lambda: "chunked; connection dropped" in self.node.logs(), 10, "the cut-off to be logged")
        self.assertIsNotNone(self.node.stream("demo"))

    def test_client_vanishing_mid_handshake_is_timed_out(self):
        status, headers, answer = http("POST", self.node.whep_url("demo"), OFFER.encode(), SDP)
        self.assertEqual(status, 201, answer)
        self.assertTrue(headers["Location"].startswith("/sessions/"))
        self.assertIn(b"a=sendonly", answer)
        session = headers["Location"].rsplit("/", 1)[1]
        # Never connects: the node ends the session after its viewer timeout.
        wait_for(lambda: any(session in line and "timeout" in line for line in self.node.logs().splitlines()),
                 40, "the half-open session to be timed out")
        status, _, _ = http("DELETE", self.node.url + headers["Location"])
        self.assertEqual(status, 404)
        self.assertIsNotNone(self.node.stream("demo"))

    def test_delete_ends_a_session(self):
        status, headers, _ = http("POST", self.node.whep_url("demo"), OFFER.encode(), SDP)
        self.assertEqual(status, 201)
        status, _, body = http("GET", self.node.url + "/metrics")
        self.assertRegex(body.decode(), r'xdn_fanout_viewers\{stream="demo"\} [1-9]')
        status, _, _ = http("DELETE", self.node.url + headers["Location"])
        self.assertEqual(status, 200)
        status, _, _ = http("DELETE", self.node.url + headers["Location"])
        self.assertEqual(status, 404)

    def test_offer_the_fanout_cannot_serve_gets_its_reason(self):
        # Only a data channel: nothing the stream has can be sent.
        offer = OFFER.replace("m=video 9 UDP/TLS/RTP/SAVPF 96", "m=application 9 UDP/DTLS/SCTP webrtc-datachannel")
        status, _, body = http("POST", self.node.whep_url("demo"), offer.encode(), SDP)
        self.assertGreaterEqual(status, 400, body)
        self.assertLess(status, 500, body)
        self.assertIn(b"refused", body)

    def test_public_address_is_announced_in_the_answer(self):
        with Node("--egress", "fanout", "--public-address", "203.0.113.7", demo=True) as node:
            node.wait_stream("demo", timeout=20, tracks=2)
            status, _, answer = http("POST", node.whep_url("demo"), OFFER.encode(), SDP)
            self.assertEqual(status, 201, answer)
            candidates = [line for line in answer.decode().splitlines() if line.startswith("a=candidate:")]
            self.assertTrue(candidates, answer)
            for line in candidates:
                self.assertIn(" 203.0.113.7 ", line)
                self.assertNotIn(" 127.0.0.1 ", line)

    def test_end_of_stream_removes_its_fanout_viewers(self):
        name = "live/ends"
        pub = publish(self.node.whip_url(name))
        try:
            self.node.wait_stream(name, timeout=20, tracks=2)
            status, headers, answer = http("POST", self.node.whep_url(name), OFFER.encode(), SDP)
            self.assertEqual(status, 201, answer)
        finally:
            os.killpg(pub.pid, 15)
            pub.wait(10)
        session = headers["Location"].rsplit("/", 1)[1]
        # The publisher is gone once the node hears nothing from it (peer
        # timeout, 10 s); the viewer goes with the stream, not by its own
        # timeout (it never connects).
        wait_for(lambda: any(session in line and 'reason="the stream ended"' in line
                             for line in self.node.logs().splitlines()), 25,
                 "the viewer to be removed when its stream ended")
        self.assertIn(f"event=whep.fanout.stopping stream={name}", self.node.logs())
        status, _, _ = http("DELETE", self.node.url + headers["Location"])
        self.assertEqual(status, 404)

    def test_metrics_and_cors_preflight(self):
        status, _, body = http("GET", self.node.url + "/metrics")
        self.assertEqual(status, 200)
        self.assertIn(b'xdn_stream_viewers{stream="demo"}', body)
        self.assertIn(b"# TYPE xdn_sessions gauge", body)
        status, hdrs, _ = http("OPTIONS", self.node.url + "/whep/demo")
        self.assertEqual(status, 204)
        self.assertIn("POST", hdrs.get("Access-Control-Allow-Methods", ""))


class WebRtcBinEgress(unittest.TestCase):
    """The fallback: one webrtcbin per viewer."""

    def test_demo_plays_through_webrtcbin_per_viewer(self):
        with Node("--egress", "webrtcbin", demo=True) as node:
            node.wait_stream("demo", timeout=20, tracks=2)
            s = play(node.whep_url("demo"))
            print(f"demo via WHEP (webrtcbin): {s}")
            self.assertGreaterEqual(s["frames-read"], 50)
            self.assertNotIn("fanout.started", node.logs())


if __name__ == "__main__":
    unittest.main(verbosity=2)
