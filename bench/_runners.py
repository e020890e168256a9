"""Backends as the benchmark drives them: one uniform runner per (framework, device, precision).

A runner is opened once (model load, sessions, engines, compilation: its `build_s`), then per batch size it
`load`s the batch's rotating inputs onto its device and runs, by input-set index k:

    encode(k)   content encoder on images[k]                   output stays where the backend keeps it
    decode(k)   decoder on (content[k], adain[k])              idem; decode_numpy(result) fetches it
    job(k)      job_images[k] x job_codes[k] -> numpy outputs  host in, host out, as Translator.translate:
                content once per image, style MLP once, (image, style) pairs decoded in batches of B

This module holds the data model and the CPU-capable runners (PyTorch, ONNX Runtime CPU); the CUDA-only
ones (ONNX Runtime CUDA with I/O binding, TensorRT) are in bench/_gpu_runners.py.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np


class Unavailable(Exception):
    """This backend cannot run here; the message says why (reported as skipped, not failed)."""


@dataclass
class ModelInfo:
    """The bundle under test, its source checkpoint (for the PyTorch runners) and the a2b graph names."""

    bundle: Any  # munit_rt.bundle.Bundle
    checkpoint: Path | None
    checkpoint_problem: str | None = None  # why the PyTorch runners cannot load the checkpoint
    source: str = "a"
    target: str = "b"

    @property
    def graphs(self) -> tuple[str, str, str]:
        return f"content_encoder_{self.source}", f"style_mlp_{self.target}", f"decoder_{self.target}"

    @property
    def manifest(self) -> dict:
        return self.bundle.manifest

    @property
    def multiple(self) -> int:
        return int(self.manifest.get("spatial_multiple") or self.manifest["preprocess"]["multiple"])

    def load_generators(self) -> dict[str, Any]:
        """A fresh copy of both generators (each runner casts and moves its own)."""
        from training.checkpoint import load_generators, read_checkpoint
        from training.config import config_from_dict

        if self.checkpoint_problem:
            raise Unavailable(self.checkpoint_problem)
        config = config_from_dict(self.manifest["config"], source=f"bundle {self.bundle.path} manifest.json config")
        return load_generators(read_checkpoint(self.checkpoint, config=config))


@dataclass
class Workload:
    """Host inputs of one batch size, shared by every runner: K rotating sets of each."""

    batch: int
    styles: int
    images: list[np.ndarray]       # [B, C, S, S] in [-1, 1]
    content: list[np.ndarray]      # [B, Cc, S/m, S/m]
    adain: list[np.ndarray]        # [B, P]
    job_images: list[np.ndarray]   # [N, C, S, S], N = ceil(B / styles)
    job_codes: list[np.ndarray]    # [styles, style_dim]

    @property
    def job_count(self) -> int:
        return self.job_images[0].shape[0]

    @property
    def job_outputs(self) -> int:
        return self.job_count * self.styles


def job_images_for(batch: int, styles: int) -> int:
    """Images per job at batch B: enough for one full decoder batch of (image, style) pairs."""
    return max(1, math.ceil(batch / styles))


def make_workload(model: ModelInfo, batch: int, size: int, styles: int, rotate: int, seed: int = 0) -> Workload:
    m = model.manifest
    rng = np.random.default_rng([seed, batch, size])
    cin = int(m["domains"][model.source]["channels"])
    cc, h = int(m["content_channels"]), size // model.multiple
    params, style_dim = int(m["adain"]["total"]), int(m["style_dim"])
    n = job_images_for(batch, styles)

    def normal(*shape: int) -> np.ndarray:
        return rng.standard_normal(shape, dtype=np.float32)

    def uniform(*shape: int) -> np.ndarray:
        return rng.uniform(-1.0, 1.0, shape).astype(np.float32)

    return Workload(batch, styles, [uniform(batch, cin, size, size) for _ in range(rotate)],
                    [normal(batch, cc, h, h) for _ in range(rotate)], [normal(batch, params) for _ in range(rotate)],
                    [uniform(n, cin, size, size) for _ in range(rotate)], [normal(styles, style_dim) for _ in range(rotate)])


def pair_indices(count: int, styles: int) -> tuple[np.ndarray, np.ndarray]:
    """(image index, style index) of every output row, row r = image * styles + style (Translator order)."""
    return np.divmod(np.arange(count * styles), styles)


class Runner:
    """The interface bench/throughput.py drives; subclasses fill in what their backend does."""

    key = ""
    label = ""
    device = "cpu"
    precision = "fp32"
    memory_method = "n/a (host memory is not tracked)"

    def __init__(self, model: ModelInfo):
        self.model = model
        self.build_s: float | None = None
        self.build_note = ""
        self.work: Workload | None = None

    def open(self) -> None:
        """Load the model / create sessions / build engines; sets build_s and build_note."""

    def load(self, work: Workload) -> None:
        """Put the batch's rotating stage inputs on the device (outside the timed region)."""
        self.work = work

    def encode(self, k: int) -> Any:
        """Content encoder on input set k; the output stays on the device."""

    def decode(self, k: int) -> Any:
        """Decoder on input set k; returns a handle for decode_numpy."""

    def job(self, k: int) -> np.ndarray:
        """The translate job on job set k: host arrays in, [N, S, C, H, W] float32 host array out."""
        raise NotImplementedError

    def decode_numpy(self, result: Any) -> np.ndarray:
        return np.asarray(result)

    def sync(self) -> None:
        """Wait for all queued device work (no-op on the CPU)."""

    def memory_reset(self) -> None:
        """Start a new device-memory peak (where the backend can)."""

    def memory_peak(self) -> int | None:
        return None

    def unload(self) -> None:
        self.work = None

    def close(self) -> None:
        """Free everything open() created."""


# ------------------------------------------------------------------------------------------------ PyTorch


class TorchRunner(Runner):
    """The training modules: eager FP32, FP16 channels-last, or torch.compile FP16 with CUDA graphs.

    FP16 runners cast weights and inputs to half (LayerNorm stays FP32, as in the exported FP16 graphs) and
    return half outputs, converted to FP32 on the device before the download in the job.
    """

    def __init__(self, model: ModelInfo, key: str, label: str, device: str, half: bool = False,
                 channels_last: bool = False, compile_mode: str | None = None, tf32: bool = False):
        super().__init__(model)
        self.key, self.label, self.device = key, label, device
        self.precision = "fp16" if half else "fp32"
        self.half, self.channels_last, self.compile_mode, self.tf32 = half, channels_last, compile_mode, tf32
        if device == "cuda":
            self.memory_method = "torch.cuda.max_memory_allocated"

    def open(self) -> None:
        import torch

        started = time.perf_counter()
        if self.device == "cuda":
            torch.backends.cudnn.benchmark = True
            torch.backends.cudnn.allow_tf32 = self.tf32  # "fp32" means fp32 arithmetic unless --tf32
            torch.backends.cuda.matmul.allow_tf32 = self.tf32
        gens = self.model.load_generators()
        dtype = torch.float16 if self.half else torch.float32
        fmt = torch.channels_last if self.channels_last else torch.contiguous_format
        modules = []
        for gen, part in ((gens[self.model.source], "enc_content"), (gens[self.model.target], "mlp"),
                          (gens[self.model.target], "dec")):
            module = getattr(gen, part).to(device=self.device, dtype=dtype).eval()
            modules.append(module.to(memory_format=fmt) if part != "mlp" else module)
        if self.half:
            for module in modules:
                _layernorms_in_fp32(module)
        if self.compile_mode:
            # default dynamic=None: a second batch size recompiles once with a symbolic batch dim, after which
            # each new shape only records its own CUDA graph (dynamic=False would recompile at every shape)
            modules = [torch.compile(m, mode=self.compile_mode) for m in modules]
            self.build_note = "compile time: the first call at each new shape (warm-ups), not included here"
        self.enc, self.mlp, self.dec = modules
        self.build_s = time.perf_counter() - started

    def _tensor(self, array: np.ndarray) -> Any:
        import torch

        t = torch.from_numpy(array).to(self.device, dtype=torch.float16 if self.half else torch.float32)
        return t.contiguous(memory_format=torch.channels_last) if self.channels_last and t.dim() == 4 else t

    def _step(self) -> None:
        if self.compile_mode:
            import torch

            torch.compiler.cudagraph_mark_step_begin()  # replays may overwrite the previous step's outputs

    def load(self, work: Workload) -> None:
        import torch

        super().load(work)
        self.images = [self._tensor(a) for a in work.images]
        self.content = [self._tensor(a) for a in work.content]
        self.adain = [self._tensor(a) for a in work.adain]
        image_index, style_index = pair_indices(work.job_count, work.styles)
        self.image_index = torch.from_numpy(image_index).to(self.device)
        self.style_index = torch.from_numpy(style_index).to(self.device)
        size = work.job_images[0].shape[2:]
        channels = int(self.model.manifest["domains"][self.model.target]["channels"])
        self.out_host = torch.empty((work.job_outputs, channels, *size), dtype=torch.float32,
                                    pin_memory=self.device == "cuda")
        self.sync()

    def encode(self, k: int) -> Any:
        import torch

        with torch.inference_mode():
            self._step()
            return self.enc(self.images[k])

    def decode(self, k: int) -> Any:
        import torch

        with torch.inference_mode():
            self._step()
            return self.dec(self.content[k], self.adain[k])

    def job(self, k: int) -> np.ndarray:
        import torch

        work = self.work
        cuda = self.device == "cuda"
        with torch.inference_mode():
            self._step()
            images, codes = self._tensor(work.job_images[k]), self._tensor(work.job_codes[k])
            content, adain = self.enc(images), self.mlp(codes)
            if self.compile_mode:  # keep them past the decoder's graph replays
                content, adain = content.clone(), adain.clone()
            for start in range(0, work.job_outputs, work.batch):
                stop = min(start + work.batch, work.job_outputs)
                c = content.index_select(0, self.image_index[start:stop])
                if self.channels_last:
                    c = c.contiguous(memory_format=torch.channels_last)
                y = self.dec(c, adain.index_select(0, self.style_index[start:stop]))
                self.out_host[start:stop].copy_(y.float(), non_blocking=cuda)
            self.sync()
        return self.out_host.numpy().reshape(work.job_count, work.styles, *self.out_host.shape[1:])

    def decode_numpy(self, result: Any) -> np.ndarray:
        return result.float().cpu().numpy()

    def sync(self) -> None:
        if self.device == "cuda":
            import torch

            torch.cuda.synchronize()

    def memory_reset(self) -> None:
        if self.device == "cuda":
            import torch

            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()

    def memory_peak(self) -> int | None:
        if self.device != "cuda":
            return None
        import torch

        return int(torch.cuda.max_memory_allocated())

    def unload(self) -> None:
        super().unload()
        self.images = self.content = self.adain = []
        self.out_host = self.image_index = self.style_index = None
        _empty_cuda_cache(self.device)

    def close(self) -> None:
        self.enc = self.mlp = self.dec = None
        _empty_cuda_cache(self.device)


def _layernorms_in_fp32(module: Any) -> None:
    """Run MUNIT's LayerNorm in FP32 inside an FP16 model, as the exported FP16 graphs do: its sum of squares
    over C*H*W overflows FP16 at ordinary activation sizes (see export/fp16.py)."""
    from training.layers import LayerNorm

    for layer in module.modules():
        if isinstance(layer, LayerNorm):
            layer.float()
            layer.register_forward_pre_hook(lambda _, args: tuple(a.float() for a in args))
            layer.register_forward_hook(lambda _, args, out: out.half())


def _empty_cuda_cache(device: str) -> None:
    if device == "cuda":
        import gc

        import torch

        gc.collect()
        torch.cuda.empty_cache()


# ------------------------------------------------------------------------------------------ ONNX Runtime


class OrtCpuRunner(Runner):
    """munit_rt's ONNX Runtime backend on the CPU provider; the job is munit_rt.Translator.translate."""

    key, label = "onnxruntime-cpu", "ONNX Runtime CPU FP32"

    def open(self) -> None:
        from munit_rt import Translator
        from munit_rt.backends.onnxruntime import CPU_PROVIDER, OnnxRuntimeBackend, session_from_path

        self.build_s = 0.0

        def timed_session(path: Path, options: Any, providers: list[str]) -> Any:
            started = time.perf_counter()
            session = session_from_path(path, options, providers)
            self.build_s += time.perf_counter() - started
            return session

        self.backend = OnnxRuntimeBackend(self.model.bundle, "fp32", providers=[CPU_PROVIDER],
                                          session_factory=timed_session)
        self.translator = Translator(self.model.bundle, backend=self.backend)
        self.build_note = f"session creation (graph optimisation), {self.backend.device}"
        self.enc_graph, self.mlp_graph, self.dec_graph = self.model.graphs
        # the job is not warmed up on the CPU (its encoder/decoder shapes are, by the stage runs): create the
        # style MLP's session here so that the first job does not pay for it
        codes = np.random.default_rng(0).standard_normal((1, self.model.bundle.style_dim), dtype=np.float32)
        self.backend.run(self.mlp_graph, {"style": codes})

    def encode(self, k: int) -> Any:
        return self.backend.run(self.enc_graph, {"image": self.work.images[k]})["content"]

    def decode(self, k: int) -> Any:
        feeds = {"content": self.work.content[k], "adain_params": self.work.adain[k]}
        return self.backend.run(self.dec_graph, feeds)["output"]

    def job(self, k: int) -> np.ndarray:
        work = self.work
        direction = f"{self.model.source}2{self.model.target}"
        return self.translator.translate(work.job_images[k], work.job_codes[k], direction, batch_size=work.batch)

    def close(self) -> None:
        self.translator.close()
