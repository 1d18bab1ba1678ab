"""keep_logger_version: the resumed fit logs into the recorded version; a folder with data in it is never removed."""

import lightning.pytorch as pl
import pytest
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger

from lightning_bal.annotation.annotator import keep_logger_version, logger_version


def opened(logger) -> pl.Trainer:
    """A trainer whose logger has opened its version, as Lightning's setup does before a checkpoint is read."""
    trainer = pl.Trainer(logger=logger, enable_progress_bar=False, enable_model_summary=False)
    _ = logger.experiment
    return trainer


@pytest.mark.parametrize("kind", [TensorBoardLogger, CSVLogger])
def test_the_recorded_version_is_adopted_and_the_fresh_one_removed(tmp_path, kind):
    first = opened(kind(tmp_path, name="run"))
    recorded = logger_version(first)
    assert recorded == {"root_dir": str(tmp_path / "run"), "version": 0}
    first.logger.log_metrics({"loss": 1.0}, step=0)
    first.logger.save()
    second = opened(kind(tmp_path, name="run"))
    assert second.logger.version == 1
    keep_logger_version(second, recorded)
    assert second.logger.version == 0
    assert second.log_dir == str(tmp_path / "run" / "version_0")
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == ["version_0"]


def test_a_version_with_data_is_not_removed(tmp_path):
    TensorBoardLogger(tmp_path, name="run").experiment.add_scalar("loss", 1.0, 0)
    busy = opened(TensorBoardLogger(tmp_path, name="run", version=1))
    busy.logger.experiment.add_scalar("loss", 2.0, 0)
    busy.logger.experiment.flush()
    keep_logger_version(busy, {"root_dir": str(tmp_path / "run"), "version": 0})
    assert busy.logger.version == 0
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == ["version_0", "version_1"]


def test_a_logger_elsewhere_is_left_alone_with_a_warning(tmp_path):
    trainer = opened(TensorBoardLogger(tmp_path / "other", name="run"))
    with pytest.warns(UserWarning, match=r"writes to .*other.* `version=0`"):
        keep_logger_version(trainer, {"root_dir": str(tmp_path / "run"), "version": 0})
    assert trainer.logger.version == 0
    assert trainer.log_dir == str(tmp_path / "other" / "run" / "version_0")


def test_nothing_to_keep_without_a_record_or_a_logger(tmp_path):
    trainer = opened(TensorBoardLogger(tmp_path, name="run"))
    keep_logger_version(trainer, {})
    keep_logger_version(pl.Trainer(logger=False), {"root_dir": str(tmp_path / "run"), "version": 3})
    assert trainer.logger.version == 0
