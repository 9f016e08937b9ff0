"""The objects a process starts with, frozen out of the garbage collector's way.

A started gateway worker holds about 40,000 objects the collector tracks: modules, classes,
functions, the config. None of them ever becomes garbage, yet every full collection walks
them all. Under load a full collection comes every few thousand requests, finds nothing,
and stalls the event loop meanwhile: 13-29 ms measured at c=64, during which every request
in flight waits. `gc.freeze()` moves them to a generation no collection visits: the same
full collections took 0.6-1.5 ms (docs/notes/issue-12-performance.md). Objects made later
are collected as before.

A reload swaps the config (apigw/reload.py): `refreeze()` lets what the old one left behind
be collected, then freezes the new. The old proxy state is freed by reference counting once
the last request using it ends, frozen or not: it holds no reference cycle.
"""

from __future__ import annotations

import gc


def freeze_heap() -> None:
    """Once the process is started and about to serve."""
    gc.collect()
    gc.freeze()


def refreeze() -> None:
    """After a reload, if the heap was frozen: collect what is now garbage, freeze again."""
    if gc.get_freeze_count():
        gc.unfreeze()
        freeze_heap()
