"""The users service over real sockets: CRUD, status codes, pagination, validation, the secret."""

from __future__ import annotations

from typing import Any

import pytest

from tests.support.apps import ServiceClient, problem

NEW = {"name": "Katherine Johnson", "email": "katherine@example.com"}


async def test_sample_user_keeps_the_classic_shape(users: ServiceClient) -> None:
    resp = await users.get("/users/1")
    assert resp.status == 200
    assert await resp.json() == {"user_id": 1, "name": "Ada Lovelace", "email": "ada@example.com"}


async def test_create_answers_201_with_location_of_the_new_user(users: ServiceClient) -> None:
    resp = await users.post("/users", json=NEW)
    assert resp.status == 201
    created = await resp.json()
    assert created == {"user_id": 4, **NEW}
    assert resp.headers["Location"] == "/users/4"
    again = await users.get(resp.headers["Location"])
    assert await again.json() == created


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "/users", {"name": "Ada again", "email": "ada@example.com"}),
        ("POST", "/users", {"name": "Ada again", "email": "ADA@Example.com"}),
        ("PUT", "/users/2", {"name": "Alan", "email": "ada@example.com"}),
        ("PATCH", "/users/2", {"email": "Ada@example.com"}),
    ],
    ids=["create", "create-other-case", "replace", "update"],
)
async def test_duplicate_email_is_409(
    users: ServiceClient, method: str, path: str, body: dict[str, Any]
) -> None:
    resp = await users.request(method, path, json=body)
    detail = (await problem(resp, 409))["detail"]
    assert "ada@" not in detail.lower()
    alan = await (await users.get("/users/2")).json()
    assert alan["email"] == "alan@example.com"


async def test_put_replaces_and_patch_changes_only_what_is_sent(users: ServiceClient) -> None:
    resp = await users.put("/users/2", json={"name": "A. M. Turing", "email": "amt@example.com"})
    assert resp.status == 200
    assert await resp.json() == {"user_id": 2, "name": "A. M. Turing", "email": "amt@example.com"}
    resp = await users.patch("/users/2", json={"name": "Alan Turing"})
    assert await resp.json() == {"user_id": 2, "name": "Alan Turing", "email": "amt@example.com"}
    resp = await users.get("/users/2")
    assert (await resp.json())["name"] == "Alan Turing"


async def test_delete_answers_204_and_the_user_is_gone(users: ServiceClient) -> None:
    resp = await users.delete("/users/3")
    assert resp.status == 204
    assert await resp.read() == b""
    await problem(await users.get("/users/3"), 404)
    await problem(await users.delete("/users/3"), 404)
    # A deleted id is never given to a new user.
    resp = await users.post("/users", json=NEW)
    assert (await resp.json())["user_id"] == 4


@pytest.mark.parametrize(
    ("method", "body"),
    [("GET", None), ("PUT", NEW), ("PATCH", {"name": "X"}), ("DELETE", None)],
    ids=["get", "put", "patch", "delete"],
)
async def test_unknown_user_is_404(users: ServiceClient, method: str, body: Any) -> None:
    resp = await users.request(method, "/users/999", json=body)
    assert (await problem(resp, 404))["detail"] == "No user with id 999."


async def test_list_pages_through_every_user_once(users: ServiceClient) -> None:
    for n in range(5):
        await users.post("/users", json={"name": f"User {n}", "email": f"u{n}@example.com"})
    seen: list[int] = []
    link: str | None = "/users?limit=3"
    pages = 0
    while link is not None:
        resp = await users.get(link)
        assert resp.status == 200
        page = await resp.json()
        assert len(page["items"]) <= 3
        seen += [user["user_id"] for user in page["items"]]
        link = page["next"]
        if link is None:
            assert "Link" not in resp.headers
        else:
            assert resp.headers["Link"] == f'<{link}>; rel="next"'
        pages += 1
    assert seen == list(range(1, 9))
    assert pages == 3


async def test_list_defaults_to_twenty_in_id_order(users: ServiceClient) -> None:
    resp = await users.get("/users")
    page = await resp.json()
    assert [u["user_id"] for u in page["items"]] == [1, 2, 3]
    assert page["next"] is None


@pytest.mark.parametrize(
    ("method", "path", "body", "fields"),
    [
        ("POST", "/users", {}, ["body.email", "body.name"]),
        ("POST", "/users", {"name": "", "email": "not-an-address"}, ["body.email", "body.name"]),
        ("POST", "/users", {"name": 7, "email": "a@example.com"}, ["body.name"]),
        ("POST", "/users", {**NEW, "admin": True}, ["body.admin"]),
        ("POST", "/users", {**NEW, "user_id": 9}, ["body.user_id"]),
        ("POST", "/users", [NEW], ["body"]),
        ("POST", "/users", b"{not json", ["body"]),
        ("POST", "/users", None, ["body"]),
        ("PUT", "/users/1", {"name": "Ada"}, ["body.email"]),
        ("PATCH", "/users/1", {}, ["body"]),
        ("PATCH", "/users/1", {"email": "x" * 250 + "@example.com"}, ["body.email"]),
        ("GET", "/users/abc", None, ["user_id"]),
        ("GET", "/users/0", None, ["user_id"]),
        ("GET", "/users/99999999999999999999", None, ["user_id"]),
        ("DELETE", "/users/1.5", None, ["user_id"]),
        ("GET", "/users?limit=0", None, ["limit"]),
        ("GET", "/users?limit=101", None, ["limit"]),
        ("GET", "/users?limit=ten&after=-1", None, ["after", "limit"]),
    ],
    ids=[
        "empty-body",
        "empty-name-bad-email",
        "name-not-string",
        "unknown-field",
        "read-only-id",
        "array-body",
        "not-json",
        "no-body",
        "put-needs-every-field",
        "empty-patch",
        "email-too-long",
        "id-not-integer",
        "id-zero",
        "id-overflows-int64",
        "id-not-integer-delete",
        "limit-zero",
        "limit-too-big",
        "limit-and-after",
    ],
)
async def test_invalid_request_is_400_naming_each_bad_field(
    users: ServiceClient, method: str, path: str, body: Any, fields: list[str]
) -> None:
    if isinstance(body, bytes):
        resp = await users.request(
            method, path, data=body, headers={"Content-Type": "application/json"}
        )
    else:
        resp = await users.request(method, path, json=body)
    answer = await problem(resp, 400)
    assert [e["field"] for e in answer["errors"]] == fields
    assert all(e["message"] for e in answer["errors"])


async def test_length_limits_are_explained_as_inclusive(users: ServiceClient) -> None:
    resp = await users.post("/users", json={"name": "", "email": "e" * 250 + "@example.com"})
    answer = await problem(resp, 400)
    assert answer["errors"] == [
        {"field": "body.email", "message": "value length should be at most 254"},
        {"field": "body.name", "message": "value length should be at least 1"},
    ]


async def test_a_body_full_of_unknown_fields_gets_a_short_answer(users: ServiceClient) -> None:
    resp = await users.post("/users", json={**NEW, **{f"x{i}": i for i in range(500)}})
    answer = await problem(resp, 400)
    assert len(answer["errors"]) == 20
    assert answer["errors_omitted"] == 480


@pytest.mark.parametrize(
    ("path", "status"),
    [("/users/1", 403), ("/users", 403), ("/docs/swagger.json", 403), ("/healthz", 200)],
)
async def test_only_healthz_answers_without_the_gateway_secret(
    users: ServiceClient, path: str, status: int
) -> None:
    resp = await users.get(path, headers={"x-gateway-secret": "wrong-secret-0123456789"})
    assert resp.status == status
