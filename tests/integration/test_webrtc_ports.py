"""Whole-node tests of the WebRTC port range (--webrtc-ports MIN-MAX): the
candidates of a WHEP answer (the stream's fan-out) and of a WHIP answer
(the node's webrtcbin) carry ports of the range; when another process holds
the only port of the range, a WHEP viewer and a WHIP publisher get 503 with
the reason, the node keeps serving, and the port is used once it is free
again."""
import os
import random
import socket
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from xdnnode import Node, gst_env, http, start_demo_node, wait_for  # noqa: E402

OFFER = ("v=0\r\no=- 1 0 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 0\r\n"
         "m=video 9 UDP/TLS/RTP/SAVPF 96\r\nc=IN IP4 0.0.0.0\r\na=mid:0\r\na=%s\r\na=rtcp-mux\r\n"
         "a=ice-ufrag:abcd\r\na=ice-pwd:abcdefghijklmnopqrstuvwx\r\n"
         "a=fingerprint:sha-256 00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:"
         "00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF\r\na=setup:actpass\r\n"
         "a=rtpmap:96 H264/90000\r\na=fmtp:96 packetization-mode=1;profile-level-id=42e01f\r\n"
         "a=rtcp-fb:96 nack pli\r\n")
WHEP_OFFER = OFFER % "recvonly"
WHIP_OFFER = OFFER % "sendonly"
SDP = {"Content-Type": "application/sdp"}


def free_udp_range(count):
    """The first port of @count consecutive UDP ports free on 127.0.0.1."""
    for _ in range(100):
        base = random.randrange(42000, 60000 - count)
        socks = []
        try:
            for port in range(base, base + count):
                s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                socks.append(s)
                s.bind(("127.0.0.1", port))
            return base
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    raise AssertionError(f"no {count} consecutive free UDP ports")


def candidate_ports(answer):
    """The ports of the a=candidate lines of an SDP answer."""
    ports = []
    for line in answer.decode().splitlines():
        if line.startswith("a=candidate:"):
            ports.append(int(line.split()[5]))
    return ports


def srt_publish(node, name):
    """gst-launch publishing a live H.264 picture as MPEG-TS over SRT, in
    the profile of the canned offer (so that the fan-out serves it, not the
    webrtcbin fallback)."""
    uri = f"srt://127.0.0.1:{node.srt_port}?latency=60"
    cmd = ["gst-launch-1.0", "videotestsrc", "is-live=true", "!",
           "video/x-raw,width=320,height=180,framerate=30/1", "!",
           "x264enc", "tune=zerolatency", "speed-preset=ultrafast", "bitrate=300", "key-int-max=30", "!",
           "video/x-h264,profile=constrained-baseline", "!", "h264parse", "!", "mpegtsmux", "alignment=7", "!", "srtsink", f"uri={uri}",
           f"streamid=#!::r={name},m=publish", "wait-for-connection=false"]
    return subprocess.Popen(cmd, env=gst_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)


def stop(proc):
    if proc.poll() is None:
        os.killpg(proc.pid, 15)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)
            proc.wait()


class WebRtcPorts(unittest.TestCase):
    def assertAnswerPortsIn(self, url, offer, first, last):
        """POSTs @offer to @url: 201, and every candidate of the answer on
        a port from @first to @last."""
        status, _, answer = http("POST", url, offer.encode(), SDP)
        self.assertEqual(status, 201, answer)
        ports = candidate_ports(answer)
        self.assertTrue(ports, answer)
        for port in ports:
            self.assertTrue(first <= port <= last, f"{url}: port {port} not in {first}-{last}")

    def test_whep_and_whip_candidates_are_in_the_range(self):
        first = free_udp_range(10)
        last = first + 9
        with tempfile.TemporaryDirectory() as directory:
            node = start_demo_node(directory, "--egress", "fanout", "--webrtc-ports", f"{first}-{last}")
            try:
                self.assertIn(f"webrtc_ports={first}-{last}", node.logs())
                self.assertAnswerPortsIn(node.whep_url("demo"), WHEP_OFFER, first, last)
                # The node's webrtcbin for a WHIP publisher: its answer waits
                # for the host candidates.
                self.assertAnswerPortsIn(node.whip_url("live/ports"), WHIP_OFFER, first, last)
            finally:
                node.stop()

    def test_a_range_held_elsewhere_gets_503_and_the_port_once_free(self):
        port = free_udp_range(1)
        holder = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        holder.bind(("127.0.0.1", port))
        name = "live/ports"
        with Node("--egress", "fanout", "--webrtc-ports", f"{port}-{port}") as node:
            pub = srt_publish(node, name)
            try:
                node.wait_stream(name, timeout=20, tracks=1)
                status, _, body = http("POST", node.whep_url(name), WHEP_OFFER.encode(), SDP)
                self.assertEqual(status, 503, body)
                self.assertIn(f"no free WebRTC port in {port}-{port}".encode(), body)
                self.assertIn("event=whep.fanout.failed", node.logs())
                # The node's webrtcbin (a WHIP publisher) gathers no
                # candidate there: refused the same way, not answered.
                status, _, body = http("POST", node.whip_url("live/whip-ports"), WHIP_OFFER.encode(), SDP)
                self.assertEqual(status, 503, body)
                self.assertIn(f"no free WebRTC port in {port}-{port}".encode(), body)
                self.assertIsNone(node.stream("live/whip-ports"))
                # The node keeps serving: the stream is live, the API answers.
                self.assertEqual(node.api("/streams")[0], 200)
                self.assertIsNotNone(node.stream(name))

                # Free again: the next viewer's fan-out binds it.
                holder.close()
                status, headers, answer = http("POST", node.whep_url(name), WHEP_OFFER.encode(), SDP)
                self.assertEqual(status, 201, answer)
                self.assertEqual(set(candidate_ports(answer)), {port}, answer)

                # Its fan-out stops a few seconds after the last viewer left
                # and gives the port back: the next one binds it again.
                status, _, _ = http("DELETE", node.url + headers["Location"])
                self.assertEqual(status, 200)
                wait_for(lambda: f"event=fanout.stopped stream={name}" in node.logs(), 15,
                         "the fan-out to stop")
                status, _, answer = http("POST", node.whep_url(name), WHEP_OFFER.encode(), SDP)
                self.assertEqual(status, 201, answer)
                self.assertEqual(set(candidate_ports(answer)), {port}, answer)
            finally:
                stop(pub)
                holder.close()


if __name__ == "__main__":
    unittest.main(verbosity=2)
