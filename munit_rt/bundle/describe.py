"""The text of `munit-rt info BUNDLE`: header, the family's lines, preprocessing, and one line per graph file."""
from __future__ import annotations

from typing import TYPE_CHECKING

from munit_rt.text import printable

if TYPE_CHECKING:
    from munit_rt.bundle.reader import Bundle
    from munit_rt.bundle.schema import Manifest, Parity, Quality
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
        f"precisions  {precisions_text(m.precisions)}",
        *quality_lines(m),
        "",
        f"{'graph':<20} {'precision':<10} {'size':>10}  parity",
    ]
    for name, graph in m.graphs.items():
        for precision in [p for p in m.precisions if p in graph.files]:
            same = precision != "fp32" and "fp32" in graph.files and graph.files[precision].path == \
                graph.files["fp32"].path
            check = "the fp32 file (not quantized)" if same else "quantized (quality: above)" \
                if precision == "int8" and precision not in graph.parity else parity_text(graph.parity.get(precision))
            lines.append(f"{name:<20} {precision:<10} {human_bytes(graph.files[precision].bytes):>10}  {check}")
    return "\n".join(printable(line, control=True) for line in lines)  # manifest text may hold escape sequences


def precisions_text(stored: tuple[str, ...]) -> str:
    """The graph files a bundle holds, and what runs from them at run time (--precision)."""
    runtime = ["bf16 (OpenVINO on CPUs with native bf16)"] if "fp32" in stored else []
    return f"stored {', '.join(stored)}" + (f"; from the fp32 graphs also {', '.join(runtime)}" if runtime else "")


def quality_lines(manifest: Manifest) -> list[str]:
    """`quality     int8: 48.5 dB PSNR vs fp32, ...` per recorded precision (`munit-rt quantize` measures them)."""
    lines = []
    for precision, q in manifest.quality.items():
        lines.append(f"{precision}: {quality_text(q)}; {q.images} held-out images, {q.outputs} outputs (jobs "
                     f"{', '.join(q.jobs)})")
        lines.append(f"{'':<{len(precision) + 2}}measured with {q.measured_with}")
        if q.tool:
            version = f" {q.tool_version}" if q.tool_version else ""
            calibrated = f", calibrated on {q.calibration_images} images" if q.calibration_images else ""
            kept = sum(len(nodes) for nodes in q.kept_fp32.values())
            lines.append(f"{'':<{len(precision) + 2}}made by {q.tool}{version}{calibrated}; {kept} convs kept fp32"
                         + (f"; the fp32 file for {', '.join(q.fp32_graphs)}" if q.fp32_graphs else ""))
    return [f"{'quality' if i == 0 else '':<11} {line}" for i, line in enumerate(lines)]


def quality_text(q: Quality) -> str:
    psnr = "identical" if q.psnr_db is None else f"{q.psnr_db:.1f} dB PSNR vs fp32"
    return f"{psnr}, p99.9 {q.p999_levels:g} levels (max {q.max_levels})"


def precision_quality(manifest: Manifest, precision: str, stored: str | None = None) -> str:
    """What is known of a precision's quality, for the run summary: the recorded measurement, else the export's
    parity of the graphs it runs (`stored`: the graph files it runs from), else that it was not measured."""
    if precision == "fp32":
        return ""
    recorded = manifest.quality.get(precision)
    if recorded is not None:
        return f"{quality_text(recorded)}, recorded"
    psnrs = [g.parity[precision].min_psnr_db for g in manifest.graphs.values()
             if (stored or precision) == precision and precision in g.parity and g.parity[precision].min_psnr_db]
    if psnrs:
        return f"graphs >= {min(psnrs):.1f} dB PSNR vs fp32 (export parity)"
    return "quality not measured (munit-rt quantize records it)"


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
