"""`lightning-bal serve` with bad flags, bad requests from Label Studio and a server that goes away: exit 1 (argparse:
2) or HTTP 400 with a message naming the flag, field or problem, and every file of the folder bit-identical (nothing is
recorded); a push that fails loses nothing and the next one resumes. Label Studio is the stand-in on 127.0.0.1."""

from __future__ import annotations

import json
import sys
import threading
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any

import pytest
import torch
from torch.utils.data import TensorDataset

from lightning_bal import ActiveDataModule
from lightning_bal.annotation.checkpoint import load_label_state
from lightning_bal.annotation.label_studio_api import LabelStudioClient
from lightning_bal.annotation.ml_backend import MLBackend
from lightning_bal.annotation.serve import make_server
from tests.annotation.fake_label_studio import PAT, FakeLabelStudio, config
from tests.annotation.test_ml_backend import event, wait_for
from tests.bad_inputs.files import CliError, Folder, lightning_bal, make_checkpoint
from tests.bad_inputs.harness import accepts, refuses

NAMES = ["cat", "dog", "bird"]
ENV = "LS_SERVE_BAD_INPUTS_TOKEN"
TRAIN = f"{sys.executable} -m tests.annotation.serve_train {{checkpoint}} {{output}}"


class Refused(Exception):
    """The backend answered with an error status; the message is ``<status>: <its error>``."""


@pytest.fixture
def fake(monkeypatch):
    server = FakeLabelStudio(NAMES)
    monkeypatch.setenv(ENV, PAT)
    yield server
    server.stop()


def set_config(text: str) -> Callable[[FakeLabelStudio], None]:
    return lambda fake: fake.projects[7].update(label_config=text)


# (flags instead of the valid ones, a change to the server, the expected message); the valid flags never start serving
# because each case is refused before the server listens.
CASES: list[tuple[dict[str, str | None], Callable[[FakeLabelStudio], None] | None, str]] = [
    ({"--port": "http"}, None, r"`--port` to be a port number from 0 \(any free port\) to 65535, but got 'http'"),
    ({"--port": "-1"}, None, r"`--port` to be a port number .* got '-1'"),
    ({"--port": "65536"}, None, r"`--port` to be a port number .* got '65536'"),
    ({"--port": "80.5"}, None, r"`--port` to be a port number .* got '80.5'"),
    ({"--host": "http://127.0.0.1"}, None, r"`--host` to be the address to listen on.* got 'http://127.0.0.1'"),
    ({"--host": "127.0.0.1:9090"}, None, r"`--host` .* \(no scheme, port or path\), but got '127.0.0.1:9090'"),
    ({"--host": ""}, None, r"`--host` to be the address to listen on"),
    ({"--host": "192.0.2.1"}, None, r"listen on `--host` 192.0.2.1 `--port` 0, but it failed"),
    ({"--threshold": "0"}, None, r"`--threshold` to be a positive number of new answers .* got '0'"),
    ({"--threshold": "two"}, None, r"`--threshold` to be a positive number .* got 'two'"),
    ({"--threshold": "1.5"}, None, r"`--threshold` to be a positive number .* got '1.5'"),
    ({"--train": ""}, None, r"`--train` to be the training command line, but got ''"),
    ({"--train": "python train.py --resume {checkpoint}"}, None, r"`--train` to hold .* but \{output\} is missing"),
    ({"--train": "python train.py"}, None, r"but \{checkpoint\} and \{output\} is missing in 'python train.py'"),
    ({"--train": "no-such-trainer {checkpoint} {output}"}, None, r"`--train` .* 'no-such-trainer' is not on the PATH"),
    ({"--train": "python {checkpoint} {output} {model}"}, None, r"`--train` to use only the placeholders.*'\{model\}'"),
    ({"--train": "python 'train.py {checkpoint} {output}"}, None, r"`--train` .* shell-quoted .* does not split"),
    ({"--train": None}, None, r"exit 2: .*required: --train"),
    ({"--labels": "cat,dog"}, None, r"`--labels` to name every class of the model \(3\).* 2 names"),
    ({"--labels": "cat,cat,bird"}, None, r"`--labels` to name each class once"),
    ({"--project": None}, None, r"`--url` and `--project` together"),
    ({"--project": "8"}, None, r"`--project` to name a project of .*, but id 8 is not one"),
    ({"--token-env": "LS_SERVE_NO_SUCH_VARIABLE"}, None, r"LS_SERVE_NO_SUCH_VARIABLE \(`--token-env`\) .* not set"),
    ({"--url": "http://127.0.0.1:99999"}, None, r"`--url` to be the server's base URL"),
    ({"--on-disagreement": "vote"}, None, r"exit 2: .*argument --on-disagreement: invalid choice: 'vote'"),
    ({"--on-disagreement": ""}, None, r"exit 2: .*argument --on-disagreement: invalid choice: ''"),
    ({"--on-disagreement": None, "--requeue-disagreements": "yes"}, None, r"exit 2: .*unrecognized arguments: yes"),
    ({}, set_config(config(["cat", "dog", "fish"])), r"offer the classes \['cat', 'dog', 'bird'\].*another run"),
    ({}, set_config(config(NAMES, to_name="text")), r"toName=\"image\" \(`--data-key`\), but it labels 'text'"),
    ({}, lambda fake: setattr(fake, "fail_on", "/api/projects"), r"Expected Label Studio to answer at .*"),
]


def flags(fake: FakeLabelStudio, folder: Any, replace: dict[str, str | None]) -> list[Any]:
    valid: dict[str, str | None] = {
        "--url": fake.url,
        "--project": "7",
        "--labels": ",".join(NAMES),
        "--train": TRAIN,
        "--token-env": ENV,
        "--port": "0",
    }
    valid.update(replace)
    args: list[Any] = ["serve", folder / "run.ckpt"]
    for flag, value in valid.items():
        if value is not None:
            args += [flag, value]
    return args


@pytest.mark.parametrize(("replace", "change", "match"), CASES)
def test_serve_refuses(tmp_path, fake, replace, change, match):
    make_checkpoint(tmp_path)
    if change is not None:
        change(fake)
    args = flags(fake, tmp_path, replace)
    refuses(
        "lightning-bal serve",
        lambda: lightning_bal(*args),
        CliError,
        match if match.startswith("exit 2") else rf"exit 1: .*{match}",
        Folder(tmp_path),
        fake.tasks,
    )


@pytest.mark.parametrize(("task", "num_classes"), [("multilabel", 3), ("regression", None), ("per_position", 3)])
def test_serve_refuses_a_run_of_another_task(tmp_path, fake, task, num_classes):
    # Serve reads one choice per item: on any other run a choice would become the item's label as a class index.
    dm = ActiveDataModule(TensorDataset(torch.zeros(5, 1)), ids=list("abcde"), task=task, num_classes=num_classes)
    dm.query([1, 3], new_step=True)
    torch.save({"ActiveDataModule": dm.state_dict()}, tmp_path / "run.ckpt")
    refuses(
        "lightning-bal serve",
        lambda: lightning_bal(*flags(fake, tmp_path, {})),
        CliError,
        rf"exit 1: .*checkpoint of a classification run \(one class per item\), but .* is of a {task} run: .*sync",
        Folder(tmp_path),
        fake.tasks,
    )


@pytest.fixture
def backend(tmp_path, fake):
    make_checkpoint(tmp_path)
    client = LabelStudioClient(fake.url, PAT)
    served = MLBackend(tmp_path / "run.ckpt", NAMES, TRAIN.split(), 5, client, 7, log=lambda line: None)
    server = make_server(served, "127.0.0.1", 0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    served.url = f"http://127.0.0.1:{server.server_address[1]}"  # type: ignore[attr-defined]
    yield served
    server.shutdown()
    server.server_close()


def request(url: str, route: str, body: Any) -> dict[str, Any]:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    try:
        with urllib.request.urlopen(urllib.request.Request(f"{url}{route}", data=raw, method="POST"), timeout=30) as r:
            return json.loads(r.read())
    except urllib.error.HTTPError as err:
        raise Refused(f"{err.code}: {json.loads(err.read())['error']}") from None


def changed(body: dict[str, Any], **paths: Any) -> dict[str, Any]:
    """``body`` with the values at dotted ``paths`` (``task__data__lbal_step``) replaced (``...``: removed)."""
    body = json.loads(json.dumps(body))
    for path, value in paths.items():
        *parents, key = path.split("__")
        node = body
        for parent in parents:
            node = node[parent]
        if value is ...:
            node.pop(key)
        else:
            node[key] = value
    return body


GOOD = event("doc5", "dog")
BY = r"`completed_by` of every annotation of task 'doc5' \(task 101 of the ANNOTATION_CREATED event\) to be"
REGION = GOOD["annotation"]["result"][0]
WEBHOOK_CASES: list[tuple[str, Any, str]] = [
    ("/webhook", b"{not json", r"400: Expected the request body to be JSON, but it does not parse"),
    ("/webhook", [GOOD], r"400: Expected the request body to be a JSON object, but got list"),
    ("/webhook", changed(GOOD, action=...), r"400: Expected the webhook's `action` to be an event name, but got None"),
    ("/webhook", changed(GOOD, annotation=...), r"400: .*ANNOTATION_CREATED event's `annotation` to be an object"),
    ("/webhook", changed(GOOD, task="doc5"), r"400: .*ANNOTATION_CREATED event's `task` to be an object.*'doc5'"),
    ("/webhook", changed(GOOD, task__data={"image": "x.png"}), r"400: .*`task.data.lbal_id` .* task 101 has none"),
    ("/webhook", changed(GOOD, task__data__lbal_step="1"), r"400: .*`data.lbal_step` of task 'doc5'.* got '1'"),
    ("/webhook", event("cat42.png", "cat"), r"400: .*unknown ids \['cat42.png'\].*Nothing was recorded"),
    ("/webhook", event("doc3", "cat"), r"400: .*pending query only, .* answers ids \['doc3'\], which were not"),
    ("/webhook", event("doc0", "cat"), r"400: .*answers ids \['doc0'\] that are already labelled"),
    ("/webhook", event("doc5", "dog", step=2), r"400: .*up to the checkpoint's step 1, but .* step\(s\) \[2\]"),
    ("/webhook", event("doc5", "fish"), r"400: Expected every choice to be in the label map .*task .doc5.*fish"),
    (
        "/webhook",
        changed(GOOD, annotation__result=[{**REGION, "value": {"choices": "dog"}}]),
        r"400: .*`value.choices` of every region of task 'doc5'.* list of names",
    ),
    (
        "/webhook",
        changed(GOOD, annotation__result=[{**REGION, "value": {"choices": ["dog", "cat"]}}]),
        r"400: Expected one choice per annotation .*single-label only",
    ),
    ("/webhook", changed(GOOD, project={"id": 8}), r"400: Expected events of project 7 .*this ANNOTATION_CREATED .* 8"),
    ("/webhook", changed(GOOD, annotation__completed_by=""), rf"400: Expected the {BY} .*, but got ''"),
    ("/webhook", changed(GOOD, annotation__completed_by=True), rf"400: Expected the {BY} .*, but got True"),
    ("/webhook", changed(GOOD, annotation__completed_by=[1]), rf"400: Expected the {BY} .*, but got \[1\]"),
    (
        "/webhook",
        changed(GOOD, annotation__completed_by={"name": "x"}),
        rf"400: Expected the {BY} .*, but got \{{'name': 'x'\}}",
    ),
    ("/predict", {"tasks": "doc5"}, r"400: Expected /predict's `tasks` to be a list of tasks, but got 'doc5'"),
    ("/setup", {"schema": config(["cat", "dog", "fish"])}, r"400: .*offer the classes .* offers \['cat', 'dog', 'fish"),
    ("/setup", {"schema": "<View>"}, r"400: Expected the project's `label_config` to be XML, but it does not parse"),
    (
        "/setup",
        {"schema": '<View><Image name="image" value="$image"/><Number name="label" toName="image"/></View>'},
        r"400: .*one <Choices name=\"label\"> control, but it holds 0 \(it has <Number>, which a classification run",
    ),
    ("/train", {}, r"404: Expected /setup, /predict or /webhook, but got '/train'"),
]


@pytest.mark.parametrize(("route", "body", "match"), WEBHOOK_CASES)
def test_serve_requests_refused(tmp_path, backend, route, body, match):
    refuses(
        f"lightning-bal serve ({route})",
        lambda: request(backend.url, route, body),
        Refused,
        match,
        Folder(tmp_path),
        backend.state.ledger.state_dict(),
    )
    assert accepts(lambda: request(backend.url, "/webhook", GOOD))["status"] == "labelled"
    assert accepts(lambda: request(backend.url, "/webhook", changed(GOOD, action="PROJECT_UPDATED")))["status"] == (
        "ignored PROJECT_UPDATED"
    )


def test_serve_push_to_an_unreachable_server_loses_nothing_and_resumes(tmp_path, backend, fake):
    fake.fail_on = "/api/projects/7/import"
    assert backend.push() == []
    assert backend.push_due
    assert fake.tasks[7] == []
    fake.fail_on = "/api/projects"
    request(backend.url, "/webhook", GOOD)  # answers are recorded meanwhile (and the push is tried again)
    assert load_label_state(tmp_path / "run.ckpt").pending_ids() == ["doc9", "doc11"]
    fake.fail_on = None
    threading.Thread(target=backend.retry_pushes, args=(0.05,), daemon=True).start()  # as serve runs it, faster
    wait_for(lambda: not backend.push_due)
    backend.close()
    assert [t["data"]["lbal_id"] for t in fake.tasks[7]] == ["doc9", "doc11"]
    assert backend.push() == []  # nothing twice


def test_serve_refuses_an_answer_that_disagrees_under_on_disagreement_error(tmp_path):
    make_checkpoint(tmp_path)
    # No Label Studio to push to: a push in the background would rewrite the status file meanwhile.
    served = MLBackend(tmp_path / "run.ckpt", NAMES, TRAIN.split(), 5, log=lambda line: None, on_disagreement="error")
    server = make_server(served, "127.0.0.1", 0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        assert request(url, "/webhook", GOOD)["status"] == "labelled"
        refuses(
            "lightning-bal serve (/webhook)",
            lambda: request(url, "/webhook", event("doc5", "cat", number=2, by=2)),
            Refused,
            r"400: Expected the answers to 'doc5' to agree \(`--on-disagreement error`\), but got \['dog', 'cat'\]",
            Folder(tmp_path),
            served.state.ledger.state_dict(),
            served.state.answers,
        )
        assert accepts(lambda: request(url, "/webhook", event("doc5", "dog", number=2, by=2)))["status"] == (
            "recorded; the label stays 'dog' (error)"
        )
        assert [row["by"] for row in load_label_state(tmp_path / "run.ckpt").answers] == ["1", "2"]
    finally:
        server.shutdown()
        server.server_close()
        served.close()


@pytest.mark.parametrize(
    ("keyword", "value", "error", "match"),
    [
        ("on_disagreement", "vote", ValueError, r"`--on-disagreement` to be 'first', .*, but got 'vote'"),
        ("on_disagreement", None, ValueError, r"`--on-disagreement` to be 'first', .*, but got None"),
        ("requeue_disagreements", "yes", TypeError, r"`--requeue-disagreements` to be a bool, but got 'yes'"),
        ("requeue_disagreements", 1, TypeError, r"`--requeue-disagreements` to be a bool, but got 1"),
    ],
)
def test_ml_backend_refuses_bad_reconciliation_arguments(tmp_path, keyword, value, error, match):
    make_checkpoint(tmp_path)
    refuses(
        "lightning-bal serve (MLBackend)",
        lambda: MLBackend(tmp_path / "run.ckpt", NAMES, TRAIN.split(), 5, **{keyword: value}),
        error,
        match,
        Folder(tmp_path),
    )
    valid = {"on_disagreement": "majority", "requeue_disagreements": True}[keyword]
    accepts(lambda: MLBackend(tmp_path / "run.ckpt", NAMES, TRAIN.split(), 5, **{keyword: valid}).close())
