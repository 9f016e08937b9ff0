"""One scrape of any gunicorn worker answers for all: worker snapshots in a shared directory.

The master makes the directory at start (`make_shared_dir`). Each worker replaces its file
`w-<pid>.json` with a fresh snapshot once a second and just before it answers a scrape (write
to a temp file, then rename: a reader never sees half a file). When the master reaps a worker
(`retire_worker`), its file becomes `dead-<pid>.json`: its counters keep counting, its gauges
(requests in flight) stop. A scrape folds dead files into `retired.json`, so the directory
stays small however often workers restart, and no counter ever goes down. The master's own
events (config reloads) are in `master.json`.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson

from apigw.observability.metrics import HISTORY_WINDOWS, WINDOW, Snapshot, gauge_merge

_LIVE = "w-"
_DEAD = "dead-"
_RETIRED = "retired.json"
_MASTER = "master.json"
_LOCK = ".lock"
# What a dead worker leaves behind that still counts.
_KEPT = ("counters", "histograms", "windows")


def make_shared_dir() -> Path:
    """A fresh directory for one gunicorn master's workers (in memory when /dev/shm exists)."""
    if os.path.isdir("/dev/shm"):  # noqa: S108 - a private mkdtemp below it
        try:
            return Path(tempfile.mkdtemp(prefix="apigw-metrics-", dir="/dev/shm"))
        except OSError:
            pass  # read-only or full: the default temporary directory will do
    return Path(tempfile.mkdtemp(prefix="apigw-metrics-"))


def remove_shared_dir(directory: Path) -> None:
    shutil.rmtree(directory, ignore_errors=True)


def retire_worker(directory: Path, pid: int) -> None:
    """The master reaped worker `pid`: its counters stay, its gauges go."""
    with contextlib.suppress(FileNotFoundError):
        os.replace(directory / f"{_LIVE}{pid}.json", directory / f"{_DEAD}{pid}.json")


def record_reload(directory: Path, ok: bool) -> None:
    """The master reloaded the config (`ok`) or kept the running one."""
    path = directory / _MASTER
    master = _read(path) or {}
    counts = master.setdefault("counters", {}).setdefault("gateway_config_reloads_total", {})
    key = 'result="success"' if ok else 'result="failure"'
    counts[key] = counts.get(key, 0) + 1
    if ok:
        master["generation"] = master.get("generation", 1) + 1
    master["last_reload"] = {"time": time.time(), "result": "success" if ok else "failure"}
    _write(path, master)


def _read(path: Path) -> Any:
    try:
        return orjson.loads(path.read_bytes())
    except FileNotFoundError:
        return None
    except orjson.JSONDecodeError:
        # Only a file written by something else; renames make every file whole.
        return None


def _write(path: Path, document: Any) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(orjson.dumps(document))
    os.replace(tmp, path)


def add_into(into: dict[str, Any], other: dict[str, Any]) -> None:
    """Sum `other` into `into`: nested dicts key by key, numbers added, lists element-wise."""
    for key, value in other.items():
        mine = into.get(key)
        if mine is None:
            into[key] = _copy(value)
        elif isinstance(value, dict):
            add_into(mine, value)
        elif isinstance(value, list):
            into[key] = [a + b for a, b in zip(mine, value, strict=False)]
        else:
            into[key] = mine + value


def _copy(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return list(value)
    return value


def merge(live: list[Snapshot], retired: list[Snapshot]) -> Snapshot:
    """Counters of every worker that ever ran; gauges of the live ones only."""
    merged: Snapshot = {"counters": {}, "histograms": {}, "windows": {}}
    for snapshot in (*live, *retired):
        for part in _KEPT:
            add_into(merged[part], snapshot.get(part, {}))
    gauges: dict[str, dict[str, list[float]]] = {}
    families: dict[str, list[str]] = {}
    for snapshot in live:
        families.update(snapshot.get("families", {}))
        for family, series in snapshot.get("gauges", {}).items():
            into = gauges.setdefault(family, {})
            for label_set, value in series.items():
                into.setdefault(label_set, []).append(value)
    merged["gauges"] = {
        family: {k: gauge_merge(family, families)(v) for k, v in series.items()}
        for family, series in gauges.items()
    }
    merged["families"] = families
    merged["workers"] = len(live)
    merged["worker_list"] = [s["worker"] for s in live if "worker" in s]
    _prune_windows(merged)
    return merged


def _prune_windows(snapshot: Snapshot) -> None:
    windows = snapshot.get("windows", {})
    if windows:
        newest = max(int(w) for w in windows)
        for old in [w for w in windows if int(w) <= newest - WINDOW * HISTORY_WINDOWS]:
            del windows[old]


class SharedMetrics:
    """This worker's end of the shared directory."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._path = directory / f"{_LIVE}{os.getpid()}.json"

    def write(self, snapshot: Snapshot) -> None:
        try:
            _write(self._path, snapshot)
        except FileNotFoundError:
            # Someone cleaned the temporary directory: the counters are in memory, start over.
            self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            _write(self._path, snapshot)

    def collect(self) -> Snapshot:
        """Every worker's snapshot summed (the caller wrote its own first); blocking file I/O."""
        with self._locked():
            retired = self._fold_dead()
            live: list[Snapshot] = []
            for path in sorted(self.directory.glob(f"{_LIVE}*.json")):
                snapshot = _read(path)
                if snapshot is None:
                    # Renamed by the master between the listing and the read: a dead worker's
                    # counters still count, only its gauges do not.
                    pid = path.name.removeprefix(_LIVE)
                    dead = _read(self.directory / f"{_DEAD}{pid}")
                    if dead is not None:
                        retired.append(dead)
                    continue
                live.append(snapshot)
            master = _read(self.directory / _MASTER) or {}
        merged = merge(live, [*retired, master])
        merged["generation"] = master.get("generation", 1)
        merged["last_reload"] = master.get("last_reload")
        return merged

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        # Two workers scraped at once must not fold the same dead file twice.
        fd = os.open(self.directory / _LOCK, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def _fold_dead(self) -> list[Snapshot]:
        retired_path = self.directory / _RETIRED
        retired: Snapshot = _read(retired_path) or {}
        dead = sorted(self.directory.glob(f"{_DEAD}*.json"))
        if dead:
            for path in dead:
                snapshot = _read(path) or {}
                for part in _KEPT:
                    add_into(retired.setdefault(part, {}), snapshot.get(part, {}))
            _prune_windows(retired)
            # Written before the dead files go: a crash in between counts a worker twice
            # (a jump up), never zero times (a counter going down).
            _write(retired_path, retired)
            for path in dead:
                path.unlink(missing_ok=True)
        return [retired] if retired else []
