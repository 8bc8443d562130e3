"""Janus Gateway's streaming plugin as a benchmark peer, behind a small WHEP
front so that xdn-loadtest can load it exactly as it loads xdn-node.

Janus (Debian package `janus`, 1.1) runs from a configuration written here:
ICE-lite on 127.0.0.1 only, no IPv6, no mDNS, only the streaming plugin and
the HTTP transport, sessions that never time out (the bench ends them), and
one RTP mountpoint (H.264 + Opus) that the bench's source feeds over UDP.

The streaming plugin offers from the server side, so a WHEP POST becomes:
create a session, attach the plugin, `watch` the mountpoint, wait for the
plugin's offer, answer it with the viewer's ICE credentials, fingerprint and
candidate (the viewer's WHEP offer, re-shaped as an answer to Janus's m=
lines), `start`, and return Janus's offer to the viewer as the WHEP answer.
A viewer that is ICE-controlling and DTLS client (as xdn-loadtest is) meets
an ICE-lite, DTLS-server Janus just as it meets the node. DELETE destroys
the Janus session.
"""
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

JANUS_LIBS = "/usr/lib/x86_64-linux-gnu/janus"
MOUNTPOINT_ID = 1
VIDEO_PT = 96
AUDIO_PT = 111

UNUSED_PLUGINS = ["audiobridge", "duktape", "echotest", "lua", "nosip", "recordplay", "sip",
                  "textroom", "videocall", "videoroom", "voicemail"]
UNUSED_TRANSPORTS = ["mqtt", "nanomsg", "pfunix", "rabbitmq", "websockets"]


def available():
    return shutil.which("janus") is not None and os.path.isdir(JANUS_LIBS)


class Janus:
    """A Janus process with its own configuration folder and ports."""

    def __init__(self, address, http_port, video_port, audio_port, log_path, event_loops=0):
        """@audio_port: None for a mountpoint with video alone."""
        self.address = address
        self.http_port = http_port
        self.video_port = video_port
        self.audio_port = audio_port
        self.log_path = log_path
        self.event_loops = event_loops
        self.url = f"http://127.0.0.1:{http_port}/janus"
        self.dir = tempfile.mkdtemp(prefix="janus-bench-")
        self.proc = None

    def _write_config(self):
        def disabled(names):
            return ",".join(f"libjanus_{n}.so" for n in names)
        loops = f"\tevent_loops = {self.event_loops}\n" if self.event_loops else ""
        audio = (f""",
\t\t{{ type = "audio" mid = "a" port = {self.audio_port} pt = {AUDIO_PT} codec = "opus" }}""" if self.audio_port else "")
        files = {
            "janus.jcfg": f"""general: {{
\tconfigs_folder = "{self.dir}"
\tplugins_folder = "{JANUS_LIBS}/plugins"
\ttransports_folder = "{JANUS_LIBS}/transports"
\tevents_folder = "{JANUS_LIBS}/events"
\tloggers_folder = "{JANUS_LIBS}/loggers"
\tdebug_level = 3
\tsession_timeout = 0
{loops}}}
media: {{
\tipv6 = false
}}
nat: {{
\tice_lite = true
\tice_enforce_list = "{self.address}"
\tignore_mdns = true
}}
plugins: {{
\tdisable = "{disabled(UNUSED_PLUGINS)}"
}}
transports: {{
\tdisable = "{disabled(UNUSED_TRANSPORTS)}"
}}
events: {{
\tbroadcast = false
}}
loggers: {{
\tdisable = "libjanus_jsonlog.so"
}}
""",
            "janus.transport.http.jcfg": f"""general: {{
\tjson = "plain"
\tbase_path = "/janus"
\thttp = true
\tport = {self.http_port}
\tinterface = "lo"
\thttps = false
}}
admin: {{
\tadmin_http = false
}}
""",
            "janus.plugin.streaming.jcfg": f"""general: {{
\tevents = false
}}
bench: {{
\ttype = "rtp"
\tid = {MOUNTPOINT_ID}
\tdescription = "bench"
\tmedia = (
\t\t{{ type = "video" mid = "v" port = {self.video_port} pt = {VIDEO_PT} codec = "h264"
\t\t  fmtp = "profile-level-id=42e01f;packetization-mode=1" }}{audio}
\t)
}}
""",
        }
        for name, text in files.items():
            with open(os.path.join(self.dir, name), "w") as f:
                f.write(text)

    def start(self, wait):
        self._write_config()
        self.log = open(self.log_path, "w")
        self.proc = subprocess.Popen(["janus", "-C", os.path.join(self.dir, "janus.jcfg"),
                                      "-F", self.dir, "--disable-colors"],
                                     stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)
        wait(lambda: self.proc.poll() is None and self._answers(), 15, "janus to answer")
        return self

    def _answers(self):
        try:
            return janus_request(self.url, {"janus": "info"}, timeout=1).get("janus") == "server_info"
        except OSError:
            return False

    def stop(self):
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        if getattr(self, "log", None):
            self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)


_transactions = iter(range(1, 1 << 62))
_transaction_lock = threading.Lock()


def janus_request(url, body, timeout=10):
    """POSTs one Janus API request (with a fresh transaction) and returns
    the parsed reply; raises RuntimeError on a Janus error."""
    with _transaction_lock:
        body = dict(body, transaction=str(next(_transactions)))
    req = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=timeout) as resp:
        reply = json.loads(resp.read())
    if reply.get("janus") == "error":
        raise RuntimeError(f"janus: {reply.get('error')}")
    return reply


def janus_event(url, timeout=10):
    """Long-polls the session at @url for one event."""
    with urllib.request.urlopen(f"{url}?maxev=1", timeout=timeout) as resp:
        reply = json.loads(resp.read())
    return reply[0] if isinstance(reply, list) else reply


def sdp_attribute(sdp, name):
    m = re.search(rf"^a={name}:(.*?)\r?$", sdp, re.M)
    return m.group(1).strip() if m else None


def answer_for(janus_offer, viewer_offer):
    """The answer to Janus's offer, made of the viewer's WHEP offer: its ICE
    credentials, fingerprint and candidates; Janus's m= lines, mids and
    payload types, received only."""
    ufrag = sdp_attribute(viewer_offer, "ice-ufrag")
    pwd = sdp_attribute(viewer_offer, "ice-pwd")
    fingerprint = sdp_attribute(viewer_offer, "fingerprint")
    candidates = re.findall(r"^a=candidate:.*?\r?$", viewer_offer, re.M)
    if not (ufrag and pwd and fingerprint):
        raise ValueError("the viewer's offer has no ICE credentials or fingerprint")
    sections = re.split(r"\r?\n(?=m=)", janus_offer.strip())[1:]
    mids = []
    lines = ["v=0", "o=- 1 1 IN IP4 127.0.0.1", "s=-", "t=0 0"]
    media = []
    for section in sections:
        m_line = section.splitlines()[0]
        kind, _, proto, *pts = m_line[2:].split()
        mid = sdp_attribute(section, "mid") or str(len(mids))
        mids.append(mid)
        media += [f"m={kind} 9 {proto} {' '.join(pts)}", "c=IN IP4 0.0.0.0",
                  f"a=mid:{mid}", "a=recvonly", "a=rtcp-mux", f"a=ice-ufrag:{ufrag}",
                  f"a=ice-pwd:{pwd}", f"a=fingerprint:{fingerprint}", "a=setup:active"]
        media += [line.strip() for line in section.splitlines()
                  if line.startswith(("a=rtpmap:", "a=fmtp:", "a=rtcp-fb:"))]
        if len(mids) == 1:
            media += [c.strip() for c in candidates] + ["a=end-of-candidates"]
    lines.append("a=group:BUNDLE " + " ".join(mids))
    return "\r\n".join(lines + media) + "\r\n"


class WhepFront:
    """WHEP (POST offer, 201 answer, DELETE) in front of Janus's streaming
    plugin, on its own thread."""

    def __init__(self, address, janus_url):
        janus = janus_url

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def reply(self, status, body=b"", headers=()):
                self.send_response(status)
                for k, v in headers:
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self):
                offer = self.rfile.read(int(self.headers.get("Content-Length", 0))).decode()
                session = None
                try:
                    session = janus_request(janus, {"janus": "create"})["data"]["id"]
                    handle = janus_request(f"{janus}/{session}", {
                        "janus": "attach", "plugin": "janus.plugin.streaming"})["data"]["id"]
                    janus_request(f"{janus}/{session}/{handle}", {
                        "janus": "message", "body": {"request": "watch", "id": MOUNTPOINT_ID}})
                    event = janus_event(f"{janus}/{session}", timeout=15)
                    jsep = event.get("jsep")
                    if not jsep or jsep.get("type") != "offer":
                        raise RuntimeError(f"no offer from the streaming plugin: {event}")
                    janus_request(f"{janus}/{session}/{handle}", {
                        "janus": "message", "body": {"request": "start"},
                        "jsep": {"type": "answer", "sdp": answer_for(jsep["sdp"], offer)}})
                except (OSError, RuntimeError, ValueError, KeyError) as e:
                    if session:
                        self._destroy(session)
                    self.reply(502, str(e).encode(), [("Content-Type", "text/plain")])
                    return
                self.reply(201, jsep["sdp"].encode(), [("Content-Type", "application/sdp"),
                                                       ("Location", f"/whep/session/{session}")])

            def do_DELETE(self):
                session = self.path.rsplit("/", 1)[-1]
                self._destroy(session)
                self.reply(200)

            def _destroy(self, session):
                try:
                    janus_request(f"{janus}/{session}", {"janus": "destroy"}, timeout=5)
                except (OSError, RuntimeError):
                    pass

        class Server(ThreadingHTTPServer):
            daemon_threads = True
            request_queue_size = 256  # a ramp of viewers connects at once

        self.server = Server((address, 0), Handler)
        self.url = f"http://{address}:{self.server.server_port}/whep"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def start(self):
        self.thread.start()
        return self

    def stop(self):
        self.server.shutdown()
        self.server.server_close()
