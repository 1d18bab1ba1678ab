r"""Cold-start selection when D_L is empty or tiny: TypiClust (Hacohen et al., 2022), ProbCover (Yehuda et al., 2022).

Both need no model predictions, only embeddings (the model's features, or self-supervised embeddings the user
supplies), and compute distances in blocks of rows, so no N×N matrix is held. Each lives in its own module
(:mod:`~lightning_bal.functional.typiclust`, :mod:`~lightning_bal.functional.probcover`); this one gathers them.
"""

from lightning_bal.functional.probcover import coverage, probcover, purity, purity_radius
from lightning_bal.functional.typiclust import kmeans, typicality, typiclust

__all__ = ["coverage", "kmeans", "probcover", "purity", "purity_radius", "typicality", "typiclust"]
