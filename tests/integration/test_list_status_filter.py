"""`GET /v1/videos?status=` (a vidgate extension): only the key's videos in that status, in cursor pages,
with vidgate's five statuses and OpenAI's `queued` / `in_progress`; through the SDK too."""

from __future__ import annotations

import pytest

from vidgate.client import AsyncClient

pytestmark = pytest.mark.anyio
BODY = {"prompt": "a kite", "seconds": "4", "size": "720x1280"}


async def test_the_list_filters_by_status(gateway) -> None:
    key, other = await gateway.new_key(), await gateway.new_key()
    async with gateway.client(key) as c, gateway.client(other) as o:
        ids = [(await c.post("/v1/videos", json=BODY)).json()["id"] for _ in range(5)]
        await o.post("/v1/videos", json=BODY)  # another key's: never listed
        for video_id in ids[:2]:
            assert (await c.post(f"/v1/videos/{video_id}/cancel")).status_code == 200

        async def listed(**params: str) -> list[str]:
            r = await c.get("/v1/videos", params=params)
            assert r.status_code == 200, r.text
            return [v["id"] for v in r.json()["data"]]

        newest_first = ids[::-1]
        assert await listed(status="cancelled") == newest_first[3:]
        assert await listed(status="pending") == await listed(status="queued") == newest_first[:3]
        assert await listed(status="failed") == []  # cancelled videos are not failures here
        assert await listed(status="in_progress") == []
        assert await listed(status="pending", order="asc") == ids[2:]
        # Cursor pages within the filter.
        first = await c.get("/v1/videos", params={"status": "pending", "limit": 2})
        assert first.json()["has_more"] is True
        rest = await listed(status="pending", limit="2", after=first.json()["last_id"])
        assert [v["id"] for v in first.json()["data"]] + rest == newest_first[:3]
        bad = await c.get("/v1/videos", params={"status": "done"})
        assert bad.status_code == 400
        assert bad.json()["error"]["param"] == "status"

    async with AsyncClient(gateway.base_url, key) as client:
        page = await client.videos.list(status="cancelled")
        assert [(v.id, v.status) for v in page.data] == [(i, "cancelled") for i in newest_first[3:]]
