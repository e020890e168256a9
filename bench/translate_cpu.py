"""CPU benchmark: the official MUNIT test loop (PyTorch eager) vs `munit-rt translate` (ONNX Runtime).

Same job both ways at the official default config (dim 64, n_res 4, style_dim 8, mlp_dim 256): N images of
SIZE x SIZE, S random styles each, read -> preprocess -> translate -> write PNG.

  1. official: PyTorch eager, batch 1, `content, _ = gen_a.encode(image)` once per image, then
     `gen_b.decode(content, style)` style by style, as NVlabs test.py does (model built before the clock).
  2. munit-rt: `munit_rt.pipeline.translate_paths` in-process, end to end (bundle check, sessions included).

Also: decoder-only throughput through ONNX Runtime in GFLOP/s, the machine's FP32 matmul rate measured in the
same run (numpy, best of several), and their ratio. Two FLOP counts: nominal = the training decoder's
Conv2d/Linear layers (93.6 GFLOP per 256x256 decode at the default config, the figure the target is stated in);
executed = the Conv/Gemm/MatMul nodes ONNX Runtime runs (export/flops.py): the bundle's graph, lower with the
sub-pixel upsampling rewrite (training/families/munit/subpixel.py), after the in-memory Winograd rewrite of the 3x3 convs
(munit_rt/winograd.py, $MUNIT_RT_WINOGRAD, default auto). The decoder is also timed with that rewrite off.
Prints numbers only.

    .venv/bin/python bench/translate_cpu.py [--images 4] [--size 256] [--styles 8] [--json out.json]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=4)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--styles", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=8, help="munit-rt decode batch")
    parser.add_argument("--repeats", type=int, default=3, help="best-of for the decoder and matmul timings")
    parser.add_argument("--matmul-size", type=int, default=2048)
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--work", type=Path, help="keep the checkpoint and bundle here and reuse them next time "
                        "(export of the full-size model takes minutes)")
    return parser.parse_args(argv)


def build_model(work: Path, size: int):
    """Random-weight checkpoint at the official default config, and its bundle via export.export_bundle."""
    import torch

    from munit_rt import export
    from munit_rt.training.checkpoint import read_checkpoint, save_checkpoint
    from munit_rt.training.registry import load_generators
    from munit_rt.training.config import config_from_dict
    from munit_rt.training.families.munit.model import AdaINGen

    config = config_from_dict({"gen": {"dim": 64, "n_res": 4, "style_dim": 8, "mlp_dim": 256, "n_downsample": 2},
                               "new_size": size, "crop_image_height": size, "crop_image_width": size})
    checkpoint, bundle = work / f"gen_dim64_{size}.pt", work / f"dim64_{size}.bundle"
    if (bundle / "manifest.json").is_file():  # --work: reuse the earlier export
        return load_generators(read_checkpoint(checkpoint)), config, bundle
    torch.manual_seed(0)
    gens = {d: AdaINGen(config.input_dim(d), config.gen).eval() for d in ("a", "b")}
    save_checkpoint(checkpoint, "munit", gens, config, iteration=0)
    return gens, config, Path(export.export_bundle(checkpoint, bundle, precision="fp32"))


def write_inputs(folder: Path, count: int, size: int) -> list[Path]:
    from PIL import Image

    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    paths = []
    for i in range(count):  # smooth random images, JPEG like typical photo inputs
        small = rng.integers(0, 256, (size // 16, size // 16, 3), dtype=np.uint8)
        path = folder / f"img_{i:03d}.jpg"
        Image.fromarray(small).resize((size, size), Image.Resampling.BICUBIC).save(path, quality=95)
        paths.append(path)
    return paths


def run_official(gens, paths: list[Path], out: Path, size: int, styles: int, style_dim: int) -> float:
    """NVlabs test.py's loop, batch 1, per style decode; returns wall seconds."""
    import torch
    from PIL import Image

    out.mkdir(parents=True)
    encode, decode = gens["a"].encode, gens["b"].decode
    started = time.perf_counter()
    with torch.no_grad():
        for path in paths:
            image = Image.open(path).convert("RGB")
            w, h = image.size
            scale = size / min(w, h)
            image = image.resize((max(size, int(w * scale)), max(size, int(h * scale))), Image.Resampling.BICUBIC)
            x = torch.from_numpy(np.asarray(image, np.float32) / 255.0).permute(2, 0, 1)[None]
            x = (x - 0.5) / 0.5
            content, _ = encode(x)  # the official script runs the style encoder too and drops its output
            style_rand = torch.randn(styles, style_dim, 1, 1)
            for j in range(styles):
                y = decode(content, style_rand[j].unsqueeze(0))
                pixels = ((y[0] + 1) / 2).clamp(0, 1).mul(255).round().byte().permute(1, 2, 0).numpy()
                Image.fromarray(pixels).save(out / f"{path.stem}_output{j:03d}.png")
    return time.perf_counter() - started


def run_munit_rt(bundle: Path, folder: Path, out: Path, styles: int, batch_size: int):
    from munit_rt.pipeline import TranslateOptions, translate_paths

    options = TranslateOptions(inputs=[folder], output=out, model=bundle, styles=styles, batch_size=batch_size,
                               backend="onnxruntime", progress=False)
    started = time.perf_counter()
    report = translate_paths(options)
    return time.perf_counter() - started, report


def decoder_flops(gen, size: int, multiple: int) -> float:
    """Exact FLOPs (2 x MACs) of one decode at size x size, from the Conv2d/Linear layers actually run."""
    import torch

    total = [0.0]

    def count(module, inputs, output):
        if isinstance(module, torch.nn.Conv2d):
            kh, kw = module.kernel_size
            total[0] += 2.0 * output.numel() * (module.in_channels // module.groups) * kh * kw
        elif isinstance(module, torch.nn.Linear):
            total[0] += 2.0 * output.numel() * module.in_features

    hooks = [m.register_forward_hook(count) for m in gen.dec.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))]
    with torch.no_grad():
        content = torch.zeros(1, gen.enc_content.output_dim, size // multiple, size // multiple)
        gen.dec(content, torch.zeros(1, gen.dec.num_adain_params))
    for hook in hooks:
        hook.remove()
    return total[0]


def executed_decoder_flops(bundle: Path, size: int, winograd_mode: str) -> float:
    """FLOPs of one decode as ONNX Runtime's CPU session runs it: the bundle's graph after the in-memory Winograd
    rewrite of `winograd_mode` and ONNX Runtime's constant folding (which computes the Winograd filter transforms
    once, at session creation), Conv/Gemm/MatMul nodes counted at inferred shapes."""
    import onnx
    import onnxruntime

    from munit_rt.export.flops import graph_flops
    from munit_rt import Bundle, winograd

    b = Bundle(bundle)
    multiple = int(b.preprocess["multiple"])
    shapes = {"content": (1, b.manifest["content_channels"], size // multiple, size // multiple),
              "adain_params": (1, b.manifest["adain"]["total"])}
    graph, _ = winograd.rewrite_bytes(b.graph_bytes("decoder_b", "fp32"), winograd_mode)
    with tempfile.TemporaryDirectory(prefix="munit-rt-flops-") as tmp:
        options = onnxruntime.SessionOptions()
        options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_BASIC  # standard ops only
        options.optimized_model_filepath = str(Path(tmp) / "folded.onnx")
        options.log_severity_level = 3
        onnxruntime.InferenceSession(graph, options, providers=["CPUExecutionProvider"])
        folded = onnx.load(options.optimized_model_filepath)
    return float(graph_flops(folded, shapes).total)


def best_decoder_and_matmul_s(bundle: Path, size: int, batch: int, n: int, repeats: int,
                              winograd_mode: str) -> tuple[float, float, np.ndarray]:
    """Best seconds of one ORT decoder call on `batch` pairs and of one n x n numpy matmul, measured in
    alternation so that both see the same machine load (best-of filters out other processes); and the decoder's
    output (the inputs are the same for every mode)."""
    from munit_rt import Translator

    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((n, n), dtype=np.float32), rng.standard_normal((n, n), dtype=np.float32)
    with Translator(bundle, backend="onnxruntime", winograd=winograd_mode) as t:
        multiple = int(t.bundle.preprocess["multiple"])
        content = rng.standard_normal((batch, t.bundle.manifest["content_channels"], size // multiple,
                                       size // multiple), dtype=np.float32)
        adain = t.style_to_adain(rng.standard_normal((batch, t.style_dim), dtype=np.float32), "b")
        decoded = t.decode(content, adain, "b")  # warm-up: session creation, first-run allocations
        a @ b
        best_decoder = best_matmul = float("inf")
        for _ in range(repeats):
            started = time.perf_counter()
            t.decode(content, adain, "b")
            best_decoder = min(best_decoder, time.perf_counter() - started)
            for _ in range(3):
                started = time.perf_counter()
                a @ b
                best_matmul = min(best_matmul, time.perf_counter() - started)
    return best_decoder, best_matmul, decoded


def main(argv=None) -> dict:
    args = parse_args(argv)
    import torch

    from munit_rt.backends.onnxruntime import physical_cores, winograd_mode

    with tempfile.TemporaryDirectory(prefix="munit-rt-bench-") as tmp:
        work = Path(tmp)
        if args.work:
            args.work.mkdir(parents=True, exist_ok=True)
        gens, config, bundle = build_model(args.work or work, args.size)
        paths = write_inputs(work / "inputs", args.images, args.size)
        official_s = run_official(gens, paths, work / "official", args.size, args.styles, config.gen.style_dim)
        munit_rt_s, report = run_munit_rt(bundle, work / "inputs", work / "munit-rt", args.styles, args.batch_size)
        flops = decoder_flops(gens["b"], args.size, 2 ** config.gen.n_downsample)
        mode = winograd_mode()  # what translate used: $MUNIT_RT_WINOGRAD, default auto
        executed = executed_decoder_flops(bundle, args.size, mode)
        upsample = json.loads((bundle / "manifest.json").read_text())["graphs"]["decoder_b"].get("upsample",
                                                                                                 "nearest")
        decode_batch = min(args.batch_size, args.styles)
        decoder_s, matmul_s, decoded = best_decoder_and_matmul_s(bundle, args.size, decode_batch, args.matmul_size,
                                                                 args.repeats, mode)
        direct_s, _, direct = best_decoder_and_matmul_s(bundle, args.size, decode_batch, args.matmul_size,
                                                        args.repeats, "off")
    decoder_gflops = flops * decode_batch / decoder_s / 1e9
    executed_gflops = executed * decode_batch / decoder_s / 1e9
    matmul = 2.0 * args.matmul_size**3 / matmul_s / 1e9
    outputs = args.images * args.styles
    results = {
        "machine": {"cpu": platform.processor() or platform.machine(), "physical_cores": physical_cores(),
                    "logical_cpus": os.cpu_count(), "torch_threads": torch.get_num_threads()},
        "job": {"images": args.images, "size": args.size, "styles": args.styles, "outputs": outputs,
                "batch_size": args.batch_size, "config": "dim 64, n_res 4, style_dim 8, mlp_dim 256"},
        "official_pytorch_eager": {"wall_s": official_s, "outputs_per_s": outputs / official_s},
        "munit_rt_onnxruntime": {"wall_s": munit_rt_s, "outputs_per_s": outputs / munit_rt_s,
                                 "stage_s": report.stage_s, "failures": len(report.failures), "winograd": mode},
        "speedup": official_s / munit_rt_s,
        "decoder": {"gflop_per_decode": flops / 1e9, "batch": decode_batch, "best_s": decoder_s,
                    "gflops": decoder_gflops, "upsample": upsample, "winograd": mode,
                    "best_s_winograd_off": direct_s,
                    "max_abs_diff_vs_winograd_off": float(np.abs(decoded - direct).max()),
                    "executed_gflop_per_decode": executed / 1e9, "executed_gflops": executed_gflops},
        "matmul_fp32": {"n": args.matmul_size, "gflops": matmul},
        "decoder_vs_matmul": decoder_gflops / matmul,
        "executed_vs_matmul": executed_gflops / matmul,
    }
    print_table(results)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return results


def print_table(r: dict) -> None:
    job = r["job"]
    print(f"\n{job['images']} images x {job['styles']} styles at {job['size']}x{job['size']} ({job['config']}), "
          f"{r['machine']['physical_cores']} physical cores\n")
    print("| run | wall s | outputs/s |")
    print("|---|---:|---:|")
    for name, key in (("official loop, PyTorch eager, batch 1", "official_pytorch_eager"),
                      ("munit-rt translate, ONNX Runtime CPU", "munit_rt_onnxruntime")):
        print(f"| {name} | {r[key]['wall_s']:.2f} | {r[key]['outputs_per_s']:.3f} |")
    stages = r["munit_rt_onnxruntime"]["stage_s"]
    print(f"\nspeed-up {r['speedup']:.2f}x; munit-rt stage busy seconds: "
          + ", ".join(f"{k} {v:.2f}" for k, v in stages.items()))
    d = r["decoder"]
    print("\n| measure | value |")
    print("|---|---:|")
    size = f"{job['size']}x{job['size']}"
    print(f"| decoder GFLOP per {size} decode, nominal (training module) | {d['gflop_per_decode']:.1f} |")
    print(f"| decoder GFLOP per {size} decode, executed ({d['upsample']} graph, Winograd {d['winograd']}) | "
          f"{d['executed_gflop_per_decode']:.1f} |")
    print(f"| decoder (ORT, batch {d['batch']}) s per call | {d['best_s']:.3f} |")
    print(f"| decoder (ORT, batch {d['batch']}, Winograd off) s per call | {d['best_s_winograd_off']:.3f} |")
    print(f"| decoder output, max abs difference Winograd {d['winograd']} vs off | "
          f"{d['max_abs_diff_vs_winograd_off']:.1e} |")
    print(f"| decoder GFLOP/s, nominal / executed | {d['gflops']:.1f} / {d['executed_gflops']:.1f} |")
    print(f"| FP32 matmul ({r['matmul_fp32']['n']}^2, numpy) GFLOP/s | {r['matmul_fp32']['gflops']:.1f} |")
    print(f"| decoder / matmul, nominal / executed | {r['decoder_vs_matmul']:.2f} / "
          f"{r['executed_vs_matmul']:.2f} |")


if __name__ == "__main__":
    main()
