"""Against a real Label Studio server started by the test on 127.0.0.1 (skipped when `label-studio` is not installed).

Label Studio's pins need not agree with ours, so it is looked for as an executable: `$LABEL_STUDIO_BIN`, else
`label-studio` on the PATH (e.g. `python -m venv ls-venv && ls-venv/bin/pip install label-studio`, then
`LABEL_STUDIO_BIN=ls-venv/bin/label-studio`). The server runs on SQLite in a temporary folder and is set up as
docs/label_studio_sync.md#the-ml-backend-lightning-bal-serve tells a team to: `--internal-host` for the listen address,
a personal access token (the legacy token only creates it), local storage for the files, and the two settings that
let Label Studio call a backend on this machine.
"""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from lightning_bal.annotation import QueryFiles, load_label_state
from lightning_bal.annotation.checkpoint_entries import journal_path, read_journal
from lightning_bal.annotation.consensus import fleiss_kappa
from lightning_bal.annotation.sync import bring_in_answers
from tests.annotation.annotation_script import run_round
from tests.bad_inputs.files import lightning_bal
from tests.helpers.models import blobs

BINARY = os.environ.get("LABEL_STUDIO_BIN") or shutil.which("label-studio")
LEGACY = "lightning-bal-test-token-0123456789abcdef"
NAMES = ["zero", "one", "two"]
CONFIG = (
    '<View><Image name="image" value="$image"/><Choices name="label" toName="image" choice="single">'
    + "".join(f'<Choice value="{name}"/>' for name in NAMES)
    + "</Choices></View>"
)
PREFIX = "/data/local-files/?d=images/"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(BINARY is None, reason="label-studio is not installed (set LABEL_STUDIO_BIN)"),
]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(condition, timeout=300.0, what="the condition"):
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        time.sleep(0.2)


class Server:
    """Label Studio in ``folder``: started, stopped and started again on the same data folder."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen | None = None

    def start(self, first: bool) -> None:
        env = {
            **os.environ,
            "LABEL_STUDIO_BASE_DATA_DIR": str(self.folder / "ls"),
            "LABEL_STUDIO_DISABLE_SIGNUP_WITHOUT_LINK": "true",
            "LABEL_STUDIO_LOCAL_FILES_SERVING_ENABLED": "true",
            "LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT": str(self.folder),
            # A backend on this machine: Label Studio blocks local addresses for backends and webhooks by default.
            "ML_BLOCK_LOCAL_IP": "false",
            "SSRF_PROTECTION_ENABLED": "false",
            "WEBHOOK_TIMEOUT": "30",
        }
        command = [BINARY, "start", "--internal-host", "127.0.0.1", "--port", str(self.port), "--data-dir",
                   str(self.folder / "ls" / "data"), "--no-browser"]  # fmt: skip
        if first:
            # The legacy token is on only so that the test can create the personal access token through the API.
            env["LABEL_STUDIO_ENABLE_LEGACY_API_TOKEN"] = "true"
            command += ["--username", "reviewer@example.com", "--password", "reviewer-pass", "--user-token", LEGACY]
        with (self.folder / "server.log").open("a") as log:
            self.process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
        wait_for(self.healthy, what=f"Label Studio to start (see {self.folder / 'server.log'})")

    def healthy(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            raise RuntimeError(f"Label Studio exited with {self.process.returncode}; see {self.folder / 'server.log'}")
        try:
            with urllib.request.urlopen(f"{self.url}/health", timeout=5) as response:
                return response.status == 200
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            return False

    def api(self, method, path, body=None):
        request = urllib.request.Request(
            f"{self.url}{path}",
            data=None if body is None else json.dumps(body).encode(),
            method=method,
            headers={"Authorization": f"Token {LEGACY}", "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=60) as response:
            return json.loads(response.read() or b"null")

    def tasks(self, project):
        tasks = self.api("GET", f"/api/tasks?project={project}&page_size=100")
        return sorted(tasks["tasks"] if isinstance(tasks, dict) else tasks, key=lambda t: t["id"])

    def answer(self, task, name, user=None):
        result = [{"from_name": "label", "to_name": "image", "type": "choices", "value": {"choices": [name]}}]
        body = {"result": result, **({"completed_by": user} if user is not None else {})}
        return self.api("POST", f"/api/tasks/{task['id']}/annotations", body)

    def stop(self) -> None:
        if self.process is None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.process = None


def start_serve(folder, ckpt, url, project, run, pat, *flags):
    """`lightning-bal serve` in its own process, as a team runs it (with ``flags``); returns the process and its URL."""
    port = free_port()
    train = f"{sys.executable} -m tests.annotation.serve_train {{checkpoint}} {{output}} --run {run} --prefix {PREFIX}"
    command = [sys.executable, "-m", "lightning_bal.annotation.cli", "serve", str(ckpt), "--port", str(port),
               "--url", url, "--project", str(project), "--labels", ",".join(NAMES), "--data-prefix", PREFIX,
               "--train", train, *flags]  # fmt: skip
    log = folder / "serve.log"
    with log.open("a") as handle:
        process = subprocess.Popen(command, env={**os.environ, "LABEL_STUDIO_TOKEN": pat}, stderr=handle)
    wait_for(lambda: "listening at" in log.read_text() or process.poll() is not None, what="serve to listen")
    assert process.poll() is None, log.read_text()
    return process, f"http://127.0.0.1:{port}"


def labels(path):
    state = load_label_state(path)
    return {state.ids[i]: v for i, v in state.ledger.annotations.items()}


def test_three_rounds_two_annotators_a_correction_restarts_and_the_ml_backend(tmp_path):
    started = time.monotonic()
    targets = blobs(60).tensors[1]
    truth = {}
    run, live = tmp_path / "run", tmp_path / "live.ckpt"
    (tmp_path / "images").mkdir()
    for i in range(60):  # the items' files, served by Label Studio from its local storage
        (tmp_path / "images" / f"item{i:02d}").write_bytes(bytes([i]) * 16)
    server = Server(tmp_path)
    serve = None
    try:
        # The run writes its first query and stops; the team serves the run from a checkpoint of its own.
        annotator = QueryFiles("label_studio", predictions=True, label_names=NAMES, data_prefix=PREFIX)
        run_round(run, annotator=annotator)
        shutil.copyfile(run / "annotation/annotation-step001.ckpt", live)
        server.start(first=True)
        pat = server.api("POST", "/api/token/", {})["token"]
        assert pat.count(".") == 2  # a personal access token (JWT refresh token): what sync and serve use
        os.environ["LABEL_STUDIO_TOKEN"] = pat  # restored by the autouse fixture of tests/conftest.py
        other = server.api("POST", "/api/users/", {"email": "annotator@example.com", "username": "annotator"})["id"]
        third = server.api("POST", "/api/users/", {"email": "third@example.com", "username": "third"})["id"]
        project = server.api("POST", "/api/projects", {"title": "blobs run", "label_config": CONFIG})["id"]
        server.api(
            "POST",
            "/api/storages/localfiles",
            {"project": project, "title": "images", "path": str(tmp_path / "images"), "use_blob_urls": False},
        )
        request = urllib.request.Request(f"{server.url}{PREFIX}item07", headers={"Authorization": f"Token {LEGACY}"})
        with urllib.request.urlopen(request, timeout=30) as response:
            assert response.read() == bytes([7]) * 16

        # Round 1 through `sync`: pushed, answered by two annotators (who agree where both answer), pulled.
        sync = ["sync", live, "--url", server.url, "--project", "blobs run", "--labels", ",".join(NAMES)]
        assert "pushed 4 tasks, pulled 0 answers" in lightning_bal(*sync, "--data-prefix", PREFIX)
        round1 = server.tasks(project)
        assert round1[0]["data"]["image"].startswith(PREFIX)
        annotations = {}
        for number, task in enumerate(round1):
            item = task["data"]["lbal_id"]
            truth[item] = int(targets[int(item.removeprefix("item"))])
            annotations[item] = server.answer(task, NAMES[truth[item]])["id"]
            if number < 2:
                server.answer(task, NAMES[truth[item]], user=other)
        assert "pulled 4 answers; 0 items still pending" in lightning_bal(*sync, "--data-prefix", PREFIX)
        assert labels(live) == truth

        # The run restarts from the checkpoint for round 2; Label Studio restarts on its data folder.
        annotator = QueryFiles("label_studio", predictions=True, label_names=NAMES, data_prefix=PREFIX)
        dm2, _, _ = run_round(run, ckpt=live, annotator=annotator)
        assert dm2.step == 2
        shutil.copyfile(run / "annotation/annotation-step002.ckpt", live)
        server.stop()
        server.start(first=False)
        assert len(server.tasks(project)) == 4

        # Round 2 with the ML backend: serve pushes the query, Label Studio connects to it and asks for predictions.
        # Several annotators are reconciled by majority, and a labelled item whose answers tie goes back to the queue.
        # Eight answers come in this round (the correction included): the last starts the training.
        flags = ("--threshold", "8", "--on-disagreement", "majority", "--requeue-disagreements")
        serve, backend = start_serve(tmp_path, live, server.url, project, run, pat, *flags)
        wait_for(lambda: len(server.tasks(project)) == 8, what="serve to push round 2")
        connected = server.api("POST", "/api/ml", {"url": backend, "project": project, "title": "lightning_bal"})
        assert (connected["readable_state"], connected["model_version"]) == ("Connected", "lightning_bal-step2-0")
        round2 = [task for task in server.tasks(project) if task["data"]["lbal_step"] == 2]
        selected = {"selectedItems": {"all": False, "included": [task["id"] for task in round2]}}
        server.api("POST", f"/api/dm/actions?id=retrieve_tasks_predictions&project={project}", selected)
        recorded = load_label_state(live).annotator_state
        for task in round2:
            predictions = server.api("GET", f"/api/predictions?task={task['id']}")
            (served,) = [p for p in predictions if p["model_version"] == "lightning_bal-step2-0"]
            assert served["score"] == pytest.approx(recorded["scores"][task["data"]["lbal_id"]])
            guess = recorded["predictions"][task["data"]["lbal_id"]][0]
            assert served["result"][0]["value"]["choices"] == [NAMES[guess]]
        # Two annotators answer through Label Studio (webhooks): they agree on the first item and disagree on the
        # second, whose tie sends it back to the queue (its task stays in the project) until a third settles it.
        for task in round2:
            item = task["data"]["lbal_id"]
            truth[item] = int(targets[int(item.removeprefix("item"))])
        agreed, tied = (task["data"]["lbal_id"] for task in round2[:2])
        for task, user, name in [
            (round2[0], None, NAMES[truth[agreed]]),
            (round2[0], other, NAMES[truth[agreed]]),
            (round2[1], None, NAMES[truth[tied]]),
            (round2[1], other, NAMES[(truth[tied] + 1) % 3]),
        ]:
            server.answer(task, name, user=user)
        wait_for(lambda: len(read_journal(journal_path(live))) == 4, what="the webhooks of the tie")
        state = load_label_state(live)
        assert tied in state.pending_ids()
        assert (state.ledger.step, len(server.tasks(project))) == (2, 8)
        server.answer(round2[1], NAMES[truth[tied]], user=third)
        wait_for(lambda: tied not in load_label_state(live).pending_ids(), what="the third answer to settle the tie")
        for task in round2[2:]:
            server.answer(task, NAMES[truth[task["data"]["lbal_id"]]])
        # A reviewer corrects a round-1 answer (of an item answered once): the eighth new answer of the round.
        fixed = round1[-1]["data"]["lbal_id"]
        wrong, truth[fixed] = truth[fixed], (truth[fixed] + 1) % 3
        value = {"choices": [NAMES[truth[fixed]]]}
        result = [{"from_name": "label", "to_name": "image", "type": "choices", "value": value}]
        server.api("PATCH", f"/api/annotations/{annotations[fixed]}", {"result": result})
        wait_for(lambda: len(read_journal(journal_path(live))) == 8, what="the webhooks of round 2")
        wait_for(lambda: load_label_state(live).ledger.step == 3, what="the training of round 2")
        state = load_label_state(live)
        assert {state.ids[i]: v for i, v in state.ledger.annotations.items()} == truth
        rows = [(row["id"], row["label"], row["new"], row["by"]) for row in state.history]
        assert rows == [(tied, truth[tied], None, None), (fixed, wrong, truth[fixed], "1")]
        # The agreement of round 2 (three annotators: Fleiss' kappa over the two items answered more than once).
        shown = json.loads(lightning_bal("status", live, "--json"))["agreement"]
        table = [[truth[agreed], truth[agreed], None], [truth[tied], (truth[tied] + 1) % 3, truth[tied]]]
        assert [(row["step"], row["method"], row["annotators"], row["items"]) for row in shown] == [
            (1, "cohen", 2, 2),
            (2, "fleiss", 3, 2),
        ]
        assert shown[1]["kappa"] == pytest.approx(fleiss_kappa(table))
        # The new query is pushed, and Label Studio gets predictions of the new model version.
        wait_for(lambda: len(server.tasks(project)) == 12, what="serve to push round 3")
        round3 = [task for task in server.tasks(project) if task["data"]["lbal_step"] == 3]
        assert sorted(task["data"]["lbal_id"] for task in round3) == sorted(map(str, state.pending_ids()))
        selected = {"selectedItems": {"all": False, "included": [task["id"] for task in round3]}}
        server.api("POST", f"/api/dm/actions?id=retrieve_tasks_predictions&project={project}", selected)
        versions = {p["model_version"] for p in server.api("GET", f"/api/predictions?task={round3[0]['id']}")}
        assert "lightning_bal-step3-1" in versions

        # Round 3: answered in Label Studio, recorded by serve; the run restarts on every answer, the fix included.
        for task in round3:
            item = task["data"]["lbal_id"]
            truth[item] = int(targets[int(item.removeprefix("item"))])
            server.answer(task, NAMES[truth[item]])
        wait_for(lambda: labels(live) == truth, what="the webhooks of round 3")
        serve.send_signal(signal.SIGTERM)
        assert serve.wait(timeout=60) == 0
        serve = None
        export = tmp_path / "export.json"
        export.write_text(json.dumps(server.api("GET", f"/api/projects/{project}/export?exportType=JSON")))
        again = bring_in_answers(live, export, label_map={name: i for i, name in enumerate(NAMES)})
        assert (again.labelled.numel(), again.corrected) == (0, [])  # the whole project agrees with the checkpoint
        dm4, _, _ = run_round(run, ckpt=live, annotator=QueryFiles("label_studio"))
        assert ({dm4.ids[i]: v for i, v in dm4.annotations.items()}, dm4.step) == (truth, 4)
        assert len(truth) == 12
    finally:
        if serve is not None:
            serve.kill()
            serve.wait()
        server.stop()
    print(f"real-server scenario: {time.monotonic() - started:.0f} s")
