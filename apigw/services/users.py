"""The users service's operations over its SQLite table; specs/users.yaml describes its API."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from aiohttp import web

from apigw.services.app import created, page
from apigw.services.storage import Schema, database, fetch_all, fetch_one, setup_database
from apigw.services.validation import Operation, setup_operations
from apigw.shared.errors import ProblemError

SPEC_FILE = Path(__file__).resolve().parent / "specs" / "users.yaml"
DB_VARIABLE = "USERS_DB"
DB_FILE = "users.db"

SCHEMA = Schema(
    statements=(
        # AUTOINCREMENT: a deleted user's id is never given to a new user.
        # NOCASE: Ada@example.com and ada@example.com are the same address.
        """CREATE TABLE users (
            user_id INTEGER PRIMARY KEY AUTOINCREMENT,
            name TEXT NOT NULL,
            email TEXT NOT NULL UNIQUE COLLATE NOCASE
        )""",
    ),
    # The classic `GET /users/1` example answers on a new database.
    seed=tuple(
        ("INSERT INTO users (user_id, name, email) VALUES (?, ?, ?)", row)
        for row in (
            (1, "Ada Lovelace", "ada@example.com"),
            (2, "Alan Turing", "alan@example.com"),
            (3, "Grace Hopper", "grace@example.com"),
        )
    ),
)

_UPDATE = """
    UPDATE users SET name = coalesce(:name, name), email = coalesce(:email, email)
    WHERE user_id = :user_id RETURNING user_id, name, email
"""


def _not_found(user_id: int) -> ProblemError:
    return ProblemError(404, f"No user with id {user_id}.")


def _duplicate_email() -> ProblemError:
    # The address is not repeated back: error bodies never echo client input.
    return ProblemError(409, "Another user already has this email address.")


async def create_user(request: web.Request, body: dict[str, Any]) -> web.Response:
    try:
        user = await fetch_one(
            database(request),
            "INSERT INTO users (name, email) VALUES (?, ?) RETURNING user_id, name, email",
            (body["name"], body["email"]),
        )
    except sqlite3.IntegrityError:
        raise _duplicate_email() from None
    assert user is not None  # INSERT ... RETURNING yields the row it inserted
    return created(f"/users/{user['user_id']}", user)


async def list_users(request: web.Request, limit: int, after: int) -> web.Response:
    rows = await fetch_all(
        database(request),
        "SELECT user_id, name, email FROM users WHERE user_id > ? ORDER BY user_id LIMIT ?",
        (after, limit + 1),
    )
    return page(request, rows, limit=limit, id_field="user_id")


async def get_user(request: web.Request, user_id: int) -> web.Response:
    user = await fetch_one(
        database(request), "SELECT user_id, name, email FROM users WHERE user_id = ?", (user_id,)
    )
    if user is None:
        raise _not_found(user_id)
    return web.json_response(user)


async def _update(request: web.Request, user_id: int, body: dict[str, Any]) -> web.Response:
    # PUT and PATCH share one statement: PUT's document requires every field, PATCH's any.
    params = {"user_id": user_id, "name": body.get("name"), "email": body.get("email")}
    try:
        user = await fetch_one(database(request), _UPDATE, params)
    except sqlite3.IntegrityError:
        raise _duplicate_email() from None
    if user is None:
        raise _not_found(user_id)
    return web.json_response(user)


async def replace_user(request: web.Request, user_id: int, body: dict[str, Any]) -> web.Response:
    return await _update(request, user_id, body)


async def update_user(request: web.Request, user_id: int, body: dict[str, Any]) -> web.Response:
    return await _update(request, user_id, body)


async def delete_user(request: web.Request, user_id: int) -> web.Response:
    deleted = await fetch_one(
        database(request), "DELETE FROM users WHERE user_id = ? RETURNING user_id", (user_id,)
    )
    if deleted is None:
        raise _not_found(user_id)
    return web.Response(status=204)


OPERATIONS: dict[str, Operation] = {
    "create_user": create_user,
    "list_users": list_users,
    "get_user": get_user,
    "replace_user": replace_user,
    "update_user": update_user,
    "delete_user": delete_user,
}


def setup_users(app: web.Application, db_path: Path) -> None:
    setup_database(app, db_path, SCHEMA)
    setup_operations(app, SPEC_FILE, OPERATIONS)
