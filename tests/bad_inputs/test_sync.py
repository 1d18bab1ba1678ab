"""`lightning-bal sync` and its Label Studio client with bad flags, tokens, servers and projects: exit 1 (argparse: 2)
with a message naming the flag or the problem, every file of the folder bit-identical and the server's tasks as they
were (a stand-in server on 127.0.0.1; the real one is in tests/annotation/test_label_studio_sync.py)."""

from __future__ import annotations

import copy
import os
import socket
from collections.abc import Callable
from typing import Any

import pytest

from lightning_bal.annotation.label_studio_api import LabelStudioClient, check_label_config
from tests.annotation.fake_label_studio import PAT, FakeLabelStudio, config
from tests.bad_inputs.files import CliError, Folder, lightning_bal, make_checkpoint
from tests.bad_inputs.harness import accepts, refuses

NAMES = ["cat", "dog", "bird"]
ENV = "LS_SYNC_BAD_INPUTS_TOKEN"


@pytest.fixture
def fake(monkeypatch):
    server = FakeLabelStudio(NAMES)
    monkeypatch.setenv(ENV, PAT)
    yield server
    server.stop()


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def task(item: str, step: int = 1, choice: str | None = None) -> dict[str, Any]:
    result = [{"from_name": "label", "type": "choices", "value": {"choices": [choice]}}] if choice else []
    return {"id": 1, "data": {"image": item, "lbal_id": item, "lbal_step": step}, "annotations": [{"result": result}]}


def add_tasks(*tasks: dict[str, Any]) -> Callable[[FakeLabelStudio], None]:
    return lambda fake: fake.tasks[7].extend(copy.deepcopy(tasks))


def set_config(text: str) -> Callable[[FakeLabelStudio], None]:
    return lambda fake: fake.projects[7].update(label_config=text)


def set_env(value: str) -> Callable[[FakeLabelStudio], None]:
    return lambda fake: os.environ.__setitem__(ENV, value)


# (flags instead of the valid ones, a change to the server, the expected message)
CASES: list[tuple[dict[str, str | None], Callable[[FakeLabelStudio], None] | None, str]] = [
    ({"--url": "ftp://127.0.0.1:8080"}, None, r"`--url` to be the server's base URL.*'ftp://127.0.0.1:8080'"),
    ({"--url": "127.0.0.1:8080"}, None, r"`--url` to be the server's base URL"),
    ({"--url": "http://:8080"}, None, r"`--url` to be the server's base URL"),
    ({"--url": "http://127.0.0.1:99999"}, None, r"`--url` to be the server's base URL"),
    ({"--url": "http://me:secret@127.0.0.1:8080"}, None, r"`--url` .* without credentials.*'http://127.0.0.1'"),
    ({"--url": "http://127.0.0.1:8080/?token=abc"}, None, r"`--url` .* without credentials, query or fragment"),
    ({"--url": ""}, None, r"`--url` to be a non-empty URL"),
    ({"--url": None}, None, r"exit 2: .*required: --url"),
    ({"--token-env": "LS_SYNC_NO_SUCH_VARIABLE"}, None, r"LS_SYNC_NO_SUCH_VARIABLE \(`--token-env`\) .* not set"),
    ({"--token-env": ""}, None, r"`--token-env` to name an environment variable"),
    ({}, set_env(""), r"LS_SYNC_BAD_INPUTS_TOKEN \(`--token-env`\) .* not set or empty"),
    ({}, set_env(PAT + "\n"), r"environment variable LS_SYNC_BAD_INPUTS_TOKEN to be a Label Studio token.*line break"),
    ({}, set_env("Token " + PAT), r"LS_SYNC_BAD_INPUTS_TOKEN to be a Label Studio token .* space"),
    ({}, set_env(PAT[:-3] + "xyz"), r"accept the token \(`--token-env`\).* refused with HTTP 401"),
    ({}, set_env("0123456789abcdef0123456789abcdef01234567"), r"accept the token .* HTTP 401"),
    ({"--project": "8"}, None, r"`--project` to name a project of .*, but id 8 is not one"),
    ({"--project": "cats"}, None, r"`--project` to name one project .* title 'cats' is not one; projects: \['blobs'\]"),
    ({"--project": None}, None, r"exit 2: .*required: --project"),
    (
        {"--labels": "cat,dog,fish"},
        None,
        r"offer the classes \['cat', 'dog', 'fish'\] .* offers \['cat', 'dog', 'bird'\]",
    ),
    ({"--labels": "dog,cat,bird"}, None, r"offer the classes \['dog', 'cat', 'bird'\] \(`--labels`, in class order\)"),
    ({"--labels": "cat,dog"}, None, r"`--labels` to name every class of the model \(3\).* 2 names"),
    ({"--labels": "cat,cat,bird"}, None, r"`--labels` to name each class once"),
    ({"--labels": "cat,,bird"}, None, r"`--labels` to name each class once"),
    ({"--labels": None}, None, r"exit 2: .*required: .*--labels"),
    (
        {},
        set_config(config(["cat", "dog", "fish"])),
        r"offer the classes \['cat', 'dog', 'bird'\].*'fish'.*another run",
    ),
    ({}, set_config(config(NAMES, to_name="text")), r"toName=\"image\" \(`--data-key`\), but it labels 'text'"),
    ({"--data-key": "text"}, None, r"toName=\"text\" \(`--data-key`\), but it labels 'image'"),
    ({"--data-key": "lbal_id"}, None, r"`--data-key` .* lightning_bal's own"),
    ({}, set_config("<View><Choices name='label'"), r"`label_config` to be XML, but it does not parse"),
    ({}, set_config("<View><Text name='text' value='$text'/></View>"), r"one <Choices name=\"label\"> control.*0"),
    ({}, add_tasks({"id": 3, "data": {"text": "hello"}}), r"carry `data.lbal_id` .* task 0 \(id 3\).*another workflow"),
    ({}, add_tasks(task("doc5", step=2)), r"of step 1 or earlier, but task 0 is of step 2.*another \(later\) run"),
    ({}, add_tasks(task("doc5", step="1")), r"`data.lbal_step` of task 0 to be an integer step, but got '1'"),  # type: ignore[arg-type]
    ({}, add_tasks(task("cat42.png", choice="cat")), r"answers unknown ids \['cat42.png'\]"),
    ({}, add_tasks(task("doc5", choice="fish")), r"every choice to be in the label map.*'doc5' has \['fish'\]"),
    ({}, add_tasks(task("doc3", choice="cat")), r"pending query only, but .* answers ids \['doc3'\], which were not"),
    ({}, add_tasks(task("doc0", choice="cat")), r"answers ids \['doc0'\] that are already"),
    (
        {"--on-disagreement": "error"},
        lambda fake: (fake.tasks[7].append(task("doc5")), fake.annotate("doc5", "cat"), fake.annotate("doc5", "dog")),
        r"annotations of task 'doc5' to agree, but got \['cat', 'dog'\]",
    ),
    ({}, lambda fake: setattr(fake, "fail_on", "/api/projects/7/import"), r"Expected Label Studio to answer at .*"),
    (
        {},
        lambda fake: setattr(fake, "fail_on", "/api/projects"),
        r"Expected Label Studio to answer at .*run sync again",
    ),
    ({"--output": "no/such/folder/next.ckpt"}, None, r"`--output` to be a file in an existing folder"),
]


def flags(fake: FakeLabelStudio, folder: Any, replace: dict[str, str | None]) -> list[Any]:
    valid: dict[str, str | None] = {"--url": fake.url, "--project": "blobs", "--labels": ",".join(NAMES)}
    valid["--token-env"] = ENV
    valid.update(replace)
    args: list[Any] = ["sync", folder / "run.ckpt"]
    for flag, value in valid.items():
        if value is not None:
            args += [flag, folder / value if flag == "--output" else value]
    return args


@pytest.mark.parametrize(("replace", "change", "match"), CASES)
def test_sync_refuses(tmp_path, fake, replace, change, match):
    make_checkpoint(tmp_path)
    if change is not None:
        change(fake)
    args = flags(fake, tmp_path, replace)
    refuses(
        "lightning-bal sync",
        lambda: lightning_bal(*args),
        CliError,
        match if match.startswith("exit 2") else rf"exit 1: .*{match}",
        Folder(tmp_path),
        fake.tasks,
    )


def test_sync_refuses_an_unreachable_server_and_the_token_stays_out_of_the_message(tmp_path, fake):
    make_checkpoint(tmp_path)
    args = flags(fake, tmp_path, {"--url": f"http://127.0.0.1:{closed_port()}/"})
    refuses("lightning-bal sync", lambda: lightning_bal(*args), CliError, r"answer at .* refused", Folder(tmp_path))
    with pytest.raises(CliError) as err:
        lightning_bal(*flags(fake, tmp_path, {}), "--project", "8")
    assert PAT not in str(err.value)


@pytest.mark.parametrize(
    "replace", [{}, {"--project": "7"}, {"--url": "URL/"}, {"--on-disagreement": "skip"}, {"--output": "next.ckpt"}]
)
def test_sync_accepts(tmp_path, fake, replace):
    make_checkpoint(tmp_path)
    if replace.get("--url") == "URL/":
        replace = {"--url": fake.url + "/"}
    assert "pushed 3 tasks" in accepts(lambda: lightning_bal(*flags(fake, tmp_path, replace)))
    assert [t["data"]["lbal_id"] for t in fake.tasks[7]] == ["doc5", "doc9", "doc11"]


CLIENT_CASES: list[tuple[Callable[[], Any], type[Exception], str]] = [
    (lambda: LabelStudioClient(5, PAT), TypeError, r"`url` to be a non-empty URL string, but got 5"),  # type: ignore[arg-type]
    (lambda: LabelStudioClient("file:///etc/passwd", PAT), ValueError, r"`url` to be the server's base URL"),
    (lambda: LabelStudioClient("http://127.0.0.1:8080", ""), TypeError, r"argument `token` to be a non-empty token"),
    (lambda: LabelStudioClient("http://127.0.0.1:8080", None), TypeError, r"argument `token` .* NoneType"),  # type: ignore[arg-type]
    (lambda: LabelStudioClient("http://127.0.0.1:8080", "a b"), ValueError, r"argument `token` to be a Label Studio"),
    (lambda: LabelStudioClient("http://127.0.0.1:8080", PAT, timeout=0), ValueError, r"`timeout` to be a positive"),
    (lambda: LabelStudioClient("http://127.0.0.1:8080", PAT, timeout=True), ValueError, r"`timeout` .* got True"),
    (lambda: check_label_config(None, NAMES, "image"), ValueError, r"`label_config` to be XML text, but got NoneType"),
]


@pytest.mark.parametrize(("call", "error", "match"), CLIENT_CASES)
def test_client_refuses(call, error, match):
    refuses("LabelStudioClient", call, error, match)
    assert repr(accepts(lambda: LabelStudioClient("https://label.example.org/ls/", PAT))) == (
        "LabelStudioClient('https://label.example.org/ls')"
    )


def test_client_project_refuses_a_bad_reference(fake):
    client = LabelStudioClient(fake.url, PAT)
    for project in (True, 7.0, ""):
        refuses("LabelStudioClient", lambda p=project: client.project(p), TypeError, r"`--project` to be a project id")
    assert accepts(lambda: client.project(7))["title"] == "blobs"
