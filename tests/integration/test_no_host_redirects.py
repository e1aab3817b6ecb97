"""No answer is a redirect built from the request's `Host` header: Starlette's trailing-slash redirect
(`/v1/admin` -> `http://<Host>/v1/admin/`) sent a client wherever the header said, and told anyone
that a path with the other slash existed. A path that differs from a route by its trailing slash is
an unknown route, for every route, over real loopback HTTP."""

from __future__ import annotations

import re
from typing import Any

import fastapi.routing
import pytest

pytestmark = pytest.mark.anyio

EVIL = "evil.example"


def route_paths(app: Any) -> list[str]:
    """Every route's path template, those of included routers too (as test_hostile_inputs_property)."""
    flatten = getattr(fastapi.routing, "iter_route_contexts", iter)
    return [route.path for route in flatten(app.routes) if route.path]


def slash_variants(app: Any) -> list[str]:
    """Each route's path with its parameters filled in and its trailing slash toggled."""
    variants = []
    for template in route_paths(app):
        path = re.sub(r"\{[^}]+\}", "x", template)
        if path != "/":
            variants.append(path[:-1] if path.endswith("/") else f"{path}/")
    return variants


async def test_no_path_is_redirected_to_the_host_the_request_named(gateway: Any) -> None:
    key = await gateway.new_key()
    async with gateway.client(None) as anonymous, gateway.client(key) as user:
        # The probe's reproduction: the admin prefix without its slash.
        answer = await anonymous.get("/v1/admin", headers={"host": EVIL})
        assert answer.status_code == 404, (answer.status_code, answer.headers.get("location"))
        assert answer.content == (await anonymous.get("/v1/nope", headers={"host": EVIL})).content

        variants = slash_variants(gateway.app)
        assert "/v1/videos/" in variants and "/v1/admin/keys/" in variants
        for client in (anonymous, user):
            for path in variants:
                for method in ("GET", "POST"):
                    answer = await client.request(method, path, headers={"host": EVIL})
                    location = answer.headers.get("location", "")
                    assert EVIL not in location, (method, path, location)
                    # The one redirect left (/console -> console/) is relative: no host in it at all.
                    assert not location.startswith(("http:", "https:", "//")), (method, path, location)
