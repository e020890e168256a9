"""Export-time parity: every graph runs in ONNX Runtime (CPU) against its PyTorch module on the same seeded feeds.

Running and comparing are separate, as in Polygraphy: `make_cases` builds the feeds, `check_fp32` /
`check_fp16` run them, and `compare_atol` / `compare_psnr` return one small result per output. The numbers
end up in the manifest.

Cases: batch 1 and 3, at a square and a non-square size (for the tiny test model 32x32 and 48x40; neither is
the size the graphs were traced at). The decoder is fed real content codes (the other domain's content
encoder on random images, as in translation) with two AdaIN vectors: the MLP of a random style, and a
hand-built one (random shifts, scales in [0.5, 1.5]) laid out by `AdaINGen.adain_layout()`.

CycleGAN and StarGAN generator graphs: batch 1 and 3 at 32x32 and 48x40 (multiples of 4, neither the traced
32x48), uniform images; StarGAN's label rows are random 0/1 vectors that differ between the samples of a
batch, so a label tiled onto the wrong sample or a frozen batch size shows up.

FP32 passes when max |onnx - torch| <= atol. FP16 is judged against the FP32 ONNX output by PSNR; the peak is
2.0 for images (range [-1, 1]: decoder and generator outputs) and the reference's max |value| for content,
style and AdaIN outputs.
"""
from __future__ import annotations

import math
import zlib
from dataclasses import dataclass, field

import numpy as np
import torch

from munit_rt.export.onnx_export import GENERATOR_MULTIPLE, GENERATOR_UNIT, GraphSpec, parity_unit, spatial_multiple

BATCH_SIZES = (1, 3)
IMAGE_ROLES = ("decoder", "generator")  # graphs whose output is an image in [-1, 1]
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


@dataclass
class ParityCase:
    batch: int
    feeds: dict[str, np.ndarray] = field(repr=False)
    height: int | None = None  # image size; None for the MLP, which has no spatial input
    width: int | None = None
    adain: str | None = None  # decoder only: "mlp" or "hand_built"

    def describe(self) -> dict:
        out: dict = {"batch": self.batch}
        if self.height is not None:
            out.update(height=self.height, width=self.width)
        if self.adain is not None:
            out["adain"] = self.adain
        return out

    def label(self) -> str:
        parts = [f"batch {self.batch}"]
        if self.height is not None:
            parts.append(f"{self.height}x{self.width}")
        if self.adain is not None:
            parts.append(f"adain {self.adain}")
        return ", ".join(parts)


def parity_resolutions(gen_config) -> list[tuple[int, int]]:
    """A square and a non-square (H, W), both multiples of the spatial multiple."""
    unit, m = parity_unit(gen_config), spatial_multiple(gen_config)
    return _resolutions(unit, m)


def _resolutions(unit: int, m: int) -> list[tuple[int, int]]:
    return [(2 * unit, 2 * unit), (3 * unit, max(m, round(2.5 * unit / m) * m))]


def generator_resolutions() -> list[tuple[int, int]]:
    """CycleGAN/StarGAN parity sizes: 32x32 and 48x40."""
    return _resolutions(GENERATOR_UNIT, GENERATOR_MULTIPLE)


def make_cases(spec: GraphSpec, gens: dict, config, seed: int = 0) -> list[ParityCase]:
    """Seeded feeds for one graph (the same seed gives the same feeds for the same graph name)."""
    rng = np.random.default_rng([seed, zlib.crc32(spec.name.encode())])
    if spec.role == "generator":
        return _generator_cases(spec, rng)
    gen = gens[spec.domain]
    cases = []
    if spec.role == "style_mlp":
        for batch in BATCH_SIZES:
            cases.append(ParityCase(batch, {"style": _normal(rng, (batch, config.gen.style_dim))}))
        return cases
    for batch in BATCH_SIZES:
        for height, width in parity_resolutions(config.gen):
            if spec.role in ("content_encoder", "style_encoder"):
                image = _uniform(rng, (batch, config.input_dim(spec.domain), height, width))
                cases.append(ParityCase(batch, {"image": image}, height, width))
                continue
            other = "b" if spec.domain == "a" else "a"
            image = _uniform(rng, (batch, config.input_dim(other), height, width))
            with torch.no_grad():
                content = gens[other].enc_content(torch.from_numpy(image)).numpy()
                from_mlp = gen.mlp(torch.from_numpy(_normal(rng, (batch, config.gen.style_dim)))).numpy()
            for source, adain in (("mlp", from_mlp), ("hand_built", hand_built_adain(gen, batch, rng))):
                cases.append(ParityCase(batch, {"content": content, "adain_params": adain}, height, width, source))
    return cases


def _generator_cases(spec: GraphSpec, rng: np.random.Generator) -> list[ParityCase]:
    """Feeds for a whole-generator graph from its input specs: `image` [N, C, H, W], `label` [N, c_dim]."""
    cases = []
    for batch in BATCH_SIZES:
        for height, width in generator_resolutions():
            feeds = {}
            for tensor in spec.inputs:
                if tensor.name == "image":
                    feeds["image"] = _uniform(rng, (batch, tensor.shape[1], height, width))
                elif tensor.name == "label":
                    feeds["label"] = distinct_binary_labels(rng, batch, tensor.shape[1])
                else:
                    raise ValueError(f"graph '{spec.name}': no parity feed for input '{tensor.name}'")
            cases.append(ParityCase(batch, feeds, height, width))
    return cases


def distinct_binary_labels(rng: np.random.Generator, batch: int, c_dim: int) -> np.ndarray:
    """[batch, c_dim] float32 0/1 rows, pairwise different where 2**c_dim allows."""
    labels = rng.integers(0, 2, (batch, c_dim)).astype(np.float32)
    k = min(c_dim, 16)  # the first k columns: distinct codes
    codes = np.resize(rng.choice(2**k, size=min(batch, 2**k), replace=False), batch)
    labels[:, :k] = (codes[:, None] >> np.arange(k)[None, :]) & 1
    return labels


def hand_built_adain(gen, batch: int, rng: np.random.Generator) -> np.ndarray:
    """AdaIN vector written layer by layer from the layout: random shifts, scales in [0.5, 1.5]."""
    vector = np.zeros((batch, gen.dec.num_adain_params), np.float32)
    for layer in gen.adain_layout():
        c = layer.channels
        vector[:, layer.shift_offset:layer.shift_offset + c] = rng.normal(0.0, 0.5, (batch, c))
        vector[:, layer.scale_offset:layer.scale_offset + c] = rng.uniform(0.5, 1.5, (batch, c))
    return vector


def _uniform(rng, shape) -> np.ndarray:
    return rng.uniform(-1.0, 1.0, shape).astype(np.float32)


def _normal(rng, shape) -> np.ndarray:
    return rng.standard_normal(shape).astype(np.float32)


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
    is_image = spec.role in IMAGE_ROLES
    peak = IMAGE_PEAK_TO_PEAK if is_image else None
    outputs, comparisons = [], []
    for case, reference in zip(fp32.cases, fp32.outputs):
        actual = _run(session, spec, case)
        outputs.append(actual)
        comparisons.append([compare_psnr(t.name, reference[t.name], actual[t.name], min_psnr, peak)
                            for t in spec.outputs])
    return ParityReport("fp16", fp32.cases, comparisons, outputs, min_psnr=min_psnr,
                        psnr_peak="image_range_2.0" if is_image else "reference_max_abs")
