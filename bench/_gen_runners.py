"""Generator-only runners (CycleGAN, StarGAN): one graph call per batch, and a job that is Translator.generate.

    generate(k)  the generator on images[k] (StarGAN: with labels[k], one label for the whole batch) already
                 on the backend's device; the output stays there (decode_numpy fetches it for the parity check)
    job(k)       job_images[k] (B host images) -> [B, C, H, W] host array, in generator calls of B rows:
                 munit_rt.Translator.generate itself for ONNX Runtime CPU and TensorRT (the backend's numpy
                 path), the same host-in/host-out loop written against the device for PyTorch and ONNX Runtime
                 CUDA (as their MUNIT jobs are)

Each class subclasses the MUNIT runner of its backend for the shared parts (module loading, sessions, engine
builds, device buffers, timing hooks) and replaces the stages.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from bench._gpu_runners import OrtCudaRunner, TensorRTRunner
from bench._runners import OrtCpuRunner, Runner, TorchRunner, _empty_cuda_cache
from bench._workload import ModelInfo, Workload


def generate_job(translator: Any, model: ModelInfo, work: Workload, k: int) -> np.ndarray:
    """Translator.generate on job set k, in batches of B: host arrays in, [N, C, H, W] out."""
    if model.family == "stargan":
        return translator.generate(work.job_images[k], work.labels[k], batch_size=work.batch)
    return translator.generate(work.job_images[k], model.direction, batch_size=work.batch)


def _chunks(work: Workload) -> list[tuple[int, int]]:
    return [(start, min(start + work.batch, work.job_count)) for start in range(0, work.job_count, work.batch)]


class TorchGenRunner(TorchRunner):
    """The generator module from the source checkpoint: eager FP32, FP16 channels-last, or torch.compile."""

    def _modules(self, gens: dict[str, Any], dtype: Any, fmt: Any) -> list[Any]:
        gen = gens[self.model.generator_key].to(device=self.device, dtype=dtype).eval()
        return [gen.to(memory_format=fmt)]

    def _set_modules(self, modules: list[Any]) -> None:
        (self.gen,) = modules

    def load(self, work: Workload) -> None:
        import torch

        Runner.load(self, work)
        self.images = [self._tensor(a) for a in work.images]
        self.labels = [self._tensor(a) for a in work.labels]
        self.out_host = torch.empty((work.job_count, self.model.channels("out"), *work.images[0].shape[2:]),
                                    dtype=torch.float32, pin_memory=self.device == "cuda")
        self.sync()

    def _call(self, images: Any, labels: Any) -> Any:
        return self.gen(images) if labels is None else self.gen(images, labels)

    def generate(self, k: int) -> Any:
        import torch

        with torch.inference_mode():
            self._step()
            return self._call(self.images[k], self.labels[k] if self.labels else None)

    def job(self, k: int) -> np.ndarray:
        import torch

        work = self.work
        with torch.inference_mode():
            images = self._tensor(work.job_images[k])
            labels = self._tensor(work.labels[k]) if work.labels else None
            for start, stop in _chunks(work):
                self._step()
                y = self._call(images[start:stop], labels[start:stop] if labels is not None else None)
                self.out_host[start:stop].copy_(y.float(), non_blocking=self.device == "cuda")
            self.sync()
        return self.out_host.numpy()

    def unload(self) -> None:
        Runner.unload(self)
        self.images = self.labels = []
        self.out_host = None
        _empty_cuda_cache(self.device)

    def close(self) -> None:
        self.gen = None
        _empty_cuda_cache(self.device)


class OrtCpuGenRunner(OrtCpuRunner):
    """munit_rt's ONNX Runtime CPU backend; the job is munit_rt.Translator.generate."""

    def open(self) -> None:
        self._open_translator()
        self.graph = self.model.generator_graph

    def generate(self, k: int) -> Any:
        feeds = {"image": self.work.images[k]}
        if self.work.labels:
            feeds["label"] = self.work.labels[k]
        return self.backend.run(self.graph, feeds)["output"]

    def job(self, k: int) -> np.ndarray:
        return generate_job(self.translator, self.model, self.work, k)


class OrtCudaGenRunner(OrtCudaRunner):
    """ONNX Runtime CUDA, I/O bound to torch CUDA tensors; the job: H2D, generator calls of B rows, D2H."""

    def open(self) -> None:
        self._open_sessions()
        self.graph = self.model.generator_graph

    def _feeds(self, images: Any, labels: Any) -> dict[str, Any]:
        return {"image": images} if labels is None else {"image": images, "label": labels}

    def load(self, work: Workload) -> None:
        import torch

        Runner.load(self, work)
        cuda = lambda a: torch.from_numpy(np.ascontiguousarray(a)).cuda()  # noqa: E731
        images, labels = [cuda(a) for a in work.images], [cuda(a) for a in work.labels]
        shape = (work.batch, self.model.channels("out"), *work.images[0].shape[2:])
        self.out = torch.empty(shape, device="cuda")
        self.gen_io = [self._bind(self.graph, self._feeds(x, labels[i] if labels else None), {"output": self.out})
                       for i, x in enumerate(images)]
        self.inputs = (images, labels)  # keep the bound tensors alive
        self.job_x = torch.empty(work.job_images[0].shape, device="cuda")
        self.job_labels = torch.empty(work.labels[0].shape, device="cuda") if work.labels else None
        self.job_out = torch.empty((work.job_count, *shape[1:]), device="cuda")
        self.out_host = torch.empty(self.job_out.shape, pin_memory=True)
        torch.cuda.synchronize()
        self.memory.sample()

    def generate(self, k: int) -> Any:
        self._run(self.graph, self.gen_io[k])
        return self.out

    def job(self, k: int) -> np.ndarray:
        import torch

        work = self.work
        self.job_x.copy_(torch.from_numpy(work.job_images[k]))  # pageable H2D: synchronous
        if self.job_labels is not None:
            self.job_labels.copy_(torch.from_numpy(work.labels[k]))
        torch.cuda.synchronize()
        for start, stop in _chunks(work):
            labels = self.job_labels[start:stop] if self.job_labels is not None else None
            io = self._bind(self.graph, self._feeds(self.job_x[start:stop], labels),
                            {"output": self.job_out[start:stop]})
            self._run(self.graph, io)
            io.synchronize_outputs()
            self.out_host[start:stop].copy_(self.job_out[start:stop], non_blocking=True)
        torch.cuda.synchronize()
        return self.out_host.numpy()

    def unload(self) -> None:
        import torch

        Runner.unload(self)
        self.gen_io = self.inputs = None
        self.out = self.job_x = self.job_labels = self.job_out = self.out_host = None
        torch.cuda.empty_cache()


class TensorRTGenRunner(TensorRTRunner):
    """munit_rt's TensorRT backend; generate re-points the engine at rotating device buffers, the job is
    munit_rt.Translator.generate on the backend (engine addresses restored first)."""

    def open(self) -> None:
        from munit_rt import Translator

        super().open()
        self.graph = self.model.generator_graph
        self.translator = Translator(self.model.bundle, backend=self.backend)

    def load(self, work: Workload) -> None:
        Runner.load(self, work)
        runner = self.runners[self.graph]
        self.buffers: list[Any] = []
        self.staged: list[np.ndarray] = []
        self.gen_inputs = []
        for k, images in enumerate(work.images):
            inputs = {"image": self._device_copy(runner, "image", images)}
            if work.labels:
                inputs["label"] = self._device_copy(runner, "label", work.labels[k])
            self.gen_inputs.append(inputs)
        self.sync()
        self.staged = []
        self.memory.sample()

    def generate(self, k: int) -> Any:
        self._execute(self.graph, self.gen_inputs[k])

    def decode_numpy(self, result: Any) -> np.ndarray:
        runner = self.runners[self.graph]
        view = runner.download_async("output")
        runner.sync()
        return view.copy()

    def job(self, k: int) -> np.ndarray:
        self._restore_addresses()
        return generate_job(self.translator, self.model, self.work, k)

    def sync(self) -> None:
        self.runners[self.graph].sync()
