"""Timing: the sample loop, matrix-multiply roofs measured in the same run, device memory, the machine.

Every sample is one call between two synchronisations, on perf_counter. Roofs are each engine's own FP32
matrix multiply: ONNX Runtime's MatMul in a CPU session (the rate its convolutions could reach; numpy's BLAS is
shown too, labelled, as it may run another kernel), torch.cuda's on a GPU (TF32 off; FP16 on tensor cores);
`engine_roofs` adds OpenVINO's (f32, bf16, int8) and ONNX Runtime's int8 for the CPU engine benchmark.
"""
from __future__ import annotations

import importlib
import importlib.util
import os
import platform
import sys
import time
from typing import Any, Callable

import numpy as np


def time_calls(call: Callable[[int], Any], sync: Callable[[], None], sets: int, warmup: int, repeats: int,
               budget_s: float) -> dict[str, Any]:
    """`warmup` untimed calls, then up to `repeats` timed ones (stopping once `budget_s` seconds of them have
    run, never with fewer than one), cycling through input sets 0..sets-1."""
    for k in range(warmup):
        call(k % sets)
        sync()
    samples: list[float] = []
    while len(samples) < repeats and (not samples or sum(samples) < budget_s):
        started = time.perf_counter()
        call(len(samples) % sets)
        sync()
        samples.append(time.perf_counter() - started)
    return {"samples": len(samples), "median_s": float(np.median(samples)),
            "p50_ms": 1e3 * float(np.percentile(samples, 50)), "p95_ms": 1e3 * float(np.percentile(samples, 95))}


def best_s(call: Callable[[], Any], repeats: int, sync: Callable[[], None] = lambda: None) -> float:
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        call()
        sync()
        best = min(best, time.perf_counter() - started)
    return best


# ------------------------------------------------------------------------------------------------- roofs


def ort_matmul(n: int, threads: int) -> Callable[[], Any]:
    """One n^3 FP32 MatMul through an ONNX Runtime CPU session with `threads` threads (a zero-argument call)."""
    import onnxruntime
    from onnx import TensorProto, helper

    value = lambda name: helper.make_tensor_value_info(name, TensorProto.FLOAT, [n, n])  # noqa: E731
    graph = helper.make_graph([helper.make_node("MatMul", ["a", "b"], ["c"])], "matmul", [value("a"), value("b")],
                              [value("c")])
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads, options.log_severity_level = threads, 1, 3
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8).SerializeToString()
    session = onnxruntime.InferenceSession(model, options, providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    feeds = {name: rng.standard_normal((n, n), dtype=np.float32) for name in "ab"}
    return lambda: session.run(None, feeds)


def numpy_label() -> str:
    try:
        blas = np.show_config(mode="dicts")["Build Dependencies"]["blas"]["name"]
    except Exception:  # noqa: BLE001 - older numpy: no machine-readable config
        blas = "its BLAS"
    return f"numpy ({'OpenBLAS' if 'openblas' in str(blas).lower() else blas})"


def cpu_roofs(n: int, repeats: int, threads: int) -> dict[str, dict[str, Any]]:
    """ONNX Runtime's and numpy's FP32 n^3 matmul rates, best of `repeats`."""
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((n, n), dtype=np.float32), rng.standard_normal((n, n), dtype=np.float32)
    roofs = {}
    for key, label, call in (("cpu_fp32", f"ONNX Runtime MatMul ({threads} threads)", ort_matmul(n, threads)),
                             ("cpu_fp32_numpy", numpy_label(), lambda: a @ b)):
        call()
        roofs[key] = {"gflops": 2.0 * n ** 3 / best_s(call, repeats) / 1e9, "method": f"{label}, {n}^3 FP32, "
                      f"best of {repeats}"}
    return roofs


def matmul_graph(n: int, int8: bool = False) -> bytes:
    """Y = A @ W with A [n, n] an input and W [n, n] a weight, as in a layer; int8: the QDQ form a quantizer
    writes (A through QuantizeLinear/DequantizeLinear uint8, W int8 per column + DequantizeLinear)."""
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


def engine_roofs(n: int, repeats: int, threads: int) -> dict[str, dict[str, Any]]:
    """Each CPU engine's own matrix-multiply rate at each precision it runs, best of `repeats`: ONNX Runtime
    fp32 and int8 (QDQ), OpenVINO f32, bf16 (where native) and int8 (QDQ), and numpy's (labelled: its BLAS may
    run another kernel). Keys: ort_fp32, ort_int8, openvino_fp32, openvino_bf16, openvino_int8, numpy_fp32."""
    import onnxruntime

    feeds = {"A": np.random.default_rng(1).standard_normal((n, n), dtype=np.float32)}
    calls: dict[str, tuple[str, Callable[[], Any]]] = {}
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads, options.log_severity_level = threads, 1, 3
    for key, int8 in (("ort_fp32", False), ("ort_int8", True)):
        session = onnxruntime.InferenceSession(matmul_graph(n, int8), options, providers=["CPUExecutionProvider"])
        calls[key] = (f"ONNX Runtime MatMul ({threads} threads, {'int8 QDQ' if int8 else 'FP32'})",
                      lambda s=session: s.run(None, feeds))
    if importlib.util.find_spec("openvino"):
        import openvino

        from munit_rt.backends.openvino import native

        core = openvino.Core()
        for key, hint, int8 in (("openvino_fp32", "f32", False), ("openvino_bf16", "bf16", False),
                                ("openvino_int8", "bf16" if native("bf16") else "f32", True)):
            if key == "openvino_bf16" and not native("bf16"):
                continue
            compiled = core.compile_model(core.read_model(model=matmul_graph(n, int8)), "CPU",
                                          {"INFERENCE_PRECISION_HINT": hint, "INFERENCE_NUM_THREADS": threads,
                                           "PERFORMANCE_HINT": "LATENCY"})
            request = compiled.create_infer_request()
            calls[key] = (f"OpenVINO MatMul ({threads} threads, {'int8 QDQ' if int8 else hint})",
                          lambda r=request: r.infer(feeds))
    a, b = feeds["A"], np.random.default_rng(2).standard_normal((n, n), dtype=np.float32)
    calls["numpy_fp32"] = (numpy_label() + " FP32", lambda: a @ b)
    roofs = {}
    for key, (label, call) in calls.items():
        call()
        roofs[key] = {"gflops": 2.0 * n ** 3 / best_s(call, repeats) / 1e9, "method": f"{label}, {n}^3, best of "
                      f"{repeats}"}
    return roofs


def cuda_roofs(n: int, repeats: int) -> dict[str, dict[str, Any]]:
    """torch.cuda n^3 matmul rates, FP32 with TF32 off and FP16; empty without a CUDA torch."""
    try:
        import torch
    except ImportError:
        return {}
    if not torch.cuda.is_available():
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


def cuda_free_bytes() -> int | None:
    """cudaMemGetInfo's free bytes through torch, else cuda-python; None where neither can say."""
    if not gpu_present():
        return None
    try:
        import torch

        if torch.cuda.is_available():
            torch.cuda.synchronize()
            return int(torch.cuda.mem_get_info()[0])
    except ImportError:
        pass
    try:
        from munit_rt.tensorrt import cuda_check, import_cudart

        cudart = import_cudart()
        return int(cuda_check(cudart, cudart.cudaMemGetInfo(), "cudaMemGetInfo")[0])
    except Exception:  # noqa: BLE001 - no CUDA runtime: memory is not reported
        return None


class DeviceMemory:
    """Peak device memory of one configuration: torch's allocator peak for PyTorch on CUDA, else the drop of
    cudaMemGetInfo's free memory below its value before the backend opened (input buffers included)."""

    def __init__(self) -> None:
        self.baseline = self.lowest = cuda_free_bytes()
        self.torch = False
        self.method = "n/a (host memory)"

    def started(self, backend_name: str, device: str) -> None:
        """Call once the backend is open: its device decides the method."""
        if not device.startswith("cuda"):
            self.baseline = None
        elif backend_name == "torch":
            self.torch, self.method = True, "torch.cuda.max_memory_allocated"
        elif self.baseline is not None:
            self.method = "cudaMemGetInfo: free before opening - lowest free seen"

    def reset(self) -> None:
        if self.torch:
            import torch

            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()

    def sample(self) -> None:
        free = cuda_free_bytes() if self.baseline is not None and not self.torch else None
        if free is not None:
            self.lowest = min(self.lowest, free)

    def peak(self) -> int | None:
        if self.torch:
            import torch

            return int(torch.cuda.max_memory_allocated())
        self.sample()
        return None if self.baseline is None else max(0, self.baseline - self.lowest)


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
