"""The arguments of ``lightning-bal serve`` that only the ML backend reads: ``--threshold`` and ``--train``."""

from __future__ import annotations

import re
import shlex
import shutil
from typing import Any

__all__ = ["check_threshold", "check_train_command"]

_PLACEHOLDERS = ("{checkpoint}", "{output}")


def check_threshold(value: Any) -> int:
    """``--threshold``: how many new answers start a training, a positive integer."""
    try:
        threshold = int(value) if isinstance(value, str) and value.strip().isdigit() else value
    except ValueError:
        threshold = value
    if isinstance(threshold, bool) or not isinstance(threshold, int) or threshold < 1:
        raise ValueError(
            f"Expected `--threshold` to be a positive number of new answers that starts a training, but got {value!r}."
        )
    return threshold


def check_train_command(command: Any) -> list[str]:
    """``--train`` split into its words: a program that exists, with ``{checkpoint}`` and ``{output}`` in it."""
    if not isinstance(command, str) or not command.strip():
        raise ValueError(f"Expected `--train` to be the training command line, but got {command!r}.")
    try:
        words = shlex.split(command)
    except ValueError as err:  # an unclosed quote
        problem = f"it does not split: {err}"
        raise ValueError(f"Expected `--train` to be a shell-quoted command line, but {problem}") from None
    missing = [name for name in _PLACEHOLDERS if not any(name in word for word in words)]
    if missing:
        raise ValueError(
            f"Expected `--train` to hold {' and '.join(_PLACEHOLDERS)} (the checkpoint it resumes from, where it writes"
            f" the new one), but {' and '.join(missing)} is missing in {command!r}."
        )
    unknown = sorted(set(re.findall(r"\{[^{}]*\}", command)) - set(_PLACEHOLDERS))
    if unknown:
        raise ValueError(f"Expected `--train` to use only the placeholders {list(_PLACEHOLDERS)}, but got {unknown}.")
    if shutil.which(words[0]) is None:
        raise FileNotFoundError(
            f"Expected `--train` to start with a program, but {words[0]!r} is not on the PATH nor an executable file."
        )
    return words
