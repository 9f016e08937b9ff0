"""What metrics and the access log cost in req/s: the gateway with everything on (the shipped
gateway.yaml) and with `metrics: false` + `access_log: false`, beside the bare aiohttp proxy.

Uses the side-by-side benchmark's nginx upstream and wrk runner (../shared/bench/bench.py,
or $BENCH_DIR), and interleaves the three in every round so they share the box's noise.
Prints figures; asserts nothing.

  python bench/observability_cost.py [--rounds 5] [--duration 5] [--conns 64]
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import shutil
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent


def load_bench() -> Any:
    where = Path(os.environ.get("BENCH_DIR", ROOT.parent / "shared" / "bench"))
    spec = importlib.util.spec_from_file_location("bench", where / "bench.py")
    if spec is None or spec.loader is None:
        sys.exit(f"no bench.py in {where}: set BENCH_DIR")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--duration", type=int, default=5)
    parser.add_argument("--conns", type=int, default=64)
    args = parser.parse_args()
    bench = load_bench()
    tmp = Path(tempfile.mkdtemp(prefix="obs-cost-"))
    tmp.chmod(0o755)
    (tmp / "www").mkdir()
    conf = (Path(bench.PEERS) / "nginx_upstream.conf").read_text()
    (tmp / "up.conf").write_text(conf.replace("@ROOT@", str(tmp / "www")))
    off = yaml.safe_load((ROOT / "gateway.yaml").read_text())
    off.update(metrics=False, access_log=False)
    (tmp / "off.yaml").write_text(yaml.safe_dump(off))
    env = {
        "USERS_SERVICE_URL": f"http://127.0.0.1:{bench.UP}",
        "ORDERS_SERVICE_URL": f"http://127.0.0.1:{bench.SINK}",
        "GATEWAY_SECRET": "bench-secret-not-the-client-key",
    }
    gateway = f"{sys.executable} {ROOT / 'gateway.py'}"
    peers = {
        "aiohttp-min-uv": (
            f"{bench.PY} {bench.PEERS}/aiohttp_minimal.py 19105 http://127.0.0.1:{bench.UP} uvloop",
            19105,
        ),
        "all on": (f"{gateway} --config {ROOT / 'gateway.yaml'} --port 19106", 19106),
        "metrics+log off": (f"{gateway} --config {tmp / 'off.yaml'} --port 19107", 19107),
    }
    upstream = bench.Proc(
        "upstream",
        ["nginx", "-p", str(tmp), "-c", str(tmp / "up.conf"), "-g",
         f"pid {tmp}/up.pid; daemon off;"],
        bench.UP,
    )  # fmt: skip
    results: dict[str, list[float]] = {name: [] for name in peers}
    try:
        for _ in range(args.rounds):
            for name, (cmd, port) in peers.items():
                proc = bench.Proc(name.replace(" ", "-"), cmd, port, env, shell=True)
                try:
                    bench.wrk(port, "/users/1", 1, args.conns)  # warm-up
                    results[name].append(
                        bench.wrk(port, "/users/1", args.duration, args.conns)["rps"]
                    )
                finally:
                    proc.stop()
    finally:
        upstream.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"small GETs, wrk c={args.conns}, {args.rounds} interleaved rounds of {args.duration}s")
    for name, rps in results.items():
        rounds = " ".join(f"{r:.0f}" for r in rps)
        print(f"{name:16} median {statistics.median(rps):7.0f} req/s   rounds: {rounds}")
    ratios = [a / b for a, b in zip(results["all on"], results["metrics+log off"], strict=True)]
    print(f"all on / metrics+log off: median {statistics.median(ratios):.3f}")


if __name__ == "__main__":
    main()
