"""atheris fuzz target: path checking and header filtering, against tests/support/invariants.py.

Run: make fuzz (FUZZ_TIME=seconds, default 60), or
     .venv/bin/python fuzz/fuzz_paths_headers.py -max_total_time=60 [corpus_dir]
"""

from __future__ import annotations

import sys
from pathlib import Path

import atheris

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

with atheris.instrument_imports():
    from tests.support.invariants import (
        HEADER_NAMES,
        PATH_PIECES,
        PREFIXES,
        check_header_invariants,
        check_target_invariants,
    )


def _target(fdp: atheris.FuzzedDataProvider) -> str:
    parts = [fdp.PickValueInList(list(PREFIXES)) if fdp.ConsumeBool() else ""]
    for _ in range(fdp.ConsumeIntInRange(0, 12)):
        if fdp.ConsumeBool():
            parts.append(fdp.PickValueInList(list(PATH_PIECES)))
        else:
            parts.append(fdp.ConsumeBytes(fdp.ConsumeIntInRange(0, 4)).decode("latin-1"))
    target = "".join(parts)
    return target if target.startswith("/") or fdp.ConsumeBool() else "/" + target


def _headers(fdp: atheris.FuzzedDataProvider) -> list[tuple[str, str]]:
    pairs = []
    for _ in range(fdp.ConsumeIntInRange(0, 12)):
        if fdp.ConsumeBool():
            name = fdp.PickValueInList(list(HEADER_NAMES))
        else:
            name = fdp.ConsumeUnicodeNoSurrogates(12) or "x"
        if name.lower() == "connection" or fdp.ConsumeIntInRange(0, 3) == 0:
            count = fdp.ConsumeIntInRange(0, 4)
            value = ", ".join(fdp.PickValueInList(list(HEADER_NAMES)) for _ in range(count))
        else:
            value = fdp.ConsumeUnicodeNoSurrogates(24)
        pairs.append((name, value))
    return pairs


def test_one_input(data: bytes) -> None:
    fdp = atheris.FuzzedDataProvider(data)
    if fdp.ConsumeBool():
        check_target_invariants(_target(fdp))
    else:
        check_header_invariants(_headers(fdp))


def main() -> None:
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
