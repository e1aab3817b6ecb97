"""`HeadDeadlineProtocol` builds on uvicorn's httptools protocol, a private class (pyproject bounds the
uvicorn version). This fails loudly, naming what changed, when an uvicorn release moves what it hooks."""

from __future__ import annotations

import inspect

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from vidgate.api.http_server import HeadDeadlineProtocol

# The hooks the subclass overrides (each calls the parent's) and the attributes it reads.
HOOKS = ("connection_made", "connection_lost", "on_headers_complete", "on_response_complete")
ATTRIBUTES = ("transport", "loop", "pipeline")


def test_uvicorns_httptools_protocol_still_has_what_the_head_deadline_hooks() -> None:
    for hook in HOOKS:
        parent = getattr(HttpToolsProtocol, hook, None)
        assert callable(parent), f"uvicorn's HttpToolsProtocol no longer has {hook}(): see api/http_server.py"
        ours = inspect.signature(getattr(HeadDeadlineProtocol, hook))
        assert len(inspect.signature(parent).parameters) == len(ours.parameters), (
            f"uvicorn's HttpToolsProtocol.{hook} changed its signature: see api/http_server.py"
        )
    source = inspect.getsource(HttpToolsProtocol.__init__)
    for attribute in ATTRIBUTES:
        assert f"self.{attribute}" in source, (
            f"uvicorn's HttpToolsProtocol no longer sets self.{attribute}: see api/http_server.py"
        )
