"""Style codes: random (reproducible per input), loaded from .npy, and interpolated sequences.

Reproducibility rule: an input's random codes depend only on (seed, its relative path), never on the
order or the process that handled it, so resumed and multi-worker runs give the same pictures.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from munit_rt.errors import InputError


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
