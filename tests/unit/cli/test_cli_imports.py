"""What the command line imports: `vidgate --help` only typer and the CLI's own modules, a client command
(`vidgate video get ID`) the SDK as well; never the server's modules (SQLAlchemy, FastAPI, PyAV, numpy,
the settings, the store, the runtime), which cost a second at every start (issue 21, item 8). Checked on
sys.modules in a fresh interpreter: a test on imports, not on timing."""

from __future__ import annotations

from tests.helpers import among, modules_after

# Modules (and their submodules) only the local commands may import, when they run.
SERVER_ONLY = (
    "alembic",
    "av",
    "fastapi",
    "numpy",
    "PIL",
    "prometheus_client",
    "pydantic_settings",
    "sqlalchemy",
    "starlette",
    "structlog",
    "uvicorn",
    "vidgate.api",
    "vidgate.config",
    "vidgate.runtime",
    "vidgate.store",
    "vidgate.worker",
)
SDK = ("vidgate.client", "httpx", "pydantic")


def test_importing_the_video_commands_imports_no_server_module_and_not_the_sdk() -> None:
    modules = modules_after("import vidgate.cli.video")
    assert "vidgate.cli.video" in modules
    assert among(modules, SERVER_ONLY) == []
    assert among(modules, SDK) == []  # opened by a command when it runs


def test_help_imports_no_server_module() -> None:
    modules = modules_after(
        "from vidgate.cli import app\n"
        "try:\n"
        "    app(['--help'], prog_name='vidgate')\n"
        "except SystemExit as exit:\n"
        "    assert exit.code == 0\n"
    )
    assert {"vidgate.cli.root", "vidgate.cli.keys", "vidgate.cli.serve"} <= modules
    assert among(modules, SERVER_ONLY) == []
    assert among(modules, SDK) == []


def test_video_get_imports_the_sdk_and_no_server_module() -> None:
    """`vidgate video get ID` run for real, against a stub server in the same process."""
    video = {"id": "video_01abc", "object": "video", "status": "completed", "progress": 100,
             "model": "sora-2", "prompt": "a boat", "size": "1280x720", "seconds": "8"}  # fmt: skip
    modules = modules_after(
        "import json, threading\n"
        "from http.server import BaseHTTPRequestHandler, HTTPServer\n"
        "class Stub(BaseHTTPRequestHandler):\n"
        "    def do_GET(self):\n"
        f"        body = json.dumps({video!r}).encode()\n"
        "        self.send_response(200)\n"
        "        self.send_header('content-type', 'application/json')\n"
        "        self.send_header('content-length', str(len(body)))\n"
        "        self.end_headers()\n"
        "        self.wfile.write(body)\n"
        "    def log_message(self, *args): pass\n"
        "server = HTTPServer(('127.0.0.1', 0), Stub)\n"
        "threading.Thread(target=server.serve_forever, daemon=True).start()\n"
        "from vidgate.cli import app\n"
        "url = f'http://127.0.0.1:{server.server_address[1]}'\n"
        "try:\n"
        "    app(['video', 'get', 'video_01abc', '--base-url', url, '--key', 'vg-x'], prog_name='vidgate')\n"
        "except SystemExit as exit:\n"
        "    assert exit.code == 0, exit.code\n"
    )
    assert "vidgate.client" in modules and "httpx" in modules
    assert among(modules, SERVER_ONLY) == []
