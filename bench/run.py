"""`make bench`: the gateway against direct upstream access, in one run.

Small GETs (wrk: req/s, p50, p99), then 1 GiB streamed down and up (curl), with the gateway's
idle and peak RSS. Prints figures; asserts nothing about time.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
KEY = "secret002oUdaRJA"
GiB = 1 << 30
# The environment every proxy under test gets (the upstream URLs are added once known).
BENCH_ENV = {"GATEWAY_SECRET": "bench-secret-not-the-client-key"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def start(
    args: list[str], port: int, env: dict[str, str] | None = None, timeout: float = 30
) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        args,
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return proc
        if proc.poll() is not None:
            break
        time.sleep(0.05)
    stop(proc)
    raise SystemExit(f"bench: {' '.join(args)} did not start on port {port}")


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)


def rss_mb(pid: int, field: str) -> float:
    text = Path(f"/proc/{pid}/status").read_text()
    match = re.search(rf"{field}:\s+(\d+)", text)
    return int(match.group(1)) / 1024 if match else 0.0


def wrk(url: str, seconds: int, conns: int) -> dict[str, float]:
    out = subprocess.run(
        ["wrk", "-t1", f"-c{conns}", f"-d{seconds}s", "--latency", "-H", f"x-api-key: {KEY}", url],
        capture_output=True,
        text=True,
        check=True,
    ).stdout

    def ms(pct: str) -> float:
        found = re.search(rf"^\s+{pct}%\s+([\d.]+)(us|ms|s)", out, re.M)
        assert found, out
        value, unit = float(found.group(1)), found.group(2)
        return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value

    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    assert rps, out
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {
        "rps": float(rps.group(1)),
        "p50": ms("50"),
        "p99": ms("99"),
        "bad": float(non2xx.group(1)) if non2xx else 0.0,
    }


def curl(args: list[str]) -> tuple[float, str]:
    began = time.perf_counter()
    out = subprocess.run(
        ["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", "-H", f"x-api-key: {KEY}", *args],
        capture_output=True,
        text=True,
        check=False,
    ).stdout
    return time.perf_counter() - began, out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--conns", type=int, default=64)
    parser.add_argument(
        "--c1-rounds", type=int, default=8, help="paired rounds of one connection, 3 s each"
    )
    parser.add_argument("--no-stream", action="store_true", help="skip the 1 GiB transfers")
    args = parser.parse_args()
    for tool in ("wrk", "curl"):
        if shutil.which(tool) is None:
            raise SystemExit(f"bench: {tool} is missing (apt-get install {tool})")

    up_port, gw_port, bare_port = free_port(), free_port(), free_port()
    upstream = start([sys.executable, "bench/upstream.py", str(up_port)], up_port)
    direct = f"http://127.0.0.1:{up_port}"
    BENCH_ENV.update(USERS_SERVICE_URL=direct, ORDERS_SERVICE_URL=direct)
    gateway = start([sys.executable, "gateway.py", "--port", str(gw_port)], gw_port, BENCH_ENV)
    bare = start([sys.executable, "bench/bare_proxy.py", str(bare_port), direct], bare_port)
    tmp = Path(tempfile.mkdtemp(prefix="apigw-bench-"))
    try:
        time.sleep(0.5)  # let start-up allocations settle before reading idle RSS
        idle = rss_mb(gateway.pid, "VmRSS")
        bare_idle = rss_mb(bare.pid, "VmRSS")
        via = f"http://127.0.0.1:{gw_port}"
        targets = {"direct": direct, "bare proxy": f"http://127.0.0.1:{bare_port}", "gateway": via}
        results: dict[str, list[dict[str, float]]] = {name: [] for name in targets}
        for base in targets.values():
            wrk(f"{base}/users/1", 1, args.conns)  # warm-up
        # Interleaved rounds, so a busy moment on a shared box hits every target alike.
        for _ in range(args.rounds):
            for name, base in targets.items():
                results[name].append(wrk(f"{base}/users/1", args.seconds, args.conns))
        # One connection in rounds of its own, not right after a c=64 run (whose backlog,
        # the gateway's access log for one, would still be settling), the order reversed
        # every other round: a difference of hundredths of a millisecond must come from
        # the proxies, not from when each was measured.
        c1: dict[str, list[float]] = {name: [] for name in targets}
        for n in range(args.c1_rounds):
            for name in list(targets)[:: 1 if n % 2 == 0 else -1]:
                c1[name].append(wrk(f"{targets[name]}/users/1", 3, 1)["p50"])

        print(f"small GET /users/1, c={args.conns}, {args.rounds} rounds of {args.seconds}s")
        print("bare proxy: the least an aiohttp proxy does (bench/bare_proxy.py, uvloop)")
        header = f"{'':10} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'non-2xx':>8} {'c=1 p50':>8}"
        print(header)
        for name, rows in results.items():
            print(
                f"{name:10} {statistics.median(r['rps'] for r in rows):9.0f} "
                f"{statistics.median(r['p50'] for r in rows):8.2f} "
                f"{statistics.median(r['p99'] for r in rows):8.2f} "
                f"{sum(r['bad'] for r in rows):8.0f} "
                f"{statistics.median(c1[name]):8.3f}"
            )
        for peer in ("direct", "bare proxy"):
            ratio = statistics.median(
                g["rps"] / d["rps"] for g, d in zip(results["gateway"], results[peer], strict=True)
            )
            print(f"gateway/{peer} req/s: {ratio:.3f}")
        paired = zip(c1["gateway"], c1["bare proxy"], strict=True)
        level = sum(g <= b for g, b in paired)
        print(
            f"c=1 p50, gateway at or below the bare proxy in {level} of {args.c1_rounds} "
            "paired rounds"
        )

        if not args.no_stream:
            blob = tmp / "1g"
            with blob.open("wb") as f:
                f.truncate(GiB)
            print(f"\n1 GiB streamed{'':4} {'down MB/s':>10} {'up MB/s':>10}  codes")
            for name, base in targets.items():
                down, code_d = curl([f"{base}/users/big/{GiB}"])
                up, code_u = curl(
                    [
                        "-X",
                        "POST",
                        "-T",
                        str(blob),
                        "-H",
                        "content-type: application/octet-stream",
                        f"{base}/orders/upload",
                    ]
                )
                print(f"{name:18} {1024 / down:10.0f} {1024 / up:10.0f}  {code_d}/{code_u}")
            peak = rss_mb(gateway.pid, "VmHWM")
            print(
                f"\ngateway RSS: idle {idle:.1f} MB, peak {peak:.1f} MB, "
                f"growth {peak - idle:.1f} MB (target <= 16 MB)"
            )
        else:
            print(f"\ngateway idle RSS: {idle:.1f} MB")
        print(f"bare proxy idle RSS: {bare_idle:.1f} MB (uvloop)")
    finally:
        stop(gateway)
        stop(bare)
        stop(upstream)
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
