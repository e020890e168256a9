"""One 3x3 conv, direct vs Winograd F(4x4, 3x3) (munit_rt/winograd.py), through ONNX Runtime on the CPU.

Convs of the sizes a default-config translation model runs at 256x256 (256-channel residual convs at 64x64, the
sub-pixel phase convs of a 2x upsampling stage) and smaller channel counts, where the rewrite stops paying.
Prints a markdown table: best-of milliseconds per call, the speed-up, the largest error relative to the
output's largest value, and whether `auto` rewrites the conv (harmonic mean of the channel counts >=
munit_rt.winograd.AUTO_MIN_HARMONIC_MEAN). Numbers only; nothing is asserted.

    .venv/bin/python bench/winograd_convs.py [--batch 8] [--repeats 5] [--json out.json]
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from _timing import best_s, ort_session

# (in channels, out channels, output height = width): the default config's largest convs first
SHAPES = ((256, 256, 64), (256, 512, 64), (128, 256, 128), (128, 128, 64), (64, 64, 64), (64, 64, 128),
          (32, 32, 16))


def conv_graph(weight: np.ndarray, bias: np.ndarray) -> bytes:
    """A pre-padded input (as a reflect Pad -> Conv leaves it) through one 3x3 Conv."""
    from onnx import TensorProto, helper, numpy_helper

    graph = helper.make_graph(
        [helper.make_node("Conv", ["x", "w", "b"], ["y"], name="conv")], "conv",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", weight.shape[1], "H", "W"])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        [numpy_helper.from_array(weight, "w"), numpy_helper.from_array(bias, "b")])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString()


def best_ms(model: bytes, x: np.ndarray, threads: int, repeats: int) -> tuple[float, np.ndarray]:
    session = ort_session(model, threads)
    y = session.run(None, {"x": x})[0]  # warm-up: first-run allocations
    return best_s(lambda: session.run(None, {"x": x}), repeats) * 1e3, y


def main(argv=None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)

    from munit_rt import winograd
    from munit_rt.backends.onnxruntime import physical_cores

    threads, rows = physical_cores(), []
    print(f"batch {args.batch}, {threads} threads, best of {args.repeats}\n")
    print("| in -> out channels | output | direct ms | Winograd ms | speed-up | max error / max |y| | auto |")
    print("|---|---|---:|---:|---:|---:|---|")
    for c_in, c_out, size in SHAPES:
        rng = np.random.default_rng(0)
        weight = (rng.standard_normal((c_out, c_in, 3, 3)) / np.sqrt(9 * c_in)).astype(np.float32)
        bias = rng.standard_normal(c_out).astype(np.float32)
        x = rng.standard_normal((args.batch, c_in, size + 2, size + 2)).astype(np.float32)
        model = conv_graph(weight, bias)
        rewritten, _ = winograd.rewrite_bytes(model, "on")
        direct_ms, direct_y = best_ms(model, x, threads, args.repeats)
        winograd_ms, winograd_y = best_ms(rewritten, x, threads, args.repeats)
        error = float(np.abs(winograd_y - direct_y).max() / np.abs(direct_y).max())
        auto = winograd.rewrite_bytes(model, "auto")[1] == 1
        rows.append({"in": c_in, "out": c_out, "size": size, "batch": args.batch, "direct_ms": direct_ms,
                     "winograd_ms": winograd_ms, "speedup": direct_ms / winograd_ms, "relative_error": error,
                     "auto_rewrites": auto})
        print(f"| {c_in} -> {c_out} | {size}x{size} | {direct_ms:.1f} | {winograd_ms:.1f} | "
              f"{direct_ms / winograd_ms:.2f}x | {error:.1e} | {'yes' if auto else 'no'} |")
    if args.json:
        args.json.write_text(json.dumps({"threads": threads, "rows": rows}, indent=2))
    return rows


if __name__ == "__main__":
    main()
