"""Helpers for whole-system tests: start a real xdn-node on loopback, wait on
it with bounded timeouts, and stop it (and everything it started) at the end.

Used by the integration and browser tests; stdlib only."""
import json
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request

SOURCE_ROOT = os.environ.get("XDN_SOURCE_ROOT", os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
BUILD_ROOT = os.environ.get("XDN_BUILD_ROOT", os.path.join(SOURCE_ROOT, "build"))
NODE_BINARY = os.path.join(BUILD_ROOT, "apps", "node", "xdn-node")


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
                     "--ice-addresses", "127.0.0.1", *args]
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
        wait_for(lambda: self.proc.poll() is None and
                 http("GET", self.url + "/api/v1/streams", timeout=1)[0] == 200,
                 timeout, f"xdn-node on port {self.http_port} to answer")
        return self

    def stop(self, timeout=10):
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

    def whip_url(self, name):
        return f"{self.url}/whip/{name}"

    def srt_url(self, name, mode="publish"):
        return f"srt://127.0.0.1:{self.srt_port}?streamid=#!::r={name},m={mode}"


def gst_env():
    """The environment the tests give GStreamer: the plugin just built."""
    env = dict(os.environ)
    env.setdefault("GST_PLUGIN_PATH_1_0", os.path.join(BUILD_ROOT, "plugins", "xdn"))
    return env
