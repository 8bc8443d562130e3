#!/usr/bin/env python3
"""Glass-to-glass latency benchmark: publisher -> node -> GStreamer viewer on
loopback. The node's demo publishes 720p30 H.264 at 1.5 Mbit/s through its
own WHIP endpoint (xdnwhipsink), stamped with xdnlatencystamp; a viewer plays
it over WHEP (xdnwhepsrc) and xdnlatencymeter reads every frame.

Reports latency p50/p95/max over the run and join time (viewer process start
to first decoded, stamped frame: an upper bound of WHEP POST to first frame)
over several joins. Run on demand, never as a timed test:

    unshare -n bash -c 'ip link set lo up; python3 tests/bench/latency.py --seconds 60'
"""
import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))
from xdnnode import Node, gst_env  # noqa: E402


def view(url, frames, timeout):
    """Plays @frames frames; returns (join seconds, summary dict)."""
    cmd = ["gst-launch-1.0", "-m", "xdnwhepsrc", f"location={url}", "ice-addresses=127.0.0.1",
           "audio=false", "!", "videoconvert", "!", "identity", f"eos-after={frames}", "!",
           "xdnlatencymeter", "!", "fakesink"]
    start = time.monotonic()
    proc = subprocess.Popen(cmd, env=gst_env(), stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                            text=True, start_new_session=True)
    join, summary = None, None
    deadline = start + timeout
    try:
        for line in proc.stdout:
            if join is None and "xdn-latency," in line:
                join = time.monotonic() - start
            if "xdn-latency-summary" in line:
                summary = {k: float(v) for k, v in re.findall(r"([a-z0-9-]+)=\([a-z0-9]+\)([0-9.]+)", line)}
            if time.monotonic() > deadline:
                break
    finally:
        proc.kill()
        proc.wait()
    if summary is None:
        raise RuntimeError(f"viewer produced no latency summary (join={join})")
    return join, summary


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=int, default=60, help="length of the long viewing run")
    parser.add_argument("--joins", type=int, default=5, help="short runs to measure join time")
    parser.add_argument("--json", help="also write the results to this file")
    args = parser.parse_args()

    with Node(demo=True) as node:
        node.wait_stream("demo", timeout=30, tracks=2)
        time.sleep(2)  # let the publisher's encoder settle before measuring
        joins = []
        for _ in range(args.joins):
            join, _ = view(node.whep_url("demo"), 30, 30)
            joins.append(join)
        _, run = view(node.whep_url("demo"), args.seconds * 30, args.seconds + 30)

    result = {
        "viewer": "gstreamer (xdnwhepsrc)",
        "seconds": args.seconds,
        "frames_read": run["frames-read"],
        "frames_unreadable": run["frames-unreadable"],
        "latency_p50_ms": run["p50-ms"],
        "latency_p95_ms": run["p95-ms"],
        "latency_max_ms": run["max-ms"],
        "join_ms_median": statistics.median(joins) * 1000,
        "join_ms_max": max(joins) * 1000,
    }
    print("| viewer | frames read | unreadable | p50 ms | p95 ms | max ms | join median ms | join max ms |")
    print("|---|---|---|---|---|---|---|---|")
    print(f"| {result['viewer']} | {result['frames_read']:.0f} | {result['frames_unreadable']:.0f} | "
          f"{result['latency_p50_ms']:.1f} | {result['latency_p95_ms']:.1f} | {result['latency_max_ms']:.1f} | "
          f"{result['join_ms_median']:.0f} | {result['join_ms_max']:.0f} |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)


if __name__ == "__main__":
    main()
