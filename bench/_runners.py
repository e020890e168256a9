"""Backends as the benchmark drives them: one uniform runner per (framework, device, precision).

A runner is opened once (model load, sessions, engines, compilation: its `build_s`), then per batch size it
`load`s the batch's rotating inputs onto its device and runs, by input-set index k, the stages of the
model's family (ModelInfo.stages, then the job):

    MUNIT
    encode(k)   content encoder on images[k]                   output stays where the backend keeps it
    decode(k)   decoder on (content[k], adain[k])              idem; decode_numpy(result) fetches it
    job(k)      job_images[k] x job_codes[k] -> numpy outputs  host in, host out, as Translator.translate:
                content once per image, style MLP once, (image, style) pairs decoded in batches of B
    CycleGAN, StarGAN (bench/_gen_runners.py)
    generate(k) generator on images[k] (StarGAN: and labels[k]) output stays; decode_numpy(result) fetches it
    job(k)      job_images[k] -> numpy outputs                 host in, host out, as Translator.generate

This module holds the MUNIT runners that run on the CPU (PyTorch, ONNX Runtime CPU); the CUDA-only ones
(ONNX Runtime CUDA with I/O binding, TensorRT) are in bench/_gpu_runners.py. The data model (ModelInfo,
Workload) is bench/_workload.py.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from bench._workload import (ModelInfo, Unavailable, Workload, job_images_for, make_workload,  # noqa: F401
                             pair_indices)


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

    def generate(self, k: int) -> Any:
        """CycleGAN/StarGAN: the generator on input set k; returns a handle for decode_numpy."""

    def job(self, k: int) -> np.ndarray:
        """The job on job set k: host arrays in, float32 host array out ([N, S, C, H, W] for MUNIT's
        translate, [N, C, H, W] for generate)."""
        raise NotImplementedError

    def decode_numpy(self, result: Any) -> np.ndarray:
        """The last stage's output (decode, generate) as a host array, for the parity check."""
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
        modules = self._modules(self.model.load_generators(), torch.float16 if self.half else torch.float32,
                                torch.channels_last if self.channels_last else torch.contiguous_format)
        if self.half:
            for module in modules:
                _layernorms_in_fp32(module)
        if self.compile_mode:
            # default dynamic=None: a second batch size recompiles once with a symbolic batch dim, after which
            # each new shape only records its own CUDA graph (dynamic=False would recompile at every shape)
            modules = [torch.compile(m, mode=self.compile_mode) for m in modules]
            self.build_note = "compile time: the first call at each new shape (warm-ups), not included here"
        self._set_modules(modules)
        self.build_s = time.perf_counter() - started

    def _modules(self, gens: dict[str, Any], dtype: Any, fmt: Any) -> list[Any]:
        """The modules the stages call, cast and moved (MUNIT: content encoder, style MLP, decoder)."""
        modules = []
        for gen, part in ((gens[self.model.source], "enc_content"), (gens[self.model.target], "mlp"),
                          (gens[self.model.target], "dec")):
            module = getattr(gen, part).to(device=self.device, dtype=dtype).eval()
            modules.append(module.to(memory_format=fmt) if part != "mlp" else module)
        return modules

    def _set_modules(self, modules: list[Any]) -> None:
        self.enc, self.mlp, self.dec = modules

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
    from munit_rt.training.families.munit.layers import LayerNorm

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
        self._open_translator()
        self.enc_graph, self.mlp_graph, self.dec_graph = self.model.graphs
        # the job is not warmed up on the CPU (its encoder/decoder shapes are, by the stage runs): create the
        # style MLP's session here so that the first job does not pay for it
        codes = np.random.default_rng(0).standard_normal((1, self.model.bundle.style_dim), dtype=np.float32)
        self.backend.run(self.mlp_graph, {"style": codes})

    def _open_translator(self) -> None:
        """munit_rt's ONNX Runtime CPU backend (session creation timed as the build) and a Translator on it."""
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
