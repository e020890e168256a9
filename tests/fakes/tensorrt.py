"""TensorRT and cuda-python without either, for tests on machines without a GPU.

`FakeTrt` builds "engines" that are JSON plans and runs them as numpy functions (`fake_graph`, or the `compute`
function given), and `FakeCudart` hands out real host memory (ctypes buffers) as "device" memory, so pointer
arithmetic, row copies and buffer reuse are exercised for real. `install(monkeypatch)` puts both behind
munit_rt.tensorrt's import seams; `write_fake_bundle` writes a MUNIT bundle that munit_rt.bundle.Bundle accepts
and whose graph files only declare their I/O (the fakes never read the rest).
"""
from __future__ import annotations

import ctypes
import hashlib
import json
from collections import Counter
from pathlib import Path
from types import SimpleNamespace
from typing import Callable

import numpy as np

from munit_rt.tensorrt import builder as trt_builder
from munit_rt.tensorrt import cache as trt_cache
from munit_rt.tensorrt import runner as trt_runner

M, CC, SD, P = 4, 2, 3, 4  # spatial multiple, content channels, style dim, AdaIN parameters
IO = {  # role -> (inputs, outputs) as in the manifest
    "content_encoder": ([("image", ["N", 3, "H", "W"])], [("content", ["N", CC, "H/4", "W/4"])]),
    "style_encoder": ([("image", ["N", 3, "H", "W"])], [("style", ["N", SD])]),
    "style_mlp": ([("style", ["N", SD])], [("adain_params", ["N", P])]),
    "decoder": ([("content", ["N", CC, "h", "w"]), ("adain_params", ["N", P])], [("output", ["N", 3, "h*4", "w*4"])]),
}
MLP_W = np.arange(SD * P, dtype=np.float32).reshape(SD, P) / 10


# ------------------------------------------------------------------------------ fake graphs and bundle


def fake_graph(role: str, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """What each fake engine computes (numpy, float32)."""
    if role == "content_encoder":
        img = feeds["image"]
        n, _, h, w = img.shape
        pooled = img.reshape(n, 3, h // M, M, w // M, M).mean(axis=(3, 5))
        return {"content": np.stack([pooled.mean(1), 2 * pooled[:, 0]], 1).astype(np.float32)}
    if role == "style_encoder":
        return {"style": feeds["image"].mean(axis=(2, 3)).astype(np.float32)}
    if role == "style_mlp":
        return {"adain_params": (feeds["style"] @ MLP_W + 1).astype(np.float32)}
    c, a = feeds["content"], feeds["adain_params"]
    mix = c[:, 0] * a[:, 0, None, None] + c[:, 1] * a[:, 1, None, None]
    up = np.repeat(np.repeat(mix, M, axis=1), M, axis=2)
    out = np.stack([up + a[:, 2, None, None] * k + a[:, 3, None, None] for k in range(3)], 1)
    return {"output": out.astype(np.float32)}


def placeholder_graph(inputs, outputs) -> bytes:
    """An ONNX file that declares a graph's I/O and nothing else: what the bundle reader checks; fakes never
    read the rest."""
    from onnx import TensorProto, helper

    def values(pairs):
        return [helper.make_tensor_value_info(n, TensorProto.FLOAT, s) for n, s in pairs]

    return helper.make_model(helper.make_graph([], "placeholder", values(inputs), values(outputs))).SerializeToString()


def fake_manifest(size: int = 16, multiple: int = M) -> dict:
    graphs, files = {}, {}
    for role, (inputs, outputs) in IO.items():
        for domain in ("a", "b"):
            name = f"{role}_{domain}"
            sha = hashlib.sha256(placeholder_graph(inputs, outputs)).hexdigest()
            graphs[name] = {
                "role": role, "domain": domain,
                "inputs": [{"name": n, "dtype": "float32", "shape": s} for n, s in inputs],
                "outputs": [{"name": n, "dtype": "float32", "shape": s} for n, s in outputs],
                "files": {p: {"path": f"{p}/{name}.onnx", "sha256": sha, "bytes": 1} for p in ("fp32", "fp16")}}
            files.update({f"{p}/{name}.onnx": sha for p in ("fp32", "fp16")})
    return {"schema_version": 1, "format": "munit-rt-bundle", "munit_rt_version": "0.1.0", "family": "munit",
            "domains": {"a": {"channels": 3}, "b": {"channels": 3}},
            "preprocess": {"resize": "shorter_side", "size": size, "multiple": multiple},
            "style_dim": SD, "content_channels": CC, "spatial_multiple": multiple, "adain": {"total": P, "layers": []},
            "opset": 18, "precisions": ["fp32", "fp16"], "graphs": graphs, "files": files}


def typed(manifest: dict) -> SimpleNamespace:
    """What profiles and the cache read of a Bundle, from a manifest dict (validated as the reader does)."""
    from munit_rt.bundle.schema import parse_manifest

    parsed = parse_manifest(manifest)
    return SimpleNamespace(manifest=parsed, graphs=parsed.graphs, path=Path("fake.bundle"))


def write_fake_bundle(root: Path) -> Path:
    """The bundle of `fake_manifest()` at `root`: every graph file declares its I/O only (fakes read nothing)."""
    manifest = fake_manifest()
    for graph in manifest["graphs"].values():
        data = placeholder_graph(*IO[graph["role"]])
        for entry in graph["files"].values():
            (root / entry["path"]).parent.mkdir(parents=True, exist_ok=True)
            (root / entry["path"]).write_bytes(data)
    (root / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    return root


# ------------------------------------------------------------------------------------------ fake CUDA


class FakeCudart:
    """cuda-python's runtime API surface we use, over real host memory, with one in-order stream.

    Copies and engine executions are queued and only happen at cudaStreamSynchronize (or cudaFree), so
    code that reads a result before synchronising, or refills a staging buffer a queued copy still reads,
    gets wrong numbers here as it would on a GPU.
    """

    class cudaError_t:
        cudaSuccess = 0

    class cudaMemcpyKind:
        cudaMemcpyHostToDevice, cudaMemcpyDeviceToHost, cudaMemcpyDeviceToDevice = "H2D", "D2H", "D2D"

    def __init__(self):
        self.blocks: dict[int, ctypes.Array] = {}
        self.calls: Counter = Counter()
        self.copies: list[tuple[str, int]] = []
        self.queue: list = []

    def drain(self):
        while self.queue:
            self.queue.pop(0)()

    def _alloc(self, kind: str, nbytes: int):
        self.calls[kind] += 1
        buf = ctypes.create_string_buffer(nbytes)
        self.blocks[ctypes.addressof(buf)] = buf
        return 0, ctypes.addressof(buf)

    def cudaMalloc(self, nbytes):
        return self._alloc("cudaMalloc", nbytes)

    def cudaMallocHost(self, nbytes):
        return self._alloc("cudaMallocHost", nbytes)

    def cudaFree(self, ptr):
        self.drain()
        self.calls["cudaFree"] += 1
        del self.blocks[ptr]
        return (0,)

    cudaFreeHost = cudaFree

    def cudaStreamCreate(self):
        return 0, 7

    def cudaStreamSynchronize(self, stream):
        self.drain()
        return (0,)

    def cudaStreamDestroy(self, stream):
        return (0,)

    def cudaMemcpyAsync(self, dst, src, nbytes, kind, stream):
        self.queue.append(lambda: ctypes.memmove(dst, src, nbytes))
        self.copies.append((kind, nbytes))
        return (0,)

    def cudaMemcpy(self, dst, src, nbytes, kind):  # synchronous: after everything queued before it
        self.drain()
        ctypes.memmove(dst, src, nbytes)
        self.copies.append((kind, nbytes))
        return (0,)

    def cudaGetDeviceProperties(self, device):
        return 0, SimpleNamespace(name=b"Fake GPU 80GB\0\0\0", major=9, minor=0)


# --------------------------------------------------------------------------------------- fake TensorRT


def _view(ptr: int, shape) -> np.ndarray:
    count = int(np.prod(shape))
    return np.frombuffer((ctypes.c_float * max(count, 1)).from_address(ptr), np.float32, count).reshape(shape)


class FakeEngine:
    def __init__(self, plan: dict, cudart: FakeCudart, compute: Callable[[str, dict], dict] | None = None):
        self.cudart, self.compute = cudart, compute or fake_graph
        self.graph, self.role, self.profile = plan["graph"], plan["graph"].rsplit("_", 1)[0], plan["profile"]
        inputs, outputs = IO[self.role]
        self.names = [n for n, _ in inputs] + [n for n, _ in outputs]
        self.inputs = [n for n, _ in inputs]
        self.num_io_tensors = len(self.names)

    def get_tensor_name(self, i):
        return self.names[i]

    def get_tensor_mode(self, name):
        return FakeTrt.TensorIOMode.INPUT if name in self.inputs else FakeTrt.TensorIOMode.OUTPUT

    def get_tensor_dtype(self, name):
        return "float32"

    def get_tensor_profile_shape(self, name, index):
        p = self.profile[name]
        return p["min"], p["opt"], p["max"]

    def create_execution_context(self):
        return FakeContext(self)


class FakeContext:
    def __init__(self, engine: FakeEngine):
        self.engine, self.shapes, self.addresses = engine, {}, {}

    def set_input_shape(self, name, shape):
        p = self.engine.profile[name]
        ok = all(lo <= d <= hi for lo, d, hi in zip(p["min"], shape, p["max"]))
        self.shapes[name] = tuple(shape)
        return ok

    def get_tensor_shape(self, name):
        if name in self.engine.inputs:
            return self.shapes[name]
        feeds = {n: np.zeros(self.shapes[n], np.float32) for n in self.engine.inputs}
        return self.engine.compute(self.engine.role, feeds)[name].shape

    def set_tensor_address(self, name, ptr):
        self.addresses[name] = ptr

    def execute_async_v3(self, stream_handle):
        shapes, addresses = dict(self.shapes), dict(self.addresses)  # as enqueued

        def run():
            feeds = {n: _view(addresses[n], shapes[n]).copy() for n in self.engine.inputs}
            for name, value in self.engine.compute(self.engine.role, feeds).items():
                _view(addresses[name], value.shape)[...] = value

        self.engine.cudart.queue.append(run)
        return True


class FakeTrt:
    """The `tensorrt` module surface that builder.py and runner.py use."""

    __version__ = "10.9.0.34"

    class Logger:
        WARNING = 2

        def __init__(self, severity=2):
            self.severity = severity

    NetworkDefinitionCreationFlag = SimpleNamespace(STRONGLY_TYPED=1)
    MemoryPoolType = SimpleNamespace(WORKSPACE="workspace")
    BuilderFlag = SimpleNamespace(TF32="tf32")
    TensorIOMode = SimpleNamespace(INPUT="input", OUTPUT="output")

    def __init__(self, version: str = "10.9.0.34", parser_errors=(), cudart: FakeCudart | None = None,
                 compute: Callable[[str, dict], dict] | None = None):
        self.__version__ = version
        self.cudart, self.compute = cudart, compute  # compute(role, feeds): what the engines run (fake_graph)
        self.parser_error_list = list(parser_errors)
        self.builds: list[dict] = []
        test = self

        class Builder:
            def __init__(self, logger):
                self.logger = logger

            def create_network(self, flags):
                return SimpleNamespace(flags=flags, inputs=[], num_inputs=0,
                                       get_input=lambda i, net=None: None)

            def create_builder_config(self):
                return FakeConfig()

            def create_optimization_profile(self):
                return SimpleNamespace(shapes={}, set_shape=None)

            def build_serialized_network(self, network, config):
                graph = network.graph
                plan = {"graph": graph, "flags": network.flags, "profile": config.profile.shapes,
                        "workspace": config.workspace, "cleared": sorted(config.cleared)}
                test.builds.append(plan)
                return json.dumps(plan).encode()

        class OnnxParser:
            def __init__(self, network, logger):
                self.network, self.errors = network, []

            def parse_from_file(self, path):
                self.errors = list(test.parser_error_list)
                graph = Path(path).stem
                names = [n for n, _ in IO[graph.rsplit("_", 1)[0]][0]]
                self.network.graph, self.network.num_inputs = graph, len(names)
                self.network.get_input = lambda i: SimpleNamespace(name=names[i])
                return not self.errors

            @property
            def num_errors(self):
                return len(self.errors)

            def get_error(self, i):
                name, desc, op = self.errors[i]
                return SimpleNamespace(node_name=lambda: name, desc=lambda: desc, node=lambda: i,
                                       node_operator=lambda: op)

        class Runtime:
            def __init__(self, logger):
                pass

            def deserialize_cuda_engine(self, plan):
                return FakeEngine(json.loads(bytes(plan)), test.cudart, test.compute)

        self.Builder, self.OnnxParser, self.Runtime = Builder, OnnxParser, Runtime

    @staticmethod
    def nptype(dtype):
        return np.float32


class FakeConfig:
    def __init__(self):
        self.workspace, self.cleared, self.profile, self.timing = None, set(), None, None

    def set_memory_pool_limit(self, pool, nbytes):
        self.workspace = nbytes

    def clear_flag(self, flag):
        self.cleared.add(flag)

    def add_optimization_profile(self, profile):
        self.profile = profile

    def create_timing_cache(self, data):
        return SimpleNamespace(data=bytes(data))

    def set_timing_cache(self, cache, ignore_mismatch):
        self.timing = cache
        return True

    def get_timing_cache(self):
        return SimpleNamespace(serialize=lambda: self.timing.data + b"t")


def install(monkeypatch, compute: Callable[[str, dict], dict] | None = None) -> SimpleNamespace:
    """Put a FakeTrt and a FakeCudart behind every import seam of munit_rt.tensorrt (undone by `monkeypatch`);
    `compute(role, feeds)` is what the fake engines run (default: `fake_graph`). Returns them as .trt, .cudart."""
    cudart = FakeCudart()
    trt = FakeTrt(cudart=cudart, compute=compute)

    def make_profile():
        profile = SimpleNamespace(shapes={})
        profile.set_shape = lambda name, lo, opt, hi: profile.shapes.__setitem__(
            name, {"min": list(lo), "opt": list(opt), "max": list(hi)})
        return profile

    trt.Builder.create_optimization_profile = lambda self: make_profile()
    monkeypatch.setattr(trt_builder, "_import_tensorrt", lambda: trt)
    monkeypatch.setattr(trt_runner, "_import_tensorrt", lambda: trt)
    monkeypatch.setattr(trt_runner, "_import_cudart", lambda: cudart)
    monkeypatch.setattr(trt_cache, "import_cudart", lambda: cudart)
    return SimpleNamespace(trt=trt, cudart=cudart)
