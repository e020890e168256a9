"""MUNIT's styles in `munit-rt translate`: random codes (reproducible per input), codes from .npy, reference
images, interpolated sequences, and the run's plan (MunitPlan) built from them.

Reproducibility rule: an input's random codes depend only on (seed, its relative path), never on the
order or the process that handled it, so resumed and multi-worker runs give the same pictures.
"""
from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from munit_rt.errors import InputError, one_line_reason
from munit_rt.families.base import TranslatePlan
from munit_rt.io.images import find_images, read_image
from munit_rt.preprocess import normalize
from munit_rt.translator import direction_domains


def style_rng(seed: int, relpath: str | None = None) -> np.random.Generator:
    """The generator for one input (`relpath`), or for the run when styles are synchronized (None)."""
    entropy = [int(seed)]
    if relpath is not None:
        digest = hashlib.sha256(relpath.encode("utf-8", "surrogateescape")).digest()
        entropy.append(int.from_bytes(digest[:8], "little"))
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence(entropy)))


def random_styles(count: int, style_dim: int, seed: int, relpath: str | None = None) -> np.ndarray:
    """[count, style_dim] float32 codes drawn from N(0, I), as the official test script samples them."""
    return style_rng(seed, relpath).standard_normal((count, style_dim), dtype=np.float32)


def load_style_codes(path: Path, style_dim: int) -> np.ndarray:
    """An [S, style_dim] float .npy file (the official [S, style_dim, 1, 1] is accepted too)."""
    try:
        codes = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as exc:
        raise InputError(f"--style-codes {path}: not a readable .npy array ({exc})") from None
    if codes.ndim == 4 and codes.shape[2:] == (1, 1):
        codes = codes[:, :, 0, 0]
    if codes.ndim != 2 or codes.shape[1] != style_dim or codes.shape[0] < 1 or codes.dtype.kind != "f":
        raise InputError(f"--style-codes {path}: expected a float array of shape [S, {style_dim}], "
                         f"got {codes.dtype} {list(codes.shape)}")
    if not np.isfinite(codes).all():
        raise InputError(f"--style-codes {path}: contains NaN or infinite values")
    return codes.astype(np.float32)


def interpolate_styles(codes: np.ndarray, steps: int, spherical: bool = False) -> np.ndarray:
    """Insert `steps` codes between each consecutive pair along axis -2: S -> S + (S - 1) * steps."""
    if steps <= 0:
        return codes
    if codes.shape[-2] < 2:
        raise InputError("--interpolate needs at least 2 styles to interpolate between")
    t = np.arange(1, steps + 1, dtype=np.float64) / (steps + 1)
    pieces = []
    for i in range(codes.shape[-2] - 1):
        start = codes[..., i:i + 1, :].astype(np.float64)
        end = codes[..., i + 1:i + 2, :].astype(np.float64)
        pieces += [start, _slerp(start, end, t) if spherical else _lerp(start, end, t)]
    pieces.append(codes[..., -1:, :].astype(np.float64))
    return np.concatenate(pieces, axis=-2).astype(np.float32)


def _lerp(start: np.ndarray, end: np.ndarray, t: np.ndarray) -> np.ndarray:
    t = t[:, None]
    return start * (1.0 - t) + end * t


def _slerp(start: np.ndarray, end: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Spherical interpolation (Shoemake; as in White, "Sampling Generative Networks"): keeps Gaussian
    codes near the typical radius instead of shrinking them toward the origin half-way."""
    t = t[:, None]
    unit_start = start / np.maximum(np.linalg.norm(start, axis=-1, keepdims=True), 1e-12)
    unit_end = end / np.maximum(np.linalg.norm(end, axis=-1, keepdims=True), 1e-12)
    omega = np.arccos(np.clip((unit_start * unit_end).sum(-1, keepdims=True), -1.0, 1.0))
    sin = np.sin(omega)
    if np.any(sin < 1e-6):  # (anti)parallel codes: the arc is undefined, fall back to a straight line
        return _lerp(start, end, t[:, 0])
    return np.sin((1.0 - t) * omega) / sin * start + np.sin(t * omega) / sin * end


# ------------------------------------------------------------------------------------------ the plan

DEFAULT_STYLES = 8


@dataclass
class MunitPlan(TranslatePlan):
    """Where each input's S styles come from: shared `codes` ([S, style_dim]: --style-codes, --synchronized,
    or encoded from --style-image/--style-dir references by `prepare`), or random per input from (seed,
    relpath); `interpolate` codes inserted between consecutive ones."""

    count: int = DEFAULT_STYLES
    seed: int = 0
    style_dim: int = 8
    interpolate: int = 0
    slerp: bool = False
    batch_size: int = 8
    source: str = "random"  # random | synchronized | codes | references
    reference_paths: list[Path] = field(default_factory=list)
    codes: np.ndarray | None = None

    @classmethod
    def from_options(cls, bundle: Any, options: Any) -> MunitPlan:
        source_domain, target_domain = direction_domains(options.direction)
        model = bundle.model
        references = _reference_paths(options)
        codes = load_style_codes(options.style_codes, model.style_dim) if options.style_codes else None
        count = len(references) or (len(codes) if codes is not None else options.styles or DEFAULT_STYLES)
        if options.interpolate and count < 2:
            raise InputError("--interpolate needs at least 2 styles to interpolate between")
        source = "references" if references else "codes" if codes is not None else "random"
        if codes is None and not references and options.synchronized:
            codes, source = random_styles(count, model.style_dim, options.seed), "synchronized"  # seed only
        total = count + (count - 1) * options.interpolate
        return cls(bundle.preprocess.with_size(options.size), model.domains[source_domain],
                   [f"style_{j:02d}" for j in range(total)], False, options.direction, count, options.seed,
                   model.style_dim, options.interpolate, options.slerp, options.batch_size, source, references,
                   codes)

    def prepare(self, translator: Any) -> None:
        """Reference images -> their style codes in the target domain (one at a time: sizes may differ); once:
        a plan prepared by the Ray driver reaches its workers with the codes."""
        if not self.reference_paths or self.codes is not None:
            return
        domain = direction_domains(self.direction)[1]
        channels = translator.bundle.model.domains[domain]
        codes = []
        for path in self.reference_paths:
            try:
                pixels = read_image(path, self.prep, channels)
            except Exception as exc:  # noqa: BLE001 - any decode failure of a reference is a setup error
                raise InputError(f"style image {path}: cannot read it ({one_line_reason(exc)})") from None
            codes.append(translator.encode_style(normalize(pixels, self.prep)[None], domain)[0])
        self.codes = np.stack(codes)

    @property
    def needs_model(self) -> bool:
        return bool(self.reference_paths) and self.codes is None

    def shared_codes(self) -> np.ndarray | None:
        return self.codes

    def codes_for(self, relpaths: list[str]) -> np.ndarray:
        """[S, style_dim] when shared by every input, else [N, S, style_dim] from (seed, relpath) alone."""
        if self.codes is not None:
            return interpolate_styles(self.codes, self.interpolate, self.slerp)
        return np.stack([interpolate_styles(random_styles(self.count, self.style_dim, self.seed, relpath),
                                            self.interpolate, self.slerp) for relpath in relpaths])

    def run(self, translator: Any, images: np.ndarray, relpaths: list[str]) -> np.ndarray:
        return translator.translate(images, self.codes_for(relpaths), self.direction, self.batch_size)

    def column_labels(self) -> list[str]:
        """Style indices, or the reference images' names (interpolated styles: a, a>b 1/K ..., b)."""
        if not self.reference_paths:
            return [f"style {j}" for j in range(len(self.names))]
        names = [path.name for path in self.reference_paths]
        labels = []
        for i, name in enumerate(names):
            labels.append(name)
            if i + 1 < len(names):
                labels += [f"{name} > {names[i + 1]} {k}/{self.interpolate + 1}" for k in range(1, self.interpolate + 1)]
        return labels

    def with_absolute_paths(self, absolute) -> MunitPlan:
        return dataclasses.replace(self, reference_paths=[absolute(p) for p in self.reference_paths])

    def record(self) -> dict[str, Any]:
        record = {"direction": self.direction, "styles": self.count, "style_source": self.source,
                  "interpolate": self.interpolate, "slerp": self.slerp}
        if self.source in ("random", "synchronized"):
            record["seed"] = self.seed
        if self.reference_paths:
            record["style_references"] = [str(p) for p in self.reference_paths]
        return record


def _reference_paths(options: Any) -> list[Path]:
    if options.style_dir is not None:
        paths = [item.path for item in find_images([Path(options.style_dir)], options.recursive)]
        if not paths:
            raise InputError(f"--style-dir {options.style_dir}: no images found")
        return paths
    return [Path(p) for p in options.style_images]
