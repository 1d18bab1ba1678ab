import re

import numpy as np
import pytest
import torch

from lightning_bal.utilities.checks import check_python_int, is_integer_tensor


@pytest.mark.parametrize(
    ("low", "high", "expected", "value", "message"),
    [
        (1, None, None, 0, "Expected argument `x` to be a positive integer, but got 0."),
        (0, None, None, -1, "Expected argument `x` to be a non-negative integer, but got -1."),
        (2, None, None, 1, "Expected argument `x` to be an integer >= 2, but got 1."),
        (0, 3, None, 4, "Expected argument `x` to be an integer in [0, 3], but got 4."),
        (0, 3, None, True, "Expected argument `x` to be an integer in [0, 3], but got True."),
        (1, None, None, np.int64(2), "Expected argument `x` to be a positive integer, but got np.int64(2)."),
        (1, None, None, 2.0, "Expected argument `x` to be a positive integer, but got 2.0."),
        (2, None, "two or more", None, "Expected argument `x` to be two or more, but got None."),
    ],
)
def test_check_python_int_names_the_argument_and_the_bounds(low, high, expected, value, message):
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        check_python_int("x", value, low, high, expected)


@pytest.mark.parametrize(("value", "low", "high"), [(0, 0, None), (5, 1, None), (3, 0, 3), (-2, -2, 0)])
def test_check_python_int_returns_the_value_within_bounds(value, low, high):
    assert check_python_int("x", value, low, high) == value


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (torch.zeros(2, dtype=torch.int64), True),
        (torch.zeros(2, dtype=torch.bool), True),
        (torch.zeros(2), False),
        (torch.zeros(2, dtype=torch.complex64), False),
        ([1, 2], False),
    ],
)
def test_is_integer_tensor(value, expected):
    assert is_integer_tensor(value) is expected
