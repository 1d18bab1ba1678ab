"""The ICAL heuristic: registry, BALD pre-filter, and an end-to-end run of the callback on blobs."""

from __future__ import annotations

import lightning.pytorch as pl
import pytest
import torch

from lightning_bal import ActiveLearningCallback
from lightning_bal.functional import bald
from lightning_bal.functional.ical import ical
from lightning_bal.heuristics import ICAL, get_heuristic
from lightning_bal.heuristics.base import top_k
from tests.helpers.models import DropoutClassifier
from tests.helpers.runs import make_datamodule, make_trainer


def log_probs(n: int, k: int = 6, c: int = 3, seed: int = 0) -> torch.Tensor:
    return (torch.randn(n, k, c, generator=torch.Generator().manual_seed(seed)) * 2).log_softmax(2)


def test_registered_by_name_with_its_arguments():
    heuristic = get_heuristic("ICAL", max_candidates=50, num_targets=20, samples="probs")
    assert isinstance(heuristic, ICAL)
    assert repr(heuristic) == "ICAL(max_candidates=50, num_targets=20, normalized=True, samples='probs')"
    assert (heuristic.batch_aware, heuristic.needs_mc_samples) == (True, True)
    assert heuristic.num_candidates(query_size=5, pool_size=30) == 30
    assert heuristic.num_candidates(query_size=5, pool_size=300) == 50
    assert heuristic.num_candidates(query_size=80, pool_size=300) == 80
    assert ICAL(max_candidates=None).num_candidates(5, 300) == 300


def test_score_is_the_bald_pre_filter():
    lp = log_probs(10)
    torch.testing.assert_close(ICAL().score(lp), bald(lp))


def test_select_pre_filters_by_bald_and_keeps_the_candidates_in_pool_order():
    """What the callback does (top-M candidates, in dataset order, then ICAL) equals `select` on the whole pool."""
    lp = log_probs(60, seed=1)
    selection = ICAL(max_candidates=20, num_targets=10).select(lp, 5, torch.Generator().manual_seed(3))
    keep = top_k(bald(lp), 20).sort().values
    indices, scores = ical(lp[keep], 5, num_targets=10, generator=torch.Generator().manual_seed(3))
    assert selection.indices.tolist() == keep[indices].tolist()
    torch.testing.assert_close(selection.scores, scores)
    assert set(selection.indices.tolist()) <= set(keep.tolist())


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"max_candidates": 0}, ValueError, r"`max_candidates`.*positive integer or None.*0"),
        ({"num_targets": 0}, ValueError, r"`num_targets`.*positive integer.*0"),
        ({"num_targets": 5.0}, TypeError, r"`num_targets`.*positive integer"),
        ({"resample_targets": 1}, TypeError, r"`resample_targets`.*bool"),
        ({"normalized": "no"}, TypeError, r"`normalized`.*bool"),
        ({"samples": "onehot"}, ValueError, r"`samples`.*'labels' or 'probs'.*'onehot'"),
    ],
)
def test_bad_constructor_arguments_are_refused(kwargs, error, match):
    with pytest.raises(error, match=match):
        ICAL(**kwargs)


def _run(tmp_path, name):
    pl.seed_everything(0)
    dm = make_datamodule(n=90)
    callback = ActiveLearningCallback("ical", query_size=5, iterations=6, seed=3)
    make_trainer(tmp_path / name, [callback], max_epochs=3).fit(DropoutClassifier(), datamodule=dm)
    return dm, callback


def test_the_callback_runs_ical_by_name_seeded(tmp_path):
    dm, callback = _run(tmp_path, "a")
    assert torch.bincount(dm.acquired_at[dm.labelled_indices]).tolist() == [6, 5, 5, 5]
    assert callback.last_selection.unique().numel() == 5
    again, _ = _run(tmp_path, "b")
    assert torch.equal(dm.acquired_at, again.acquired_at)
