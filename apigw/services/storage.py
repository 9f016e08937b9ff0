"""SQLite storage for the services: one database file per service, opened once per process.

A process shares one aiosqlite connection (one worker thread) and every write is a single
statement, so concurrent handlers never share a transaction. WAL and busy_timeout let several
processes write the same file without "database is locked".
"""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiosqlite
from aiohttp import web

from apigw.config import ConfigError
from apigw.shared.appkeys import DATABASE_KEY

DATA_DIR = Path(__file__).resolve().parents[2] / "data"
# How long a writer waits for another process's write lock before giving up, in milliseconds.
BUSY_TIMEOUT_MS = 10_000
Row = Mapping[str, Any]
# Positional (?) or named (:name) statement parameters.
Params = Sequence[Any] | Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class Schema:
    """A service's tables, and the sample rows written once, when the file is new."""

    statements: tuple[str, ...]
    seed: tuple[tuple[str, tuple[Any, ...]], ...] = ()
    version: int = 1
    # Statements that bring a file of version N to N + 1, keyed by N; a new file runs
    # `statements`, which already hold the latest schema.
    upgrades: Mapping[int, tuple[str, ...]] = field(default_factory=dict)


def database_path(env: Mapping[str, str], variable: str, default_name: str) -> Path:
    """The file named by `variable`, else data/`default_name`; its folder is made if missing."""
    raw = env.get(variable, "")
    path = Path(raw) if raw else DATA_DIR / default_name
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"{variable}: cannot create {path.parent}: {exc.strerror}") from None
    return path


async def open_database(path: Path, schema: Schema) -> aiosqlite.Connection:
    # Autocommit: a statement is its own transaction, and the one multi-statement transaction
    # (creating the schema) is spelled out with BEGIN and COMMIT.
    db = await aiosqlite.connect(path, isolation_level=None)
    try:
        db.row_factory = sqlite3.Row
        # busy_timeout first: switching to WAL itself waits for other processes' locks.
        await db.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS:d}")
        await db.execute("PRAGMA journal_mode = WAL")
        # With WAL, NORMAL loses no committed data on a process crash, only on power loss.
        await db.execute("PRAGMA synchronous = NORMAL")
        await _create_schema(db, schema)
    except BaseException:
        await db.close()
        raise
    return db


async def _create_schema(db: aiosqlite.Connection, schema: Schema) -> None:
    # IMMEDIATE takes the write lock before reading the version, so two processes starting on a
    # new file cannot both create and seed it; user_version records that it was done, so rows
    # deleted later are not seeded again on the next start.
    await db.execute("BEGIN IMMEDIATE")
    try:
        version = await fetch_value(db, "PRAGMA user_version")
        if version == 0:
            for statement in schema.statements:
                await db.execute(statement)
            for sql, params in schema.seed:
                await db.execute(sql, params)
            await db.execute(f"PRAGMA user_version = {schema.version:d}")
        else:
            while version in schema.upgrades and version < schema.version:
                for statement in schema.upgrades[version]:
                    await db.execute(statement)
                version += 1
            if version != schema.version:
                raise RuntimeError(f"database schema version {version}, expected {schema.version}")
            await db.execute(f"PRAGMA user_version = {schema.version:d}")
        await db.execute("COMMIT")
    except BaseException:
        await db.execute("ROLLBACK")
        raise


async def fetch_value(db: aiosqlite.Connection, sql: str, params: Params = ()) -> Any:
    async with db.execute(sql, params) as cursor:
        row = await cursor.fetchone()
    return None if row is None else row[0]


async def fetch_one(db: aiosqlite.Connection, sql: str, params: Params = ()) -> Row | None:
    async with db.execute(sql, params) as cursor:
        row = await cursor.fetchone()
    return None if row is None else dict(row)


async def fetch_all(db: aiosqlite.Connection, sql: str, params: Params = ()) -> list[Row]:
    async with db.execute(sql, params) as cursor:
        return [dict(row) for row in await cursor.fetchall()]


def setup_database(app: web.Application, path: Path, schema: Schema) -> None:
    """Open the database when the app starts and close it when the app stops."""

    async def database_ctx(app: web.Application) -> AsyncIterator[None]:
        db = await open_database(path, schema)
        app[DATABASE_KEY] = db
        yield
        await db.close()

    app.cleanup_ctx.append(database_ctx)


def database(request: web.Request) -> aiosqlite.Connection:
    return request.app[DATABASE_KEY]
