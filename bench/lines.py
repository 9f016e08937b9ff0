"""Where a proxied GET's work goes: Python lines executed per request, per function.

callgrind says ~87 % of the proxy's instructions are the interpreter evaluating Python, at
roughly 430 instructions per line, so lines per function is the profile that points at what
to change. Each proxy runs with a `sys.settrace` line counter switched on by SIGUSR1 after a
warm-up and off by SIGUSR2 (the main thread only: the access-log writer thread is not
counted), over N keep-alive GETs.

Run: .venv/bin/python bench/lines.py [--requests N] [--top K] [--only gateway|bare]
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import runpy
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path
from types import FrameType
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from instr import WARM_UP, send
from run import BENCH_ENV, ROOT, free_port, start, stop


def traced(script: str, out: str, argv: list[str]) -> None:
    """Run `script` as __main__ with a line counter behind SIGUSR1 / SIGUSR2."""
    counts: collections.Counter[tuple[str, str]] = collections.Counter()

    def local(frame: FrameType, event: str, arg: Any) -> Any:
        if event == "line":
            code = frame.f_code
            counts[code.co_filename, code.co_qualname] += 1
        return local

    def on(_signum: int, _frame: Any) -> None:
        counts.clear()
        sys.settrace(lambda frame, event, arg: local)

    def off(_signum: int, _frame: Any) -> None:
        sys.settrace(None)
        rows = [[f, q, n] for (f, q), n in counts.items()]
        Path(out).write_text(json.dumps(rows))

    signal.signal(signal.SIGUSR1, on)
    signal.signal(signal.SIGUSR2, off)
    sys.argv = [script, *argv]
    sys.path.insert(0, str(Path(script).resolve().parent))
    runpy.run_path(script, run_name="__main__")


def measure(args: list[str], requests: int, tmp: Path, name: str) -> dict[tuple[str, str], float]:
    out = tmp / f"lines-{name}.json"
    port = free_port()
    script, *rest = (a.replace("{port}", str(port)) for a in args)
    command = [sys.executable, __file__, "--trace", script, str(out), *rest]
    proc = start(command, port, BENCH_ENV)
    try:
        send(port, WARM_UP)
        os.kill(proc.pid, signal.SIGUSR1)
        send(port, 1)  # wakes the loop, so the handler has run before the counted requests
        os.kill(proc.pid, signal.SIGUSR1)
        send(port, requests)
        os.kill(proc.pid, signal.SIGUSR2)
        send(port, 1)
        deadline = time.monotonic() + 10
        while not out.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        rows = json.loads(out.read_text())
        return {(f, q): n / requests for f, q, n in rows}
    finally:
        stop(proc)


def short(filename: str) -> str:
    for marker in ("site-packages/", str(ROOT) + "/"):
        if marker in filename:
            return filename.split(marker, 1)[1]
    return filename


def report(name: str, profile: dict[tuple[str, str], float], top: int) -> None:
    by_file: dict[str, float] = collections.defaultdict(float)
    for (f, _q), n in profile.items():
        by_file[short(f)] += n
    print(f"\n{name}: {sum(profile.values()):.0f} lines per request")
    for f, n in sorted(by_file.items(), key=lambda item: -item[1])[:top]:
        print(f"  {n:7.1f}  {f}")
    print("  by function:")
    ranked = sorted(profile.items(), key=lambda item: -item[1])[:top]
    for (f, q), n in ranked:
        print(f"  {n:7.1f}  {short(f)}:{q}")


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "--trace":
        traced(sys.argv[2], sys.argv[3], sys.argv[4:])
        return 0
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--top", type=int, default=40)
    parser.add_argument("--only", default="")
    parser.add_argument("--config", default="")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="apigw-lines-"))
    up_port = free_port()
    upstream = start([sys.executable, "bench/upstream.py", str(up_port)], up_port)
    direct = f"http://127.0.0.1:{up_port}"
    BENCH_ENV.update(USERS_SERVICE_URL=direct, ORDERS_SERVICE_URL=direct)
    gateway = ["gateway.py", "--port", "{port}"]
    if args.config:
        gateway += ["--config", args.config]
    cases = {"bare": ["bench/bare_proxy.py", "{port}", direct], "gateway": gateway}
    try:
        for name, command in cases.items():
            if args.only and args.only != name:
                continue
            report(name, measure(command, args.requests, tmp, name), args.top)
    finally:
        stop(upstream)
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
