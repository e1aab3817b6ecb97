"""The ceiling the API benchmarks divide by: a bare Starlette app on the same uvicorn options.

    python bench/bare_app.py PORT JSON_BYTES [FILE]

- `GET /json`: pre-encoded JSON bytes the size of a vidgate task view (nothing computed per request);
- `POST /json`: reads and parses a JSON body, answers the same bytes (the unified create's framework cost);
- `POST /form`: parses a multipart form with python-multipart as vidgate does (the OpenAI create's);
- `GET /file`: a Starlette FileResponse of FILE (the streaming benchmark's comparison).
"""

from __future__ import annotations

import json
import sys

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import Route


def build(json_bytes: int, file: str | None) -> Starlette:
    body = json.dumps({"object": "video", "pad": "x" * max(0, json_bytes - 30)}).encode()

    async def get_json(_request: Request) -> Response:
        return Response(body, media_type="application/json")

    async def post_json(request: Request) -> Response:
        json.loads(await request.body())
        return Response(body, media_type="application/json")

    async def post_form(request: Request) -> Response:
        async with request.form(max_files=1, max_fields=32) as form:
            for _name, value in form.multi_items():
                if not isinstance(value, str):
                    await value.read()
        return Response(body, media_type="application/json")

    async def get_file(_request: Request) -> Response:
        assert file is not None
        return FileResponse(file, media_type="video/mp4")

    return Starlette(
        routes=[
            Route("/json", get_json, methods=["GET"]),
            Route("/json", post_json, methods=["POST"]),
            Route("/form", post_form, methods=["POST"]),
            Route("/file", get_file, methods=["GET"]),
        ]
    )


def main() -> None:
    port, json_bytes = int(sys.argv[1]), int(sys.argv[2])
    file = sys.argv[3] if len(sys.argv) > 3 else None
    # The options `vidgate serve` uses (httptools, uvloop, no access log), so only the app differs.
    uvicorn.run(
        build(json_bytes, file),
        host="127.0.0.1",
        port=port,
        http="httptools",
        loop="uvloop",
        access_log=False,
        log_level="warning",
    )


if __name__ == "__main__":
    main()
