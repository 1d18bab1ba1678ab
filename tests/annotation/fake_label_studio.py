"""A tiny stand-in for Label Studio's HTTP API on 127.0.0.1 (http.server in a thread), for fast sync tests.

It speaks the few endpoints :class:`~lightning_bal.annotation.label_studio_api.LabelStudioClient` uses, with a
personal access token exchanged for an access token, and can be told to drop the connection on one endpoint (a
server that goes away mid-sync). The end-to-end test against a real server is tests/annotation/test_label_studio_sync.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = ["PAT", "FakeLabelStudio", "config"]

# A JWT-shaped refresh token (three dot-separated parts), as Label Studio's personal access tokens are.
PAT = "eyJhbGciOiJIUzI1NiJ9.eyJ0b2tlbl90eXBlIjoicmVmcmVzaCJ9.c2lnbmF0dXJl"
ACCESS = "access-token-for-tests"


def config(names: list[str], to_name: str = "image") -> str:
    choices = "".join(f'<Choice value="{name}"/>' for name in names)
    return (
        f'<View><Image name="image" value="$image"/><Choices name="label" toName="{to_name}">{choices}</Choices></View>'
    )


class FakeLabelStudio:
    """Projects with tasks; ``fail_on`` names a path prefix whose requests get the connection closed unanswered."""

    def __init__(self, names: list[str]) -> None:
        self.projects: dict[int, dict[str, Any]] = {7: {"id": 7, "title": "blobs", "label_config": config(names)}}
        self.tasks: dict[int, list[dict[str, Any]]] = {7: []}
        self.fail_on: str | None = None
        self.access = ACCESS  # change it to expire the access tokens handed out so far
        self.requests: list[tuple[str, str]] = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                fake.handle(self, "GET")

            def do_POST(self) -> None:
                fake.handle(self, "POST")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def annotate(self, item: str, choice: str, project: int = 7, cancelled: bool = False) -> None:
        """Add an annotation to the task of ``item``, as an annotator submitting it in the UI would."""
        task = next(t for t in self.tasks[project] if t["data"]["lbal_id"] == item)
        number = sum(len(t["annotations"]) for t in self.tasks[project]) + 1
        task["annotations"].append(
            {
                "id": number,
                "created_at": f"2026-01-01T00:00:{number:02d}Z",
                "was_cancelled": cancelled,
                "result": [
                    {"from_name": "label", "to_name": "image", "type": "choices", "value": {"choices": [choice]}}
                ],
            }
        )

    def handle(self, handler: BaseHTTPRequestHandler, method: str) -> None:
        path = handler.path
        self.requests.append((method, path))
        length = int(handler.headers.get("Content-Length") or 0)
        body = json.loads(handler.rfile.read(length)) if length else None
        if self.fail_on is not None and path.startswith(self.fail_on):
            handler.close_connection = True
            return  # no status line: the client sees the connection closed mid-request
        if path == "/api/token/refresh/":
            if method == "POST" and isinstance(body, dict) and body.get("refresh") == PAT:
                return self.reply(handler, 200, {"access": self.access})
            return self.reply(handler, 401, {"detail": "Token is invalid or expired"})
        if handler.headers.get("Authorization") != f"Bearer {self.access}":
            return self.reply(handler, 401, {"detail": "Authentication credentials were not provided."})
        parts = path.split("?")[0].strip("/").split("/")
        if parts == ["api", "projects"]:
            return self.reply(
                handler, 200, {"count": len(self.projects), "next": None, "results": list(self.projects.values())}
            )
        if (
            len(parts) >= 3
            and parts[:2] == ["api", "projects"]
            and parts[2].isdigit()
            and int(parts[2]) in self.projects
        ):
            project = int(parts[2])
            if len(parts) == 3:
                return self.reply(handler, 200, self.projects[project])
            if parts[3] == "export" and method == "GET":
                return self.reply(handler, 200, self.tasks[project])
            if parts[3] == "import" and method == "POST":
                for task in body:
                    self.tasks[project].append({"id": 1000 + len(self.tasks[project]), "annotations": [], **task})
                return self.reply(handler, 201, {"task_count": len(body)})
        return self.reply(handler, 404, {"detail": "Not found."})

    @staticmethod
    def reply(handler: BaseHTTPRequestHandler, status: int, payload: Any) -> None:
        raw = json.dumps(payload).encode()
        handler.send_response(status)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(raw)))
        handler.end_headers()
        handler.wfile.write(raw)
