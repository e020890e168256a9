"""Derived numbers (ratios, roofline shares, targets) and the outputs of bench/throughput.py: Markdown, PNG.

Targets are evaluated and printed as met / not met / not measured; nothing here asserts a speed. The stages
are the family's (meta["stages"]): encode, decode, job (MUNIT) or generate, job (CycleGAN, StarGAN); the
"core" stage the job is compared with is the decoder or the generator, and stages a family lacks are n/a.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

BASELINE = "torch-eager-fp32"
STAGES = ("encode", "decode", "job")  # MUNIT's; results["meta"]["stages"] holds the run's
CORE_NAMES = {"decode": ("decoder", "translate job"), "generate": ("generator", "generate job")}
TARGET_SPEEDUP = 3.0        # TensorRT FP16 >= 3x PyTorch eager FP32 (job, batch 32, 256x256)
TARGET_JOB_SHARE = 0.80     # the whole translate job >= 80% of the decoder-only images/s
TARGET_BATCH, TARGET_SIZE = 32, 256


def stages_of(results: dict[str, Any]) -> tuple[str, ...]:
    return tuple(results.get("meta", {}).get("stages") or STAGES)


def core_stage(results: dict[str, Any]) -> str:
    """The last stage before the job: "decode" (MUNIT) or "generate"."""
    return stages_of(results)[-2]


def roof_key(row: dict[str, Any]) -> str:
    return "cpu_fp32" if row["device"] == "cpu" else f"cuda_{row['precision']}"


def add_derived(results: dict[str, Any]) -> None:
    """Ratios against PyTorch eager FP32 at the same batch, shares of the matmul roof, job/core-stage share."""
    rows = [r for r in results["results"] if "error" not in r]
    baseline = {r["batch"]: r for r in rows if r["backend"] == BASELINE}
    core = core_stage(results)
    for row in rows:
        roof = results["roofs"].get(roof_key(row))
        for stage in stages_of(results):
            entry = row[stage]
            if roof and "gflops" in entry:
                entry["roof_share"] = entry["gflops"] / roof["gflops"]
            base = baseline.get(row["batch"])
            if base is not None:
                entry["x_eager_fp32"] = entry["images_per_s"] / base[stage]["images_per_s"]
        row[f"job_share_of_{core}"] = row["job"]["images_per_s"] / row[core]["images_per_s"]
    results["targets"] = evaluate_targets(results)


def _find(results: dict[str, Any], backend: str, batch: int) -> dict[str, Any] | None:
    return next((r for r in results["results"] if r["backend"] == backend and r["batch"] == batch
                 and "error" not in r), None)


def _why_missing(results: dict[str, Any], backend: str, batch: int) -> str:
    for skipped in results["skipped"]:
        if skipped["backend"] == backend:
            return f"{skipped['label']} skipped: {skipped['reason']}"
    failed = next((r for r in results["results"] if r["backend"] == backend and "error" in r), None)
    if failed is not None:
        return f"{backend} failed at batch {failed['batch']}: {failed['error']}"
    if results["settings"]["size"] != TARGET_SIZE:
        return f"measured at {results['settings']['size']}x{results['settings']['size']}, not {TARGET_SIZE}x{TARGET_SIZE}"
    return f"{backend} not measured at batch {batch} (batches {results['settings']['batches']})"


def evaluate_targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    size_ok = results["settings"]["size"] == TARGET_SIZE
    core = core_stage(results)
    core_name, job_name = CORE_NAMES[core]
    trt, eager = _find(results, "tensorrt-fp16", TARGET_BATCH), _find(results, BASELINE, TARGET_BATCH)
    speedup = {"name": f"TensorRT FP16 >= {TARGET_SPEEDUP:g}x PyTorch eager FP32 ({job_name} images/s, batch "
                       f"{TARGET_BATCH}, {TARGET_SIZE}x{TARGET_SIZE})", "threshold": TARGET_SPEEDUP}
    if size_ok and trt and eager:
        value = trt["job"]["images_per_s"] / eager["job"]["images_per_s"]
        speedup.update(value=value, status="met" if value >= TARGET_SPEEDUP else "not met",
                       detail=f"{value:.2f}x ({core} {trt[core]['images_per_s'] / eager[core]['images_per_s']:.2f}x)")
    else:
        missing = [_why_missing(results, key, TARGET_BATCH) for key, row in (("tensorrt-fp16", trt), (BASELINE, eager))
                   if row is None or not size_ok]
        speedup.update(value=None, status="not measured", detail="; ".join(dict.fromkeys(missing)))

    share = {"name": f"{job_name} >= {TARGET_JOB_SHARE:.0%} of the {core_name}-only images/s (TensorRT FP16, "
                     f"batch {TARGET_BATCH}, {TARGET_SIZE}x{TARGET_SIZE})", "threshold": TARGET_JOB_SHARE}
    if size_ok and trt:
        value = trt[f"job_share_of_{core}"]
        share.update(value=value, status="met" if value >= TARGET_JOB_SHARE else "not met", detail=f"{value:.0%}")
    else:
        share.update(value=None, status="not measured", detail=_why_missing(results, "tensorrt-fp16", TARGET_BATCH))
    others = [f"{r['backend']} b{r['batch']} {r[f'job_share_of_{core}']:.0%}" for r in results["results"]
              if "error" not in r]
    share["all_backends"] = "; ".join(others)
    return [speedup, share]


# ------------------------------------------------------------------------------------------------ output


def _fmt(value: Any, digits: int = 1) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:.{digits}f}" if abs(value) < 1000 else f"{value:,.0f}"
    return str(value)


def _parity_cell(row: dict[str, Any]) -> str:
    if row.get("parity_reference"):
        return "reference"
    if row.get("parity_rel_err") is None:
        return ""  # checked at the smallest batch only
    return f"{row['parity_rel_err']:.1e}" + (" NaN!" if row.get("parity_nan") else "")


def _rate(entry: Any) -> str:
    return _fmt(entry["images_per_s"], 2) if isinstance(entry, dict) else "n/a"


def markdown(results: dict[str, Any]) -> str:
    s, meta = results["settings"], results["meta"]
    core = core_stage(results)
    generator = core == "generate"
    what = (f"{meta['model']}" + (f", {meta['direction']}" if meta.get("direction") else "")
            + (f", label {meta['label']['attribute']}" if meta.get("label") else "")) if generator else \
        f"{s['styles']} styles, {meta['model']}"
    columns = (["backend", "batch", "encode img/s", "decode img/s"] + (["generate img/s"] if generator else [])
               + ["job img/s", f"{core} p50 / p95 ms", "job p50 / p95 ms", f"{core} GFLOP/s", "% of matmul roof",
                  "job x eager", f"job / {core}", "peak MiB", "build s", "parity rel err"])
    lines = [f"## munit-rt throughput: {s['size']}x{s['size']}, {what}",
             "",
             f"Machine: {meta['machine']}; load average {meta['load_before']} before, {meta['load_after']} after "
             f"(other processes share the CPU when it exceeds the core count). Timing: {meta['timing']}.",
             "",
             "| " + " | ".join(columns) + " |",
             "|---|" + "---:|" * (len(columns) - 1)]
    backends = results["backends"]
    for row in results["results"]:
        if "error" in row:
            filler = " |" * (len(columns) - 3)
            lines.append(f"| {row['backend']} | {row['batch']} | failed: {row['error'][:80]} |{filler}")
            continue
        main, job = row[core], row["job"]
        peak = row["memory"]["peak_bytes"]
        info = backends[row["backend"]]
        build = _fmt(info.get("build_s")) if info.get("build_s") is not None else (
            "cached" if "cache" in info.get("build_note", "") else "n/a")
        rates = " | ".join(_rate(row.get(stage, "n/a")) for stage in ("encode", "decode", "generate", "job")
                           if generator or stage != "generate")
        lines.append(
            f"| {row['backend']} | {row['batch']} | {rates} | {_fmt(main['p50_ms'])} / {_fmt(main['p95_ms'])} "
            f"| {_fmt(job['p50_ms'])} / {_fmt(job['p95_ms'])} | {_fmt(main.get('gflops'))} "
            f"| {_fmt(100 * main['roof_share'] if 'roof_share' in main else None, 0)} "
            f"| {_fmt(job.get('x_eager_fp32'), 2)} | {_fmt(row[f'job_share_of_{core}'], 2)} "
            f"| {_fmt(peak / 2**20 if peak is not None else None, 0)} | {build} "
            f"| {_parity_cell(row)} |")
    core_name = CORE_NAMES[core][0]
    lines += ["", f"Parity: relative L2 error of the {core_name} output against the reference at the smallest batch."]
    if generator:
        label = meta.get("label")
        lines += ["Images/s count output images; encode and decode are MUNIT's stages (n/a here); generate is one "
                  "generator call on B images already on the device; the job at batch B is Translator.generate on "
                  "B host images (generator calls of B rows), host arrays in and out"
                  + (f", every image with the label {label['attribute']} {label['vector']}" if label else "")
                  + ". Latencies are per call (one batch); rates use the median of the samples (counts in the JSON)."]
    else:
        lines += [f"Images/s count output images; the job at batch B translates ceil(B/S) images x S = {s['styles']} "
                  "styles (content once per image, style MLP once, pairs decoded in batches of B), host arrays in and "
                  "out. Latencies are per call (one batch); rates use the median of the samples (counts in the JSON)."]
    roofs = "; ".join(f"{name} {roof['gflops']:.0f} GFLOP/s ({roof['method']}"
                      + (", measured " + " and ".join(f"{g:.0f}" for g in roof["measurements_gflops"])
                         + " before and after the runs, the higher kept" if "measurements_gflops" in roof else "")
                      + ")" for name, roof in results["roofs"].items())
    lines += ["", f"Matmul roofs: {roofs}."]
    f = results["flops"]
    if generator:
        lines += [f"FLOPs per image: generator {f['generate_per_image'] / 1e9:.2f} GFLOP ({f['note']})."]
    else:
        lines += [f"FLOPs per image: content encoder {f['encode_per_image'] / 1e9:.2f} GFLOP, decoder "
                  f"{f['decode_per_image'] / 1e9:.2f} GFLOP, style MLP {f['mlp_per_code'] / 1e6:.2f} MFLOP per code "
                  f"({f['note']})."]
    if results.get("notes"):
        lines += ["", "Notes:"] + [f"- {note}" for note in results["notes"]]
    if results["skipped"]:
        lines += ["", "Skipped:"] + [f"- {s['label']}: skipped ({s['reason']})" for s in results["skipped"]]
    lines += ["", "Targets:"] + [f"- {t['name']}: **{t['status']}** ({t['detail']})" for t in results["targets"]]
    return "\n".join(lines) + "\n"


def plot(results: dict[str, Any], path: Path) -> None:
    """Images/s against batch, one line per backend, one panel per stage (matplotlib Agg)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter

    plain = FuncFormatter(lambda value, _: f"{value:g}")

    s, stages = results["settings"], stages_of(results)
    fig, axes = plt.subplots(1, len(stages), figsize=(5 * len(stages), 4.5), constrained_layout=True)
    titles = {"encode": "content encoder", "decode": "decoder", "generate": "generator",
              "job": f"translate job ({s['styles']} styles)" if "decode" in stages else "generate job"}
    for axis, stage in zip(axes, stages):
        for key, info in results["backends"].items():
            rows = sorted((r for r in results["results"] if r["backend"] == key and "error" not in r),
                          key=lambda r: r["batch"])
            if rows:
                axis.plot([r["batch"] for r in rows], [r[stage]["images_per_s"] for r in rows], marker="o",
                          label=info["label"])
        axis.set_xscale("log", base=2)
        axis.set_xticks(s["batches"], [str(b) for b in s["batches"]])
        axis.set_yscale("log")
        axis.yaxis.set_major_formatter(plain)
        axis.yaxis.set_minor_formatter(plain)
        axis.set_xlabel("batch")
        axis.set_ylabel("images / s")
        axis.set_title(titles[stage])
        axis.grid(True, which="both", alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.suptitle(f"munit-rt throughput, {s['size']}x{s['size']}, {results['meta']['model']}, {results['meta']['machine']}",
                 fontsize=9)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
