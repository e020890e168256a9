"""bench/throughput.py's derived numbers (ratios, roof shares, targets) and outputs (JSON, Markdown, PNG); the
writing of every report (engines_cpu.py's too).

Targets are evaluated and printed as met / not met / not measured; nothing here asserts a speed. The job's
"main graph" is the graph its recorded calls spent most FLOPs in; the job is compared with that graph alone.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

BASELINE = "torch-eager-fp32"
TARGET_CONFIG, TARGET_SPEEDUP, TARGET_JOB_SHARE, TARGET_BATCH, TARGET_SIZE = "tensorrt-fp16", 3.0, 0.80, 32, 256
TIMING = ("each sample one call between two synchronisations (perf_counter); warm-up calls first; input sets "
          "rotated; median of the samples, up to --repeats or until --budget-s seconds")


def main_graph(results: dict[str, Any]) -> str | None:
    return next((r["job"]["main_graph"] for r in results["results"] if "job" in r), None)


def add_derived(results: dict[str, Any]) -> None:
    """Ratios against PyTorch eager FP32 at the same batch, shares of the matmul roof, job / main graph."""
    rows = [r for r in results["results"] if "error" not in r]
    baseline = {r["batch"]: r for r in rows if r["config"] == BASELINE}
    main = main_graph(results)
    for row in rows:
        row["precision"] = results["configs"][row["config"]]["precision"]
        roof = results["roofs"].get("cpu_fp32" if row["device"].startswith("cpu") else "cuda_" + row["precision"])
        base = baseline.get(row["batch"])
        for name, entry in [("job", row["job"]), *row["graphs"].items()]:
            if roof:
                entry["roof_share"] = entry["gflops"] / roof["gflops"]
            reference = base and (base["job"] if name == "job" else base["graphs"].get(name))
            if reference:
                entry["x_eager_fp32"] = entry["images_per_s"] / reference["images_per_s"]
        if main in row["graphs"]:
            row["job_share_of_main"] = row["job"]["images_per_s"] / row["graphs"][main]["images_per_s"]
    results["targets"] = targets(results)


def _find(results: dict[str, Any], config: str) -> dict[str, Any] | None:
    return next((r for r in results["results"] if r["config"] == config and r["batch"] == TARGET_BATCH
                 and "error" not in r), None)


def _missing(results: dict[str, Any], config: str) -> str:
    if results["settings"]["size"] != TARGET_SIZE:
        size = results["settings"]["size"]
        return f"measured at {size}x{size}, not {TARGET_SIZE}x{TARGET_SIZE}"
    for skipped in results["skipped"]:
        if skipped["config"] == config:
            return f"{skipped['label']} skipped: {skipped['reason']}"
    failed = next((r for r in results["results"] if r["config"] == config and "error" in r), None)
    return (f"{config} failed at batch {failed['batch']}: {failed['error']}" if failed else
            f"{config} not measured at batch {TARGET_BATCH}")


def _target(name: str, threshold: float, value: float | None, shown: str, missing: str) -> dict[str, Any]:
    status = "not measured" if value is None else "met" if value >= threshold else "not met"
    return {"name": name, "threshold": threshold, "value": value, "status": status,
            "detail": missing if value is None else shown.format(value)}


def targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    size_ok = results["settings"]["size"] == TARGET_SIZE
    fast, eager = _find(results, TARGET_CONFIG), _find(results, BASELINE)
    where = f"batch {TARGET_BATCH}, {TARGET_SIZE}x{TARGET_SIZE}"
    main = main_graph(results) or "its main graph"
    missing = [_missing(results, c) for c, row in ((TARGET_CONFIG, fast), (BASELINE, eager)) if not size_ok or not row]
    speedup = None if missing else fast["job"]["images_per_s"] / eager["job"]["images_per_s"]
    share = fast.get("job_share_of_main") if size_ok and fast else None
    return [_target(f"{TARGET_CONFIG} >= {TARGET_SPEEDUP:g}x {BASELINE} (translate job images/s, {where})",
                    TARGET_SPEEDUP, speedup, "{:.2f}x", "; ".join(dict.fromkeys(missing))),
            _target(f"translate job >= {TARGET_JOB_SHARE:.0%} of the images/s of {main} alone ({TARGET_CONFIG}, "
                    f"{where})", TARGET_JOB_SHARE, share, "{:.0%}",
                    _missing(results, TARGET_CONFIG) if not (size_ok and fast) else f"{main} was not timed")]


def merge(paths: list[Path], order: list[str]) -> dict[str, Any]:
    """Runs of one bundle and settings: configurations, rows and skips combined, each roof's highest kept. Errors
    stay as measured (against the reference of the run that measured them)."""
    runs = [json.loads(path.read_text(encoding="utf-8")) for path in paths]
    merged = {**runs[0], "configs": {}, "results": [], "roofs": {}}
    for run in runs:
        merged["configs"].update(run["configs"])
        merged["results"] += run["results"]
        for key, roof in run["roofs"].items():
            if roof["gflops"] > merged["roofs"].get(key, {"gflops": 0.0})["gflops"]:
                merged["roofs"][key] = roof
    merged["skipped"] = list({s["config"]: s for run in runs for s in run["skipped"]
                              if s["config"] not in merged["configs"]}.values())
    merged["results"].sort(key=lambda r: (order.index(r["config"]) if r["config"] in order else len(order), r["batch"]))
    add_derived(merged)
    return merged


# ------------------------------------------------------------------------------------------------ output


def fmt(value: Any, digits: int = 1) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:.{digits}f}" if abs(value) < 1000 else f"{value:,.0f}"
    return str(value)


def _error_cells(job: dict[str, Any]) -> str:
    if job.get("reference"):
        return "reference | reference"
    if "rel_err" not in job:
        return "n/a | n/a"
    psnr = "inf" if job["psnr_db"] is None else f"{job['psnr_db']:.1f}"
    return f"{job['rel_err']:.1e} | {psnr}"


def progress(row: dict[str, Any]) -> None:
    if "error" in row:
        print(f"{row['config']} batch {row['batch']}: failed: {row['error']}", flush=True)
        return
    graphs = ", ".join(f"{g} {e['images_per_s']:.2f}" for g, e in row["graphs"].items())
    print(f"{row['config']} batch {row['batch']}: job {row['job']['images_per_s']:.2f} img/s; alone: {graphs}",
          flush=True)


def markdown(results: dict[str, Any]) -> str:
    s, meta, configs = results["settings"], results["meta"], results["configs"]
    main = main_graph(results) or "main graph"
    m = meta["machine"]
    columns = ["config", "batch", "job img/s", "job p50 / p95 ms", "job x eager", f"{main} img/s", f"job / {main}",
               f"{main} GFLOP/s", "% of roof", "peak MiB", "build s", "job rel err", "job PSNR dB"]
    lines = [f"## munit-rt throughput: {meta['model']}, {s['size']}x{s['size']}", "",
             f"Machine: {m['cpu']}, {m['physical_cores']} physical cores" + (f", {m['gpu']}" if "gpu" in m else "")
             + f"; load average {results['load_average']['before']} before, {results['load_average']['after']} "
             f"after. Timing: {meta['timing']}.", "",
             "| " + " | ".join(columns) + " |", "|---|" + "---:|" * (len(columns) - 1)]
    for row in results["results"]:
        if "error" in row:
            filler = " |" * (len(columns) - 3)
            lines.append(f"| {row['config']} | {row['batch']} | failed: {row['error'][:100]} |{filler}")
            continue
        job, alone, peak = row["job"], row["graphs"].get(main, {}), row["memory"]["peak_bytes"]
        lines.append(
            f"| {row['config']} | {row['batch']} | {fmt(job['images_per_s'], 2)} | {fmt(job['p50_ms'])} / "
            f"{fmt(job['p95_ms'])} | {fmt(job.get('x_eager_fp32'), 2)} | {fmt(alone.get('images_per_s'), 2)} | "
            f"{fmt(row.get('job_share_of_main'), 2)} | {fmt(alone.get('gflops'))} | "
            f"{fmt(100 * alone['roof_share'] if 'roof_share' in alone else None, 0)} | "
            f"{fmt(peak / 2 ** 20 if peak is not None else None, 0)} | {fmt(configs[row['config']]['build_s'])} | "
            f"{_error_cells(job)} |")
    lines += ["", "Each graph alone (batch rows/s on inputs already on the device, outputs left there):", "",
              "| graph | config | batch | img/s | p50 / p95 ms | GFLOP/s | % of roof | x eager |",
              "|---|---|---:|---:|---:|---:|---:|---:|"]
    for row in (r for r in results["results"] if "error" not in r):
        for name, e in row["graphs"].items():
            lines.append(f"| {name} | {row['config']} | {row['batch']} | {fmt(e['images_per_s'], 2)} | "
                         f"{fmt(e['p50_ms'])} / {fmt(e['p95_ms'])} | {fmt(e['gflops'])} | "
                         f"{fmt(100 * e['roof_share'] if 'roof_share' in e else None, 0)} | "
                         f"{fmt(e.get('x_eager_fp32'), 2)} |")
    job = next((r["job"] for r in results["results"] if "job" in r), None)
    if job:
        calls = ", ".join(f"{g} {c['calls']} calls / {c['rows']} rows" for g, c in job["graph_calls"].items())
        lines += ["", f"The job at batch B: ceil(B / {job['outputs_per_input']}) images x {job['outputs_per_input']} "
                  f"outputs each, host arrays in and out (at the first batch: {calls})."
                  + (" " + " ".join(job["notes"]) if job["notes"] else "")]
    gflop = "; ".join(f"{g} {e['gflop_per_row']:.3f}" for g, e in results["graphs"].items())
    lines += [f"GFLOP per batch row (the bundle's graphs; every configuration is credited with these): {gflop}.",
              "Roofs: " + "; ".join(f"{k} {r['gflops']:.0f} GFLOP/s ({r['method']})" for k, r in
                                    results["roofs"].items()) + ". Errors: the job output against "
              f"{BASELINE}'s at the same batch (relative L2; PSNR over the [-1, 1] range)."]
    lines += [""] + [f"- {c['label']}: skipped ({c['reason']})" for c in results["skipped"]]
    lines += ["", "Targets:"] + [f"- {t['name']}: **{t['status']}** ({t['detail']})" for t in results["targets"]]
    return "\n".join(lines) + "\n"


def plot(results: dict[str, Any], plt: Any) -> Any:
    """Images/s against batch, one line per configuration: the job, and its main graph alone (the figure)."""
    main = main_graph(results)
    panels = [("job", "translate job")] + ([(main, f"{main} alone")] if main else [])
    fig, axes = plt.subplots(1, len(panels), figsize=(5.5 * len(panels), 4.5), constrained_layout=True, squeeze=False)
    for axis, (name, title) in zip(axes[0], panels):
        for key, info in results["configs"].items():
            rows = [r for r in results["results"] if r["config"] == key and "error" not in r]
            points = [(r["batch"], (r["job"] if name == "job" else r["graphs"].get(name, {})).get("images_per_s"))
                      for r in rows]
            points = [(b, v) for b, v in points if v]
            if points:
                axis.plot(*zip(*points), marker="o", label=info["label"])
        axis.set_xscale("log", base=2)
        axis.set_yscale("log")
        axis.set(xlabel="batch", ylabel="images / s", title=title)
        axis.grid(True, which="both", alpha=0.3)
    axes[0][0].legend(fontsize=8)
    fig.suptitle(f"{results['meta']['model']}, {results['settings']['size']}x{results['settings']['size']}", fontsize=9)
    return fig


def write(results: dict[str, Any], json_path: Path | None, markdown_path: Path | None, plot_path: Path | None,
          to_markdown: Callable[[dict], str] = markdown, to_plot: Callable[[dict, Any], Any] = plot) -> None:
    """Print the Markdown report; write the JSON, the report and the plot (a PNG of the figure `to_plot` draws
    with pyplot) where given; throughput.py's report and plot by default."""
    text = to_markdown(results)
    print("\n" + text)
    for path, content in ((json_path, json.dumps(results, indent=2, default=str) + "\n"), (markdown_path, text)):
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(content, encoding="utf-8")
    if plot_path is not None:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig = to_plot(results, plt)
        plot_path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(plot_path, dpi=110)
        plt.close(fig)
