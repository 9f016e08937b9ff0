"""`eventually()`: poll a condition until it holds. Tests never sleep to synchronise."""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar, overload

T = TypeVar("T")

INTERVAL = 0.02


@overload
async def eventually(
    check: Callable[[], Awaitable[T | None]], what: str, timeout: float = ...
) -> T: ...
@overload
async def eventually(check: Callable[[], T | None], what: str, timeout: float = ...) -> T: ...
async def eventually(check: Callable[[], Any], what: str, timeout: float = 10.0) -> Any:
    """Call `check` until it returns something true, and return that; fail after `timeout` s.

    `check` may be sync or async, and may raise AssertionError to give up at once.
    """
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        await asyncio.sleep(INTERVAL)
