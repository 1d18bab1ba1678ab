"""Against a real Label Studio server started by the test on 127.0.0.1 (skipped when `label-studio` is not installed).

Label Studio's pins need not agree with ours, so it is looked for as an executable: `$LABEL_STUDIO_BIN`, else
`label-studio` on the PATH (e.g. `python -m venv ls-venv && ls-venv/bin/pip install label-studio`, then
`LABEL_STUDIO_BIN=ls-venv/bin/label-studio`). The server runs on SQLite in a temporary folder.
"""

import json
import os
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request

import pytest

from lightning_bal.annotation import QueryFiles, import_answers, load_label_state
from lightning_bal.annotation.sync import bring_in_answers
from tests.annotation.annotation_script import run_round
from tests.helpers.models import blobs

BINARY = os.environ.get("LABEL_STUDIO_BIN") or shutil.which("label-studio")
TOKEN = "lightning-bal-test-token-0123456789abcdef"
NAMES = ["zero", "one", "two"]
CONFIG = (
    '<View><Image name="image" value="$image"/><Choices name="label" toName="image" choice="single">'
    + "".join(f'<Choice value="{name}"/>' for name in NAMES)
    + "</Choices></View>"
)

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(BINARY is None, reason="label-studio is not installed (set LABEL_STUDIO_BIN)"),
]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Server:
    def __init__(self, folder):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        # Label Studio 1.17+ turns the legacy (fixed) API token off unless asked: the test posts with it.
        env = {
            **os.environ,
            "LABEL_STUDIO_BASE_DATA_DIR": str(folder),
            "LABEL_STUDIO_DISABLE_SIGNUP_WITHOUT_LINK": "true",
            "LABEL_STUDIO_ENABLE_LEGACY_API_TOKEN": "true",
        }
        self.log = (folder / "server.log").open("w")
        self.process = subprocess.Popen(
            [
                BINARY,
                "start",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--data-dir",
                str(folder / "data"),
                "--no-browser",
                "--username",
                "annotator@example.com",
                "--password",
                "annotator-pass",
                "--user-token",
                TOKEN,
            ],
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )

    def wait(self, timeout=300.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"Label Studio exited with {self.process.returncode}; see {self.log.name}")
            try:
                with urllib.request.urlopen(f"{self.url}/health", timeout=5) as response:
                    if response.status == 200:
                        return
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            time.sleep(1.0)
        raise TimeoutError("Label Studio did not answer /health in time")

    def api(self, method, path, body=None):
        request = urllib.request.Request(
            f"{self.url}{path}",
            data=None if body is None else json.dumps(body).encode(),
            method=method,
            headers={"Authorization": f"Token {TOKEN}", "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=60) as response:
            return json.loads(response.read() or b"null")

    def tasks(self, project):
        tasks = self.api("GET", f"/api/tasks?project={project}&page_size=100")
        return sorted(tasks["tasks"] if isinstance(tasks, dict) else tasks, key=lambda t: t["id"])

    def export(self, project, path):
        path.write_text(json.dumps(self.api("GET", f"/api/projects/{project}/export?exportType=JSON")))
        return path

    def stop(self):
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
        self.log.close()


def choose(name):
    return [{"from_name": "label", "to_name": "image", "type": "choices", "value": {"choices": [name]}}]


def test_two_rounds_in_one_label_studio_project_with_a_correction(tmp_path):
    server = Server(tmp_path)
    label_map = {name: i for i, name in enumerate(NAMES)}
    targets = blobs(60).tensors[1]
    try:
        # A run writes its query as Label Studio tasks with the model's guesses, and stops.
        annotator = QueryFiles("label_studio", predictions=True, label_names=NAMES, data_prefix="/data/upload/")
        dm, _, _ = run_round(tmp_path / "run", annotator=annotator)
        tasks_path, ckpt = annotator.written[-1], tmp_path / "run/annotation/annotation-step001.ckpt"
        server.wait()
        # 1. one project for the run; 2. the tasks imported; 3. annotations posted as an annotator would (3 of 4).
        project = server.api("POST", "/api/projects", {"title": "lightning-bal", "label_config": CONFIG})
        server.api("POST", f"/api/projects/{project['id']}/import", json.loads(tasks_path.read_text()))
        truth, annotation_ids = {}, {}
        for task in server.tasks(project["id"])[:3]:
            item = task["data"]["lbal_id"]
            truth[item] = int(targets[int(item.removeprefix("item"))])
            posted = server.api("POST", f"/api/tasks/{task['id']}/annotations", {"result": choose(NAMES[truth[item]])})
            annotation_ids[item] = posted["id"]
        # 4. the project's export; 5. imported into the checkpoint; 6. the run goes on.
        export_path = server.export(project["id"], tmp_path / "export1.json")
        labelled = import_answers(ckpt, export_path, label_map=label_map)
        assert sorted(dm.ids[i] for i in labelled.tolist()) == sorted(truth)
        assert len(load_label_state(ckpt).pending_ids()) == 1
        round2 = QueryFiles("label_studio")
        dm2, _, _ = run_round(tmp_path / "run", ckpt=ckpt, annotator=round2)
        assert {dm2.ids[i]: v for i, v in dm2.annotations.items()} == truth
        assert dm2.step == 2

        # Round 2 in the same project: its tasks (the leftover item again, and 4 new ones) are all answered, and a
        # reviewer corrects one of round 1's answers in place.
        ckpt2 = tmp_path / "run/annotation/annotation-step002.ckpt"
        server.api("POST", f"/api/projects/{project['id']}/import", json.loads(round2.written[-1].read_text()))
        for task in server.tasks(project["id"]):
            item = task["data"]["lbal_id"]
            if task["data"]["lbal_step"] == 2:
                truth[item] = int(targets[int(item.removeprefix("item"))])
                server.api("POST", f"/api/tasks/{task['id']}/annotations", {"result": choose(NAMES[truth[item]])})
        fixed = sorted(annotation_ids)[0]
        wrong = truth[fixed]
        truth[fixed] = (wrong + 1) % 3
        server.api("PATCH", f"/api/annotations/{annotation_ids[fixed]}", {"result": choose(NAMES[truth[fixed]])})
        done = bring_in_answers(ckpt2, server.export(project["id"], tmp_path / "export2.json"), label_map=label_map)
        assert done.labelled.numel() == 5
        assert (done.corrected, done.unchanged) == ([fixed], 2)
        (row,) = load_label_state(ckpt2).history
        assert (row["id"], row["label"], row["new"], row["updated_at"] is not None) == (
            fixed,
            wrong,
            truth[fixed],
            True,
        )
        # The same export again changes nothing; round 3 trains on every answer, the correction included.
        again = bring_in_answers(ckpt2, tmp_path / "export2.json", label_map=label_map)
        assert (again.labelled.numel(), again.corrected, again.unchanged) == (0, [], 8)
        dm3, _, _ = run_round(tmp_path / "run", ckpt=ckpt2, annotator=QueryFiles("label_studio"))
        assert {dm3.ids[i]: v for i, v in dm3.annotations.items()} == truth
        assert [r["id"] for r in load_label_state(tmp_path / "run/annotation/annotation-step003.ckpt").history] == [
            fixed
        ]
    finally:
        server.stop()
