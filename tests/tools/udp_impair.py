#!/usr/bin/env python3
"""udp_impair: a UDP proxy that impairs the path between one client and one
target, to test links (SRT, WebRTC) against loss, delay, jitter and a
bandwidth limit on loopback.

It listens on a UDP port, forwards what the client sends there to the target,
and forwards the target's replies back to the client (the last address that
sent to the listening port: one client, the SRT caller/listener pattern).
Each direction has its own impairment:

- loss: percent of packets dropped at random (seeded: the same seed and the
  same packets give the same drops);
- rate: a token bucket (kbit/s, depth `burst` bytes) in front of a bounded
  FIFO queue (`queue` packets); a packet arriving at a full queue is dropped;
- delay and jitter: each packet leaves `delay` ms (plus or minus up to
  `jitter` ms, uniform) after the rate limit released it. Packets keep their
  order unless reordering is allowed, in which case jitter may swap them.

Packets are timed by one scheduler thread holding a heap of departures, not by
a sleep per packet; a receiver thread reads both sockets.

Command line (see --help):

    udp_impair.py --listen 127.0.0.1:9100 --target 127.0.0.1:9000 \\
        --loss 5 --delay 20 --jitter 2 --rate 8000 --duration 60

From a test:

    from udp_impair import Impairment, UdpImpair
    with UdpImpair(("127.0.0.1", 9000), to_target=Impairment(loss=5, delay_ms=20),
                   to_client=Impairment(delay_ms=20), seed=7) as proxy:
        ...  # send to ("127.0.0.1", proxy.port)
        print(proxy.counters())

Python 3.8+, standard library only.
"""
import argparse
import collections
import dataclasses
import heapq
import json
import random
import selectors
import signal
import socket
import sys
import threading
import time

TO_TARGET = "to_target"
TO_CLIENT = "to_client"
DIRECTIONS = (TO_TARGET, TO_CLIENT)

MAX_DATAGRAM = 65535
SOCKET_BUFFER_BYTES = 4 * 1024 * 1024
POLL_SECONDS = 0.1  # how often the receiver looks at the stop flag


@dataclasses.dataclass
class Impairment:
    """What happens to the packets of one direction."""

    loss: float = 0.0           # percent of packets dropped at random, 0..100
    delay_ms: float = 0.0       # added after the rate limit
    jitter_ms: float = 0.0      # delay varies by up to +-jitter_ms (uniform), never below 0
    rate_kbps: float = 0.0      # token bucket rate in kbit/s; 0: unlimited
    burst_bytes: int = 0        # token bucket depth; 0: max(2000, 10 ms at the rate)
    queue_packets: int = 200    # packets that may wait for the rate limit

    def validate(self, name):
        if not 0.0 <= self.loss <= 100.0:
            raise ValueError(f"{name}: loss must be within 0..100 percent, not {self.loss}")
        for field in ("delay_ms", "jitter_ms", "rate_kbps", "burst_bytes"):
            if getattr(self, field) < 0:
                raise ValueError(f"{name}: {field} must not be negative")
        if self.queue_packets < 1:
            raise ValueError(f"{name}: queue_packets must be at least 1")


class _Direction:
    """One direction's random stream, token bucket, queue and counters.
    Used under UdpImpair._cond only."""

    def __init__(self, name, impairment, seed, reorder):
        self.name = name
        self.imp = impairment
        self.reorder = reorder
        # A string seed is hashed with SHA-512: the same on every run.
        self.rng = random.Random(f"{seed}:{name}")
        self.rate = impairment.rate_kbps * 1000.0 / 8.0  # bytes per second
        self.burst = impairment.burst_bytes or max(2000.0, self.rate * 0.010)
        self.tail_release = None    # when the last admitted packet passed the bucket
        self.tail_tokens = self.burst  # tokens left at that moment
        self.waiting = collections.deque()  # release times of packets still queued
        self.last_departure = 0.0
        self.counters = {"received": 0, "forwarded": 0, "dropped": 0, "overflow": 0,
                         "bytes_forwarded": 0, "send_errors": 0}

    def admit(self, now, size):
        """The departure time of a packet that arrived at @now, or None when
        it is dropped (loss or a full queue)."""
        self.counters["received"] += 1
        if self.imp.loss > 0.0 and self.rng.random() * 100.0 < self.imp.loss:
            self.counters["dropped"] += 1
            return None

        release = now
        if self.rate > 0.0:
            while self.waiting and self.waiting[0] <= now:
                self.waiting.popleft()
            if len(self.waiting) >= self.imp.queue_packets:
                self.counters["overflow"] += 1
                return None
            start = now if self.tail_release is None else max(now, self.tail_release)
            tokens = self.burst if self.tail_release is None else min(
                self.burst, self.tail_tokens + (start - self.tail_release) * self.rate)
            if tokens >= size:
                release, tokens = start, tokens - size
            else:
                release, tokens = start + (size - tokens) / self.rate, 0.0
            self.tail_release, self.tail_tokens = release, tokens
            if release > now:
                self.waiting.append(release)

        delay = self.imp.delay_ms
        if self.imp.jitter_ms > 0.0:
            delay += self.rng.uniform(-self.imp.jitter_ms, self.imp.jitter_ms)
        departure = release + max(0.0, delay) / 1000.0
        if not self.reorder:
            departure = max(departure, self.last_departure)
        self.last_departure = max(self.last_departure, departure)
        return departure


def _resolve(host, port):
    family, _, _, _, address = socket.getaddrinfo(host, port, 0, socket.SOCK_DGRAM)[0]
    return family, address


def _udp_socket(family):
    s = socket.socket(family, socket.SOCK_DGRAM)
    for option in (socket.SO_RCVBUF, socket.SO_SNDBUF):
        try:
            s.setsockopt(socket.SOL_SOCKET, option, SOCKET_BUFFER_BYTES)
        except OSError:
            pass  # the kernel's limit applies
    return s


class UdpImpair:
    """The proxy. start() binds and starts its two threads; stop() ends them
    and closes the sockets (also through `with`)."""

    def __init__(self, target, listen=("127.0.0.1", 0), to_target=None, to_client=None,
                 seed=1, reorder=False):
        self.impairments = {TO_TARGET: to_target or Impairment(), TO_CLIENT: to_client or Impairment()}
        for name, imp in self.impairments.items():
            imp.validate(name)
        self.target_family, self.target = _resolve(*target)
        self.listen_family, self.listen_address = _resolve(*listen)
        self.seed = seed
        self.reorder = reorder

        self._cond = threading.Condition()  # guards everything below
        self._directions = {name: _Direction(name, imp, seed, reorder)
                            for name, imp in self.impairments.items()}
        self._heap = []        # (departure, sequence, direction, payload)
        self._sequence = 0     # ties keep arrival order
        self._client = None    # the last address that sent to the listening port
        self._no_client = 0    # target packets dropped before any client spoke
        self._stopping = False

        self._client_socket = None
        self._target_socket = None
        self._threads = []

    # --- life cycle ----------------------------------------------------------

    def start(self):
        self._client_socket = _udp_socket(self.listen_family)
        self._client_socket.bind(self.listen_address)
        self._target_socket = _udp_socket(self.target_family)
        self._target_socket.bind(("::" if self.target_family == socket.AF_INET6 else "0.0.0.0", 0))
        for s in (self._client_socket, self._target_socket):
            s.setblocking(False)
        self._threads = [threading.Thread(target=self._receive, name="udp-impair-receive", daemon=True),
                         threading.Thread(target=self._schedule, name="udp-impair-schedule", daemon=True)]
        for t in self._threads:
            t.start()
        return self

    def stop(self):
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        for t in self._threads:
            t.join()
        self._threads = []
        for s in (self._client_socket, self._target_socket):
            if s:
                s.close()
        self._client_socket = self._target_socket = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    @property
    def address(self):
        """(host, port) the proxy listens on."""
        return self._client_socket.getsockname()[:2]

    @property
    def port(self):
        return self.address[1]

    def counters(self):
        """Per direction: received, forwarded, dropped (random loss), overflow
        (queue full), bytes_forwarded, send_errors; to_client also no_client
        (replies that came before any client)."""
        with self._cond:
            result = {name: dict(d.counters) for name, d in self._directions.items()}
            result[TO_CLIENT]["no_client"] = self._no_client
            result["queued"] = len(self._heap)
        return result

    # --- threads -------------------------------------------------------------

    def _receive(self):
        selector = selectors.DefaultSelector()
        selector.register(self._client_socket, selectors.EVENT_READ, TO_TARGET)
        selector.register(self._target_socket, selectors.EVENT_READ, TO_CLIENT)
        try:
            while True:
                with self._cond:
                    if self._stopping:
                        return
                for key, _ in selector.select(POLL_SECONDS):
                    self._drain(key.fileobj, key.data)
        finally:
            selector.close()

    def _drain(self, sock, direction):
        """Reads every datagram waiting on @sock and queues it."""
        while True:
            try:
                payload, sender = sock.recvfrom(MAX_DATAGRAM)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return  # e.g. an ICMP error reported on the socket; keep going
            now = time.monotonic()
            with self._cond:
                if direction == TO_TARGET:
                    self._client = sender
                elif sender[:2] != self.target[:2]:
                    continue  # not from the target
                elif self._client is None:
                    self._no_client += 1
                    continue
                departure = self._directions[direction].admit(now, len(payload))
                if departure is None:
                    continue
                self._sequence += 1
                heapq.heappush(self._heap, (departure, self._sequence, direction, payload))
                if self._heap[0][1] == self._sequence:
                    self._cond.notify()  # a new earliest departure

    def _schedule(self):
        while True:
            with self._cond:
                while True:
                    if self._stopping:
                        return
                    now = time.monotonic()
                    if self._heap and self._heap[0][0] <= now:
                        break
                    self._cond.wait(self._heap[0][0] - now if self._heap else None)
                due = []
                while self._heap and self._heap[0][0] <= now:
                    due.append(heapq.heappop(self._heap))
                client = self._client
            sent = []
            for _, _, direction, payload in due:
                address = self.target if direction == TO_TARGET else client
                sock = self._target_socket if direction == TO_TARGET else self._client_socket
                try:
                    sock.sendto(payload, address)
                    sent.append((direction, len(payload), True))
                except OSError:
                    sent.append((direction, len(payload), False))
            with self._cond:
                for direction, size, ok in sent:
                    c = self._directions[direction].counters
                    if ok:
                        c["forwarded"] += 1
                        c["bytes_forwarded"] += size
                    else:
                        c["send_errors"] += 1


# --- command line --------------------------------------------------------------

def _host_port(text, default_host="127.0.0.1"):
    """PORT, HOST:PORT or [V6]:PORT."""
    if text.startswith("["):
        host, _, port = text[1:].partition("]:")
    elif ":" in text:
        host, _, port = text.rpartition(":")
    else:
        host, port = default_host, text
    try:
        return host or default_host, int(port)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not HOST:PORT: {text!r}")


PER_DIRECTION = (
    # flag, Impairment field, type, help
    ("loss", "loss", float, "percent of packets dropped at random"),
    ("delay", "delay_ms", float, "added delay in ms"),
    ("jitter", "jitter_ms", float, "delay varies by up to +-MS (uniform)"),
    ("rate", "rate_kbps", float, "bandwidth limit in kbit/s (token bucket), 0 for none"),
    ("burst", "burst_bytes", int, "token bucket depth in bytes (default: max(2000, 10 ms at the rate))"),
    ("queue", "queue_packets", int, "packets that may wait for the rate limit before drops (default 200)"),
)


def parse_args(argv):
    p = argparse.ArgumentParser(
        prog="udp_impair.py",
        description="UDP proxy between one client and one target, with loss, delay, jitter and a "
                    "bandwidth limit per direction. Each impairment flag sets both directions; "
                    "the -to-target / -to-client forms set one.")
    p.add_argument("--listen", type=_host_port, default=("127.0.0.1", 0),
                   help="[HOST:]PORT to listen on for the client (default 127.0.0.1, any free port)")
    p.add_argument("--target", type=_host_port, required=True, help="HOST:PORT to forward to")
    for flag, _, kind, text in PER_DIRECTION:
        p.add_argument("--" + flag, type=kind, help=text + " (both directions)")
        p.add_argument(f"--{flag}-to-target", type=kind, help=text + " (client to target)")
        p.add_argument(f"--{flag}-to-client", type=kind, help=text + " (target to client)")
    p.add_argument("--reorder", action="store_true", help="let jitter reorder packets")
    p.add_argument("--seed", type=int, default=1, help="random seed for loss and jitter (default 1)")
    p.add_argument("--duration", type=float, default=0.0,
                   help="stop after this many seconds (default: until SIGTERM or SIGINT)")
    return p.parse_args(argv)


def impairments_from(args):
    result = {}
    for direction, suffix in ((TO_TARGET, "_to_target"), (TO_CLIENT, "_to_client")):
        imp = Impairment()
        for flag, field, _, _ in PER_DIRECTION:
            both = getattr(args, flag)
            one = getattr(args, flag + suffix)
            value = one if one is not None else both
            if value is not None:
                setattr(imp, field, value)
        result[direction] = imp
    return result


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    imps = impairments_from(args)
    try:
        proxy = UdpImpair(args.target, listen=args.listen, to_target=imps[TO_TARGET],
                          to_client=imps[TO_CLIENT], seed=args.seed, reorder=args.reorder)
        proxy.start()
    except (ValueError, OSError) as e:
        print(f"udp_impair: {e}", file=sys.stderr)
        return 2

    done = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: done.set())
    host, port = proxy.address
    print(f"listening {host}:{port} target {args.target[0]}:{args.target[1]}", flush=True)
    done.wait(args.duration if args.duration > 0 else None)
    proxy.stop()
    print(json.dumps(proxy.counters()), file=sys.stderr, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
