"""Text a user reads speaks to the user: no paths of the machine it was written on, no account of its writing."""

import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
THIS = Path(__file__).resolve().relative_to(ROOT).as_posix()

# Folders that exist only on the machine a text was written on; a user's copy of the project has none of them.
# Written with a character class so that this file does not itself hold the paths it looks for.
MACHINE_PATH = re.compile(r"/roo[t]/|/hom[e]/[\w.-]+/|/User[s]/[\w.-]+/|/wor[k]/|/tm[p]/")
# Words that only an account of the project's own development would use; a user has no sessions, sittings or issue
# threads to look up. CHANGELOG.md is left out: pointing at the issue a change answers is its job.
NARRATION = re.compile(
    r"\bsessions?\b|\bsittings?\b|\bissues?\s*#?\d+|\bthe issue\b|\bworktrees?\b|\bdevelopment setup\b"
    r"|\bcould not be read\b",
    re.IGNORECASE,
)
NOT_TEXT = {".png", ".jpg", ".jpeg", ".gif", ".pdf", ".gz", ".pt", ".ckpt", ".npy", ".npz", ".f16", ".ico"}


def _tracked() -> list[str]:
    try:
        listing = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True, text=True)
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout: the tracked files cannot be listed")
    return [name for name in listing.stdout.split("\0") if name and name != THIS]


def _text(name: str) -> str | None:
    path = ROOT / name
    if Path(name).suffix.lower() in NOT_TEXT or not path.is_file():
        return None
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        return None


def _read_by_users(name: str) -> bool:
    """README, docs, benchmark reports and scripts, examples, and the library's docstrings and messages."""
    if name == "README.md" or name.startswith(("docs/", "examples/", "lightning_bal/")):
        return True
    return name.startswith("benchmarks/") and name.endswith((".md", ".py"))


def _hits(pattern: re.Pattern[str], names: list[str]) -> list[str]:
    found = []
    for name in names:
        text = _text(name)
        if text is None:
            continue
        for number, line in enumerate(text.splitlines(), start=1):
            match = pattern.search(line)
            if match:
                found.append(f"{name}:{number}: {match.group(0)!r} in {line.strip()[:160]}")
    return found


def test_no_machine_paths_in_tracked_text():
    hits = _hits(MACHINE_PATH, _tracked())
    assert not hits, "absolute paths of a development machine:\n" + "\n".join(hits)


def test_no_development_narration_in_user_text():
    hits = _hits(NARRATION, [name for name in _tracked() if _read_by_users(name)])
    assert not hits, "text that narrates the development instead of speaking to the user:\n" + "\n".join(hits)


@pytest.mark.parametrize(
    ("line", "pattern"),
    [
        ("python -m x --data /wor" "k/shared/data/mnist", MACHINE_PATH),
        ("see /hom" + "e/alice/runs/out.csv", MACHINE_PATH),
        ("written to /Users/bob/pool.f16", MACHINE_PATH),
        ("cat /roo" + "t/log.txt", MACHINE_PATH),
        ("--memmap /tmp/pool.f16", MACHINE_PATH),
        ("seed 1 ran in sess" + "ion 6", NARRATION),
        ("the rest in a later sitting", NARRATION),
        ("the target of issue 19", NARRATION),
        ("fixed in Issue #27", NARRATION),
        ("at the issue's size", NARRATION),
        ("the method section could not be read", NARRATION),
    ],
)
def test_patterns_catch(line, pattern):
    assert pattern.search(line)


@pytest.mark.parametrize(
    ("line", "pattern"),
    [
        ("python -m x --data \"$LIGHTNING_BAL_MNIST\"", MACHINE_PATH),
        ("--memmap pool.f16 under the working folder", MACHINE_PATH),
        ("a small helper for tests", NARRATION),
        ("the lead is gone by 320 labels", NARRATION),
        ("a known issue with float16 on CPU", NARRATION),
        ("the files are read once", NARRATION),
    ],
)
def test_patterns_spare(line, pattern):
    assert not pattern.search(line)
