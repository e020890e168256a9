"""The text of `munit-rt info BUNDLE`: header, the family's lines, preprocessing, and one line per graph file."""
from __future__ import annotations

from typing import TYPE_CHECKING

from munit_rt.text import printable

if TYPE_CHECKING:
    from munit_rt.bundle.reader import Bundle
    from munit_rt.bundle.schema import Parity
    from munit_rt.preprocess import Preprocess


def describe_bundle(bundle: Bundle) -> str:
    m, src = bundle.manifest, bundle.manifest.source
    iteration = f", iteration {src.iteration}" if src.iteration is not None else ""
    lines = [
        f"bundle      {bundle.path}",
        f"family      {m.family} (schema {m.schema_version}, written by munit-rt {m.munit_rt_version} on {m.created})",
        f"checkpoint  {src.name} ({src.format}{iteration}, sha256 {src.sha256[:12] or '?'})",
        f"            exported from {src.path or '?'}",
        *(f"{label:<11} {text}" for label, text in bundle.spec.describe(m)),
        f"preprocess  {preprocess_text(m.preprocess)}",
        f"precisions  {', '.join(m.precisions)}",
        "",
        f"{'graph':<20} {'precision':<10} {'size':>10}  parity",
    ]
    for name, graph in m.graphs.items():
        for precision in [p for p in m.precisions if p in graph.files]:
            lines.append(f"{name:<20} {precision:<10} {human_bytes(graph.files[precision].bytes):>10}  "
                         f"{parity_text(graph.parity.get(precision))}")
    return "\n".join(printable(line, control=True) for line in lines)  # manifest text may hold escape sequences


def preprocess_text(pre: Preprocess) -> str:
    """What the runtime does to an input before the graphs see it (munit_rt.io.images.read_image)."""
    if pre.resize == "square":
        crop = f"center crop {pre.crop_size} px, then " if pre.crop_size else ""
        return f"{crop}resize to {pre.size}x{pre.size} px ({pre.resample})"
    fitted = (f"H and W resized to the nearest multiple of {pre.multiple} ({pre.resample}, upstream "
              "__make_power_2)" if pre.fit == "round" else f"H and W center-cropped to a multiple of {pre.multiple}")
    return f"shorter side -> {pre.size} px ({pre.resample}), {fitted}"


def parity_text(parity: Parity | None) -> str:
    """fp32 graphs are checked against PyTorch by max abs error, reduced precisions against fp32 by PSNR."""
    if parity is None:
        return "not checked"
    parts = []
    if parity.min_psnr_db is not None:
        bound = f"{parity.psnr_bound_db:g}" if parity.psnr_bound_db is not None else "?"
        parts.append(f"min PSNR {parity.min_psnr_db:.1f} dB (bound {bound})")
    if parity.max_abs_err is not None:
        atol = f" (atol {parity.atol:.0e})" if parity.atol is not None else ""
        parts.append(f"max abs err {parity.max_abs_err:.1e}{atol}")
    verdict = "ok" if parity.passed else "FAILED"
    return f"{', '.join(parts)} {verdict}" if parts else verdict


def human_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB"):
        if n < 1024 or unit == "MiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"
