"""The UDP impairment proxy (tests/tools/udp_impair.py) does what it is set to
do, measured end to end on loopback through a UDP echo: random loss at the
set rate (and the same drops for the same seed), added delay and jitter,
order kept unless reordering is allowed, a bandwidth cap with a bounded
queue; and an SRT stream through it at 5 % loss and 20 ms each way arrives
whole: byte for byte, no MPEG-TS continuity errors, nothing ffmpeg complains
about."""
import json
import os
import select
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tools"))
from udp_impair import Impairment, UdpImpair  # noqa: E402

FFMPEG = shutil.which("ffmpeg")
SRT_LIVE_TRANSMIT = shutil.which("srt-live-transmit")
BUFFER_BYTES = 4 * 1024 * 1024
HEADER = struct.Struct("!Id")  # sequence number, send time (time.monotonic)


def udp_socket():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    for option in (socket.SO_RCVBUF, socket.SO_SNDBUF):
        s.setsockopt(socket.SOL_SOCKET, option, BUFFER_BYTES)
    s.bind(("127.0.0.1", 0))
    return s


def wait_for(predicate, timeout, what, interval=0.02):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout}s waiting for {what}")


def percentile(values, p):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(p / 100 * len(ordered)) - 1))]


class Receiver:
    """A thread that reads one socket and records (arrival time, payload);
    with echo=True it also sends every datagram back to its sender."""

    def __init__(self, sock, echo):
        self.sock = sock
        self.echo = echo
        self.received = []  # (time.monotonic(), payload)
        self.lock = threading.Lock()
        self.stopping = False
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        while not self.stopping:
            if not select.select([self.sock], [], [], 0.05)[0]:
                continue
            payload, sender = self.sock.recvfrom(65535)
            now = time.monotonic()
            if self.echo:
                self.sock.sendto(payload, sender)
            with self.lock:
                self.received.append((now, payload))

    def count(self):
        with self.lock:
            return len(self.received)

    def packets(self):
        """[(arrival, sequence, sent, size)]"""
        with self.lock:
            return [(t, *HEADER.unpack_from(p), len(p)) for t, p in self.received]

    def stop(self):
        self.stopping = True
        self.thread.join()
        self.sock.close()


class Path:
    """client -> proxy -> echo and back, all on loopback."""

    def __init__(self, test, **proxy_options):
        self.echo = Receiver(udp_socket(), echo=True)
        test.addCleanup(self.echo.stop)
        self.proxy = UdpImpair(self.echo.sock.getsockname(), **proxy_options).start()
        test.addCleanup(self.proxy.stop)
        self.client_socket = udp_socket()
        self.client = Receiver(self.client_socket, echo=False)
        test.addCleanup(self.client.stop)

    def send(self, count, interval, size=64):
        """Sends @count numbered packets, one every @interval seconds (paced
        against the clock, so that a late wake-up does not slow the rate)."""
        padding = b"\0" * (size - HEADER.size)
        start = time.monotonic()
        for seq in range(count):
            delay = start + seq * interval - time.monotonic()
            if delay > 0.0005:
                time.sleep(delay)
            self.client_socket.sendto(HEADER.pack(seq, time.monotonic()) + padding,
                                      ("127.0.0.1", self.proxy.port))

    def settle(self, timeout=10):
        """Waits until the proxy holds nothing and both ends have read all
        it forwarded; returns its counters."""
        def settled():
            c = self.proxy.counters()
            return (c["queued"] == 0 and
                    self.echo.count() == c["to_target"]["forwarded"] and
                    c["to_client"]["received"] == c["to_target"]["forwarded"] and
                    self.client.count() == c["to_client"]["forwarded"] and c)
        return wait_for(settled, timeout, f"the proxy to settle (counters {self.proxy.counters()})")

    def round_trips_ms(self):
        return [(t - sent) * 1000 for t, _, sent, _ in self.client.packets()]


class UdpImpairTest(unittest.TestCase):
    def test_loss_matches_the_setting_over_10000_packets_and_repeats_with_the_seed(self):
        path = Path(self, to_target=Impairment(loss=10), to_client=Impairment(loss=5), seed=42)
        path.send(10000, 0.00005)
        c = path.settle()
        self.assertEqual(c["to_target"]["received"], 10000, "the kernel dropped packets before the proxy")
        self.assertEqual(c["to_target"]["send_errors"] + c["to_client"]["send_errors"], 0)
        at_echo = path.echo.count()
        loss_out = 1 - at_echo / 10000
        loss_back = 1 - path.client.count() / at_echo
        print(f"loss to target {loss_out:.4f} (set 0.10), to client {loss_back:.4f} (set 0.05)")
        self.assertAlmostEqual(loss_out, 0.10, delta=0.01)
        self.assertAlmostEqual(loss_back, 0.05, delta=0.01)
        self.assertEqual(c["to_target"]["dropped"], 10000 - at_echo)

        # The same seed drops the same packets.
        first = {seq for _, seq, _, _ in path.echo.packets() if seq < 2000}
        again = Path(self, to_target=Impairment(loss=10), to_client=Impairment(loss=5), seed=42)
        again.send(2000, 0.00005)
        again.settle()
        self.assertEqual({seq for _, seq, _, _ in again.echo.packets()}, first)

    def test_delay_is_added_within_5_ms_at_p50(self):
        base = Path(self)
        base.send(300, 0.002)
        base.settle()
        baseline = percentile(base.round_trips_ms(), 50)

        delayed = Path(self, to_target=Impairment(delay_ms=20), to_client=Impairment(delay_ms=10))
        delayed.send(300, 0.002)
        delayed.settle()
        rtts = delayed.round_trips_ms()
        added = percentile(rtts, 50) - baseline
        print(f"round trip p50 {baseline:.2f} ms direct, {percentile(rtts, 50):.2f} ms with 20 + 10 ms "
              f"added (p5 {percentile(rtts, 5):.2f}, p95 {percentile(rtts, 95):.2f})")
        self.assertEqual(len(rtts), 300)
        self.assertAlmostEqual(added, 30, delta=5)
        self.assertGreaterEqual(min(rtts), 29, "a packet left before its delay")

    def test_jitter_spreads_delay_and_keeps_order_unless_reordering_is_allowed(self):
        jittered = Path(self, to_target=Impairment(delay_ms=20, jitter_ms=8))
        jittered.send(500, 0.001)
        jittered.settle()
        one_way = [(t - sent) * 1000 for t, _, sent, _ in jittered.echo.packets()]
        order = [seq for _, seq, _, _ in jittered.echo.packets()]
        print(f"one way with 20 +- 8 ms, in order: p5 {percentile(one_way, 5):.2f}, "
              f"p50 {percentile(one_way, 50):.2f}, p95 {percentile(one_way, 95):.2f} ms")
        self.assertEqual(order, sorted(order), "packets were reordered without --reorder")
        self.assertGreater(percentile(one_way, 95) - percentile(one_way, 5), 4, "no jitter")
        # Keeping the order holds a packet behind a later-drawn one ahead of
        # it: dense traffic sees the delay shifted up, never past delay + jitter.
        self.assertGreaterEqual(percentile(one_way, 5), 12 - 0.5)
        self.assertGreaterEqual(percentile(one_way, 50), 20 - 2)
        self.assertLessEqual(percentile(one_way, 95), 28 + 5)

        reordering = Path(self, to_target=Impairment(delay_ms=20, jitter_ms=8), reorder=True)
        reordering.send(500, 0.001)
        reordering.settle()
        order = [seq for _, seq, _, _ in reordering.echo.packets()]
        swapped = sum(1 for a, b in zip(order, order[1:]) if b < a)
        one_way = [(t - sent) * 1000 for t, _, sent, _ in reordering.echo.packets()]
        print(f"with reordering: {swapped} of 500 packets arrived before an earlier one; "
              f"one way p5 {percentile(one_way, 5):.2f}, p95 {percentile(one_way, 95):.2f} ms")
        self.assertEqual(sorted(order), list(range(500)))
        self.assertGreater(swapped, 25)
        self.assertGreaterEqual(min(one_way), 11.5)
        self.assertLessEqual(percentile(one_way, 50), 25)

    def test_rate_limit_holds_within_10_percent_and_the_queue_is_bounded(self):
        rate_kbps, size, queue = 2000, 1000, 50
        path = Path(self, to_target=Impairment(rate_kbps=rate_kbps, queue_packets=queue))
        path.send(1000, 0.002, size=size)  # 4 Mbit/s for 2 s: twice the cap
        c = path.settle()
        packets = path.echo.packets()
        span = packets[-1][0] - packets[0][0]
        measured = (len(packets) - 1) * size * 8 / span / 1000
        worst_wait_ms = max((t - sent) * 1000 for t, _, sent, _ in packets)
        queue_ms = queue * size * 8 / rate_kbps
        print(f"rate {measured:.0f} kbit/s through a {rate_kbps} kbit/s cap; {c['to_target']['overflow']} "
              f"packets dropped at the full queue; longest wait {worst_wait_ms:.1f} ms "
              f"(queue of {queue} packets = {queue_ms:.0f} ms)")
        self.assertAlmostEqual(measured, rate_kbps, delta=rate_kbps * 0.10)
        self.assertGreater(c["to_target"]["overflow"], 300)
        self.assertLessEqual(worst_wait_ms, queue_ms + 30, "the queue grew past its bound")
        self.assertEqual(c["to_target"]["dropped"], 0)


def ts_continuity_errors(data):
    """MPEG-TS continuity counter errors in @data: (count, first few)."""
    errors, last = [], {}
    for offset in range(0, len(data) - 187, 188):
        packet = data[offset:offset + 188]
        if packet[0] != 0x47:
            errors.append(f"lost sync at byte {offset}")
            break
        pid = ((packet[1] & 0x1F) << 8) | packet[2]
        if pid == 0x1FFF:
            continue
        has_payload = packet[3] & 0x10
        cc = packet[3] & 0x0F
        discontinuity = (packet[3] & 0x20) and packet[4] > 0 and packet[5] & 0x80
        if pid in last and not discontinuity:
            expected = (last[pid] + 1) % 16 if has_payload else last[pid]
            if cc != expected and not (has_payload and cc == last[pid]):  # one duplicate is allowed
                errors.append(f"pid {pid}: expected {expected}, got {cc} at byte {offset}")
        last[pid] = cc
    return len(errors), errors[:5]


def stop(proc, timeout=5):
    """Ends @proc and everything it started."""
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        except ProcessLookupError:
            pass


@unittest.skipUnless(FFMPEG and SRT_LIVE_TRANSMIT, "ffmpeg or srt-live-transmit is not installed")
class SrtThroughImpairment(unittest.TestCase):
    # ffmpeg encodes 8 s of H.264 into MPEG-TS; srt-live-transmit sends it as
    # SRT caller (latency 160 ms, 4 x RTT) through the proxy (5 % loss and
    # 20 ms each way) to srt-live-transmit listening. The sender retransmits
    # on every loss report (retransmitalgo=0): with SRT's default (a packet is
    # retransmitted at most about once per RTT) about one lost packet in 250
    # missed its deadline at this loss rate, measured over 60 s.
    def test_srt_at_5_percent_loss_and_40_ms_rtt_delivers_the_ts_stream_whole(self):
        tmp = tempfile.mkdtemp(prefix="xdn-udp-impair-")
        self.addCleanup(shutil.rmtree, tmp, True)
        received = os.path.join(tmp, "received.ts")
        stats = os.path.join(tmp, "srt-stats.json")
        logs = [os.path.join(tmp, name) for name in ("receiver.log", "sender.log")]
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.bind(("127.0.0.1", 0))
            listen_port = s.getsockname()[1]

        # SRT listener: writes what it receives, untouched.
        with open(received, "wb") as out, open(logs[0], "wb") as log:
            receiver = subprocess.Popen(
                [SRT_LIVE_TRANSMIT, "-a:no", "-q", "-s:200", "-f", "-pf:json", f"-statsout:{stats}",
                 f"srt://127.0.0.1:{listen_port}?mode=listener&latency=160", "file://con"],
                stdout=out, stderr=log, start_new_session=True)
        self.addCleanup(stop, receiver)
        proxy = UdpImpair(("127.0.0.1", listen_port),
                          to_target=Impairment(loss=5, delay_ms=20),
                          to_client=Impairment(loss=5, delay_ms=20), seed=3).start()
        self.addCleanup(proxy.stop)

        # SRT caller fed by ffmpeg through this process, which keeps what it sent.
        with open(logs[1], "wb") as log:
            sender = subprocess.Popen(
                [SRT_LIVE_TRANSMIT, "-a:no", "-q", "-chunk:1316", "file://con",
                 f"srt://127.0.0.1:{proxy.port}?mode=caller&latency=160&retransmitalgo=0"],
                stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=log, start_new_session=True)
        self.addCleanup(stop, sender)
        encoder = subprocess.Popen(
            [FFMPEG, "-nostdin", "-v", "error", "-re", "-f", "lavfi", "-i", "testsrc2=size=320x240:rate=30",
             "-t", "8", "-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency", "-g", "30",
             "-b:v", "1500k", "-flush_packets", "1", "-f", "mpegts", "pipe:1"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
        self.addCleanup(stop, encoder)
        sent = bytearray()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            chunk = encoder.stdout.read1(65536)
            if not chunk:
                break
            sent += chunk
            sender.stdin.write(chunk)
            sender.stdin.flush()
        encoder.stdout.close()
        self.assertEqual(encoder.wait(5), 0, f"ffmpeg failed: {encoder.stderr.read().decode(errors='replace')}")
        encoder.stderr.close()
        # The sender sends whole 1316-byte chunks only and may drop what it
        # has not delivered when its input ends: fill the last chunk with
        # MPEG-TS null packets, then keep the link busy with null packets for
        # a second (many times the SRT latency) so the stream's last packets
        # get their retransmissions.
        null_packet = b"\x47\x1f\xff\x10" + b"\xff" * 184
        while len(sent) % 1316:
            sent += null_packet
            sender.stdin.write(null_packet)
        for _ in range(50):
            sender.stdin.write(null_packet * 7)
            sender.stdin.flush()
            time.sleep(0.02)
        sender.stdin.close()

        def receiver_has_all():
            return os.path.getsize(received) >= len(sent)
        try:
            wait_for(receiver_has_all, 5, "the receiver to write all that was sent")
        except TimeoutError:
            pass  # compared below, with details
        stop(sender)
        try:
            receiver.wait(5)  # -a:no: it ends when the caller goes
        except subprocess.TimeoutExpired:
            stop(receiver)

        counters = proxy.counters()
        with open(received, "rb") as f:
            data = f.read()
        errors, examples = ts_continuity_errors(data)
        decode = subprocess.run([FFMPEG, "-nostdin", "-v", "error", "-i", received, "-f", "null", "-"],
                                capture_output=True, timeout=60)
        srt = srt_receiver_totals(stats)
        print(f"sent {len(sent)} bytes (and null packets after), received {len(data)}; proxy dropped "
              f"{counters['to_target']['dropped']} of {counters['to_target']['received']} packets to the "
              f"listener and {counters['to_client']['dropped']} of {counters['to_client']['received']} back; "
              f"SRT receiver: {srt}")
        details = "; ".join(f"{os.path.basename(p)}: {tail(p)}" for p in logs)
        self.assertGreater(len(sent), 8 * 1500_000 / 8 * 0.5, "ffmpeg sent too little")
        self.assertGreater(counters["to_target"]["dropped"], 0)
        self.assertGreater(counters["to_client"]["dropped"], 0)
        self.assertEqual(errors, 0, f"continuity errors: {examples}; {details}")
        self.assertGreaterEqual(len(data), len(sent), f"bytes missing; {details}")
        self.assertTrue(data[:len(sent)] == bytes(sent), "the received stream differs from the sent one")
        self.assertEqual(data[len(sent):], null_packet * ((len(data) - len(sent)) // 188))
        self.assertEqual(decode.stderr.decode(errors="replace").strip(), "",
                         "ffmpeg reports errors in the received stream")
        if srt is not None:
            self.assertGreater(srt["lost"], 0, "SRT saw no loss to recover")
            self.assertEqual(srt["dropped"], 0, "SRT dropped packets too late to recover")


def tail(path, size=1000):
    with open(path, errors="replace") as f:
        return f.read()[-size:]


def srt_receiver_totals(path):
    """The last receive totals srt-live-transmit wrote ({lost, retransmitted,
    dropped} packets), or None."""
    try:
        with open(path) as f:
            lines = [line.strip().rstrip(",") for line in f if line.strip().startswith("{")]
    except OSError:
        return None
    for line in reversed(lines):
        try:
            recv = json.loads(line).get("recv", {})
        except ValueError:
            continue
        if "packetsLost" in recv:
            return {"lost": recv["packetsLost"], "retransmitted": recv.get("packetsRetransmitted", 0),
                    "dropped": recv.get("packetsDropped", 0)}
    return None


if __name__ == "__main__":
    unittest.main(verbosity=2)
