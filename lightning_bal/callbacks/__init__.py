"""Lightning callbacks that run active learning inside a Trainer."""

from lightning_bal.callbacks.active_learning import ActiveLearningCallback

__all__ = ["ActiveLearningCallback"]
