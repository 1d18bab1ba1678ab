"""`lightning-bal sync` against a real Label Studio server on 127.0.0.1 (skipped when `label-studio` is not installed).

The server is found as in tests/annotation/test_label_studio_server.py (`$LABEL_STUDIO_BIN`, else `label-studio` on
the PATH). Label Studio 1.23 binds the address of `--internal-host` (`--host` only names the public URL), and turns
legacy tokens off unless asked at first start: the test starts it with a legacy token only to create the personal
access token (a JWT refresh token) through the API, which is what sync then uses, as a team would.
"""

import hashlib
import json
import os
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request

import pytest

from lightning_bal.annotation import load_label_state
from tests.annotation.fake_label_studio import config
from tests.bad_inputs.files import IDS, CliError, lightning_bal, make_checkpoint

BINARY = os.environ.get("LABEL_STUDIO_BIN") or shutil.which("label-studio")
LEGACY = "lightning-bal-sync-test-token-0123456789abcdef"
NAMES = ["cat", "dog", "bird"]

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(BINARY is None, reason="label-studio is not installed (set LABEL_STUDIO_BIN)"),
]


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def server(tmp_path):
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {
        **os.environ,
        "LABEL_STUDIO_BASE_DATA_DIR": str(tmp_path / "ls"),
        "LABEL_STUDIO_DISABLE_SIGNUP_WITHOUT_LINK": "true",
        "LABEL_STUDIO_ENABLE_LEGACY_API_TOKEN": "true",
    }
    command = [BINARY, "start", "--internal-host", "127.0.0.1", "--port", str(port), "--data-dir",
               str(tmp_path / "ls" / "data"), "--no-browser", "--username", "annotator@example.com", "--password",
               "annotator-pass", "--user-token", LEGACY]  # fmt: skip
    with (tmp_path / "server.log").open("w") as log:
        process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 300
            while True:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"Label Studio did not start; see {log.name}")
                try:
                    with urllib.request.urlopen(f"{url}/health", timeout=5) as response:
                        if response.status == 200:
                            break
                except (urllib.error.URLError, ConnectionError, TimeoutError):
                    time.sleep(1.0)
            yield url
        finally:
            process.terminate()
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()


def api(url, method, path, body=None, token=LEGACY):
    request = urllib.request.Request(
        f"{url}{path}",
        data=None if body is None else json.dumps(body).encode(),
        method=method,
        headers={"Authorization": f"Token {token}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=60) as response:
        return json.loads(response.read() or b"null")


def digest(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_sync_pushes_pulls_and_resumes_against_a_real_server(tmp_path, server, monkeypatch):
    pat = api(server, "POST", "/api/token/", {})["token"]
    assert pat.count(".") == 2  # a personal access token: a JWT refresh token
    monkeypatch.setenv("LABEL_STUDIO_TOKEN", pat)
    project = api(server, "POST", "/api/projects", {"title": "blobs run", "label_config": config(NAMES)})
    other = api(server, "POST", "/api/projects", {"title": "pets", "label_config": config(["cat", "dog", "fish"])})
    ckpt = make_checkpoint(tmp_path)
    sync = ["sync", ckpt, "--url", server, "--labels", ",".join(NAMES), "--data-prefix", "/data/"]

    # A project of another run (other classes) is refused before anything is pushed.
    before = digest(ckpt)
    with pytest.raises(CliError, match=r"exit 1: .*offer the classes \['cat', 'dog', 'bird'\].*'fish'"):
        lightning_bal(*sync, "--project", str(other["id"]))
    assert digest(ckpt) == before
    assert api(server, "GET", f"/api/projects/{other['id']}")["task_number"] == 0

    # Round 1 pushed: one task per pending item, most informative first, guess and acquisition score attached.
    assert "pushed 3 tasks, pulled 0 answers" in lightning_bal(*sync, "--project", "blobs run")
    assert digest(ckpt) == before
    tasks = api(server, "GET", f"/api/tasks?project={project['id']}&page_size=100")
    tasks = sorted(tasks["tasks"] if isinstance(tasks, dict) else tasks, key=lambda t: t["id"])
    assert [t["data"]["lbal_id"] for t in tasks] == ["doc5", "doc9", "doc11"]
    predictions = [api(server, "GET", f"/api/predictions?task={t['id']}")[0] for t in tasks]
    assert [p["score"] for p in predictions] == [0.5, 0.25, 0.125]
    assert [p["result"][0]["value"]["choices"] for p in predictions] == [["cat"], ["bird"], ["dog"]]

    # An annotator answers two of them in Label Studio; sync pulls exactly these labels.
    for task, choice in [(tasks[0], "dog"), (tasks[2], "bird")]:
        result = [{"from_name": "label", "to_name": "image", "type": "choices", "value": {"choices": [choice]}}]
        api(server, "POST", f"/api/tasks/{task['id']}/annotations", {"result": result, "was_cancelled": False})
    assert "pushed 0 tasks, pulled 2 answers; 1 items still pending" in lightning_bal(*sync, "--project", "blobs run")
    state = load_label_state(ckpt)
    assert {IDS[i]: v for i, v in state.ledger.annotations.items()} == {"doc5": 1, "doc11": 2}
    assert all(type(v) is int for v in state.ledger.annotations.values())
    assert state.pending_ids() == ["doc9"]

    # A second sync changes nothing, here or there.
    before = digest(ckpt)
    assert "pushed 0 tasks, pulled 0 answers" in lightning_bal(*sync, "--project", str(project["id"]))
    assert digest(ckpt) == before
    assert api(server, "GET", f"/api/projects/{project['id']}")["task_number"] == 3

    # The server unreachable: a clear error, nothing changed; the next sync picks up the answer given meanwhile.
    gone = ["sync", ckpt, "--url", f"http://127.0.0.1:{free_port()}", "--labels", ",".join(NAMES), "--project", "7"]
    with pytest.raises(CliError, match=r"exit 1: .*Expected Label Studio to answer at .* run sync again"):
        lightning_bal(*gone)
    assert digest(ckpt) == before
    result = [{"from_name": "label", "to_name": "image", "type": "choices", "value": {"choices": ["cat"]}}]
    api(server, "POST", f"/api/tasks/{tasks[1]['id']}/annotations", {"result": result, "was_cancelled": False})
    assert "pulled 1 answers; 0 items still pending" in lightning_bal(*sync, "--project", "blobs run")
    assert {IDS[i]: v for i, v in load_label_state(ckpt).ledger.annotations.items()} == {
        "doc5": 1,
        "doc9": 0,
        "doc11": 2,
    }
