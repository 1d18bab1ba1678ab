"""`lightning-bal sync` against a stand-in Label Studio (fast): push, pull, no-op, a server gone mid-sync, resume."""

import hashlib

import pytest

from lightning_bal.annotation import load_label_state
from lightning_bal.annotation.label_studio_api import LabelStudioClient, check_url
from lightning_bal.annotation.sync import sync_label_studio
from tests.annotation.fake_label_studio import PAT, FakeLabelStudio
from tests.bad_inputs.files import CliError, lightning_bal, make_checkpoint

NAMES = ["cat", "dog", "bird"]


@pytest.fixture
def fake():
    server = FakeLabelStudio(NAMES)
    yield server
    server.stop()


def digest(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def sync(ckpt, fake, project="blobs", **kwargs):
    return sync_label_studio(ckpt, LabelStudioClient(fake.url, PAT), project, NAMES, **kwargs)


def test_first_sync_pushes_the_query_most_informative_first_with_guesses_and_scores(tmp_path, fake):
    ckpt = make_checkpoint(tmp_path)
    before = digest(ckpt)
    done = sync(ckpt, fake, data_prefix="/data/")
    assert done.pushed == ["doc5", "doc9", "doc11"]
    assert done.pulled == []
    assert done.pending == ["doc5", "doc9", "doc11"]
    tasks = fake.tasks[7]
    assert [t["data"] for t in tasks] == [
        {"image": f"/data/{item}", "lbal_id": item, "lbal_step": 1, "lbal_score": score}
        for item, score in [("doc5", 0.5), ("doc9", 0.25), ("doc11", 0.125)]
    ]
    # The acquisition score ranks the tasks; the pre-annotation is the model's guess (doc9: class 2).
    assert [t["predictions"][0]["score"] for t in tasks] == [0.5, 0.25, 0.125]
    assert [t["predictions"][0]["result"][0]["value"]["choices"] for t in tasks] == [["cat"], ["bird"], ["dog"]]
    assert digest(ckpt) == before  # nothing answered yet: the checkpoint is not rewritten


def test_tasks_are_ordered_by_score_not_by_query_order(tmp_path, fake):
    annotator = {"scores": {"doc5": 0.1, "doc9": 0.9, "doc11": 0.4}, "predictions": {}}
    ckpt = make_checkpoint(tmp_path, callbacks={"ActiveLearningCallback": {"annotator": annotator}})
    sync(ckpt, fake)
    assert [t["data"]["lbal_id"] for t in fake.tasks[7]] == ["doc9", "doc11", "doc5"]
    assert all("predictions" not in t for t in fake.tasks[7])  # no guesses recorded: no pre-annotation


def test_answers_are_pulled_bit_exact_and_a_second_sync_is_a_no_op(tmp_path, fake):
    ckpt = make_checkpoint(tmp_path)
    sync(ckpt, fake, project="7")
    fake.annotate("doc9", "bird")
    fake.annotate("doc5", "dog")
    fake.annotate("doc5", "cat")  # a later, disagreeing annotation: the first completed one wins
    fake.annotate("doc11", "cat", cancelled=True)  # skipped: doc11 stays pending
    done = sync(ckpt, fake, project=7)
    assert sorted(done.pulled) == ["doc5", "doc9"]
    assert done.pushed == []
    assert done.pending == ["doc11"]
    assert done.disagreements == ["doc5"]
    state = load_label_state(ckpt)
    assert {state.ids[i]: v for i, v in state.ledger.annotations.items()} == {"doc5": 1, "doc9": 2}
    assert all(type(v) is int for v in state.ledger.annotations.values())
    before, tasks = digest(ckpt), [dict(t) for t in fake.tasks[7]]
    again = sync(ckpt, fake)
    assert again.pushed == []
    assert again.pulled == []
    assert again.pending == ["doc11"]
    assert digest(ckpt) == before
    assert fake.tasks[7] == tasks


@pytest.mark.parametrize("fail_on", ["/api/projects/7/import", "/api/projects/7/export", "/api/token/refresh/"])
def test_a_server_gone_mid_sync_loses_nothing_and_the_next_sync_resumes(tmp_path, fake, fail_on):
    ckpt = make_checkpoint(tmp_path)
    # Answers for doc5 wait on the server while the new pending items cannot be pushed.
    fake.tasks[7].append({"id": 1, "data": {"image": "doc5", "lbal_id": "doc5", "lbal_step": 1}, "annotations": []})
    fake.annotate("doc5", "bird")
    before = digest(ckpt)
    fake.fail_on = fail_on
    with pytest.raises(ConnectionError, match=r"Expected Label Studio to answer at .* run sync again"):
        sync(ckpt, fake)
    assert digest(ckpt) == before
    assert len(fake.tasks[7]) == 1
    fake.fail_on = None
    done = sync(ckpt, fake)
    assert done.pulled == ["doc5"]
    assert done.pushed == ["doc9", "doc11"]
    assert load_label_state(ckpt).ledger.annotations == {5: 2}


def test_a_stopped_server_is_a_clear_error_and_the_checkpoint_is_unchanged(tmp_path):
    ckpt = make_checkpoint(tmp_path)
    fake = FakeLabelStudio(NAMES)
    fake.stop()
    before = digest(ckpt)
    with pytest.raises(ConnectionError, match=r"Expected Label Studio to answer at http://127.0.0.1:\d+"):
        sync(ckpt, fake)
    assert digest(ckpt) == before


def test_an_answer_changed_after_it_was_pulled_is_a_conflict(tmp_path, fake):
    ckpt = make_checkpoint(tmp_path)
    sync(ckpt, fake)
    fake.annotate("doc9", "bird")
    sync(ckpt, fake)
    fake.tasks[7][1]["annotations"][0]["result"][0]["value"]["choices"] = ["cat"]
    before = digest(ckpt)
    with pytest.raises(ValueError, match=r"answer for 'doc9' to agree with the label pulled before \('bird'\).*'cat'"):
        sync(ckpt, fake)
    assert digest(ckpt) == before


def test_the_token_never_shows(tmp_path, fake, monkeypatch, capsys):
    ckpt = make_checkpoint(tmp_path)
    wrong = PAT[:-4] + "AAAA"
    monkeypatch.setenv("LS_TOKEN_FOR_TEST", wrong)
    with pytest.raises(CliError, match=r"refused with HTTP 401") as err:
        lightning_bal("sync", ckpt, "--url", fake.url, "--project", "7", "--labels", "cat,dog,bird",
                      "--token-env", "LS_TOKEN_FOR_TEST")  # fmt: skip
    assert wrong not in str(err.value)
    assert PAT not in repr(LabelStudioClient(fake.url, PAT))
    assert wrong not in capsys.readouterr().err


def test_the_command_line_syncs(tmp_path, fake, monkeypatch):
    ckpt = make_checkpoint(tmp_path)
    monkeypatch.setenv("LABEL_STUDIO_TOKEN", PAT)
    args = ["sync", ckpt, "--url", fake.url + "/", "--project", "blobs", "--labels", "cat,dog,bird"]
    assert "pushed 3 tasks, pulled 0 answers; 3 items still pending" in lightning_bal(*args)
    fake.annotate("doc11", "dog")
    out = tmp_path / "next.ckpt"
    assert "pushed 0 tasks, pulled 1 answers; 2 items still pending" in lightning_bal(*args, "--output", out)
    assert load_label_state(out).pending_ids() == ["doc5", "doc9"]
    assert load_label_state(ckpt).pending_ids() == ["doc5", "doc9", "doc11"]


def test_an_expired_access_token_is_renewed_with_the_personal_access_token(fake):
    client = LabelStudioClient(fake.url, PAT)
    assert client.project(7)["title"] == "blobs"
    fake.access = "a-later-access-token"
    assert client.project("blobs")["id"] == 7
    assert [path for _, path in fake.requests].count("/api/token/refresh/") == 2


@pytest.mark.parametrize("url", ["http://127.0.0.1:8080/", "http://127.0.0.1:8080", "https://ls.example.org/label/"])
def test_a_base_url_is_kept_without_its_trailing_slash(url):
    assert check_url("--url", url) == url.rstrip("/")
    assert repr(LabelStudioClient(url, PAT)) == f"LabelStudioClient({url.rstrip('/')!r})"
