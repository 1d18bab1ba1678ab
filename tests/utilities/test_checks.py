"""The shared argument checks build the messages their callers had before (tests elsewhere match them)."""

import math
import re

import numpy as np
import pytest

from lightning_bal.utilities.checks import check_finite_number, check_non_empty_str, check_one_of


@pytest.mark.parametrize(
    ("choices", "value", "message"),
    [
        (
            ("csv", "json", "label_studio"),
            "xml",
            "Expected argument `x` to be 'csv', 'json' or 'label_studio', but got 'xml'.",
        ),
        (("val", "test"), None, "Expected argument `x` to be 'val' or 'test', but got None."),
    ],
)
def test_check_one_of_lists_the_choices(choices, value, message):
    assert check_one_of("x", choices[0], choices) == choices[0]
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        check_one_of("x", value, choices)


@pytest.mark.parametrize("value", ["", 5, None, b"acc"])
def test_check_non_empty_str(value):
    assert check_non_empty_str("monitor", "val_acc") == "val_acc"
    message = f"Expected argument `monitor` to be a non-empty string, but got {value!r}."
    with pytest.raises(TypeError, match=f"^{re.escape(message)}$"):
        check_non_empty_str("monitor", value)


@pytest.mark.parametrize(
    ("value", "low", "bound"),
    [
        (math.nan, None, "a finite number"),
        (math.inf, None, "a finite number"),
        (True, None, "a finite number"),
        ("1", None, "a finite number"),
        (-0.5, 0, "a finite number >= 0"),
        (np.int64(1), None, "a finite number"),
    ],
)
def test_check_finite_number(value, low, bound):
    assert check_finite_number("target", 0, low=low) == 0.0
    assert isinstance(check_finite_number("target", 0.5), float)
    message = f"Expected argument `target` to be {bound}, but got {value!r}."
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        check_finite_number("target", value, low=low)
