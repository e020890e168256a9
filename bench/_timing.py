"""Timing, roofline and device-memory helpers for bench/throughput.py.

Every sample is one call timed on the host clock (`perf_counter`) between two synchronisations of the
device (`sync`, a no-op on CPU), so asynchronous GPU work is always inside the sample and nothing else is.
Inputs rotate through the preallocated sets (call k uses set k mod K) so repeated calls do not find their
input in a cache the previous call left warm.
"""
from __future__ import annotations

import time
from typing import Any, Callable

import numpy as np


def measure(call: Callable[[int], Any], sync: Callable[[], None], warmup: int, repeats: int, rotate: int,
            budget_s: float, first_index: int = 0) -> list[float]:
    """Seconds per call: `warmup` untimed calls, then up to `repeats` timed ones.

    Timing stops early, after at least one sample, once `budget_s` seconds of timed calls have passed, so a
    slow CPU backend does not take minutes per point; the number of samples is reported with the result.
    """
    index = first_index
    for _ in range(warmup):
        call(index % rotate)
        index += 1
    sync()
    samples: list[float] = []
    spent = 0.0
    while len(samples) < max(1, repeats):
        sync()
        started = time.perf_counter()
        call(index % rotate)
        sync()
        seconds = time.perf_counter() - started
        samples.append(seconds)
        spent += seconds
        index += 1
        if spent > budget_s:
            break
    return samples


def summarize(samples: list[float], items: int, flops: float | None = None) -> dict[str, Any]:
    """Median-based rates (items are output images) and p50/p95 latency of one call."""
    p50 = float(np.percentile(samples, 50))
    entry = {"images_per_s": items / p50, "p50_ms": 1e3 * p50, "p95_ms": 1e3 * float(np.percentile(samples, 95)),
             "mean_ms": 1e3 * float(np.mean(samples)), "samples": len(samples), "items_per_call": items}
    if flops is not None:
        entry["flops_per_call"] = flops
        entry["gflops"] = flops / p50 / 1e9
    return entry


# ------------------------------------------------------------------------------------------- rooflines


def _best_of(fn: Callable[[], Any], sync: Callable[[], None], repeats: int) -> float:
    fn()
    sync()
    best = float("inf")
    for _ in range(repeats):
        sync()
        started = time.perf_counter()
        fn()
        sync()
        best = min(best, time.perf_counter() - started)
    return best


def cpu_matmul_rate(n: int = 2048, repeats: int = 8) -> dict[str, Any]:
    """FP32 n x n matrix product on the CPU through numpy and torch, best of `repeats` each; the roof is the max."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((n, n), dtype=np.float32)
    b = rng.standard_normal((n, n), dtype=np.float32)
    flops = 2.0 * n ** 3
    rates = {"numpy": flops / _best_of(lambda: a @ b, lambda: None, repeats) / 1e9}
    try:
        import torch

        ta, tb = torch.from_numpy(a), torch.from_numpy(b)
        rates["torch"] = flops / _best_of(lambda: ta @ tb, lambda: None, repeats) / 1e9
    except ImportError:
        pass
    return {"gflops": max(rates.values()), "by_library": rates, "n": n, "dtype": "float32",
            "method": f"{n}x{n}x{n} matmul, best of {repeats}, max over {'/'.join(rates)}"}


def cuda_matmul_rate(dtype: str, n: int = 8192, repeats: int = 10) -> dict[str, Any]:
    """n x n matrix product through torch.cuda (fp16: tensor cores, fp32: TF32 off), best of `repeats`."""
    import torch

    torch_dtype = {"fp16": torch.float16, "fp32": torch.float32}[dtype]
    generator = torch.Generator(device="cuda").manual_seed(0)
    a = torch.randn(n, n, device="cuda", dtype=torch_dtype, generator=generator)
    b = torch.randn(n, n, device="cuda", dtype=torch_dtype, generator=generator)
    previous = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = False
    try:
        seconds = _best_of(lambda: a @ b, torch.cuda.synchronize, repeats)
    finally:
        torch.backends.cuda.matmul.allow_tf32 = previous
    del a, b
    torch.cuda.empty_cache()
    return {"gflops": 2.0 * n ** 3 / seconds / 1e9, "n": n, "dtype": dtype,
            "method": f"torch.cuda {n}x{n}x{n} {dtype} matmul (TF32 off), best of {repeats}"}


# ------------------------------------------------------------------------------------------ device facts


def cuda_present() -> bool:
    """torch sees a CUDA device (the torch and ORT-CUDA paths need it)."""
    try:
        import torch
    except ImportError:
        return False
    return bool(torch.cuda.is_available())


def cuda_free_bytes() -> int | None:
    """Free device memory (cudaMemGetInfo) through torch, else cuda-python; None when neither can say."""
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
        free, _total = cuda_check(cudart, cudart.cudaMemGetInfo(), "cudaMemGetInfo")
        return int(free)
    except Exception:  # noqa: BLE001 - no CUDA at all: memory is simply not reported
        return None


class FreeMemoryTracker:
    """Peak device memory of a backend that allocates outside torch: baseline free minus the lowest free seen."""

    method = "cudaMemGetInfo delta (free before opening - lowest free after a measurement)"

    def __init__(self) -> None:
        self.baseline = cuda_free_bytes()
        self.lowest = self.baseline

    def sample(self) -> None:
        free = cuda_free_bytes()
        if free is not None and self.lowest is not None:
            self.lowest = min(self.lowest, free)

    def peak(self) -> int | None:
        self.sample()
        if self.baseline is None or self.lowest is None:
            return None
        return max(0, self.baseline - self.lowest)
