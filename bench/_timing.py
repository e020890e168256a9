"""Timing: one call's seconds, matrix-multiply roofs measured in the same run, free device memory, the machine.

Every sample is one call between two synchronisations, on perf_counter. Roofs are each engine's own matrix
multiply (bench/README.md): ONNX Runtime's and OpenVINO's on the CPU, torch.cuda's on a GPU (TF32 off; FP16).
"""
from __future__ import annotations

import importlib
import importlib.util
import os
import platform
import sys
import time
from functools import partial
from typing import Any, Callable

import numpy as np


def best_s(call: Callable[[], Any], repeats: int, sync: Callable[[], None] = lambda: None) -> float:
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        call()
        sync()
        best = min(best, time.perf_counter() - started)
    return best


# ------------------------------------------------------------------------------------------------- roofs

ENGINE_ROOFS = ("ort_fp32", "ort_int8", "openvino_fp32", "openvino_bf16", "openvino_int8", "numpy_fp32")


def ort_session(model: bytes, threads: int) -> Any:
    """A quiet ONNX Runtime CPU session with `threads` threads."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads, options.log_severity_level = threads, 1, 3
    return onnxruntime.InferenceSession(model, options, providers=["CPUExecutionProvider"])


def numpy_label() -> str:
    try:
        blas = np.show_config(mode="dicts")["Build Dependencies"]["blas"]["name"]
    except Exception:  # noqa: BLE001 - numpy before 1.26: no machine-readable config
        blas = "its BLAS"
    return f"numpy ({'OpenBLAS' if 'openblas' in str(blas).lower() else blas})"


def matmul_graph(n: int, int8: bool = False) -> bytes:
    """Y = A @ W with A [n, n] an input and W [n, n] a weight, as in a layer; int8:
    the QDQ form a quantizer writes (A through QuantizeLinear/DequantizeLinear uint8, W int8 per column +
    DequantizeLinear)."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    w = (rng.standard_normal((n, n), dtype=np.float32) / np.sqrt(n)).astype(np.float32)
    if not int8:
        nodes, weights = [helper.make_node("MatMul", ["A", "W"], ["Y"])], [numpy_helper.from_array(w, "W")]
    else:
        scale = (np.abs(w).max(axis=0) / 127).astype(np.float32)
        nodes = [helper.make_node("QuantizeLinear", ["A", "a_scale", "a_zero"], ["Aq"]),
                 helper.make_node("DequantizeLinear", ["Aq", "a_scale", "a_zero"], ["Ad"]),
                 helper.make_node("DequantizeLinear", ["Wq", "w_scale", "w_zero"], ["Wd"], axis=1),
                 helper.make_node("MatMul", ["Ad", "Wd"], ["Y"])]
        weights = [numpy_helper.from_array(np.array(8.0 / 255, np.float32), "a_scale"),
                   numpy_helper.from_array(np.array(128, np.uint8), "a_zero"),
                   numpy_helper.from_array(np.clip(np.rint(w / scale), -127, 127).astype(np.int8), "Wq"),
                   numpy_helper.from_array(scale, "w_scale"), numpy_helper.from_array(np.zeros(n, np.int8), "w_zero")]
    value = lambda name: helper.make_tensor_value_info(name, TensorProto.FLOAT, [n, n])  # noqa: E731
    graph = helper.make_graph(nodes, "matmul", [value("A")], [value("Y")], initializer=weights)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8).SerializeToString()


def engine_roofs(n: int, repeats: int, threads: int, keys: tuple[str, ...] = ENGINE_ROOFS) -> dict[str, dict]:
    """n^3 matrix-multiply rates of `keys`, best of `repeats`: ort_* and openvino_* an engine's MatMul of an input
    and a weight at each precision it runs (int8: QDQ; OpenVINO's left out where it is not installed, bf16 where
    the CPU would emulate it); numpy's labelled, as its BLAS may run another kernel."""
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((n, n), dtype=np.float32), rng.standard_normal((n, n), dtype=np.float32)
    calls: dict[str, tuple[str, Callable[[], Any]]] = {}
    for key in keys:
        int8 = key.endswith("int8")
        if key.startswith("ort_"):
            calls[key] = (f"ONNX Runtime MatMul ({threads} threads, {'int8 QDQ' if int8 else 'FP32'}), {n}^3",
                          partial(ort_session(matmul_graph(n, int8), threads).run, None, {"A": a}))
        elif key.startswith("openvino_") and importlib.util.find_spec("openvino"):
            import openvino

            from munit_rt.backends.openvino import native

            if key == "openvino_bf16" and not native("bf16"):
                continue
            hint = "bf16" if key == "openvino_bf16" or int8 and native("bf16") else "f32"
            core = openvino.Core()
            request = core.compile_model(core.read_model(model=matmul_graph(n, int8)), "CPU", {
                "INFERENCE_PRECISION_HINT": hint, "INFERENCE_NUM_THREADS": threads, "PERFORMANCE_HINT": "LATENCY"
            }).create_infer_request()
            calls[key] = (f"OpenVINO MatMul ({threads} threads, {'int8 QDQ' if int8 else hint}), {n}^3",
                          partial(request.infer, {"A": a}))
        elif "numpy" in key:
            calls[key] = (numpy_label() + f" FP32, {n}^3", lambda: a @ b)
    roofs = {}
    for key, (label, call) in calls.items():
        call()
        roofs[key] = {"gflops": 2.0 * n ** 3 / best_s(call, repeats) / 1e9, "method": f"{label}, best of {repeats}"}
    return roofs


def cuda_roofs(n: int, repeats: int) -> dict[str, dict[str, Any]]:
    """torch.cuda n^3 matmul rates, FP32 with TF32 off and FP16; empty without a CUDA torch."""
    torch = cuda_torch()
    if torch is None:
        return {}
    roofs, tf32 = {}, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = False
    try:
        for precision, dtype in (("fp32", torch.float32), ("fp16", torch.float16)):
            a, b = (torch.randn(n, n, device="cuda", dtype=dtype) for _ in range(2))
            seconds = best_s(lambda: a @ b, repeats, torch.cuda.synchronize)
            roofs[f"cuda_{precision}"] = {"gflops": 2.0 * n ** 3 / seconds / 1e9, "method": f"torch.cuda {n}^3 "
                                          f"{precision} matmul (TF32 off), best of {repeats}"}
    finally:
        torch.backends.cuda.matmul.allow_tf32 = tf32
        torch.cuda.empty_cache()
    return roofs


def keep_higher(first: dict[str, dict], second: dict[str, dict]) -> dict[str, dict]:
    """Roofs measured before and after the runs: the higher of each kept (other processes only slow it down)."""
    return {key: {**max(roof, second.get(key, roof), key=lambda r: r["gflops"]),
                  "measurements_gflops": [roof["gflops"]] + ([second[key]["gflops"]] if key in second else [])}
            for key, roof in first.items()}


# ------------------------------------------------------------------------------------------ device memory


def gpu_present() -> bool:
    return os.path.exists("/dev/nvidiactl")


def cuda_torch() -> Any:
    """torch where it sees a CUDA GPU, else None."""
    try:
        import torch
    except ImportError:
        return None
    return torch if torch.cuda.is_available() else None


def cuda_free_bytes() -> int | None:
    """cudaMemGetInfo's free bytes (through torch); None without a CUDA torch."""
    torch = cuda_torch()
    if torch is None:
        return None
    torch.cuda.synchronize()
    return int(torch.cuda.mem_get_info()[0])


# ------------------------------------------------------------------------------------------------ machine


def machine() -> dict[str, Any]:
    from munit_rt.backends.onnxruntime import physical_cores

    facts: dict[str, Any] = {"cpu": platform.processor() or platform.machine(), "physical_cores": physical_cores(),
                             "logical_cpus": os.cpu_count()}
    if os.path.exists("/proc/cpuinfo"):
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as fh:
            facts["cpu"] = next((x.split(":", 1)[1].strip() for x in fh if x.startswith("model name")), facts["cpu"])
    for name in ("torch", "onnxruntime", "tensorrt"):
        if importlib.util.find_spec(name):
            facts[f"{name}_version"] = getattr(importlib.import_module(name), "__version__", "?")
    if facts.get("torch_version") and sys.modules["torch"].cuda.is_available():
        facts["gpu"] = sys.modules["torch"].cuda.get_device_name()
    return facts


def load_average() -> str:
    return " ".join(f"{v:.2f}" for v in os.getloadavg()) if hasattr(os, "getloadavg") else "n/a"
