"""CPU engines side by side, one run: the family's job and its most expensive graph on every engine, interleaved.

    .venv/bin/python bench/engines_cpu.py [--bundle B | --family F [--config C]] [--size 256] [--batch 8]
        [--styles 8] [--rounds 5] [--calibrate DIR] [--contenders KEY,...] [--out PREFIX] [--quick]

Contenders (CONTENDERS), the job, the rounds and what is reported per contender: bench/README.md. int8 needs
int8 graphs: a bundle without them is copied into the work folder and quantized there. Writes PREFIX.json,
PREFIX.md and PREFIX.png (default bench/results/engines_cpu; --quick: into the work folder). Prints numbers
only, asserts none.
"""
from __future__ import annotations

import argparse
import gc
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

import _report
from _report import fmt
from _timing import best_s, engine_roofs, keep_higher, load_average, machine
from _workload import (Engine, add_model_options, chosen, compare, each_engine, executed_flops, flops_per_row,
                       job_inputs, job_plan, main_graph, model_bundle, open_translator, synthetic_feeds, why_not,
                       with_int8)

CPU = ["CPUExecutionProvider"]
REFERENCE, OFFICIAL = "torch-eager", "official"
CONTENDERS = (
    Engine(OFFICIAL, "official loop: PyTorch eager FP32, batch 1", "torch", "fp32", {"device": "cpu"}, batch_one=True),
    Engine(REFERENCE, "PyTorch eager FP32", "torch", "fp32", {"device": "cpu"}),
    Engine("torch-compile", "torch.compile FP32 (inductor, CPU)", "torch", "fp32",
           {"device": "cpu", "compile": "default"}),
    Engine("ort-fp32", "munit-rt ONNX Runtime FP32 (Winograd auto)", "onnxruntime", "fp32",
           {"providers": CPU, "winograd": "auto"}),
    Engine("ort-fp32-direct", "munit-rt ONNX Runtime FP32 (Winograd off)", "onnxruntime", "fp32",
           {"providers": CPU, "winograd": "off"}),
    Engine("openvino-fp32", "OpenVINO FP32", "openvino", "fp32", roof="openvino_fp32"),
    Engine("openvino-bf16", "OpenVINO BF16", "openvino", "bf16", roof="openvino_bf16"),
    Engine("openvino-int8", "OpenVINO INT8 (the rest bf16 where native)", "openvino", "int8", roof="openvino_int8"),
    Engine("ort-int8", "ONNX Runtime INT8 (QDQ)", "onnxruntime", "int8", {"providers": CPU}, roof="ort_int8"),
)
KEYS = tuple(c.key for c in CONTENDERS)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog=__doc__.split("\n\n", 1)[1],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    add_model_options(p)
    p.add_argument("--size", type=int, help="image side (default 256; --quick 32), brought to the bundle's multiple")
    p.add_argument("--batch", type=int, default=8, help="--batch-size of the job and rows of the main graph")
    p.add_argument("--styles", type=int, default=8, help="--styles of the job (families with styles)")
    p.add_argument("--rounds", type=int, help="interleaved rounds (default 5; --quick 2)")
    p.add_argument("--calibrate", type=Path, help="images to quantize a bundle without int8 graphs on")
    p.add_argument("--contenders", help=f"comma-separated (default all: {', '.join(KEYS)})")
    p.add_argument("--roof-n", type=int, help="matmul roof size n^3 (default 2048; --quick 512)")
    p.add_argument("--out", type=Path, help="output prefix (default bench/results/engines_cpu)")
    p.add_argument("--quick", action="store_true", help="smoke run: the family's tiny config, 32x32, 2 rounds")
    p.add_argument("--seed", type=int, default=0)
    return p.parse_args(argv)


# ------------------------------------------------------------------------------------------------ set-up


class Opened:
    """One contender, open: its Translator, its plan, its main-graph call and job call."""

    def __init__(self, contender: Engine, bundle: Any, plans: dict[int, Any], main: str, feeds: dict,
                 inputs: tuple):
        print(f"opening {contender.label} ...", flush=True)
        self.contender = contender
        started = time.perf_counter()
        self.translator = open_translator(contender, bundle, contender.options)
        self.backend = self.translator.backend
        self.plan = plans[1 if contender.batch_one else 0]
        self.plan.prepare(self.translator)
        rows = len(next(iter(feeds.values())))
        self.feeds = [{k: v[i:i + 1] for k, v in feeds.items()} for i in range(rows)] if contender.batch_one \
            else [feeds]
        self.main, self.inputs = main, inputs
        self.output = self.job()  # warm-up: sessions, compiled shapes, torch.compile; compared with the reference
        self.graph()
        self.open_s = time.perf_counter() - started
        self.graph_s: list[float] = []
        self.job_s: list[float] = []

    def graph(self) -> None:
        for feeds in self.feeds:
            self.backend.run(self.main, feeds, to_host=False)
        self.backend.synchronize()

    def job(self) -> np.ndarray:
        return self.plan.run(self.translator, *self.inputs)

    def time_round(self) -> None:
        self.graph_s.append(best_s(self.graph, 1))  # one call's seconds
        self.job_s.append(best_s(self.job, 1))

    def close(self) -> None:
        self.translator.close()


# ------------------------------------------------------------------------------------------------ measuring


def measure(bundle: Any, args: argparse.Namespace, keys: list[str], size: int, rounds: int, roof_n: int) -> dict:
    from munit_rt.backends.onnxruntime import physical_cores

    threads = physical_cores()
    per_row = flops_per_row(bundle, size)
    plans = {0: job_plan(bundle, args.batch, args.styles)[0], 1: job_plan(bundle, 1, args.styles)[0]}
    inputs = job_inputs(plans[0], args.batch, size, 1, args.seed)[0]
    calls, total_flops, main, rows = main_graph(bundle, plans[0], inputs, per_row)
    feeds = synthetic_feeds(bundle.graphs[main], rows, size, bundle.manifest.spatial_multiple,
                            np.random.default_rng(args.seed))
    graph_flops = rows * per_row[main].total
    winograd_flops = executed_flops(bundle, main, feeds, "auto")

    load_before = load_average()
    roofs = engine_roofs(roof_n, 3 if args.quick else 8, threads)
    opened, skipped = each_engine([c for c in CONTENDERS if c.key in keys], why_not,
                                  lambda c: Opened(c, bundle, plans, main, feeds, inputs), "contender", 300)
    order = list(opened)
    for k in range(rounds):  # interleaved: every contender once per round, the starting one rotating
        for key in order[k % len(order):] + order[:k % len(order)]:
            opened[key].time_round()
            gc.collect()
        print(f"round {k + 1}/{rounds}: " + ", ".join(f"{key} {opened[key].job_s[-1]:.3f} s" for key in order),
              flush=True)
    roofs = keep_higher(roofs, engine_roofs(roof_n, 3 if args.quick else 8, threads))
    # errors against PyTorch eager FP32; without the source checkpoint (a bundle shipped alone), against ONNX
    # Runtime FP32 as exported, and the report says so
    reference_key = next((k for k in (REFERENCE, "ort-fp32-direct", "ort-fp32", "openvino-fp32") if k in opened),
                         None)
    reference = opened[reference_key].output if reference_key else None
    results = {}
    for key, o in opened.items():
        c = o.contender
        executed = winograd_flops if c.backend == "onnxruntime" and c.precision == "fp32" and \
            o.backend.winograd != "off" else graph_flops
        graph_median = float(np.median(o.graph_s))
        entry = {"label": c.label, "backend": c.backend, "precision": c.precision, "device": o.backend.device,
                 "options": {k: str(v) for k, v in c.options.items()}, "open_s": o.open_s,
                 "graph_calls": len(o.feeds), "graph_s": o.graph_s, "job_s": o.job_s,
                 "graph_median_s": graph_median, "graph_best_s": min(o.graph_s),
                 "job_median_s": float(np.median(o.job_s)), "job_best_s": min(o.job_s),
                 "gflops": graph_flops / graph_median / 1e9, "executed_gflops": executed / graph_median / 1e9,
                 "roof": c.roof}
        if c.roof in roofs:
            entry["roof_share"] = entry["executed_gflops"] / roofs[c.roof]["gflops"]
        if hasattr(o.backend, "executed"):
            entry["executed"] = o.backend.executed()
        if reference is not None and key != reference_key:
            entry.update({k: v for k, v in compare(o.output, reference).items() if k != "rel_err"})
        results[key] = entry
        o.close()
    if OFFICIAL in results:
        for entry in results.values():
            entry["x_official"] = results[OFFICIAL]["job_median_s"] / entry["job_median_s"]
    return {"results": results, "skipped": skipped, "roofs": roofs, "reference": reference_key,
            "main_graph": {"name": main, "rows": rows, "gflop_per_call": graph_flops / 1e9,
                           "winograd_executed_gflop_per_call": winograd_flops / 1e9},
            "job": {"images": len(inputs[0]), "outputs": int(np.prod(opened[order[0]].output.shape[:2])),
                    "gflop": total_flops / 1e9, "calls": [list(c) for c in calls]},
            "load_average": {"before": load_before, "after": load_average()}}


# ------------------------------------------------------------------------------------------------ reports


def markdown(r: dict) -> str:
    m, g, j = r["meta"], r["main_graph"], r["job"]
    lines = [f"## CPU engines: {m['model']}, {r['settings']['size']}x{r['settings']['size']}", "",
             f"Machine: {m['machine']['cpu']}, {m['machine']['physical_cores']} physical cores; load average "
             f"{r['load_average']['before']} before, {r['load_average']['after']} after. {r['settings']['rounds']} "
             f"interleaved rounds (median / best). Job: {j['images']} image(s) x "
             f"{j['outputs'] // max(1, j['images'])} outputs ({j['gflop']:.1f} GFLOP); main graph {g['name']} at batch "
             f"{g['rows']} ({g['gflop_per_call']:.1f} GFLOP per call in the bundle's graph, "
             f"{g['winograd_executed_gflop_per_call']:.1f} executed with "
             f"Winograd). int8: {m['int8']}. Errors: the job's outputs against "
             f"{r['results'][r['reference']]['label'] if r['reference'] else 'nothing (no reference ran)'}'s.", "",
             f"| engine | {g['name']} s/call | job s | x official loop | max abs err | PSNR dB | GFLOP/s | executed "
             "GFLOP/s | % of its roof | executed |", "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
    for key, e in r["results"].items():
        psnr = "reference" if key == r["reference"] else ("inf" if e.get("psnr_db") is None and "max_abs_err" in e
                                                          else fmt(e.get("psnr_db"), 1))
        err = "reference" if key == r["reference"] else fmt(e.get("max_abs_err"), 4)
        calls = f" ({e['graph_calls']} calls)" if e["graph_calls"] > 1 else ""
        lines.append(f"| {e['label']} | {e['graph_median_s']:.3f} / {e['graph_best_s']:.3f}{calls} | "
                     f"{e['job_median_s']:.3f} / {e['job_best_s']:.3f} | {fmt(e.get('x_official'), 2)} | {err} | "
                     f"{psnr} | {e['gflops']:.0f} | {e['executed_gflops']:.0f} | "
                     f"{fmt(100 * e['roof_share'] if 'roof_share' in e else None, 0)} ({e['roof']}) | {e['device']} |")
    lines += ["", "Roofs (each engine's own matrix multiply): " + "; ".join(
        f"{k} {v['gflops']:.0f} GFLOP/s ({v['method']})" for k, v in r["roofs"].items()) + "."]
    lines += [f"- {s['label']}: skipped ({s['reason']})" for s in r["skipped"]]
    return "\n".join(lines) + "\n"


def plot(r: dict, plt: Any) -> Any:
    entries = list(r["results"].values())
    labels = [e["label"] for e in entries]
    fig, (left, right) = plt.subplots(1, 2, figsize=(13, 0.45 * len(entries) + 2), constrained_layout=True)
    left.barh(labels, [e.get("x_official", 0) for e in entries], color="tab:blue")
    left.set(xlabel="job speed, x the official loop (median)", title="translate job")
    left.invert_yaxis()
    right.barh(labels, [e["executed_gflops"] for e in entries], color="tab:green")
    for key, roof in r["roofs"].items():
        right.axvline(roof["gflops"], linestyle="--", linewidth=0.8, color="grey")
        right.text(roof["gflops"], len(entries) - 0.5, key, rotation=90, fontsize=7, va="bottom")
    right.set(xlabel=f"executed GFLOP/s, {r['main_graph']['name']} (dashed: matmul roofs)", title="main graph")
    right.invert_yaxis()
    right.set_yticklabels([])
    model = r["meta"]["model"].split(", config")[0]  # a random-weight model's config is in the JSON
    fig.suptitle(f"{model}, {r['settings']['size']}x{r['settings']['size']}, {r['meta']['machine']['cpu']}",
                 fontsize=9)
    return fig


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    keys = chosen(args.contenders, KEYS, "--contenders")
    rounds, roof_n = args.rounds or (2 if args.quick else 5), args.roof_n or (512 if args.quick else 2048)
    with tempfile.TemporaryDirectory(prefix="munit-rt-engines-") as tmp:
        work = args.work_dir or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        path, what, _ = model_bundle(args, work, tiny=args.quick)
        from munit_rt import Bundle

        multiple = Bundle(path).manifest.spatial_multiple
        size = args.size or (32 if args.quick else 256)
        size = max(multiple, round(size / multiple) * multiple)
        int8 = "not measured"
        if any(c.precision == "int8" for c in CONTENDERS if c.key in keys):
            path, int8 = with_int8(path, work, args.calibrate, size)
        bundle = Bundle(path)
        results = measure(bundle, args, keys, size, rounds, roof_n)
        results["settings"] = {"size": size, "batch": args.batch, "styles": args.styles, "rounds": rounds,
                               "roof_n": roof_n, "contenders": keys}
        results["meta"] = {"family": bundle.family, "model": what, "bundle": str(path), "int8": int8,
                           "machine": machine(), "quality_recorded": {
                               p: vars(q) for p, q in bundle.manifest.quality.items()}}
        out = args.out or (work / "engines_cpu_quick" if args.quick else Path("bench/results/engines_cpu"))
        named = [Path(f"{out}.{suffix}") for suffix in ("json", "md", "png")]
        _report.write(results, *named, markdown, plot)
        print(f"wrote {', '.join(map(str, named))}", flush=True)
    return results


if __name__ == "__main__":
    main()
