"""Which pixels to trust: the left-right consistency check and the sparsification curve.

The confidence map itself comes from the network (``PSMNet.confidence_radius``: the soft-argmin's
probability mass near its estimate). A sparsification curve drops the least confident pixels
first and follows the error of those kept; the oracle drops the largest errors first, the
lower bound of any confidence. Curves are accumulated in histograms, so a dataset streams
through without keeping its pixels.
"""

from __future__ import annotations

import numpy as np

LR_THRESHOLD = 1.0  # px: the usual left-right tolerance
CONFIDENCE_BINS = 1000  # confidence in [0, 1] quantised to 1/1000
ERROR_BIN = 0.01  # px: the oracle's error resolution
ERROR_BINS = 20_000  # errors up to 200 px binned; larger ones share the last bin (exact sum kept)
FRACTIONS = tuple(np.round(np.arange(0.0, 0.95, 0.05), 2))  # share of pixels dropped


def left_right_consistent(left_disparity: np.ndarray, right_disparity: np.ndarray,
                          threshold: float = LR_THRESHOLD) -> np.ndarray:
    """(H, W) bool: True where the left view's disparity d at x agrees, within ``threshold``
    px, with the right view's disparity at x - d (linearly interpolated). Pixels whose match
    leaves the right view fail: nothing confirms them."""
    left_disparity = np.asarray(left_disparity, dtype=np.float64)
    right_disparity = np.asarray(right_disparity, dtype=np.float64)
    height, width = left_disparity.shape
    match = np.arange(width)[None, :] - left_disparity
    inside = np.isfinite(match) & (match >= 0) & (match <= width - 1)
    position = np.clip(np.where(inside, match, 0), 0, width - 1)
    lower = np.floor(position).astype(np.int64)
    upper = np.minimum(lower + 1, width - 1)
    fraction = position - lower
    rows = np.arange(height)[:, None]
    seen = (right_disparity[rows, lower] * (1 - fraction)
            + right_disparity[rows, upper] * fraction)
    return inside & (np.abs(left_disparity - seen) <= threshold)


class Sparsification:
    """Streamed sparsification curve: ``add`` each pair's errors and confidences on its scored
    pixels; ``curve`` gives the EPE of the pixels kept after dropping each fraction."""

    def __init__(self) -> None:
        self.confidence_count = np.zeros(CONFIDENCE_BINS + 1)
        self.confidence_error = np.zeros(CONFIDENCE_BINS + 1)
        self.error_count = np.zeros(ERROR_BINS + 1)
        self.error_sum = np.zeros(ERROR_BINS + 1)

    def add(self, error: np.ndarray, confidence: np.ndarray) -> None:
        error = np.asarray(error, dtype=np.float64).ravel()
        level = np.clip(np.round(np.asarray(confidence, dtype=np.float64).ravel()
                                 * CONFIDENCE_BINS), 0, CONFIDENCE_BINS).astype(np.int64)
        self.confidence_count += np.bincount(level, minlength=CONFIDENCE_BINS + 1)
        self.confidence_error += np.bincount(level, error, minlength=CONFIDENCE_BINS + 1)
        bins = np.minimum((error / ERROR_BIN).astype(np.int64), ERROR_BINS)
        self.error_count += np.bincount(bins, minlength=ERROR_BINS + 1)
        self.error_sum += np.bincount(bins, error, minlength=ERROR_BINS + 1)

    @property
    def pixels(self) -> int:
        return int(self.confidence_count.sum())

    @staticmethod
    def _kept_epe(count: np.ndarray, total: np.ndarray, fraction: float) -> float:
        """EPE after dropping ``fraction`` of the pixels from the start of the ordered bins
        (the bin at the cut dropped in proportion)."""
        pixels = count.sum()
        drop = fraction * pixels
        before = np.concatenate([[0.0], np.cumsum(count)[:-1]])
        dropped_share = np.clip((drop - before) / np.maximum(count, 1e-12), 0, 1)
        kept_error = (total * (1 - dropped_share)).sum()
        kept = pixels - drop
        return float(kept_error / kept) if kept > 0 else float("nan")

    def curve(self, fractions: tuple[float, ...] = FRACTIONS) -> dict:
        """EPE kept at each dropped fraction, by confidence (least confident dropped first) and
        by the oracle (largest error first), with the areas under both curves (mean over the
        fractions; lower is better, the oracle's is the floor)."""
        by_confidence = [self._kept_epe(self.confidence_count, self.confidence_error, f)
                         for f in fractions]
        # the oracle drops the largest errors first: the error bins in descending order
        oracle = [self._kept_epe(self.error_count[::-1], self.error_sum[::-1], f)
                  for f in fractions]
        return {"fractions": list(fractions), "epe": by_confidence, "oracle_epe": oracle,
                "auc": float(np.mean(by_confidence)), "oracle_auc": float(np.mean(oracle)),
                "pixels": self.pixels}


def sparsification_figure(curves: dict[str, dict], title: str = ""):
    """A matplotlib figure of the curves (one per name) and each one's oracle, dashed, with
    labelled axes and a legend."""
    from cnnlab.engine.plotting import pyplot

    plt = pyplot()

    fig, ax = plt.subplots(figsize=(6.4, 4))
    for name, curve in curves.items():
        percent = [100 * f for f in curve["fractions"]]
        line, = ax.plot(percent, curve["epe"], marker="o", markersize=3,
                        label=f"{name}: least confident first (AUC {curve['auc']:.3f})")
        ax.plot(percent, curve["oracle_epe"], linestyle="--", color=line.get_color(),
                alpha=0.6, label=f"{name}: oracle, largest errors first "
                                 f"(AUC {curve['oracle_auc']:.3f})")
    ax.set_xlabel("pixels dropped (%)")
    ax.set_ylabel("EPE of the pixels kept (px)")
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    if title:
        ax.set_title(title, fontsize=9)
    fig.tight_layout()
    return fig


def describe_curve(name: str, curve: dict) -> str:
    """One sentence: how the EPE falls as the least confident 10% and 50% are dropped."""
    fractions = curve["fractions"]
    parts = []
    for share in (0.1, 0.5):
        if share in fractions:
            i = fractions.index(share)
            parts.append(f"dropping the {100 * share:.0f}% least confident pixels takes it to "
                         f"{curve['epe'][i]:.3f} px (the oracle: {curve['oracle_epe'][i]:.3f})")
    return (f"{name}: EPE {curve['epe'][0]:.3f} px on all {curve['pixels']:,} pixels; "
            + "; ".join(parts) + f". Area under the curve {curve['auc']:.3f}, oracle "
            f"{curve['oracle_auc']:.3f}.")
