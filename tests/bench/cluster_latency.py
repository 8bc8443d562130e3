#!/usr/bin/env python3
"""Glass-to-glass latency through the relay hops, and the CPU a hop costs.

On loopback: an origin publishes its demo stream (720p30 H.264, 1.5 Mbit/s,
stamped with xdnlatencystamp, through its own WHIP endpoint); a relay pulls
it from the origin; edge A pulls it from the origin, edge B from the relay.
All links are SRT with the same latency (20 ms by default). Three GStreamer
viewers play at once, over WHEP, from the origin (no hop), from edge A (one
hop) and from edge B (two hops), and xdnlatencymeter reads every frame.

What a hop adds is the difference of the viewers' figures in the same run:
edge A - origin (origin -> edge), edge B - edge A (relay -> edge). The CPU
of a hop is the relay's own CPU time over the run (/proc/PID/stat: it only
receives one stream and sends it on), in ms per second and per stream.

Run on demand, never as a timed test:

    unshare -n bash -c 'ip link set lo up; python3 tests/bench/cluster_latency.py --seconds 60'
"""
import argparse
import json
import os
import re
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))
from xdnnode import Node, gst_env  # noqa: E402

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid):
    """User + system CPU seconds of process @pid so far."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def view(url, frames, timeout, results, key):
    """Plays @frames frames from @url; stores the meter's summary in results[key]."""
    cmd = ["gst-launch-1.0", "-m", "xdnwhepsrc", f"location={url}", "ice-addresses=127.0.0.1",
           "audio=false", "!", "videoconvert", "!", "identity", f"eos-after={frames}", "!",
           "xdnlatencymeter", "!", "fakesink"]
    proc = subprocess.Popen(cmd, env=gst_env(), stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                            text=True, start_new_session=True)
    timer = threading.Timer(timeout, proc.kill)
    timer.start()
    try:
        for line in proc.stdout:
            if "xdn-latency-summary" in line:
                results[key] = {k: float(v) for k, v in
                                re.findall(r"([a-z0-9-]+)=\([a-z0-9]+\)([0-9.]+)", line)}
    finally:
        timer.cancel()
        proc.kill()
        proc.wait()


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=int, default=60, help="length of the viewing run")
    parser.add_argument("--srt-latency", type=int, default=20, help="SRT latency of every link, ms")
    parser.add_argument("--json", help="also write the results to this file")
    args = parser.parse_args()

    link = ["--relay-latency", str(args.srt_latency), "--relay-linger", "30"]
    origin = Node("--role", "origin", *link, demo=True)
    with origin:
        origin.wait_stream("demo", timeout=30, tracks=2)
        relay = Node("--role", "relay", "--upstream", f"srt://127.0.0.1:{origin.srt_port}", *link)
        with relay:
            edge_a = Node("--role", "edge", "--upstream", f"srt://127.0.0.1:{origin.srt_port}", *link)
            edge_b = Node("--role", "edge", "--upstream", f"srt://127.0.0.1:{relay.srt_port}", *link)
            with edge_a, edge_b:
                time.sleep(2)  # let the publisher's encoder settle before measuring
                viewers = {"origin": origin, "edge A (origin -> edge)": edge_a,
                           "edge B (origin -> relay -> edge)": edge_b}
                results = {}
                frames = args.seconds * 30
                relay_cpu_start = cpu_seconds(relay.proc.pid)
                start = time.monotonic()
                threads = [threading.Thread(target=view, args=(node.whep_url("demo"), frames,
                                                               args.seconds + 30, results, key))
                           for key, node in viewers.items()]
                for t in threads:
                    t.start()
                for t in threads:
                    t.join()
                elapsed = time.monotonic() - start
                relay_cpu = cpu_seconds(relay.proc.pid) - relay_cpu_start

    missing = [k for k in viewers if k not in results]
    if missing:
        raise SystemExit(f"no latency summary from: {', '.join(missing)}")
    print(f"| viewer on | frames read | unreadable | p50 ms | p95 ms | max ms |")
    print("|---|---|---|---|---|---|")
    for key in viewers:
        r = results[key]
        print(f"| {key} | {r['frames-read']:.0f} | {r['frames-unreadable']:.0f} | "
              f"{r['p50-ms']:.1f} | {r['p95-ms']:.1f} | {r['max-ms']:.1f} |")
    keys = list(viewers)
    hops = {
        "origin -> edge": {q: results[keys[1]][q] - results[keys[0]][q] for q in ("p50-ms", "p95-ms")},
        "relay -> edge": {q: results[keys[2]][q] - results[keys[1]][q] for q in ("p50-ms", "p95-ms")},
    }
    print()
    print(f"| hop (SRT latency {args.srt_latency} ms) | adds at p50 ms | adds at p95 ms | target p95 ms |")
    print("|---|---|---|---|")
    for name, h in hops.items():
        print(f"| {name} | {h['p50-ms']:.1f} | {h['p95-ms']:.1f} | <= {args.srt_latency + 5} |")
    relay_ms_per_s = relay_cpu * 1000 / elapsed
    print()
    print(f"relay CPU for 1 stream in, 1 out: {relay_ms_per_s:.1f} ms per second "
          f"({relay_ms_per_s / 10:.2f} % of a core)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"srt_latency_ms": args.srt_latency, "seconds": args.seconds, "viewers": results,
                       "hops": hops, "relay_cpu_ms_per_s": relay_ms_per_s}, f, indent=2)


if __name__ == "__main__":
    main()
