"""CPU instructions per proxied small GET, counted by callgrind: repeatable, unlike req/s.

Each proxy runs under callgrind in front of the benchmark upstream. After a warm-up the counters
are zeroed, N keep-alive GETs are sent one after another, and the instructions the proxy
process executed are divided by N. The ratio between two proxies is the same on a loaded or
an idle machine. Measured: the bare aiohttp proxy on uvloop (the peer), the gateway with the
shipped config, and the gateway with a config of 1,000 routes.

Run: .venv/bin/python bench/instr.py [--requests N]   (`make bench` runs it after run.py)
"""

from __future__ import annotations

import argparse
import hashlib
import http.client
import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))

from run import BENCH_ENV, KEY, ROOT, free_port, start, stop

PATH = "/users/1"
WARM_UP = 200


def grown_config(
    directory: Path,
    *,
    routes: int = 0,
    consumers: int = 0,
    plan: str | None = None,
    **changes: Any,
) -> Path:
    """The shipped gateway.yaml (every default feature on) with `routes` more routes on the
    same upstream, `consumers` more consumers (a consumers_file, as large sets are kept),
    every consumer on `plan` if given, and top-level keys set to `changes`."""
    document = yaml.safe_load((ROOT / "gateway.yaml").read_text())
    document.update(changes)
    if plan is not None:
        document["consumers"] = [{**c, "plan": plan} for c in document["consumers"]]
    document["routes"] = [
        {"prefix": f"/svc{n}/api", "upstreams": ["${USERS_SERVICE_URL}"]} for n in range(routes)
    ] + document["routes"]
    name = f"config-{routes}-routes-{consumers}-consumers-{plan}-{'-'.join(changes)}"
    if consumers:
        lines = (
            json.dumps({"name": f"c{n}", "key_sha256": hashlib.sha256(b"k%d" % n).hexdigest()})
            for n in range(consumers)
        )
        (directory / f"{name}.jsonl").write_text("\n".join(lines) + "\n")
        document["consumers_file"] = f"{name}.jsonl"
    path = directory / f"{name}.yaml"
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path


def send(port: int, count: int) -> int:
    """`count` keep-alive GETs one after another; returns how many were not 200."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    bad = 0
    for _ in range(count):
        conn.request("GET", PATH, headers={"x-api-key": KEY})
        response = conn.getresponse()
        response.read()
        bad += response.status != 200
    conn.close()
    return bad


def callgrind_total(out: Path) -> int:
    total = 0
    for dump in out.parent.glob(out.name + "*"):
        found = re.search(r"^(?:summary|totals):\s+(\d+)", dump.read_text(), re.M)
        total += int(found.group(1)) if found else 0
    return total


def measure(args: list[str], requests: int, tmp: Path, name: str) -> tuple[float, int]:
    """k instructions per request of the process started by `args`, and the non-200 count."""
    out = tmp / f"cg-{name}.out"
    port = free_port()
    command = [
        "valgrind",
        "--tool=callgrind",
        f"--callgrind-out-file={out}",
        "--dump-instr=no",
        *[a.replace("{port}", str(port)) for a in args],
    ]
    proc = start(command, port, BENCH_ENV, timeout=300)
    try:
        bad = send(port, WARM_UP)
        subprocess.run(["callgrind_control", "-z", str(proc.pid)], capture_output=True, check=True)
        bad += send(port, requests)
        for dump in tmp.glob(out.name + "*"):
            dump.unlink()
        subprocess.run(["callgrind_control", "-d", str(proc.pid)], capture_output=True, check=True)
        deadline = time.monotonic() + 30
        while not list(tmp.glob(out.name + "*")) and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(0.5)  # the dump is written in one go, but give it a moment to finish
        return callgrind_total(out) / requests / 1000, bad
    finally:
        stop(proc)


def run(requests: int, only: str = "", budgets: bool = False) -> None:
    if shutil.which("valgrind") is None:
        raise SystemExit("bench: valgrind is missing (apt-get install valgrind)")
    py = sys.executable
    tmp = Path(tempfile.mkdtemp(prefix="apigw-instr-"))
    up_port = free_port()
    upstream = start([py, "bench/upstream.py", str(up_port)], up_port)
    direct = f"http://127.0.0.1:{up_port}"
    BENCH_ENV.update(USERS_SERVICE_URL=direct, ORDERS_SERVICE_URL=direct)
    routes = grown_config(tmp, routes=1000)
    consumers = grown_config(tmp, consumers=100_000)
    gateway = [py, "gateway.py", "--port", "{port}"]
    cases = {
        "bare aiohttp proxy, uvloop": [py, "bench/bare_proxy.py", "{port}", direct],
        "gateway, shipped config": gateway,
        "gateway, +1,000 routes": [*gateway, "--config", str(routes)],
        "gateway, +100,000 consumers": [*gateway, "--config", str(consumers)],
    }
    if budgets:
        # What each feature costs: the shipped config against it with the feature off.
        quiet = grown_config(tmp, metrics=False, access_log=False)
        unlimited = grown_config(tmp, plan="unlimited")
        cases["gateway, no metrics or access log"] = [*gateway, "--config", str(quiet)]
        cases["gateway, no rate limits"] = [*gateway, "--config", str(unlimited)]
    try:
        print(f"\ninstructions per small GET {PATH} (callgrind, {requests} keep-alive requests)")
        figures: dict[str, float] = {}
        for name, args in cases.items():
            if only and only not in name:
                continue
            figures[name], bad = measure(args, requests, tmp, str(len(figures)))
            peer = figures.get("bare aiohttp proxy, uvloop", figures[name])
            shipped = figures.get("gateway, shipped config", figures[name])
            print(
                f"{name:28} {figures[name]:8.1f} k   {figures[name] / peer:5.2f}x the bare proxy"
                + (f"   {figures[name] / shipped - 1:+.1%} on shipped" if "+" in name else "")
                + (
                    f"   the feature costs {shipped / figures[name] - 1:+.1%}"
                    if " no " in name
                    else ""
                )
                + (f"   ({bad} not 200!)" if bad else ""),
                flush=True,
            )
    finally:
        stop(upstream)
        shutil.rmtree(tmp, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--only", default="", help="measure only the cases naming this")
    parser.add_argument(
        "--budgets",
        action="store_true",
        help="also the shipped config without metrics and access log, and without rate limits",
    )
    args = parser.parse_args()
    run(args.requests, args.only, args.budgets)
    return 0


if __name__ == "__main__":
    sys.exit(main())
