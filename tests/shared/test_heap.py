"""The heap a process starts with is frozen out of the collector's way (apigw/shared/heap.py).

Each check runs in a fresh interpreter: freezing this test process would keep every object it
holds now from ever being collected.
"""

from __future__ import annotations

import textwrap

from tests.support.processes import fresh_interpreter


def test_a_frozen_heap_is_skipped_by_collections_until_a_reload_refreezes_it() -> None:
    script = textwrap.dedent(
        """
        import gc, weakref
        from apigw.shared.heap import freeze_heap, refreeze

        class Node:
            pass

        node = Node()
        node.me = node  # a cycle: only the collector can free it
        ref = weakref.ref(node)
        freeze_heap()
        assert gc.get_freeze_count() > 1000, gc.get_freeze_count()
        del node
        gc.collect()
        assert ref() is not None, "a full collection visited the frozen heap"
        refreeze()  # what a reload does
        assert ref() is None, "a reload must let what was frozen be collected"
        assert gc.get_freeze_count() > 1000, gc.get_freeze_count()
        print("ok")
        """
    )
    done = fresh_interpreter(script)
    assert done.returncode == 0 and done.stdout == "ok\n", done.stderr


def test_a_reload_of_a_process_that_never_froze_changes_nothing() -> None:
    done = fresh_interpreter(
        "import gc; from apigw.shared.heap import refreeze; refreeze(); "
        "print(gc.get_freeze_count())"
    )
    assert done.returncode == 0 and done.stdout == "0\n", done.stderr


def test_a_served_process_has_frozen_its_heap_by_the_time_it_serves() -> None:
    # `python gateway.py` and the services: shared.cli.serve() freezes once the listener is
    # up, before the signal handlers (here: stop at once) are installed.
    script = textwrap.dedent(
        """
        import gc
        from aiohttp import web
        from apigw.shared.cli import serve

        async def factory():
            return web.Application()

        seen = []

        def install(app, stop):
            seen.append(gc.get_freeze_count())
            stop()

        serve(factory, "127.0.0.1", 0, grace=0, install_signals=install)
        print(seen[0] > 1000)
        """
    )
    done = fresh_interpreter(script)
    assert done.returncode == 0 and done.stdout == "True\n", done.stderr
