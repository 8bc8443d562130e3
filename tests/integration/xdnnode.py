"""Helpers for whole-system tests: start a real xdn-node on loopback, wait on
it with bounded timeouts, and stop it (and everything it started) at the end.

Used by the integration and browser tests; stdlib only."""
import atexit
import json
import os
import re
import signal
import socket
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.request

SOURCE_ROOT = os.environ.get("XDN_SOURCE_ROOT", os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
BUILD_ROOT = os.environ.get("XDN_BUILD_ROOT", os.path.join(SOURCE_ROOT, "build"))
NODE_BINARY = os.path.join(BUILD_ROOT, "apps", "node", "xdn-node")

# Processes started and not stopped yet: a test that fails before its own
# clean-up (in setUpClass, say) leaves none running when it exits.
_running = set()


@atexit.register
def _stop_left_running():
    for p in list(_running):
        p.stop()


def free_port(kind=socket.SOCK_STREAM):
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(predicate, timeout, what, interval=0.05):
    """Polls predicate() until it returns a truthy value or timeout passes."""
    deadline = time.monotonic() + timeout
    last_error = None
    while time.monotonic() < deadline:
        try:
            value = predicate()
            if value:
                return value
        except Exception as e:  # keep polling; report the last failure
            last_error = e
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout}s waiting for {what}"
                       + (f" (last error: {last_error})" if last_error else ""))


def http(method, url, body=None, headers=None, timeout=10):
    """Returns (status, headers, body bytes) without raising on HTTP errors."""
    req = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


class Node:
    """An xdn-node process on loopback with its own ports and log file."""

    def __init__(self, *args, demo=False, log_dir=None):
        self.http_port = free_port()
        self.srt_port = free_port(socket.SOCK_DGRAM)
        self.url = f"http://127.0.0.1:{self.http_port}"
        self.args = [NODE_BINARY, "--http-port", str(self.http_port),
                     "--srt-port", str(self.srt_port),
                     "--ice-addresses", "127.0.0.1", *egress_args(), *args]
        if demo:
            self.args.append("--demo")
        log_dir = log_dir or os.path.join(BUILD_ROOT, "tests", "logs")
        os.makedirs(log_dir, exist_ok=True)
        self.log_path = os.path.join(log_dir, f"xdn-node-{self.http_port}.log")
        self.proc = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def start(self, timeout=15):
        self.log = open(self.log_path, "w")
        self.proc = subprocess.Popen(self.args, stdout=self.log, stderr=subprocess.STDOUT,
                                     env=gst_env(), start_new_session=True)
        _running.add(self)
        wait_for(lambda: self.proc.poll() is None and
                 http("GET", self.url + "/api/v1/streams", timeout=1)[0] == 200,
                 timeout, f"xdn-node on port {self.http_port} to answer")
        return self

    def stop(self, timeout=10):
        _running.discard(self)
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        if getattr(self, "log", None):
            self.log.close()

    def logs(self):
        with open(self.log_path) as f:
            return f.read()

    def api(self, path):
        status, _, body = http("GET", self.url + "/api/v1" + path)
        return status, (json.loads(body) if body else None)

    def stream(self, name):
        status, body = self.api("/streams/" + name)
        return body if status == 200 else None

    def wait_stream(self, name, timeout=15, tracks=1):
        """Waits until the stream is live with at least @tracks tracks."""
        return wait_for(lambda: (s := self.stream(name)) and len(s.get("tracks", [])) >= tracks and s,
                        timeout, f"stream {name} to be live with {tracks} track(s)")

    def whep_url(self, name):
        return f"{self.url}/whep/{name}"

    def metric(self, name, labels=""):
        return metric_sample(self.url, name, labels)

    def whip_url(self, name):
        return f"{self.url}/whip/{name}"

    def srt_url(self, name, mode="publish"):
        return f"srt://127.0.0.1:{self.srt_port}?streamid=#!::r={name},m={mode}"


def metric_sample(url, name, labels=""):
    """The value of one sample of the /metrics at @url (labels as written
    there, e.g. 'stream="demo"'), or None."""
    status, _, body = http("GET", url + "/metrics")
    if status != 200:
        return None
    prefix = name + "{" + labels + "}" if labels else name
    for line in body.decode().splitlines():
        if line.startswith(prefix + " "):
            return float(line.split()[-1])
    return None


def start_demo_node(directory, *args):
    """An xdn-node with the 360p 600 kbit/s demo (config written to
    @directory), started, its demo stream live with both tracks."""
    config = os.path.join(directory, "node.ini")
    with open(config, "w") as f:
        f.write(DEMO_360P_CONFIG)
    node = Node("--config", config, *args, demo=True).start()
    node.wait_stream("demo", timeout=20, tracks=2)
    return node


def egress_args():
    """--egress from XDN_NODE_EGRESS (fanout or webrtcbin), so that a suite can
    run against either WHEP egress; a test's own --egress comes after it and wins."""
    egress = os.environ.get("XDN_NODE_EGRESS")
    return ["--egress", egress] if egress else []


def gst_env():
    """The environment the tests give GStreamer: the plugin just built."""
    env = dict(os.environ)
    env.setdefault("GST_PLUGIN_PATH_1_0", os.path.join(BUILD_ROOT, "plugins", "xdn"))
    return env


# ---------------------------------------------------------------- manager

MANAGER_BINARY = os.path.join(BUILD_ROOT, "apps", "manager", "xdn-manager")


class Manager:
    """An xdn-manager process on loopback with its own port and log file.

    @db: sqlite:PATH or postgresql://...; @token: the cluster token (sent by
    request() unless told otherwise)."""

    def __init__(self, db, *args, token="", heartbeat_ms=1000, origin_fanout=None, log_dir=None):
        self.http_port = free_port()
        self.url = f"http://127.0.0.1:{self.http_port}"
        self.token = token
        self.heartbeat_ms = heartbeat_ms
        self.args = [MANAGER_BINARY, "--http-address", "127.0.0.1", "--http-port", str(self.http_port),
                     "--db", db, "--heartbeat-interval-ms", str(heartbeat_ms)]
        if token:
            self.args += ["--cluster-token", token]
        if origin_fanout is not None:
            self.args += ["--origin-fanout", str(origin_fanout)]
        self.args += list(args)
        log_dir = log_dir or os.path.join(BUILD_ROOT, "tests", "logs")
        os.makedirs(log_dir, exist_ok=True)
        self.log_path = os.path.join(log_dir, f"xdn-manager-{self.http_port}.log")
        self.proc = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def start(self, timeout=15):
        self.log = open(self.log_path, "a")
        self.proc = subprocess.Popen(self.args, stdout=self.log, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        _running.add(self)
        wait_for(lambda: self.proc.poll() is None and
                 http("GET", self.url + "/healthz", timeout=1)[0] == 200,
                 timeout, f"xdn-manager on port {self.http_port} to answer"
                 + (f" (exited with {self.proc.returncode})" if self.proc.poll() is not None else ""))
        return self

    def stop(self, timeout=10, sig=signal.SIGTERM):
        _running.discard(self)
        if self.proc and self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, sig)
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
            except ProcessLookupError:
                pass
        if getattr(self, "log", None):
            self.log.close()
            self.log = None

    def logs(self):
        with open(self.log_path) as f:
            return f.read()

    def request(self, method, path, body=None, token=None, headers=None, timeout=10):
        """(status, parsed JSON or None, raw body). @token: None sends the
        manager's token, "" sends none, anything else is sent as is."""
        h = dict(headers or {})
        token = self.token if token is None else token
        if token:
            h["Authorization"] = "Bearer " + token
        if isinstance(body, (dict, list)):
            body = json.dumps(body).encode()
            h.setdefault("Content-Type", "application/json")
        elif isinstance(body, str):
            body = body.encode()
        status, _, raw = http(method, self.url + path, body, h, timeout)
        try:
            parsed = json.loads(raw) if raw else None
        except ValueError:
            parsed = None
        return status, parsed, raw

    def register(self, node_id, role, region="", http_url=None, srt=None, capacity=None):
        body = {"id": node_id, "role": role, "region": region,
                "http": http_url or f"http://127.0.0.1:{free_port()}"}
        if srt is not False and (srt or role != "edge"):
            body["srt"] = srt or f"srt://127.0.0.1:{free_port(socket.SOCK_DGRAM)}"
        if capacity:
            body["capacity"] = capacity
        status, answer, raw = self.request("POST", "/api/v1/nodes", body)
        if status not in (200, 201):
            raise AssertionError(f"register {node_id}: {status} {raw!r}")
        return body

    def heartbeat(self, node_id, streams=(), load=None):
        return self.request("POST", f"/api/v1/nodes/{node_id}/heartbeat",
                            {"load": load or {}, "streams": list(streams)})

    def nodes(self):
        status, body, raw = self.request("GET", "/api/v1/nodes")
        if status != 200:
            raise AssertionError(f"GET /api/v1/nodes: {status} {raw!r}")
        return {n["id"]: n for n in body["nodes"]}

    def streams(self):
        status, body, raw = self.request("GET", "/api/v1/streams")
        if status != 200:
            raise AssertionError(f"GET /api/v1/streams: {status} {raw!r}")
        return {s["name"]: s for s in body["streams"]}

    def events(self, node_id, token=None, timeout=5):
        """A WebSocket on the node's events (token as Bearer header)."""
        token = self.token if token is None else token
        headers = {"Authorization": "Bearer " + token} if token else {}
        return WebSocket("127.0.0.1", self.http_port, f"/api/v1/nodes/{node_id}/events",
                         headers=headers, timeout=timeout)

    def metric(self, name, labels=""):
        return metric_sample(self.url, name, labels)


class WebSocketRefused(Exception):
    def __init__(self, status, body):
        super().__init__(f"WebSocket refused with {status}: {body!r}")
        self.status = status
        self.body = body


class WebSocketClosed(Exception):
    pass


class WebSocket:
    """A minimal RFC 6455 client (stdlib): the handshake, reading text
    frames, answering pings, closing. Enough to watch a manager's events."""

    GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

    def __init__(self, host, port, path, headers=None, timeout=5):
        import base64
        import hashlib
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.buf = b""
        key = base64.b64encode(os.urandom(16)).decode()
        lines = [f"GET {path} HTTP/1.1", f"Host: {host}:{port}", "Upgrade: websocket",
                 "Connection: Upgrade", f"Sec-WebSocket-Key: {key}", "Sec-WebSocket-Version: 13"]
        lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
        self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        head = self._read_until(b"\r\n\r\n", timeout)
        status_line, *header_lines = head.decode("latin-1").split("\r\n")
        status = int(status_line.split()[1])
        fields = {}
        for line in header_lines:
            if ":" in line:
                k, v = line.split(":", 1)
                fields[k.strip().lower()] = v.strip()
        if status != 101:
            length = int(fields.get("content-length", "0"))
            body = self._read_exactly(length, timeout) if length else b""
            self.sock.close()
            raise WebSocketRefused(status, body)
        expected = base64.b64encode(hashlib.sha1((key + self.GUID).encode()).digest()).decode()
        if fields.get("sec-websocket-accept") != expected:
            self.sock.close()
            raise AssertionError("bad Sec-WebSocket-Accept in the handshake answer")

    def _fill(self, deadline):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("no WebSocket data in time")
        self.sock.settimeout(remaining)
        try:
            chunk = self.sock.recv(65536)
        except socket.timeout:
            raise TimeoutError("no WebSocket data in time")
        if not chunk:
            raise WebSocketClosed("connection closed")
        self.buf += chunk

    def _read_until(self, marker, timeout):
        deadline = time.monotonic() + timeout
        while marker not in self.buf:
            self._fill(deadline)
        head, self.buf = self.buf.split(marker, 1)
        return head

    def _read_exactly(self, n, timeout):
        deadline = time.monotonic() + timeout
        while len(self.buf) < n:
            self._fill(deadline)
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def _send(self, opcode, payload=b""):
        mask = os.urandom(4)
        header = bytes([0x80 | opcode])
        n = len(payload)
        if n < 126:
            header += bytes([0x80 | n])
        elif n < 65536:
            header += bytes([0x80 | 126]) + n.to_bytes(2, "big")
        else:
            header += bytes([0x80 | 127]) + n.to_bytes(8, "big")
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        self.sock.sendall(header + mask + masked)

    def recv_text(self, timeout=5):
        """The next text message; answers pings on the way."""
        deadline = time.monotonic() + timeout
        message = b""
        while True:
            head = self._read_exactly(2, max(0.001, deadline - time.monotonic()))
            fin, opcode = head[0] & 0x80, head[0] & 0x0F
            n = head[1] & 0x7F
            if n == 126:
                n = int.from_bytes(self._read_exactly(2, 5), "big")
            elif n == 127:
                n = int.from_bytes(self._read_exactly(8, 5), "big")
            if head[1] & 0x80:
                raise AssertionError("the server masked a frame")
            payload = self._read_exactly(n, max(0.001, deadline - time.monotonic()) + 5)
            if opcode == 0x9:  # ping
                self._send(0xA, payload)
            elif opcode == 0x8:  # close
                raise WebSocketClosed(f"closed by the server: {payload[2:]!r}")
            elif opcode in (0x1, 0x0):
                message += payload
                if fin:
                    return message.decode()

    def recv_json_until(self, predicate, timeout):
        """Reads messages until one (parsed JSON) satisfies @predicate."""
        deadline = time.monotonic() + timeout
        seen = []
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"no matching WebSocket message within {timeout}s; got {seen}")
            try:
                msg = json.loads(self.recv_text(remaining))
            except TimeoutError:
                raise TimeoutError(f"no matching WebSocket message within {timeout}s; got {seen}")
            seen.append(msg)
            if predicate(msg):
                return msg

    def close(self):
        try:
            self._send(0x8, (1000).to_bytes(2, "big"))
        except OSError:
            pass
        self.sock.close()


class FakeNode:
    """A node as the manager sees it, without media: registers, then
    heartbeats from a thread (every half interval, round robin over
    @managers, skipping one that does not answer), registers again on 404.
    set_streams() changes what the heartbeats report."""

    def __init__(self, managers, node_id, role, region="", capacity=None, streams=(), srt=None):
        import threading
        self.managers = managers if isinstance(managers, (list, tuple)) else [managers]
        self.id = node_id
        self.role = role
        self.region = region
        self.capacity = capacity
        self.srt = srt
        self._streams = list(streams)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self.last_ok = None  # monotonic time of the last heartbeat answered 200
        self.state = None
        self.info = self.managers[0].register(node_id, role, region, srt=srt, capacity=capacity)
        self._thread = threading.Thread(target=self._run, name=f"heartbeat-{node_id}", daemon=True)
        self._thread.start()

    def set_streams(self, streams):
        with self._lock:
            self._streams = list(streams)

    def beat_once(self, i=0):
        with self._lock:
            streams = list(self._streams)
        for k in range(len(self.managers)):
            m = self.managers[(i + k) % len(self.managers)]
            try:
                status, body, _ = m.heartbeat(self.id, streams, {"viewers": 0, "cpu": 0.1})
            except OSError:
                continue  # that manager is away: try the next one
            if status == 404:
                m.register(self.id, self.role, self.region, self.info["http"],
                           self.info.get("srt", False), self.capacity)
                continue
            if status == 200:
                self.last_ok = time.monotonic()
                self.state = body.get("state")
                return True
        return False

    def _run(self):
        interval = self.managers[0].heartbeat_ms / 2000.0
        i = 0
        while not self._stop.is_set():
            self.beat_once(i)
            i += 1
            self._stop.wait(interval)

    def stop_heartbeats(self):
        """Stops beating; returns the time of the last answered heartbeat."""
        self._stop.set()
        self._thread.join(10)
        return self.last_ok

    def wait_beating(self, timeout=5):
        wait_for(lambda: self.last_ok is not None, timeout, f"{self.id} to heartbeat")
        return self


# ---------------------------------------------------------------- load tool

LOADTEST_BINARY = os.path.join(BUILD_ROOT, "apps", "loadtest", "xdn-loadtest")
# The SRS benchmark's picture and bitrate: 360p at 600 kbit/s.
DEMO_360P_CONFIG = "[demo]\nwidth=640\nheight=360\nbitrate-kbps=600\n"


def run_loadtest(*args, timeout=50, wrapper=()):
    """Runs xdn-loadtest to the end (under @wrapper, a command prefix such
    as nsenter's); returns (exit status, JSON report or None, stdout,
    stderr). Kills it (and fails) after @timeout seconds."""
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as f:
        path = f.name
    try:
        proc = subprocess.Popen([*wrapper, LOADTEST_BINARY, "--json", path, "--json-viewers", "--progress", "0", *args],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                start_new_session=True)
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            out, err = proc.communicate()
            raise AssertionError(f"xdn-loadtest did not end within {timeout}s:\n{out}\n{err[-3000:]}")
        with open(path) as f:
            text = f.read()
        return proc.returncode, (json.loads(text) if text else None), out, err
    finally:
        os.unlink(path)


FRAME_RE = re.compile(r"xdn-latency, latency-ms=\(double\)([-0-9.e+]+), "
                      r"stamp-ms=\(guint64\)(\d+), frame=\(guint64\)(\d+)")
SUMMARY_RE = re.compile(r"xdn-latency-summary, (.*);")


class LatencyViewer:
    """gst-launch playing a WHEP URL into xdnlatencymeter; records the
    per-frame `xdn-latency` messages and the final summary."""

    def __init__(self, url):
        cmd = ["gst-launch-1.0", "-e", "-m", "xdnwhepsrc", f"location={url}",
               "ice-addresses=127.0.0.1", "audio=false", "!", "videoconvert", "!",
               "xdnlatencymeter", "!", "fakesink"]
        self.frames = []       # (stamp ms, latency ms, meter frame index)
        self.summary = None
        self.tail = []         # the last lines, for failure messages
        self.first_frame = threading.Event()
        self.first_frame_at = None  # wall clock (time.time ()) of the first stamped frame
        self.lock = threading.Lock()
        self.proc = subprocess.Popen(cmd, env=gst_env(), stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True, start_new_session=True)
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        for line in self.proc.stdout:
            with self.lock:
                self.tail = (self.tail + [line])[-40:]
                m = FRAME_RE.search(line)
                if m:
                    self.frames.append((int(m.group(2)), float(m.group(1)), int(m.group(3))))
                    if self.first_frame_at is None:
                        self.first_frame_at = time.time()
                    self.first_frame.set()
                s = SUMMARY_RE.search(line)
                if s:
                    self.summary = {k: float(v) for k, v in
                                    re.findall(r"([a-z0-9-]+)=\([a-z0-9]+\)([0-9.]+)", s.group(1))}

    def finish(self, timeout=15):
        """EOS (SIGINT to gst-launch -e), then the summary; kills it if it hangs."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGINT)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            pass
        self.kill()
        self.reader.join(5)

    def kill(self):
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    def output(self):
        with self.lock:
            return "".join(self.tail)


def frames_not_made_up(stamps, frame_ms):
    """Missing frames in a viewer's capture times (ms, in order): a gap
    over 1.5 frame intervals is a missing frame unless the next frame makes
    it up (its stamp was taken late on a busy publisher: the two gaps
    together stay within 2.5 intervals; a missing frame makes them 3).
    As (index, gap ms, next gap ms)."""
    gaps = [b - a for a, b in zip(stamps, stamps[1:])]
    return [(i, gaps[i], gaps[i + 1] if i + 1 < len(gaps) else None)
            for i in range(len(gaps)) if gaps[i] > 1.5 * frame_ms and
            (i + 1 >= len(gaps) or gaps[i] + gaps[i + 1] > 2.5 * frame_ms)]
