"""The HTTP side of ``lightning-bal serve``: Label Studio's ML-backend routes over an :class:`MLBackend`.

``GET /health``, ``POST /setup``, ``/predict`` and ``/webhook``, as Label Studio 1.23 calls them, on the standard
library's threading HTTP server (docs/label_studio_sync.md#the-ml-backend-lightning-bal-serve).
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from lightning_bal.annotation.ml_backend import BadRequest, MLBackend

__all__ = ["MAX_BODY", "check_host", "check_port", "make_server", "serve"]

#: A request body larger than this is refused before it is read (a task batch of Label Studio is far smaller).
MAX_BODY = 64 << 20


def check_port(value: Any) -> int:
    """``--port``: an integer from 0 (any free port) to 65535."""
    try:
        port = int(value) if isinstance(value, str) and value.strip().isdigit() else value
    except ValueError:
        port = value
    if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
        raise ValueError(f"Expected `--port` to be a port number from 0 (any free port) to 65535, but got {value!r}.")
    return port


def check_host(value: Any) -> str:
    """``--host``: a host name or IP address without scheme, port or path (the address to listen on)."""
    if not isinstance(value, str) or not value or not re.fullmatch(r"[A-Za-z0-9.\-:]+", value) or value.count(":") == 1:
        raise ValueError(
            f"Expected `--host` to be the address to listen on, such as 127.0.0.1 (no scheme, port or path), but got"
            f" {value!r}."
        )
    return value


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        # The path only: a request body (e.g. /setup's access token) is never logged.
        self.server.backend.log(f"serve: {self.command} {self.path.split('?')[0]} {args[1] if len(args) > 1 else ''}")

    def _reply(self, status: int, payload: Any) -> None:
        raw = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        if self.path.split("?")[0].rstrip("/") in ("", "/health"):
            return self._reply(200, {"status": "UP", "model_class": "lightning_bal"})
        return self._reply(404, {"error": f"Expected /health, /setup, /predict or /webhook, but got {self.path!r}."})

    def do_POST(self) -> None:  # noqa: N802 (http.server's name)
        backend = self.server.backend
        route = self.path.split("?")[0].rstrip("/")
        handlers: dict[str, Callable[[dict[str, Any]], Any]] = {
            "/setup": backend.setup,
            "/predict": lambda payload: {"results": backend.predictions(_tasks_of(payload))},
            "/webhook": backend.webhook,
        }
        if route not in handlers:
            return self._reply(404, {"error": f"Expected /setup, /predict or /webhook, but got {route!r}."})
        try:
            payload = self._body()
            status, answer = 200, handlers[route](payload)
        except BadRequest as err:
            status, answer = 400, {"error": str(err)}
        except Exception as err:  # the server stays up; Label Studio shows the message
            status, answer = 500, {"error": f"{type(err).__name__}: {err}"}
        self._reply(201 if route == "/webhook" and status == 200 else status, answer)

    def _body(self) -> dict[str, Any]:
        length = self.headers.get("Content-Length")
        if length is None or not length.isdigit() or int(length) > MAX_BODY:
            raise BadRequest(f"Expected a JSON body with a Content-Length up to {MAX_BODY} bytes, but got {length!r}.")
        try:
            payload = json.loads(self.rfile.read(int(length)) or b"null")
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise BadRequest(f"Expected the request body to be JSON, but it does not parse: {err}.") from None
        if not isinstance(payload, dict):
            raise BadRequest(f"Expected the request body to be a JSON object, but got {type(payload).__name__}.")
        return payload


def _tasks_of(payload: dict[str, Any]) -> list[Any]:
    tasks = payload.get("tasks")
    if not isinstance(tasks, list):
        raise BadRequest(f"Expected /predict's `tasks` to be a list of tasks, but got {tasks!r:.80}.")
    return tasks


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], backend: MLBackend) -> None:
        self.backend = backend
        super().__init__(address, _Handler)


def make_server(backend: MLBackend, host: str, port: int) -> ThreadingHTTPServer:
    """The HTTP server of ``backend``, listening on ``host:port`` (port 0: any free port); run ``serve_forever``."""
    try:
        return _Server((check_host(host), check_port(port)), backend)
    except OSError as err:
        raise OSError(f"Expected to listen on `--host` {host} `--port` {port}, but it failed: {err}") from None


def serve(backend: MLBackend, host: str, port: int) -> None:
    """Answer Label Studio at ``host:port`` until interrupted; a running training is stopped on the way out."""
    server = make_server(backend, host, port)
    backend.write_summary()
    backend.log(
        f"serve: listening at http://{host}:{server.server_address[1]} for {backend.checkpoint} (model version"
        f" {backend.model_version}; {backend.waiting()} of {backend.threshold} answers to the next training)"
    )
    try:
        if backend.push_due:
            backend.push()
        threading.Thread(target=backend.retry_pushes, daemon=True).start()
        backend.maybe_train()
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        backend.close()
