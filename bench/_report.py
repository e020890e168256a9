"""bench/engines.py's derived numbers (medians, ratios, roof shares, targets), its merging of runs, and its
reports: JSON, Markdown, PNG.

Targets are evaluated and printed as met / not met / not measured; nothing here asserts a speed.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

OFFICIAL, EAGER = "official", "torch-eager"
TARGET_ENGINE, TARGET_SPEEDUP, TARGET_JOB_SHARE, TARGET_BATCH, TARGET_SIZE = "tensorrt-fp16", 3.0, 0.80, 32, 256
TIMING = ("engines opened and warmed up first, then interleaved rounds, the starting engine rotating; each sample "
          "one call between two synchronisations (perf_counter); median and best of the rounds")


def add_derived(results: dict[str, Any]) -> None:
    """Per row: medians and bests, outputs/s, GFLOP/s (credited with the bundle graph's FLOPs, and with those
    executed), the share of the engine's roof, ratios against the official loop and PyTorch eager at the same
    batch, and the job's images/s against its main graph's alone; then the targets."""
    rows = [r for r in results["results"] if "error" not in r]
    for row in rows:
        job, info = results["jobs"][str(row["batch"])], results["engines"][row["engine"]]
        graph_s, job_s = float(np.median(row["graph_s"])), float(np.median(row["job_s"]))
        executed = job.get("executed_gflop_per_call") if info["options"].get("winograd", "off") != "off" else None
        roof = results["roofs"].get(f"cuda_{info['precision']}" if info["device"].startswith("cuda") else info["roof"])
        row.update(graph_median_s=graph_s, graph_best_s=min(row["graph_s"]), job_median_s=job_s,
                   job_best_s=min(row["job_s"]), outputs_per_s=job["outputs"] / job_s,
                   gflops=job["gflop_per_call"] / graph_s,
                   executed_gflops=(executed or job["gflop_per_call"]) / graph_s,
                   job_share_of_main=job["outputs"] * graph_s / (job["rows"] * job_s))
        if roof:
            row["roof_share"] = row["executed_gflops"] / roof["gflops"]
    for row in rows:
        for key, name in ((OFFICIAL, "x_official"), (EAGER, "x_eager")):
            base = find(results, key, row["batch"])
            if base:
                row[name] = base["job_median_s"] / row["job_median_s"]
    results["targets"] = targets(results)


def find(results: dict[str, Any], engine: str, batch: int) -> dict[str, Any] | None:
    return next((r for r in results["results"] if r["engine"] == engine and r["batch"] == batch and "error" not in r),
                None)


def _missing(results: dict[str, Any], engine: str) -> str:
    size = results["settings"]["size"]
    if size != TARGET_SIZE:
        return f"measured at {size}x{size}, not {TARGET_SIZE}x{TARGET_SIZE}"
    skipped = next((s for s in results["skipped"] if s["engine"] == engine), None)
    failed = next((r for r in results["results"] if r["engine"] == engine and "error" in r), None)
    return (f"{skipped['label']} skipped: {skipped['reason']}" if skipped else
            f"{engine} failed at batch {failed['batch']}: {failed['error']}" if failed else
            f"{engine} not measured at batch {TARGET_BATCH}")


def targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    ok = results["settings"]["size"] == TARGET_SIZE
    fast, eager = (find(results, key, TARGET_BATCH) if ok else None for key in (TARGET_ENGINE, EAGER))
    main = next(iter(results["jobs"].values()), {}).get("main_graph", "its main graph")
    where = f"batch {TARGET_BATCH}, {TARGET_SIZE}x{TARGET_SIZE}"
    missing = "; ".join(dict.fromkeys(_missing(results, k) for k, row in ((TARGET_ENGINE, fast), (EAGER, eager))
                                      if not row))
    return [{"name": name, "threshold": threshold, "value": value,
             "status": "not measured" if value is None else "met" if value >= threshold else "not met",
             "detail": why if value is None else shown.format(value)}
            for name, threshold, value, shown, why in (
                (f"{TARGET_ENGINE} >= {TARGET_SPEEDUP:g}x {EAGER} (job outputs/s, {where})", TARGET_SPEEDUP,
                 fast["x_eager"] if fast and eager else None, "{:.2f}x", missing),
                (f"the job >= {TARGET_JOB_SHARE:.0%} of the images/s of {main} alone ({TARGET_ENGINE}, {where})",
                 TARGET_JOB_SHARE, fast["job_share_of_main"] if fast else None, "{:.0%}",
                 _missing(results, TARGET_ENGINE)))]


def merge(paths: list[Path], order: list[str]) -> dict[str, Any]:
    """Runs of one bundle and settings: engines, rows and skips combined, each roof's highest kept, derived again.
    Errors stay as measured (against the reference of the run that measured them)."""
    runs = [json.loads(path.read_text(encoding="utf-8")) for path in paths]
    merged = {**runs[0], "engines": {}, "results": [], "roofs": {}, "jobs": {}}
    for run in runs:
        merged["engines"].update(run["engines"])
        merged["jobs"].update(run["jobs"])
        merged["results"] += run["results"]
        for key, roof in run["roofs"].items():
            if roof["gflops"] > merged["roofs"].get(key, {"gflops": 0.0})["gflops"]:
                merged["roofs"][key] = roof
    merged["skipped"] = list({s["engine"]: s for run in runs for s in run["skipped"]
                              if s["engine"] not in merged["engines"]}.values())
    merged["results"].sort(key=lambda r: (order.index(r["engine"]) if r["engine"] in order else len(order), r["batch"]))
    add_derived(merged)
    return merged


# ------------------------------------------------------------------------------------------------ output


def fmt(value: Any, digits: int = 1) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:.{digits}f}" if abs(value) < 1000 else f"{value:,.0f}"
    return str(value)


def markdown(r: dict[str, Any]) -> str:
    m, s, engines = r["meta"], r["settings"], r["engines"]
    reference = engines[r["reference"]]["label"] if r.get("reference") in engines else "nothing (no reference ran)"
    lines = [f"## Engines: {m['model']}, {s['size']}x{s['size']}", "",
             f"Machine: {m['machine']['cpu']}, {m['machine']['physical_cores']} physical cores"
             + (f", {m['machine']['gpu']}" if "gpu" in m["machine"] else "") + f"; load average "
             f"{r['load_average']['before']} before, {r['load_average']['after']} after. {s['rounds']} rounds; "
             f"timing: {m['timing']}. int8: {m['int8']}. Errors: the job's outputs against {reference}'s.", ""]
    for batch, j in r["jobs"].items():
        executed = (f", {j['executed_gflop_per_call']:.2f} executed with Winograd"
                    if "executed_gflop_per_call" in j else "")
        lines.append(f"- batch {batch}: the job is {j['images']} image(s), {j['outputs']} outputs ({j['gflop']:.1f} "
                     f"GFLOP); its main graph {j['main_graph']} at {j['rows']} rows per call "
                     f"({j['gflop_per_call']:.2f} GFLOP per call in the bundle's graph{executed})")
    lines += ["", "| engine | batch | main graph s/call | job s | outputs/s | x official loop | x PyTorch eager | max "
              "abs err | PSNR dB | GFLOP/s | executed GFLOP/s | % of its roof | device MiB | open s | device |",
              "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
    for row in r["results"]:
        e = engines[row["engine"]]
        if "error" in row:
            lines.append(f"| {e['label']} | {row['batch']} | failed: {row['error'][:100]} |" + " |" * 12)
            continue
        ref = row["engine"] == r.get("reference")
        psnr = "inf" if "max_abs_err" in row and row.get("psnr_db") is None else fmt(row.get("psnr_db"), 1)
        calls = f" ({row['graph_calls']} calls)" if row["graph_calls"] > 1 else ""
        memory = e.get("memory_bytes")
        lines.append(
            f"| {e['label']} | {row['batch']} | {row['graph_median_s']:.4f} / {row['graph_best_s']:.4f}{calls} | "
            f"{row['job_median_s']:.4f} / {row['job_best_s']:.4f} | {fmt(row['outputs_per_s'], 2)} | "
            f"{fmt(row.get('x_official'), 2)} | {fmt(row.get('x_eager'), 2)} | "
            f"{'reference' if ref else fmt(row.get('max_abs_err'), 4)} | {'reference' if ref else psnr} | "
            f"{row['gflops']:.0f} | {row['executed_gflops']:.0f} | "
            f"{fmt(100 * row['roof_share'] if 'roof_share' in row else None, 0)} | "
            f"{fmt(memory / 2 ** 20 if memory is not None else None, 0)} | {e['open_s']:.1f} | {e['device']} |")
    lines += ["", "Roofs (each engine's own matrix multiply): " + "; ".join(
        f"{k} {v['gflops']:.0f} GFLOP/s ({v['method']})" for k, v in r["roofs"].items()) + ".", ""]
    lines += [f"- {x['label']}: skipped ({x['reason']})" for x in r["skipped"]]
    lines += ["", "Targets:"] + [f"- {t['name']}: **{t['status']}** ({t['detail']})" for t in r["targets"]]
    return "\n".join(lines) + "\n"


def plot(r: dict[str, Any], plt: Any) -> Any:
    """Per engine and batch: the job's outputs/s, and the main graph's executed GFLOP/s against the roofs."""
    keys = list(dict.fromkeys(row["engine"] for row in r["results"]))
    batches = [int(b) for b in r["jobs"]]
    fig, axes = plt.subplots(1, 2, figsize=(13, 0.35 * len(keys) * len(batches) + 2), constrained_layout=True)
    height = 0.8 / max(1, len(batches))
    for axis, field, title in ((axes[0], "outputs_per_s", "translate job: outputs / s (median)"),
                               (axes[1], "executed_gflops", "main graph: executed GFLOP/s (dashed: matmul roofs)")):
        for i, batch in enumerate(batches):
            values = [(find(r, key, batch) or {}).get(field, 0) for key in keys]
            axis.barh(np.arange(len(keys)) + i * height, values, height, label=f"batch {batch}")
        axis.set(xlabel=title, yticks=np.arange(len(keys)) + 0.4 - height / 2)
        axis.set_yticklabels([r["engines"][k]["label"] for k in keys] if axis is axes[0] else [])
        axis.invert_yaxis()
    for i, (key, roof) in enumerate(sorted(r["roofs"].items(), key=lambda item: item[1]["gflops"])):
        axes[1].axvline(roof["gflops"], linestyle="--", linewidth=0.8, color="grey")  # labels staggered: roofs
        axes[1].text(roof["gflops"], len(keys) * (1 - (i % 3) / 3) - 0.5, key, rotation=90, fontsize=7, va="bottom")
    axes[0].legend(fontsize=8)
    model = r["meta"]["model"].split(", config")[0]  # a random-weight model's config is in the JSON
    fig.suptitle(f"{model}, {r['settings']['size']}x{r['settings']['size']}, {r['meta']['machine']['cpu']}",
                 fontsize=9)
    return fig


def write(results: dict[str, Any], prefix: Path) -> None:
    """Print the Markdown report; write PREFIX.json, PREFIX.md and PREFIX.png."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    text = markdown(results)
    print("\n" + text)
    paths = [Path(f"{prefix}.{suffix}") for suffix in ("json", "md", "png")]
    paths[0].parent.mkdir(parents=True, exist_ok=True)
    paths[0].write_text(json.dumps(results, indent=2, default=str) + "\n", encoding="utf-8")
    paths[1].write_text(text, encoding="utf-8")
    fig = plot(results, plt)
    fig.savefig(paths[2], dpi=110)
    plt.close(fig)
    print(f"wrote {', '.join(map(str, paths))}", flush=True)
