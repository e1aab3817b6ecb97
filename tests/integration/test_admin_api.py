"""The admin API (`/v1/admin`, docs/admin-api.md) over real loopback HTTP, on SQLite and PostgreSQL:
any caller but an admin (no key, a bad, unknown, revoked or ordinary key) gets exactly an unknown
route's 404 everywhere under it, and a public OpenAPI document without it; keys are made,
listed, changed, topped up and revoked; every key's tasks are listed with filters and a cursor;
usage counts and credits per key and model match the tasks made; channels show their circuit, their
tasks in flight and how their last hour went; every bad input is a 400 naming its `param`."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import BaseModel

from tests.helpers import scripted_channel
from vidgate.api import admin_schemas as schemas
from vidgate.channel_config import ChannelSettings
from vidgate.clock import ManualClock
from vidgate.ids import parse_task_id
from vidgate.worker.service import build_worker

pytestmark = pytest.mark.anyio

CREDIT = 1_000_000
T0_MS = 1_760_000_000_000  # ManualClock's start: 2025-10-09 08:53:20 UTC
UNIFIED = {"model": "sora-2", "prompt": "a lighthouse at dusk", "duration": 10}
OPENAI_PRO = {"model": "sora-2-pro", "prompt": "a paper boat", "seconds": "10"}
VOLATILE_HEADERS = {"date", "x-request-id"}


def two_channels(state_dir: Path) -> list[ChannelSettings]:
    """`scripted` serves sora-2 (1 credit a clip) and completes; `failing` serves sora-2-pro
    (2 credits a clip) and every job there fails: each model has one place to go."""
    options = scripted_channel(state_dir).options
    return [
        ChannelSettings(
            name="scripted",
            kind="scripted",
            models=["sora-2"],
            options=options,
            pricing={"sora-2": {"per_clip": 1}},
        ),
        ChannelSettings(
            name="failing",
            kind="scripted",
            models=["sora-2-pro"],
            priority=5,
            options={**options, "fail_code": "upstream_refused"},
            pricing={"sora-2-pro": {"per_clip": 2}},
        ),
    ]


class Admin:
    """A gateway (worker off, manual clock) and an admin key's client on it."""

    def __init__(self, gw: Any, clock: ManualClock, client: httpx.AsyncClient, admin_id: str) -> None:
        self.gw = gw
        self.clock = clock
        self.client = client
        self.admin_id = admin_id
        self.worker = build_worker(gw.runtime)

    async def new_key(self, name: str, **fields: Any) -> dict[str, Any]:
        r = await self.client.post("/v1/admin/keys", json={"name": name, **fields})
        assert r.status_code == 201, r.text
        assert r.headers["cache-control"] == "no-store"  # it carries the key itself
        created: dict[str, Any] = r.json()
        return created

    async def ok(self, method: str, url: str, **kwargs: Any) -> Any:
        r = await self.client.request(method, url, **kwargs)
        assert r.status_code == 200, r.text
        return r.json()

    async def run_worker_until(self, done: Any, *, steps: int = 60) -> None:
        """Tick the worker (the clock moving a second each time) until `done()` holds."""
        for _ in range(steps):
            if await done():
                return
            self.clock.advance(1)
            await self.worker.tick()
        raise AssertionError("the worker did not get there")

    async def statuses(self, ulids: list[str]) -> list[str]:
        found = [await self.gw.runtime.tasks.get(u, include_deleted=True) for u in ulids]
        return [t.status.value for t in found]


@asynccontextmanager
async def admin_gateway(start_gateway: Any, tmp_path: Path, **settings: Any) -> AsyncIterator[Admin]:
    clock = ManualClock()
    async with start_gateway(
        run_worker=False, clock=clock, channels=two_channels(tmp_path / "upstream"), **settings
    ) as gw:
        runtime = gw.runtime
        # Its own rate limit off, so that gateways started with a low default can test non-admins.
        record, plaintext = await runtime.keys.create(
            name="root", is_admin=True, now=clock.now_ms(), limits={"requests_per_minute": 0}
        )
        async with gw.client(plaintext) as client:
            yield Admin(gw, clock, client, record.id)


def assert_shape(model: type[BaseModel], body: Any) -> None:
    """What the route rendered is what its OpenAPI model says, field for field."""
    model.model_validate(body, strict=False)
    if isinstance(body, dict):
        assert set(body) == set(model.model_fields), sorted(set(body) ^ set(model.model_fields))


def assert_bad(r: httpx.Response, param: str | None, code: str = "invalid_value") -> None:
    assert r.status_code == 400, (param, r.status_code, r.text)
    error = r.json()["error"]
    assert (error["param"], error["code"], error["type"]) == (param, code, "invalid_request_error"), r.text
    assert error["message"]


def comparable(r: httpx.Response) -> tuple[int, bytes, dict[str, str]]:
    headers = {k: v for k, v in r.headers.items() if k not in VOLATILE_HEADERS}
    return r.status_code, r.content, headers


# Who may call ------------------------------------------------------------------------------------------


async def test_every_caller_but_an_admin_gets_an_unknown_routes_404_on_every_admin_path(
    start_gateway: Any, tmp_path: Path
) -> None:
    # A default rate limit of 3 a minute: the 404s must not count against it either (an unknown
    # route's do not), or the 429 would confirm the routes.
    async with admin_gateway(start_gateway, tmp_path, requests_per_minute=3) as admin:
        user = await admin.new_key("user", requests_per_minute=None)
        gone_user = await admin.new_key("gone-user")
        gone_admin = await admin.new_key("gone-admin", admin=True)
        for gone in (gone_user, gone_admin):
            await admin.ok("POST", f"/v1/admin/keys/{gone['id']}/revoke")
        admin_key = admin.admin_id
        before = await admin.ok("GET", "/v1/admin/keys")
        callers: dict[str, dict[str, str]] = {
            "a key that is not an admin's": {"authorization": f"Bearer {user['key']}"},
            "no key": {},
            "another scheme": {"authorization": f"Basic {user['key']}"},
            "a malformed key": {"authorization": "Bearer nope"},
            "an unknown key": {"authorization": "Bearer vg-" + "x" * 43},
            "a revoked key": {"authorization": f"Bearer {gone_user['key']}"},
            "a revoked admin key": {"authorization": f"Bearer {gone_admin['key']}"},
        }
        attempts: list[tuple[str, str, dict[str, Any]]] = [
            ("POST", "/v1/admin/keys", {"json": {"name": "sneaky", "admin": True}}),
            ("POST", "/v1/admin/keys", {"content": b"{not json"}),
            ("POST", "/v1/admin/keys", {"json": {"bogus": 1}}),
            ("GET", "/v1/admin/keys", {}),
            ("HEAD", "/v1/admin/keys", {}),
            ("OPTIONS", "/v1/admin/keys", {}),
            ("GET", "/v1/admin/keys?limit=0", {}),
            ("GET", f"/v1/admin/keys/{admin_key}", {}),
            ("GET", "/v1/admin/keys/no-such-key", {}),
            ("PATCH", f"/v1/admin/keys/{admin_key}", {"json": {"max_active_tasks": 1}}),
            ("POST", f"/v1/admin/keys/{admin_key}/revoke", {}),
            ("POST", f"/v1/admin/keys/{user['id']}/topup", {"json": {"amount": 5}}),
            ("GET", f"/v1/admin/keys/{user['id']}/ledger", {}),
            ("GET", "/v1/admin/tasks", {}),
            ("GET", "/v1/admin/tasks?status=bogus", {}),
            ("GET", "/v1/admin/tasks/task_01k6x15vhrff09dkkqjrzwhm60", {}),
            ("GET", "/v1/admin/usage", {}),
            ("GET", "/v1/admin/usage?start=9&end=1", {}),
            ("GET", "/v1/admin/channels", {}),
            ("DELETE", "/v1/admin/keys", {}),  # a method the path does not have: no 405 either
            ("PUT", "/v1/admin/channels", {}),
            ("GET", "/v1/admin/no-such-route", {}),
            ("GET", "/v1/admin", {}),  # no redirect to the slash variant (it would confirm the prefix)
            ("POST", "/v1/admin", {}),
            ("GET", "/v1/admin/", {}),
            ("GET", "/v1/admin/keys/", {}),
        ]
        async with admin.gw.client(None) as anonymous:
            for caller, headers in callers.items():
                for method, path, body in attempts:
                    answer = await anonymous.request(method, path, headers=headers, **body)
                    unknown = await anonymous.request(method, "/v1/nope", headers=headers, **body)
                    assert answer.status_code == 404, (caller, method, path, answer.text)
                    assert comparable(answer) == comparable(unknown), (caller, method, path)
                    if method != "HEAD":
                        assert answer.json()["error"]["code"] == "not_found"
            # The user's own routes still answer (its rate limit untouched by all those 404s).
            as_user = callers["a key that is not an admin's"]
            assert (await anonymous.get("/v1/videos", headers=as_user)).status_code == 200
        # Nothing anyone sent did anything.
        assert await admin.ok("GET", "/v1/admin/keys") == before
        assert (await admin.gw.runtime.keys.get(admin_key)).revoked_at is None

        # An admin gets the usual answers for what does not exist: a 405 naming the methods, a 404.
        wrong_method = await admin.client.delete("/v1/admin/keys")
        assert wrong_method.status_code == 405
        assert wrong_method.headers["allow"] == "GET, POST"
        assert wrong_method.json()["error"]["code"] == "method_not_allowed"
        nothing = await admin.client.get("/v1/admin/no-such-route")
        assert comparable(nothing) == comparable(await admin.client.get("/v1/nope"))


async def test_the_admin_routes_are_in_the_openapi_document_tagged_admin_with_bearer_auth(
    start_gateway: Any, tmp_path: Path
) -> None:
    async with admin_gateway(start_gateway, tmp_path) as admin:
        document = (await admin.client.get("/openapi.json")).json()
    operations = {
        (method.upper(), path): op
        for path, ops in document["paths"].items()
        if path.startswith("/v1/admin")
        for method, op in ops.items()
    }
    assert set(operations) == {
        ("POST", "/v1/admin/keys"),
        ("GET", "/v1/admin/keys"),
        ("GET", "/v1/admin/keys/{key_id}"),
        ("PATCH", "/v1/admin/keys/{key_id}"),
        ("POST", "/v1/admin/keys/{key_id}/revoke"),
        ("POST", "/v1/admin/keys/{key_id}/topup"),
        ("GET", "/v1/admin/keys/{key_id}/ledger"),
        ("GET", "/v1/admin/keys/{key_id}/webhook_secret"),
        ("POST", "/v1/admin/keys/{key_id}/webhook_secret/rotate"),
        ("GET", "/v1/admin/tasks"),
        ("GET", "/v1/admin/tasks/{task_id}"),
        ("GET", "/v1/admin/usage"),
        ("GET", "/v1/admin/channels"),
    }
    for (method, path), op in operations.items():
        assert op["tags"] == ["admin"], (method, path)
        assert op["security"] == [{"bearerAuth": []}], (method, path)
        ok = "201" if (method, path) == ("POST", "/v1/admin/keys") else "200"
        assert "$ref" in op["responses"][ok]["content"]["application/json"]["schema"], (method, path)
    for path, fields in [
        ("/v1/admin/keys", {"name", "admin", "balance", "allowed_models", "max_active_tasks"}),
        ("/v1/admin/keys/{key_id}", {"requests_per_minute", "allowed_models"}),
        ("/v1/admin/keys/{key_id}/topup", {"amount", "note"}),
    ]:
        method = "patch" if path.endswith("{key_id}") else "post"
        body = document["paths"][path][method]["requestBody"]["content"]["application/json"]["schema"]
        assert fields <= set(body["properties"]), path
        assert document["paths"][path][method]["requestBody"]["content"]["application/json"]["example"]
    tasks_params = {p["name"] for p in document["paths"]["/v1/admin/tasks"]["get"]["parameters"]}
    assert tasks_params == {"status", "channel", "model", "key_id", "created_after", "created_before",
                            "after", "limit"}  # fmt: skip


def admin_schema_names() -> set[str]:
    return {
        name
        for name, value in vars(schemas).items()
        if isinstance(value, type) and issubclass(value, BaseModel) and value.__module__ == schemas.__name__
    }


async def test_the_public_openapi_document_shows_no_admin_route_and_an_admins_shows_them(
    start_gateway: Any, tmp_path: Path
) -> None:
    async with admin_gateway(start_gateway, tmp_path) as admin:
        user = await admin.new_key("user")
        gone = await admin.new_key("gone-admin", admin=True)
        await admin.ok("POST", f"/v1/admin/keys/{gone['id']}/revoke")
        full_answer = await admin.client.get("/openapi.json")
        async with admin.gw.client(None) as anonymous:
            public_answers = [
                await anonymous.get("/openapi.json", headers=headers)
                for headers in (
                    {},
                    {"authorization": f"Bearer {user['key']}"},
                    {"authorization": f"Bearer {gone['key']}"},
                    {"authorization": "Bearer vg-" + "x" * 43},
                )
            ]
    assert full_answer.status_code == 200
    full = full_answer.json()
    admin_paths = {path for path in full["paths"] if path.startswith("/v1/admin")}
    assert admin_paths, "the admin's document has the admin routes"
    in_full = admin_schema_names() & set(full["components"]["schemas"])
    assert {"KeyObject", "CreatedKeyObject", "AdminTaskList", "UsageReport", "ChannelList"} <= in_full
    # A shared cache must never hand the admin's document to anyone else.
    assert "authorization" in full_answer.headers["vary"].lower()
    assert "no-store" in full_answer.headers["cache-control"]

    for answer in public_answers:
        assert answer.status_code == 200
        assert "authorization" in answer.headers["vary"].lower()
        assert "/v1/admin" not in answer.text
        public = answer.json()
        assert public["paths"] == {p: ops for p, ops in full["paths"].items() if p not in admin_paths}
        assert not admin_schema_names() & set(public["components"]["schemas"])
        # What the public routes use is all there: every reference resolves.
        for ref in re.findall(r'"#/components/schemas/([^"]+)"', answer.text):
            assert ref in public["components"]["schemas"], ref
        assert "admin" not in {tag["name"] for tag in public.get("tags", [])}
        assert answer.content == public_answers[0].content


# Keys --------------------------------------------------------------------------------------------------


async def test_keys_are_created_listed_changed_and_revoked(start_gateway: Any, tmp_path: Path) -> None:
    async with admin_gateway(start_gateway, tmp_path) as admin:
        created = await admin.new_key(
            "acme", balance=5 * CREDIT, max_active_tasks=3, allowed_models=["sora-2", "sora-2"]
        )
        assert_shape(schemas.CreatedKeyObject, created)
        assert created["key"].startswith("vg-") and created["hint"] == created["key"][:8] + "…"
        assert created["created_at"] == T0_MS // 1000 and created["revoked_at"] is None
        assert (created["admin"], created["balance"], created["held"], created["available"]) == (
            False, 5 * CREDIT, 0, 5 * CREDIT,
        )  # fmt: skip
        assert (created["max_active_tasks"], created["requests_per_minute"]) == (3, None)
        assert created["allowed_models"] == ["sora-2"]

        # The new key works at once; only its hash is stored, so it is never shown again.
        async with admin.gw.client(created["key"]) as as_acme:
            video = await as_acme.post("/v1/videos", json={"prompt": "a boat", "model": "sora-2"})
            assert video.status_code == 200, video.text
            refused = await as_acme.post("/v1/videos", json={"prompt": "a boat", "model": "sora-2-pro"})
            assert refused.status_code == 403 and refused.json()["error"]["param"] == "model"

            shown = await admin.ok("GET", f"/v1/admin/keys/{created['id']}")
            assert_shape(schemas.KeyObject, shown)
            assert "key" not in shown and shown["held"] == CREDIT  # the video's price, held
            assert shown == {**{k: v for k, v in created.items() if k != "key"}, "held": CREDIT,
                             "available": 4 * CREDIT}  # fmt: skip

            unlimited = await admin.new_key("ops", admin=True)
            assert (unlimited["admin"], unlimited["balance"], unlimited["available"]) == (True, None, None)
            assert unlimited["allowed_models"] is None

            # Only the fields sent change; null is back to the default (or every model).
            patched = await admin.ok(
                "PATCH",
                f"/v1/admin/keys/{created['id']}",
                json={"requests_per_minute": 0, "max_active_tasks": None},
            )
            assert (patched["requests_per_minute"], patched["max_active_tasks"]) == (0, None)
            assert patched["allowed_models"] == ["sora-2"] and patched["creates_per_minute"] is None
            patched = await admin.ok(
                "PATCH", f"/v1/admin/keys/{created['id']}", json={"allowed_models": None}
            )
            assert patched["allowed_models"] is None and patched["requests_per_minute"] == 0
            unchanged = await admin.ok("PATCH", f"/v1/admin/keys/{created['id']}", json={})
            assert unchanged == patched

            admin.clock.advance(60)
            revoked = await admin.ok("POST", f"/v1/admin/keys/{created['id']}/revoke")
            assert revoked["revoked_at"] == T0_MS // 1000 + 60
            assert (await as_acme.get("/v1/videos")).status_code == 401  # at once: the cache forgot it
            admin.clock.advance(60)
            again = await admin.ok("POST", f"/v1/admin/keys/{created['id']}/revoke")
            assert again == revoked  # idempotent: the first revocation's time stays

        # Oldest first, a page at a time; revoked keys only when asked for.
        everyone = await admin.ok("GET", "/v1/admin/keys")
        assert_shape(schemas.KeyList, everyone)
        assert [k["name"] for k in everyone["data"]] == ["root", "acme", "ops"]
        assert (everyone["has_more"], everyone["last_id"]) == (False, unlimited["id"])
        pages, after = [], None
        while True:
            page = await admin.ok(
                "GET", "/v1/admin/keys", params={"limit": 2, **({"after": after} if after else {})}
            )
            pages.append([k["name"] for k in page["data"]])
            after = page["last_id"]
            if not page["has_more"]:
                break
        assert pages == [["root", "acme"], ["ops"]]
        active = await admin.ok("GET", "/v1/admin/keys", params={"include_revoked": "false"})
        assert [k["name"] for k in active["data"]] == ["root", "ops"]

        for method, path in [
            ("GET", "/v1/admin/keys/01kb0000000000000000000000"),
            ("PATCH", "/v1/admin/keys/nope"),
            ("POST", "/v1/admin/keys/nope/revoke"),
            ("POST", "/v1/admin/keys/nope/topup"),
            ("GET", "/v1/admin/keys/nope/ledger"),
        ]:
            missing = await admin.client.request(method, path, json={"amount": 1})
            assert missing.status_code == 404, (method, path)
            assert (missing.json()["error"]["code"], missing.json()["error"]["param"]) == (
                "not_found",
                "key_id",
            )


async def test_top_ups_and_the_ledger(start_gateway: Any, tmp_path: Path) -> None:
    async with admin_gateway(start_gateway, tmp_path) as admin:
        key = await admin.new_key("acme", balance=CREDIT)
        url = f"/v1/admin/keys/{key['id']}"
        topped = await admin.ok(
            "POST", f"{url}/topup", json={"amount": 2 * CREDIT, "note": "invoice 7"},
            headers={"Idempotency-Key": "inv-7"},
        )  # fmt: skip
        assert (topped["balance"], topped["available"]) == (3 * CREDIT, 3 * CREDIT)
        retried = await admin.ok(
            "POST", f"{url}/topup", json={"amount": 2 * CREDIT, "note": "invoice 7"},
            headers={"Idempotency-Key": "inv-7"},
        )  # fmt: skip
        assert retried == topped  # nothing entered twice
        reused = await admin.client.post(
            f"{url}/topup", json={"amount": 1}, headers={"Idempotency-Key": "inv-7"}
        )
        assert reused.status_code == 409 and reused.json()["error"]["code"] == "idempotency_key_reused"
        await admin.ok("POST", f"{url}/topup", json={"amount": 5})  # no Idempotency-Key: always a new entry

        unlimited = await admin.new_key("free")
        refused = await admin.client.post(f"/v1/admin/keys/{unlimited['id']}/topup", json={"amount": 5})
        assert refused.status_code == 409 and refused.json()["error"]["code"] == "key_unlimited"

        async with admin.gw.client(key["key"]) as as_acme:
            made = await as_acme.post("/v1/video/create", json=UNIFIED)
            assert made.status_code == 200, made.text
        task = parse_task_id(made.json()["id"])

        ledger = await admin.ok("GET", f"{url}/ledger")
        assert_shape(schemas.LedgerList, ledger)
        entries = ledger["data"]
        for entry in entries:
            assert_shape(schemas.LedgerEntryObject, entry)
        assert [(e["kind"], e["amount"], e["task_id"], e["reference"], e["note"]) for e in entries] == [
            ("topup", CREDIT, None, None, "opening balance"),  # the balance it was created with
            ("topup", 2 * CREDIT, None, "inv-7", "invoice 7"),
            ("topup", 5, None, None, None),
            ("hold", CREDIT, task, None, None),
        ]
        assert {e["key_id"] for e in entries} == {key["id"]} and entries[0]["created_at"] == T0_MS // 1000
        assert (ledger["has_more"], ledger["last_id"]) == (False, entries[-1]["id"])
        first = await admin.ok("GET", f"{url}/ledger", params={"limit": 3})
        assert [e["id"] for e in first["data"]] == [e["id"] for e in entries[:3]] and first["has_more"]
        rest = await admin.ok("GET", f"{url}/ledger", params={"after": first["last_id"]})
        assert [e["id"] for e in rest["data"]] == [entries[3]["id"]] and not rest["has_more"]
        assert (await admin.ok("GET", f"/v1/admin/keys/{unlimited['id']}/ledger"))["data"] == []


# Tasks and usage ---------------------------------------------------------------------------------------


class Dataset:
    """Seven tasks of two keys. At T0: acme makes two sora-2 tasks (unified; they complete on
    `scripted`), bob two sora-2-pro ones (OpenAI dialect; they fail on `failing`). Two hours later:
    acme one more sora-2 (then deleted, so cancelled), bob two sora-2 (one cancelled, one pending)."""

    def __init__(self, acme: dict[str, Any], bob: dict[str, Any], ids: dict[str, list[str]]) -> None:
        self.acme, self.bob, self.ids = acme, bob, ids

    @property
    def all(self) -> list[str]:
        return sorted((u for group in self.ids.values() for u in group), reverse=True)


async def make_dataset(admin: Admin, *, later_tasks: bool = True) -> Dataset:
    acme = await admin.new_key("acme")
    bob = await admin.new_key("bob", balance=100 * CREDIT)
    ids: dict[str, list[str]] = {}
    async with admin.gw.client(acme["key"]) as as_acme, admin.gw.client(bob["key"]) as as_bob:

        async def make(client: httpx.AsyncClient, route: str, body: dict[str, Any]) -> str:
            r = await client.post(route, json=body)
            assert r.status_code == 200, r.text
            ulid = parse_task_id(r.json()["id"])
            assert ulid is not None
            return ulid

        ids["completed"] = [await make(as_acme, "/v1/video/create", UNIFIED) for _ in range(2)]
        ids["failed"] = [await make(as_bob, "/v1/videos", OPENAI_PRO) for _ in range(2)]
        started = ids["completed"] + ids["failed"]

        async def ended() -> bool:
            return await admin.statuses(started) == ["completed"] * 2 + ["failed"] * 2

        await admin.run_worker_until(ended)
        if not later_tasks:
            return Dataset(acme, bob, ids)
        admin.clock.advance((T0_MS + 7200_000 - admin.clock.now_ms()) / 1000)
        deleted = await make(as_acme, "/v1/video/create", UNIFIED)
        assert (await as_acme.delete(f"/v1/videos/video_{deleted}")).status_code == 200
        cancelled = await make(as_bob, "/v1/video/create", UNIFIED)
        await admin.gw.runtime.tasks.cancel(cancelled, owner=bob["id"], now=admin.clock.now_ms())
        ids["cancelled"] = [deleted, cancelled]
        ids["pending"] = [await make(as_bob, "/v1/video/create", UNIFIED)]
    return Dataset(acme, bob, ids)


async def test_every_keys_tasks_with_each_filter_and_a_cursor(start_gateway: Any, tmp_path: Path) -> None:
    async with admin_gateway(start_gateway, tmp_path) as admin:
        data = await make_dataset(admin)

        async def ids(**params: Any) -> list[str]:
            page = await admin.ok("GET", "/v1/admin/tasks", params={"limit": 100, **params})
            assert_shape(schemas.AdminTaskList, page)
            return [t["id"] for t in page["data"]]

        everything = await admin.ok("GET", "/v1/admin/tasks")
        assert [t["id"] for t in everything["data"]] == data.all  # newest first, deleted included
        tasks = {t["id"]: t for t in everything["data"]}
        for task in tasks.values():
            assert_shape(schemas.AdminTaskObject, task)

        done = tasks[data.ids["completed"][0]]
        fields = ("key_id", "key_name", "dialect", "model", "status", "progress", "channel", "size",
                  "seconds", "error", "deleted")  # fmt: skip
        assert {k: done[k] for k in fields} == {
            "key_id": data.acme["id"], "key_name": "acme", "dialect": "unified", "model": "sora-2",
            "status": "completed", "progress": 100, "channel": "scripted", "size": "720x1280",
            "seconds": 10, "error": None, "deleted": False,
        }  # fmt: skip
        assert done["video_id"] == f"sora-2:task_{done['id']}"
        assert done["created_at"] == T0_MS // 1000 and done["completed_at"] > done["created_at"]
        assert (done["hold_amount"], done["charge_amount"]) == (CREDIT, CREDIT)
        failed = tasks[data.ids["failed"][0]]
        assert failed["video_id"] == f"video_{failed['id']}" and failed["dialect"] == "openai"
        assert failed["error"]["code"] == "upstream_refused" and failed["channel"] == "failing"
        assert failed["hold_amount"] == 2 * CREDIT
        gone = tasks[data.ids["cancelled"][0]]
        assert (gone["status"], gone["deleted"], gone["error"]["code"]) == ("cancelled", True, "cancelled")
        waiting = tasks[data.ids["pending"][0]]
        assert (waiting["status"], waiting["channel"], waiting["completed_at"]) == ("pending", None, None)

        newest_first = data.all
        for status, expected in data.ids.items():
            assert await ids(status=status) == sorted(expected, reverse=True), status
        assert await ids(status="processing") == []
        assert await ids(channel="failing") == sorted(data.ids["failed"], reverse=True)
        assert await ids(channel="scripted") == sorted(data.ids["completed"], reverse=True)
        assert await ids(model="sora-2-pro") == sorted(data.ids["failed"], reverse=True)
        bobs = data.ids["failed"] + data.ids["cancelled"][1:] + data.ids["pending"]
        assert await ids(key_id=data.bob["id"]) == sorted(bobs, reverse=True)
        later = T0_MS // 1000 + 7200
        assert await ids(created_after=later) == newest_first[:3]
        assert await ids(created_before=later) == newest_first[3:]
        assert await ids(created_after=T0_MS // 1000, created_before=later) == newest_first[3:]
        assert await ids(created_after=later, created_before=later) == []
        assert await ids(key_id=data.bob["id"], status="cancelled", model="sora-2") == [
            data.ids["cancelled"][1]
        ]
        assert await ids(channel="nowhere") == []

        # The cursor walks every task once, in order, three pages of 3, 3 and 1.
        pages: list[list[str]] = []
        params: dict[str, Any] = {"limit": 3}
        while True:
            page = await admin.ok("GET", "/v1/admin/tasks", params=params)
            pages.append([t["id"] for t in page["data"]])
            assert page["last_id"] == pages[-1][-1]
            if not page["has_more"]:
                break
            params["after"] = f"video_{page['last_id']}"  # any id form is a cursor
        assert [len(p) for p in pages] == [3, 3, 1]
        assert [u for p in pages for u in p] == newest_first
        filtered = await admin.ok("GET", "/v1/admin/tasks", params={"key_id": data.bob["id"], "limit": 2})
        after = await admin.ok(
            "GET", "/v1/admin/tasks", params={"key_id": data.bob["id"], "after": filtered["last_id"]}
        )
        assert [t["id"] for t in filtered["data"] + after["data"]] == sorted(bobs, reverse=True)
        assert filtered["has_more"] and not after["has_more"]
        empty = await admin.ok("GET", "/v1/admin/tasks", params={"status": "processing"})
        assert (empty["data"], empty["has_more"], empty["last_id"]) == ([], False, None)


async def test_usage_per_key_and_model_matches_the_tasks_and_their_credits(
    start_gateway: Any, tmp_path: Path
) -> None:
    async with admin_gateway(start_gateway, tmp_path) as admin:
        data = await make_dataset(admin)
        acme, bob = data.acme["id"], data.bob["id"]

        def row(key: str, name: str, model: str, period: int | None = None, **counts: int) -> dict[str, Any]:
            zero = {"tasks": 0, "completed": 0, "failed": 0, "cancelled": 0, "seconds_completed": 0,
                    "credits_charged": 0, "credits_refunded": 0}  # fmt: skip
            return {"key_id": key, "key_name": name, "model": model, "period_start": period, **zero, **counts}

        whole = await admin.ok("GET", "/v1/admin/usage")
        assert_shape(schemas.UsageReport, whole)
        assert (whole["interval"], whole["end"]) == ("none", admin.clock.now_ms() // 1000 + 1)
        assert whole["start"] == whole["end"] - 30 * 86400
        expected = [
            row(acme, "acme", "sora-2", tasks=3, completed=2, cancelled=1, seconds_completed=20,
                credits_charged=2 * CREDIT, credits_refunded=CREDIT),
            row(bob, "bob", "sora-2", tasks=2, cancelled=1, credits_refunded=CREDIT),
            row(bob, "bob", "sora-2-pro", tasks=2, failed=2, credits_refunded=4 * CREDIT),
        ]  # fmt: skip
        assert sorted(whole["data"], key=lambda r: (r["key_id"], r["model"])) == sorted(
            expected, key=lambda r: (r["key_id"], r["model"])
        )
        for r in whole["data"]:
            assert_shape(schemas.UsageRowObject, r)

        later = T0_MS // 1000 + 7200
        only_later = await admin.ok("GET", "/v1/admin/usage", params={"start": later})
        assert {(r["key_id"], r["model"], r["tasks"]) for r in only_later["data"]} == {
            (acme, "sora-2", 1), (bob, "sora-2", 2),
        }  # fmt: skip
        only_earlier = await admin.ok("GET", "/v1/admin/usage", params={"start": 0, "end": later})
        assert {(r["key_id"], r["model"], r["tasks"]) for r in only_earlier["data"]} == {
            (acme, "sora-2", 2), (bob, "sora-2-pro", 2),
        }  # fmt: skip
        bobs_pro = await admin.ok("GET", "/v1/admin/usage", params={"key_id": bob, "model": "sora-2-pro"})
        assert bobs_pro["data"] == [expected[2]]

        hourly = await admin.ok("GET", "/v1/admin/usage", params={"interval": "hour", "key_id": acme})
        hour0 = T0_MS // 1000 // 3600 * 3600
        assert hourly["data"] == [
            row(acme, "acme", "sora-2", hour0, tasks=2, completed=2, seconds_completed=20,
                credits_charged=2 * CREDIT),
            row(acme, "acme", "sora-2", hour0 + 7200, tasks=1, cancelled=1, credits_refunded=CREDIT),
        ]  # fmt: skip
        daily = await admin.ok("GET", "/v1/admin/usage", params={"interval": "day", "key_id": acme})
        day0 = T0_MS // 1000 // 86400 * 86400
        assert daily["data"] == [{**expected[0], "period_start": day0}]
        none = await admin.ok("GET", "/v1/admin/usage", params={"start": 0, "end": 1})
        assert none["data"] == []


# Channels ----------------------------------------------------------------------------------------------


async def test_channel_status_shows_circuits_tasks_in_flight_and_the_last_hour(
    start_gateway: Any, tmp_path: Path
) -> None:
    async with admin_gateway(start_gateway, tmp_path) as admin:
        data = await make_dataset(
            admin, later_tasks=False
        )  # 2 completed on `scripted`, 2 failed on `failing`
        runtime = admin.gw.runtime
        async with admin.gw.client(data.acme["key"]) as as_acme:
            made = await as_acme.post("/v1/video/create", json=UNIFIED)
        running = parse_task_id(made.json()["id"])
        assert running is not None

        async def processing() -> bool:
            return await admin.statuses([running]) == ["processing"]

        await admin.run_worker_until(processing)
        health = None
        for _ in range(runtime.settings.worker.circuit_failures):
            health = await runtime.health.record_failure("failing", "HTTP 503 from upstream")
        assert health is not None and health.state.value == "open"

        listing = await admin.ok("GET", "/v1/admin/channels")
        assert_shape(schemas.ChannelList, listing)
        channels = {c["name"]: c for c in listing["data"]}
        assert list(channels) == ["scripted", "failing"]
        for channel in channels.values():
            assert_shape(schemas.ChannelStatusObject, channel)
        ok, bad = channels["scripted"], channels["failing"]
        assert {k: ok[k] for k in ("kind", "enabled", "models", "priority", "max_concurrent")} == {
            "kind": "scripted", "enabled": True, "models": ["sora-2"], "priority": 0, "max_concurrent": None,
        }  # fmt: skip
        assert ok["circuit"] == {"state": "closed", "failures": 0, "open_until": None, "last_error": None}
        assert ok["in_flight"] == 1 and bad["in_flight"] == 0
        assert ok["recent"] == {"window_seconds": 3600, "completed": 2, "failed": 0, "error_rate": 0.0}
        assert bad["recent"] == {"window_seconds": 3600, "completed": 0, "failed": 2, "error_rate": 1.0}
        assert ok["pricing"] == {
            "sora-2": {"per_clip": CREDIT, "per_second": 0, "resolutions": {}, "sizes": {}}
        }
        circuit = bad["circuit"]
        assert (circuit["state"], circuit["failures"], circuit["last_error"]) == (
            "open", runtime.settings.worker.circuit_failures, "HTTP 503 from upstream",
        )  # fmt: skip
        assert circuit["open_until"] == health.open_until // 1000

        admin.clock.advance(3601)  # the dataset's tasks ended over an hour ago now
        later = {c["name"]: c for c in (await admin.ok("GET", "/v1/admin/channels"))["data"]}
        assert later["failing"]["recent"] == {
            "window_seconds": 3600,
            "completed": 0,
            "failed": 0,
            "error_rate": None,
        }


# Bad input ---------------------------------------------------------------------------------------------


async def test_every_bad_input_is_a_400_naming_its_param(start_gateway: Any, tmp_path: Path) -> None:
    async with admin_gateway(start_gateway, tmp_path) as admin:
        key = await admin.new_key("acme", balance=CREDIT)
        url = f"/v1/admin/keys/{key['id']}"
        bodies: list[tuple[str, str, Any, str | None, str]] = [
            ("POST", "/v1/admin/keys", {}, "name", "missing_required_parameter"),
            ("POST", "/v1/admin/keys", {"name": ""}, "name", "invalid_value"),
            ("POST", "/v1/admin/keys", {"name": "   "}, "name", "invalid_value"),
            ("POST", "/v1/admin/keys", {"name": "x" * 201}, "name", "invalid_value"),
            ("POST", "/v1/admin/keys", {"name": 7}, "name", "invalid_value"),
            ("POST", "/v1/admin/keys", {"name": "a", "colour": "red"}, "colour", "invalid_value"),
            ("POST", "/v1/admin/keys", {"name": "a", "admin": "yes"}, "admin", "invalid_value"),
            ("POST", "/v1/admin/keys", {"name": "a", "balance": -1}, "balance", "invalid_value"),
            ("POST", "/v1/admin/keys", {"name": "a", "balance": "5"}, "balance", "invalid_value"),
            ("POST", "/v1/admin/keys", {"name": "a", "balance": 1.5}, "balance", "invalid_value"),
            ("POST", "/v1/admin/keys", {"name": "a", "requests_per_minute": -1}, "requests_per_minute",
             "invalid_value"),
            ("POST", "/v1/admin/keys", {"name": "a", "max_active_tasks": 2**31}, "max_active_tasks",
             "invalid_value"),
            ("POST", "/v1/admin/keys", {"name": "a", "allowed_models": "sora-2"}, "allowed_models",
             "invalid_value"),
            ("POST", "/v1/admin/keys", {"name": "a", "allowed_models": [""]}, "allowed_models",
             "invalid_value"),
            ("POST", "/v1/admin/keys", {"name": "a", "allowed_models": [3]}, "allowed_models[0]",
             "invalid_value"),
            ("POST", "/v1/admin/keys", [1], None, "invalid_json"),
            ("PATCH", url, {"creates_per_minute": -5}, "creates_per_minute", "invalid_value"),
            ("PATCH", url, {"name": "renamed"}, "name", "invalid_value"),
            ("PATCH", url, {"max_active_tasks": True}, "max_active_tasks", "invalid_value"),
            ("POST", f"{url}/topup", {}, "amount", "missing_required_parameter"),
            ("POST", f"{url}/topup", {"amount": 0}, "amount", "invalid_value"),
            ("POST", f"{url}/topup", {"amount": -3}, "amount", "invalid_value"),
            ("POST", f"{url}/topup", {"amount": 2.5}, "amount", "invalid_value"),
            ("POST", f"{url}/topup", {"amount": "5"}, "amount", "invalid_value"),
            ("POST", f"{url}/topup", {"amount": 10**19}, "amount", "invalid_value"),
            ("POST", f"{url}/topup", {"amount": 5, "memo": "x"}, "memo", "invalid_value"),
            ("POST", f"{url}/topup", {"amount": 5, "note": "x" * 1001}, "note", "invalid_value"),
        ]  # fmt: skip
        for method, path, body, param, code in bodies:
            assert_bad(await admin.client.request(method, path, json=body), param, code)
        assert_bad(await admin.client.post("/v1/admin/keys", content=b"{nope"), None, "invalid_json")
        for reference in ["", "x" * 256]:
            r = await admin.client.post(
                f"{url}/topup", json={"amount": 5}, headers={"Idempotency-Key": reference}
            )
            assert_bad(r, "Idempotency-Key")

        queries: list[tuple[str, dict[str, Any], str]] = [
            ("/v1/admin/keys", {"limit": 0}, "limit"),
            ("/v1/admin/keys", {"limit": 101}, "limit"),
            ("/v1/admin/keys", {"limit": "many"}, "limit"),
            ("/v1/admin/keys", {"after": "not a key!"}, "after"),
            ("/v1/admin/keys", {"include_revoked": "perhaps"}, "include_revoked"),
            (f"{url}/ledger", {"after": -1}, "after"),
            (f"{url}/ledger", {"after": "x"}, "after"),
            (f"{url}/ledger", {"limit": 101}, "limit"),
            ("/v1/admin/tasks", {"status": "done"}, "status"),
            ("/v1/admin/tasks", {"status": "queued"}, "status"),  # the OpenAI word: not one of the five
            ("/v1/admin/tasks", {"limit": 0}, "limit"),
            ("/v1/admin/tasks", {"limit": 101}, "limit"),
            ("/v1/admin/tasks", {"after": "nope"}, "after"),
            ("/v1/admin/tasks", {"created_after": "yesterday"}, "created_after"),
            ("/v1/admin/tasks", {"created_before": -1}, "created_before"),
            ("/v1/admin/tasks", {"created_after": 10, "created_before": 9}, "created_after"),
            ("/v1/admin/tasks", {"created_after": 10**12}, "created_after"),
            ("/v1/admin/tasks", {"model": "m" * 101}, "model"),
            ("/v1/admin/usage", {"start": 10, "end": 5}, "start"),
            ("/v1/admin/usage", {"start": 5, "end": 5}, "start"),
            ("/v1/admin/usage", {"end": "now"}, "end"),
            ("/v1/admin/usage", {"interval": "week"}, "interval"),
        ]
        for path, params, param in queries:
            assert_bad(await admin.client.get(path, params=params), param)
        # Nothing was changed by any of them.
        assert await admin.ok("GET", url) == {k: v for k, v in key.items() if k != "key"}
        assert len((await admin.ok("GET", "/v1/admin/keys"))["data"]) == 2
