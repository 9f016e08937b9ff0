"""The services run like the gateway: a SIGTERM lets requests under way finish before the
process exits, and neither their logs nor their answers ever show the gateway secret."""

from __future__ import annotations

import asyncio
import signal

from tests.support import PROBLEM
from tests.support.processes import System
from tests.support.wire import exchange, request


async def test_a_request_under_way_finishes_after_sigterm(system: System) -> None:
    users = system.service("users")
    await users.ready()
    body = b'{"name": "Grace Drain", "email": "grace.drain@example.com"}'
    head = request(
        "/users",
        "Connection: close",
        "Content-Type: application/json",
        f"Content-Length: {len(body)}",
        f"x-gateway-secret: {system.secret}",
        method="POST",
        key=False,
    )
    reader, writer = await asyncio.open_connection("127.0.0.1", users.port)
    try:
        # Half the body: the request is under way, its handler waiting for the rest.
        writer.write(head + body[:10])
        await writer.drain()
        # A request sent after it and answered means the server has taken it in: its head was
        # read first, and its handler started before this one could be answered.
        probe = await exchange(users.port, request("/healthz", "Connection: close", key=False))
        assert probe.reply.status == 200
        users.send(signal.SIGTERM)
        await users.printed("listener closing")
        writer.write(body[10:])
        await writer.drain()
        async with asyncio.timeout(10):
            reply = await reader.read()
    finally:
        writer.close()
    assert reply.startswith(b"HTTP/1.1 201 "), users.log()
    assert await users.exited(15) == 0


async def test_the_gateway_secret_never_reaches_the_service_log_or_its_answers(
    system: System,
) -> None:
    users = system.service("users")
    await users.ready()
    # aiohttp logs and answers a malformed head quoting the offending line: here the secret.
    malformed = request("/users", f"x-gateway-secret: {system.secret}\x01", key=False)
    result = await exchange(users.port, malformed)
    assert result.reply.status == 400
    assert result.reply.headers["Content-Type"] == PROBLEM
    assert system.secret.encode() not in result.raw
    users.stop()
    log = users.log()
    assert "400 for a malformed request" in log, log
    assert system.secret not in log
