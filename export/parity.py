"""Export-time parity: every graph runs in ONNX Runtime (CPU) against its PyTorch module on the same seeded feeds.

Running and comparing are separate, as in Polygraphy: the family's `GraphSpec.cases` builds the feeds (from a
numpy generator seeded per graph name here, so the same graph always gets the same feeds), `check_fp32` /
`check_fp16` run them, and `compare_atol` / `compare_psnr` return one small result per output. The numbers end
up in the manifest.

FP32 passes when max |onnx - torch| <= atol. FP16 is judged against the FP32 ONNX output by PSNR; the peak is
2.0 for image outputs in [-1, 1] (`GraphSpec.image_output`: decoder and generator outputs) and the reference's
max |value| for content, style and AdaIN outputs.
"""
from __future__ import annotations

import math
import zlib
from dataclasses import dataclass, field

import numpy as np
import torch

from munit_rt.training.family import GraphSpec, ParityCase

IMAGE_PEAK_TO_PEAK = 2.0
MAX_REPORTED_PSNR_DB = 200.0  # identical outputs have infinite PSNR, which JSON cannot hold


@dataclass
class OutputComparison:
    """One output of one case, compared (truthy when it passed), like Polygraphy's per-output result."""

    name: str
    max_abs_err: float
    mean_abs_err: float
    passed: bool
    psnr_db: float | None = None

    def __bool__(self) -> bool:
        return self.passed


def compare_atol(name: str, expected: np.ndarray, actual: np.ndarray, atol: float) -> OutputComparison:
    diff = _abs_diff(expected, actual)
    max_err = float(diff.max()) if diff.size else 0.0
    return OutputComparison(name, max_err, float(diff.mean()) if diff.size else 0.0, bool(max_err <= atol))


def compare_psnr(name: str, reference: np.ndarray, actual: np.ndarray, min_psnr: float,
                 peak: float | None = None) -> OutputComparison:
    """PSNR of `actual` against `reference`; `peak` defaults to the reference's max |value|."""
    diff = _abs_diff(reference, actual)
    if peak is None:
        peak = float(np.abs(reference).max()) or 1.0
    mse = float(np.mean(diff.astype(np.float64) ** 2))
    if mse == 0:
        psnr = MAX_REPORTED_PSNR_DB
    elif not math.isfinite(mse):
        psnr = float("-inf")
    else:
        psnr = min(MAX_REPORTED_PSNR_DB, 10 * math.log10(peak**2 / mse))
    return OutputComparison(name, float(diff.max()), float(diff.mean()), bool(psnr >= min_psnr), psnr)


def _abs_diff(expected: np.ndarray, actual: np.ndarray) -> np.ndarray:
    if expected.shape != actual.shape:
        raise ValueError(f"shape {list(actual.shape)} differs from the expected {list(expected.shape)}")
    diff = np.abs(expected.astype(np.float32) - actual.astype(np.float32))
    return np.where(np.isfinite(diff), diff, np.inf)  # NaN must fail every bound


def parity_cases(spec: GraphSpec, seed: int = 0) -> list[ParityCase]:
    """The graph's parity feeds, from a generator seeded by (seed, the graph's name)."""
    return spec.cases(np.random.default_rng([seed, zlib.crc32(spec.name.encode())]))


@dataclass
class ParityReport:
    """All cases of one graph at one precision; `outputs` keeps the ONNX results for the FP16 check."""

    precision: str
    cases: list[ParityCase]
    comparisons: list[list[OutputComparison]]
    outputs: list[dict[str, np.ndarray]] = field(repr=False)
    atol: float | None = None
    min_psnr: float | None = None
    psnr_peak: str | None = None

    @property
    def passed(self) -> bool:
        return all(all(case) for case in self.comparisons)

    def worst(self) -> tuple[ParityCase, OutputComparison]:
        key = (lambda c: -(c.psnr_db or 0.0)) if self.precision == "fp16" else (lambda c: c.max_abs_err)
        pairs = [(case, c) for case, comps in zip(self.cases, self.comparisons) for c in comps]
        return max(pairs, key=lambda pair: key(pair[1]))

    def describe_failure(self, graph_name: str) -> str:
        case, worst = self.worst()
        if self.precision == "fp16":
            return (f"FP16 graph '{graph_name}' output '{worst.name}' has PSNR {worst.psnr_db:.1f} dB vs FP32, under "
                    f"--min-psnr {self.min_psnr:g} ({case.label()}); use --precision fp32 or lower --min-psnr")
        return (f"ONNX graph '{graph_name}' output '{worst.name}' differs from PyTorch by {worst.max_abs_err:.3g} "
                f"(max abs), over --atol {self.atol:g} ({case.label()})")

    def to_dict(self) -> dict:
        flat = [c for comps in self.comparisons for c in comps]
        cases = []
        for case, comps in zip(self.cases, self.comparisons):
            record = case.describe()
            record["max_abs_err"] = max(c.max_abs_err for c in comps)
            record["mean_abs_err"] = float(np.mean([c.mean_abs_err for c in comps]))
            if self.precision == "fp16":
                record["psnr_db"] = min(c.psnr_db for c in comps)
            cases.append(record)
        if self.precision == "fp16":  # abs errors only per case: readers key the FP32 summary on max_abs_err
            summary = {"min_psnr_db": min(c.psnr_db for c in flat), "psnr_bound_db": self.min_psnr,
                       "psnr_peak": self.psnr_peak}
        else:
            summary = {"max_abs_err": max(c.max_abs_err for c in flat),
                       "mean_abs_err": float(np.mean([c.mean_abs_err for c in flat])), "atol": self.atol}
        return {**summary, "passed": self.passed, "cases": cases}


def onnx_session(model_bytes: bytes):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3  # errors only
    return ort.InferenceSession(model_bytes, options, providers=["CPUExecutionProvider"])


def torch_outputs(spec: GraphSpec, case: ParityCase) -> dict[str, np.ndarray]:
    with torch.no_grad():
        result = spec.reference_module(*[torch.from_numpy(case.feeds[t.name]) for t in spec.inputs])
    results = result if isinstance(result, tuple) else (result,)
    return {t.name: r.numpy() for t, r in zip(spec.outputs, results)}


def _run(session, spec: GraphSpec, case: ParityCase) -> dict[str, np.ndarray]:
    names = [t.name for t in spec.outputs]
    return dict(zip(names, session.run(names, case.feeds)))


def check_fp32(spec: GraphSpec, model_bytes: bytes, cases: list[ParityCase], atol: float) -> ParityReport:
    session = onnx_session(model_bytes)
    outputs, comparisons = [], []
    for case in cases:
        expected, actual = torch_outputs(spec, case), _run(session, spec, case)
        outputs.append(actual)
        comparisons.append([compare_atol(t.name, expected[t.name], actual[t.name], atol) for t in spec.outputs])
    return ParityReport("fp32", cases, comparisons, outputs, atol=atol)


def check_fp16(spec: GraphSpec, model_bytes: bytes, fp32: ParityReport, min_psnr: float) -> ParityReport:
    """FP16 ONNX against the FP32 ONNX outputs already computed in `fp32`."""
    session = onnx_session(model_bytes)
    is_image = spec.image_output
    peak = IMAGE_PEAK_TO_PEAK if is_image else None
    outputs, comparisons = [], []
    for case, reference in zip(fp32.cases, fp32.outputs):
        actual = _run(session, spec, case)
        outputs.append(actual)
        comparisons.append([compare_psnr(t.name, reference[t.name], actual[t.name], min_psnr, peak)
                            for t in spec.outputs])
    return ParityReport("fp16", fp32.cases, comparisons, outputs, min_psnr=min_psnr,
                        psnr_peak="image_range_2.0" if is_image else "reference_max_abs")
