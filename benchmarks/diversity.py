"""Speed and memory of Core-Set and BADGE against scikit-activeml 1.0.1, on the same embeddings in one process.

The default workload is N=50,000 pool items, 512-d features, query size 100 (BADGE: 10 classes, so scikit-activeml
builds 5,120-d gradient embeddings, 2 GB in float64). Ours keeps the factored [N, C + D] form and one distance per
item: peak memory is reported next to the size of the features (N·D·4 bytes) to show that no N×N matrix is made.

    python benchmarks/diversity.py                                   # the default size (minutes; ~3 GB for theirs)
    python benchmarks/diversity.py --n 5000 --dim 128 --query 50     # a quick look
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402

from lightning_bal.functional.diversity import (  # noqa: E402
    covering_radius,
    k_center_greedy,
    kmeans_pp,
)
from lightning_bal.functional.gradient_embeddings import gradient_embedding  # noqa: E402


def peak_rss_tracker() -> Callable[[], int] | None:
    """Reset the kernel's peak-RSS mark; the returned function gives the peak growth in bytes since the reset."""

    def read(field: str) -> int:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith(field):
                    return int(line.split()[1]) * 1024
        raise KeyError(field)

    try:
        with open("/proc/self/clear_refs", "w") as clear:
            clear.write("5")
        base = read("VmRSS:")
    except OSError:
        return None
    return lambda: read("VmHWM:") - base


def timed(fn: Callable[[], object]) -> tuple[float, int | None, object]:
    tracker = peak_rss_tracker()
    start = time.perf_counter()
    out = fn()
    seconds = time.perf_counter() - start
    return seconds, tracker() if tracker is not None else None, out


def badge_potential(embeddings: torch.Tensor, num_classes: int, picks: list[int]) -> float:
    """The k-means++ potential in gradient space, from the factored form (no C·D embeddings)."""
    from lightning_bal.functional.diversity import _Points

    points = _Points(embeddings, num_classes)
    best = torch.full((len(points),), float("inf"))
    for p in picks:
        torch.minimum(best, points.sq_dist(points.x[p]), out=best)
    return float(best.double().sum())


def fixed_classifier(weight: np.ndarray, num_classes: int):  # type: ignore[no-untyped-def]
    from skactiveml.base import SkactivemlClassifier

    class Fixed(SkactivemlClassifier):
        def __init__(self, weight=None, classes=None, missing_label=np.nan):  # type: ignore[no-untyped-def]
            super().__init__(classes=classes, missing_label=missing_label)
            self.weight = weight

        def fit(self, X, y, sample_weight=None):  # type: ignore[no-untyped-def]  # noqa: N803
            return self

        def predict_proba(self, X, return_embeddings=False):  # type: ignore[no-untyped-def]  # noqa: N803
            z = X @ self.weight
            p = np.exp(z - z.max(1, keepdims=True))
            p /= p.sum(1, keepdims=True)
            return (p, X) if return_embeddings else p

        def predict(self, X):  # type: ignore[no-untyped-def]  # noqa: N803
            return self.predict_proba(X).argmax(1)

    return Fixed(weight, classes=np.arange(num_classes))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=50_000)
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--query", type=int, default=100)
    parser.add_argument("--classes", type=int, default=10)
    parser.add_argument("--labelled", type=int, default=100, help="D_L size (Core-Set's initial centres)")
    parser.add_argument("--skip-reference", action="store_true", help="time ours only")
    parser.add_argument(
        "--methods", nargs="+", choices=("coreset", "badge"), default=["coreset", "badge"], help="methods to time"
    )
    args = parser.parse_args()
    torch.set_num_threads(1)
    rng = np.random.default_rng(0)
    features = rng.normal(size=(args.n + args.labelled, args.dim)).astype(np.float32)
    weight = rng.normal(size=(args.dim, args.classes)).astype(np.float32) / np.sqrt(args.dim)
    pool, labelled = torch.from_numpy(features[: args.n]), torch.from_numpy(features[args.n :])
    features_mb = pool.numel() * 4 / 2**20
    print(f"N={args.n:,}, D={args.dim}, C={args.classes}, |D_L|={args.labelled}, query={args.query}, 1 thread")
    print(
        f"pool features: {features_mb:.0f} MiB (float32);"
        f" an N×N float32 matrix would be {args.n**2 * 4 / 2**30:.1f} GiB"
    )

    rows = []
    if "coreset" in args.methods:
        rows.append(coreset_row(args, features, pool, labelled))
    if "badge" in args.methods:
        rows.append(badge_row(args, features, weight, pool))
    print_rows(rows)


def coreset_row(args: argparse.Namespace, features: np.ndarray, pool: torch.Tensor, labelled: torch.Tensor) -> list:
    """Core-Set, ours and scikit-activeml's, with D_L as the initial centres."""
    t_ours, mem_ours, ours = timed(lambda: k_center_greedy(pool, args.query, centres=labelled))
    radius_ours = float(covering_radius(pool, torch.cat([labelled, pool[ours.indices]])))  # type: ignore[attr-defined]
    row = ["Core-Set", t_ours, mem_ours, radius_ours, None, None, None]
    if not args.skip_reference:
        from skactiveml.pool import CoreSet

        y = np.full(len(features), np.nan)
        y[args.n :] = 0
        t_ref, mem_ref, theirs = timed(lambda: CoreSet(random_state=0).query(features, y, batch_size=args.query))
        radius_ref = float(covering_radius(pool, torch.cat([labelled, pool[torch.as_tensor(theirs)]])))  # type: ignore[arg-type]
        row[4:] = [t_ref, mem_ref, radius_ref]
    return row


def badge_row(args: argparse.Namespace, features: np.ndarray, weight: np.ndarray, pool: torch.Tensor) -> list:
    """BADGE, ours and scikit-activeml's, with a fixed linear-softmax classifier on the features."""
    log_probs = torch.from_numpy(features[: args.n] @ weight).log_softmax(1)

    def ours_badge() -> object:
        return kmeans_pp(gradient_embedding(log_probs, pool), args.query, seed=0, num_classes=args.classes)

    t_ours, mem_ours, ours = timed(ours_badge)
    embeddings = gradient_embedding(log_probs, pool)
    potential_ours = badge_potential(embeddings, args.classes, ours.indices.tolist())  # type: ignore[attr-defined]
    row = ["BADGE", t_ours, mem_ours, potential_ours, None, None, None]
    if not args.skip_reference:
        from skactiveml.pool import Badge

        clf = fixed_classifier(weight, args.classes)
        strategy = Badge(random_state=0, clf_embedding_flag_name="return_embeddings")
        y = np.full(args.n, np.nan)
        t_ref, mem_ref, theirs = timed(
            lambda: strategy.query(features[: args.n], y, clf, fit_clf=False, batch_size=args.query)
        )
        row[4:] = [t_ref, mem_ref, badge_potential(embeddings, args.classes, list(theirs))]  # type: ignore[call-overload]
    return row


def print_rows(rows: list[list]) -> None:
    """The results as a markdown table, with the speed-up ratio."""

    def mib(value: object) -> str:
        return "n/a" if value is None else f"{value / 2**20:.0f}"  # type: ignore[operator]

    print(
        "\n| method | ours (s) | ours peak RSS growth (MiB) | ours objective | scikit-activeml (s) | its peak (MiB) |"
        " its objective | speed-up |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for name, t_o, m_o, obj_o, t_r, m_r, obj_r in rows:
        ratio = "n/a" if t_r is None else f"{t_r / t_o:.1f}x"
        ref = ("n/a", "n/a", "n/a") if t_r is None else (f"{t_r:.2f}", mib(m_r), f"{obj_r:.4g}")
        print(f"| {name} | {t_o:.2f} | {mib(m_o)} | {obj_o:.4g} | {ref[0]} | {ref[1]} | {ref[2]} | {ratio} |")
    print(
        "\nObjectives: Core-Set, the covering radius over the pool (D_L and picks as centres; lower is better);"
        " BADGE, the k-means++ potential in gradient space (its picks as centres; BADGE's draws are random, so"
        " only similar values are expected)."
    )


if __name__ == "__main__":
    main()
