"""SQLite storage: the file and schema on first start, seeding once, restarts, parallel writers."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest

from apigw.config import ConfigError
from apigw.services.storage import DATA_DIR, database_path
from tests.support.apps import ServiceFactory


def test_database_path_comes_from_env_else_data_dir(tmp_path: Path) -> None:
    assert database_path({}, "USERS_DB", "users.db") == DATA_DIR / "users.db"
    chosen = tmp_path / "nested" / "u.db"
    assert database_path({"USERS_DB": str(chosen)}, "USERS_DB", "users.db") == chosen
    assert chosen.parent.is_dir()


def test_unusable_database_folder_is_one_line_naming_the_variable(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(ConfigError, match=r"^ORDERS_DB: cannot create .*file") as caught:
        database_path({"ORDERS_DB": str(blocker / "o.db")}, "ORDERS_DB", "orders.db")
    assert "\n" not in str(caught.value)


async def test_first_start_creates_the_file_in_wal_mode(
    make_users: ServiceFactory, tmp_path: Path
) -> None:
    db_path = tmp_path / "new" / "users.db"
    db_path.parent.mkdir()
    users = await make_users(db_path)
    assert (await users.get("/users/1")).status == 200
    with sqlite3.connect(db_path) as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert db.execute("PRAGMA user_version").fetchone()[0] == 1


async def test_data_survives_a_restart_and_samples_are_seeded_only_once(
    make_orders: ServiceFactory, tmp_path: Path
) -> None:
    db_path = tmp_path / "orders.db"
    first = await make_orders(db_path)
    created = await (await first.post("/orders", json={"user_id": 2, "item": "Tape"})).json()
    assert (await first.delete("/orders/1")).status == 204
    await first.close()

    second = await make_orders(db_path)
    assert await (await second.get(f"/orders/{created['order_id']}")).json() == created
    # Deleted samples stay deleted: seeding happens when the file is new, not on every start.
    assert (await second.get("/orders/1")).status == 404


async def test_parallel_writes_from_two_connections_never_hit_a_locked_database(
    make_users: ServiceFactory, tmp_path: Path
) -> None:
    # Two service instances on one file: two connections, each with its own writer thread,
    # as two processes would be. WAL and busy_timeout make them wait for each other.
    db_path = tmp_path / "shared.db"
    one, two = await make_users(db_path), await make_users(db_path)
    per_instance = 60
    responses = await asyncio.gather(
        *(
            client.post("/users", json={"name": f"N{i}", "email": f"{tag}{i}@example.com"})
            for tag, client in (("a", one), ("b", two))
            for i in range(per_instance)
        )
    )
    assert sorted(r.status for r in responses) == [201] * (2 * per_instance)
    ids = {(await r.json())["user_id"] for r in responses}
    assert len(ids) == 2 * per_instance
    with sqlite3.connect(db_path) as db:
        assert db.execute("SELECT count(*) FROM users").fetchone()[0] == 3 + 2 * per_instance
