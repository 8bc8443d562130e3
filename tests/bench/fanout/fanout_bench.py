#!/usr/bin/env python3
"""WebRTC egress at scale, side by side: N viewers of one 640x360 30 fps
H.264 stream at 600 kbit/s (with Opus audio, or alone with --no-audio), N rising until delivery or
latency breaks, against

  fanout     xdn-node --egress fanout    (xdnwebrtcfanout, one per stream)
  webrtcbin  xdn-node --egress webrtcbin (one webrtcbin per viewer)
  janus      Janus 1.1's streaming plugin (Debian package `janus`)

all fed in the same run by one source that encodes once (with latency
stamps) and sends the same encoded stream to each: WHIP to the two nodes,
RTP over UDP to Janus's mountpoint. The viewers are xdn-loadtest's, the
same for each server; a few of them decode and read the stamps.

For each server and N, the server process's own CPU from /proc over the
steady part (its idle rate, the ingest, measured just before and
subtracted), SRTP packets delivered per core-second, its threads and RSS
per viewer, delivery (packets received / sent, worst viewer), and the p95
latency of the sampled viewers. A server stops rising at the first N where
a viewer fails, the worst viewer gets under 99.9 % of its packets, or the
sampled p95 exceeds the lone viewer's by more than 30 ms.

The servers and the viewers are in two network namespaces of their own,
joined by a veth pair whose viewer end receives in its own kernel thread
(threaded NAPI, with GRO) and coalesces its interrupts (50 us), as a NIC
would: on loopback the sending process
pays for the receiving side's kernel work too, which is not the server's
own cost (`--link loopback` measures that way instead). Janus would not
gather ICE candidates on loopback anyway.

Needs root (for the namespaces) and ethtool. Run on demand, never as a
timed test:

    python3 tests/bench/fanout/fanout_bench.py
    python3 tests/bench/fanout/fanout_bench.py --servers fanout --viewers 1,500,1000,2000
"""
import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "integration"))
import janus  # noqa: E402
from xdnnode import Node, free_port, gst_env, run_loadtest, wait_for  # noqa: E402

ADDRESS = "10.77.0.1"  # the servers' address
VIEWER_ADDRESS = "10.77.0.2"  # the viewers' (the same as the servers' with --link loopback)
STREAM = "bench"
SERVERS = ("fanout", "webrtcbin", "janus")
MAX_LOSS_PERCENT = 0.1
MAX_LATENCY_RISE_MS = 30.0
# Interrupt coalescing on the viewers' end, as a network card has it: once
# its receive work has run, the next packets wait up to COALESCE_NS for the
# next run instead of each waking it (NAPI_DEFER runs in a row, then it
# sleeps until a packet wakes it again).
COALESCE_NS = 50000
NAPI_DEFER = 100


def in_private_netns():
    """Re-runs this script in new network and mount namespaces (the
    servers') with lo and a veth pair up, ADDRESS on one end, unless it
    already is in them."""
    if os.environ.get("XDN_BENCH_NETNS") == "1":
        return
    if os.geteuid() != 0:
        sys.exit("fanout_bench: needs root to make its own network namespaces")
    setup = ("mount -t sysfs sysfs /sys && ip link set lo up && "
             "ip link add xdnb0 type veth peer name xdnb1 && "
             f"ip addr add {ADDRESS}/24 dev xdnb0 && ip link set xdnb0 up && "
             "tc qdisc replace dev xdnb0 root pfifo limit 50000 && "
             'exec "$@"')
    env = dict(os.environ, XDN_BENCH_NETNS="1")
    os.execvpe("unshare", ["unshare", "-n", "-m", "sh", "-c", setup, "sh", sys.executable,
                           *sys.argv], env)


class ViewerHost:
    """The viewers' network namespace, held by a sleeping process: the
    veth's other end moves in, with VIEWER_ADDRESS, GRO on and its receive
    work in a kernel thread of its own. Everything goes with the process."""

    def __init__(self):
        self.holder = subprocess.Popen(
            ["unshare", "-n", "-m", "sh", "-c", "mount -t sysfs sysfs /sys && exec sleep 100000"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, start_new_session=True)
        try:
            # In its namespaces (with /sys mounted) once it has become the sleep.
            wait_for(lambda: self._comm() == "sleep", 10, "the viewers' namespace")
            subprocess.run(["ip", "link", "set", "xdnb1", "netns", str(self.holder.pid)], check=True)
            self.wrapper = ["nsenter", "-t", str(self.holder.pid), "-n", "-m"]
            subprocess.run([*self.wrapper, "sh", "-c",
                            "ip link set lo up && "
                            f"ip addr add {VIEWER_ADDRESS}/24 dev xdnb1 && ip link set xdnb1 up && "
                            "ethtool -K xdnb1 gro on rx-udp-gro-forwarding on && "
                            "echo 1 > /sys/class/net/xdnb1/threaded && "
                            f"echo {NAPI_DEFER} > /sys/class/net/xdnb1/napi_defer_hard_irqs && "
                            f"echo {COALESCE_NS} > /sys/class/net/xdnb1/gro_flush_timeout"],
                           check=True, stdout=subprocess.DEVNULL)
        except BaseException:
            self.stop()  # the holder would outlive the run
            raise

    def _comm(self):
        try:
            with open(f"/proc/{self.holder.pid}/comm") as f:
                return f.read().strip()
        except OSError:
            return ""

    def stop(self):
        self.holder.kill()
        self.holder.wait()


def source_command(node_urls, janus_ports, with_audio):
    """One encoder (stamped pictures, x264 constrained baseline, Opus),
    teed to a WHIP publisher per node and to Janus's RTP ports, payloaded
    for Janus as xdnwhipsink payloads for the nodes. No branch
    waits for the clock: each server gets a packet as soon as it is made."""
    video = ["videotestsrc", "is-live=true", "pattern=smpte", "!",
             "video/x-raw,width=640,height=360,framerate=30/1", "!", "xdnlatencystamp", "!",
             "x264enc", "tune=zerolatency", "speed-preset=ultrafast", "bitrate=600",
             "key-int-max=60", "!", "video/x-h264,profile=constrained-baseline", "!",
             "tee", "name=v"]
    audio = ["audiotestsrc", "is-live=true", "wave=ticks", "samplesperbuffer=480", "!", "audioconvert", "!",
             "opusenc", "bitrate=32000", "!", "tee", "name=a"] if with_audio else []
    outputs = []
    for i, url in enumerate(node_urls):
        outputs += ["xdnwhipsink", f"name=w{i}", f"location={url}", f"ice-addresses={ADDRESS}",
                    "v.", "!", "queue", "!", f"w{i}."]
        if with_audio:
            outputs += ["a.", "!", "queue", "!", f"w{i}."]
    if janus_ports:
        video_port, audio_port = janus_ports
        outputs += ["v.", "!", "queue", "!", "rtph264pay", "config-interval=-1",
                    f"pt={janus.VIDEO_PT}", "aggregate-mode=zero-latency", "!", "udpsink", f"host={ADDRESS}",
                    f"port={video_port}", "sync=false"]
        if with_audio:
            outputs += ["a.", "!", "queue", "!", "rtpopuspay", f"pt={janus.AUDIO_PT}", "!",
                        "udpsink", f"host={ADDRESS}", f"port={audio_port}", "sync=false"]
    return ["gst-launch-1.0", *video, *audio, *outputs]


class ProcWatch:
    """Samples a process's threads and RSS from /proc while a run lasts."""

    def __init__(self, pid):
        self.pid = pid
        self.threads_max = 0
        self.rss_max_kb = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def status(self):
        fields = {}
        with open(f"/proc/{self.pid}/status") as f:
            for line in f:
                key, _, value = line.partition(":")
                fields[key] = value.split()
        return int(fields["Threads"][0]), int(fields["VmRSS"][0])

    def _run(self):
        while not self._stop.wait(0.25):
            try:
                threads, rss = self.status()
            except (OSError, KeyError):
                return
            self.threads_max = max(self.threads_max, threads)
            self.rss_max_kb = max(self.rss_max_kb, rss)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


def measure(server, pid, url, viewers, args, host):
    """One xdn-loadtest run of @viewers against @url; a row for the table."""
    watch = ProcWatch(pid)
    threads_before, rss_before_kb = watch.status()
    sample = min(args.sample, viewers)
    slow = viewers * args.slow_percent // 100
    slow_args = ["--slow", str(slow), "--slow-rate", "250", "--slow-loss", "5"] if slow else []
    ramp_s = viewers / args.ramp
    with watch:
        status, report, out, err = run_loadtest(
            "--whep", url, "--viewers", str(viewers), "--ramp", f"{args.ramp}/s",
            "--duration", str(args.hold), "--sample", str(sample), *slow_args,
            "--ice-address", VIEWER_ADDRESS if host else ADDRESS,
            "--server-pid", str(pid), "--server-idle", "6", "--json-viewers",
            "--connect-timeout", "20", "--verify-every", "16", timeout=ramp_s + args.hold + 90,
            wrapper=host.wrapper if host else ())
    if report is None:
        raise RuntimeError(f"{server}: xdn-loadtest wrote no report (exit {status}):\n{err[-2000:]}")
    cpu = report["cpu"]
    per_viewer_second = cpu.get("serverSteadyMsPerViewerSecond", -1)
    packets_per_viewer_second = report["packets"] / report["viewerSeconds"] if report["viewerSeconds"] else 0
    # Slow viewers (--slow-percent) lose on their own link: the others count.
    worst = min((v["packets"] / v["expected"] for v in report["viewerResults"]
                 if v.get("expected") and not v.get("slow")), default=0.0)
    return {
        "server": server,
        "viewers": viewers,
        "connected": report["connected"],
        "failed": report["failed"],
        "cpuMsPerViewerSecond": per_viewer_second,
        "serverCores": per_viewer_second * viewers / 1000 if per_viewer_second > 0 else -1,
        "packetsPerCoreSecond": (packets_per_viewer_second / (per_viewer_second / 1000)
                                 if per_viewer_second > 0 else -1),
        "packetsPerViewerSecond": packets_per_viewer_second,
        "lossPercent": report["lossPercent"],
        "worstViewerDelivery": worst,
        "latencyP95Ms": report["latency"]["p95Ms"] if report["latency"]["framesRead"] else -1,
        "framesRead": report["latency"]["framesRead"],
        "threadsBefore": threads_before,
        "threadsMax": watch.threads_max,
        "rssPerViewerKb": (watch.rss_max_kb - rss_before_kb) / viewers,
        "loadtestMsPerViewerSecond": cpu.get("loadtestSteadyMsPerViewerSecond", -1),
        "loadtestLaggedPercent": report["readLag"]["laggedPercent"],
        "failures": report["failures"],
        "slowViewers": slow,
    }


def broken(row, lone_p95):
    """Why this run counts as the server breaking ('' when it held)."""
    if row["failed"] or row["connected"] < row["viewers"]:
        return f"{row['failed']} viewers failed"
    if row["worstViewerDelivery"] < 1 - MAX_LOSS_PERCENT / 100:
        return f"worst viewer got {100 * row['worstViewerDelivery']:.2f} % of its packets"
    if lone_p95 is not None and row["latencyP95Ms"] > lone_p95 + MAX_LATENCY_RISE_MS:
        return f"p95 latency {row['latencyP95Ms']:.1f} ms (lone viewer {lone_p95:.1f} ms)"
    return ""


def print_row(row):
    print(f"{row['server']:<10} {row['viewers']:>5} {row['connected']:>5} "
          f"{row['cpuMsPerViewerSecond']:>8.3f} {row['serverCores']:>6.2f} "
          f"{row['packetsPerCoreSecond'] / 1000:>8.0f}k {row['lossPercent']:>7.3f} "
          f"{100 * row['worstViewerDelivery']:>7.2f} {row['latencyP95Ms']:>7.1f} "
          f"{row['threadsMax']:>6} {row['rssPerViewerKb']:>7.1f} "
          f"{row['loadtestMsPerViewerSecond']:>6.3f}  {row.get('broken', '')}", flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--servers", default=",".join(SERVERS),
                        help="comma-separated, from: " + ", ".join(SERVERS))
    parser.add_argument("--viewers", default="1,100,200,400,800,1600",
                        help="N steps; the first is the lone-viewer baseline")
    parser.add_argument("--hold", type=int, default=15, help="seconds each N is held")
    parser.add_argument("--ramp", type=int, default=100, help="viewers started per second")
    parser.add_argument("--sample", type=int, default=2, help="viewers that decode and read stamps")
    parser.add_argument("--janus-event-loops", type=int, default=0,
                        help="Janus's event_loops (0: its default, a thread per viewer)")
    parser.add_argument("--link", choices=("veth", "loopback"), default="veth",
                        help="how viewers reach the servers (see above)")
    parser.add_argument("--slow-percent", type=int, default=0,
                        help="this share of the viewers sit on an emulated 250 kbit/s link with 5 %% loss "
                             "and NACK their holes (xdn-loadtest --slow); the others must not suffer")
    parser.add_argument("--no-audio", dest="audio", action="store_false",
                        help="send the H.264 stream alone, without Opus (the SRS benchmark's stream)")
    parser.add_argument("--json", help="also write every row to this file")
    args = parser.parse_args()
    servers = [s for s in args.servers.split(",") if s]
    steps = [int(n) for n in args.viewers.split(",")]
    if any(s not in SERVERS for s in servers):
        parser.error("unknown server in --servers")
    if "janus" in servers and not janus.available():
        sys.exit("fanout_bench: janus is not installed (apt-get install janus), or leave it out of --servers")
    in_private_netns()
    # Ctrl-C or a kill still stops every process (and the namespaces) below.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))

    log_dir = tempfile.mkdtemp(prefix="fanout-bench-")
    nodes, targets, procs = {}, {}, []
    jan = front = source = host = None
    try:
        if args.link == "veth":
            host = ViewerHost()
        for egress in ("fanout", "webrtcbin"):
            if egress in servers:
                node = Node("--egress", egress, "--ice-addresses", ADDRESS, "--max-viewers", "100000", "--max-sessions", "100000",
                            log_dir=log_dir).start()
                nodes[egress] = node
                targets[egress] = (node.proc.pid, node.whep_url(STREAM).replace("127.0.0.1", ADDRESS))
        janus_ports = None
        if "janus" in servers:
            janus_ports = (free_port(socket.SOCK_DGRAM), free_port(socket.SOCK_DGRAM) if args.audio else None)
            jan = janus.Janus(ADDRESS, free_port(), *janus_ports, os.path.join(log_dir, "janus.log"),
                              event_loops=args.janus_event_loops).start(wait_for)
            front = janus.WhepFront(ADDRESS, jan.url).start()
            targets["janus"] = (jan.proc.pid, front.url)
        source = subprocess.Popen(source_command([n.whip_url(STREAM) for n in nodes.values()], janus_ports,
                                                 args.audio),
                                  env=gst_env(), stdout=subprocess.DEVNULL,
                                  stderr=open(os.path.join(log_dir, "source.log"), "w"),
                                  start_new_session=True)
        procs.append(source)
        for node in nodes.values():
            node.wait_stream(STREAM, timeout=20, tracks=2 if args.audio else 1)
        time.sleep(2)  # the first keyframe interval, so that Janus has the stream too

        print(f"{'server':<10} {'N':>5} {'conn':>5} {'ms/v-s':>8} {'cores':>6} {'pkt/core-s':>9} "
              f"{'loss%':>7} {'worst%':>7} {'p95ms':>7} {'thr':>6} {'KB/v':>7} {'lt ms':>6}", flush=True)
        rows, lone, live = [], {}, list(servers)
        for viewers in steps:
            for server in list(live):
                pid, url = targets[server]
                row = measure(server, pid, url, viewers, args, host)
                if server not in lone:
                    lone[server] = row["latencyP95Ms"] if row["latencyP95Ms"] >= 0 else None
                    row["broken"] = broken(row, None)
                else:
                    row["broken"] = broken(row, lone[server])
                rows.append(row)
                print_row(row)
                if row["broken"]:
                    live.remove(server)
                time.sleep(2)  # let the server settle its departures
        if args.json:
            with open(args.json, "w") as f:
                json.dump({"rows": rows, "loneP95Ms": lone, "hold": args.hold, "ramp": args.ramp,
                           "audio": args.audio}, f, indent=1)
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
        if front:
            front.stop()
        if jan:
            jan.stop()
        for node in nodes.values():
            node.stop()
        if host:
            host.stop()
    print(f"logs: {log_dir}")


if __name__ == "__main__":
    main()
