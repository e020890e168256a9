"""Quality of a reduced precision: the whole job's outputs against FP32's, as PSNR and written-pixel levels.

PSNR is over the float outputs in [-1, 1] (peak-to-peak 2.0); level differences are between the uint8 pixels
`translate` writes (munit_rt.preprocess.to_pixels), accumulated in a 256-bin histogram so that the 99.9th
percentile is exact without keeping the outputs. A precision's record is its worst job (direction).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from munit_rt.preprocess import to_pixels


@dataclass
class Comparison:
    """Running comparison of test outputs against reference outputs, input by input."""

    squared: float = 0.0
    values: int = 0
    outputs: int = 0
    levels: np.ndarray = field(default_factory=lambda: np.zeros(256, np.int64))

    def add(self, reference: np.ndarray, test: np.ndarray) -> None:
        """reference, test: [S, C, H, W] outputs of one input."""
        diff = test.astype(np.float64) - reference.astype(np.float64)
        self.squared += float(np.sum(diff * diff))
        self.values += diff.size
        for ref, got in zip(reference, test):
            levels = np.abs(to_pixels(ref).astype(np.int16) - to_pixels(got).astype(np.int16))
            self.levels += np.bincount(levels.ravel(), minlength=256)
            self.outputs += 1

    @property
    def psnr_db(self) -> float | None:
        """None: identical outputs (infinite PSNR)."""
        mse = self.squared / max(1, self.values)
        return 10.0 * math.log10(4.0 / mse) if mse > 0 else None

    def percentile_levels(self, q: float) -> float:
        cumulative = np.cumsum(self.levels)
        return float(np.searchsorted(cumulative, q / 100.0 * cumulative[-1])) if cumulative[-1] else 0.0

    @property
    def max_levels(self) -> int:
        nonzero = np.nonzero(self.levels)[0]
        return int(nonzero[-1]) if len(nonzero) else 0


def record(by_job: dict[str, Comparison], images: int, measured_with: str, **extra: Any) -> dict[str, Any]:
    """The manifest's quality record (munit_rt.bundle.schema.Quality): the worst job's PSNR and levels."""
    psnrs = [c.psnr_db for c in by_job.values()]
    finite = [p for p in psnrs if p is not None]
    return {"psnr_db": round(min(finite), 2) if finite else None,
            "p999_levels": max(c.percentile_levels(99.9) for c in by_job.values()),
            "max_levels": max(c.max_levels for c in by_job.values()),
            "images": images, "outputs": sum(c.outputs for c in by_job.values()), "jobs": list(by_job),
            "measured_with": measured_with, **{k: v for k, v in extra.items() if v is not None}}
