"""CUDA-only runners: ONNX Runtime CUDA with I/O binding, and munit_rt's TensorRT backend.

Both keep the stage inputs on the device (rotating preallocated buffers) and report device memory as the
drop in cudaMemGetInfo's free memory from before the backend was opened (their allocations bypass torch's
allocator, so torch.cuda.max_memory_allocated would not see them).

ONNX Runtime CUDA: I/O tensors are torch CUDA tensors bound by address (`io_binding().bind_input/bind_output`);
torch is synchronised before every ONNX Runtime run that reads what torch wrote, and ONNX Runtime synchronises
its own stream at the end of each run, so no run reads a buffer that is still being written.

The CycleGAN/StarGAN runners (bench/_gen_runners.py) subclass these two for the generator graph.

TensorRT: the engines come from `munit_rt.tensorrt.builder.prepare_engines` (timed: the engine build time,
or "cached" when current engines were found), built for batch 1..max(batches) at exactly the measured size.
Stage runs re-point the engine's input addresses at the rotating buffers (`set_tensor_address`) and restore
them before the job, which is `TensorRTBackend.translate_batch`, the device-resident translate path, with
its batch cut to the measured batch B.
"""
from __future__ import annotations

import time
from typing import Any

import numpy as np

from bench._runners import ModelInfo, Runner, Unavailable, Workload, pair_indices
from bench._timing import FreeMemoryTracker


class OrtCudaRunner(Runner):
    device = "cuda"
    memory_method = FreeMemoryTracker.method

    def __init__(self, model: ModelInfo, precision: str):
        super().__init__(model)
        self.precision = precision
        self.key, self.label = f"onnxruntime-cuda-{precision}", self.label_for(precision)

    @staticmethod
    def label_for(precision: str) -> str:
        return f"ONNX Runtime CUDA {precision.upper()} (I/O binding)"

    def open(self) -> None:
        self._open_sessions()
        self.enc_graph, self.mlp_graph, self.dec_graph = self.model.graphs

    def _open_sessions(self) -> None:
        """A CUDA session per graph of the model (session creation timed as the build)."""
        import onnxruntime
        import torch

        if not torch.cuda.is_available():
            raise Unavailable("its I/O buffers are torch CUDA tensors and torch sees no GPU")
        torch.cuda.init()
        torch.cuda.empty_cache()
        self.device_id = torch.cuda.current_device()
        self.memory = FreeMemoryTracker()
        options = onnxruntime.SessionOptions()
        options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3
        providers = [("CUDAExecutionProvider", {"device_id": self.device_id}), "CPUExecutionProvider"]
        started = time.perf_counter()
        self.sessions = {}
        for graph in self.model.graphs:
            path = self.model.bundle.graph_path(graph, self.precision)
            session = onnxruntime.InferenceSession(str(path), sess_options=options, providers=providers)
            if session.get_providers()[0] != "CUDAExecutionProvider":
                raise RuntimeError(f"{graph}: ONNX Runtime fell back to {session.get_providers()}")
            self.sessions[graph] = session
        self.build_s = time.perf_counter() - started
        self.build_note = "session creation"

    def _bind(self, graph: str, inputs: dict[str, Any], outputs: dict[str, Any]) -> Any:
        io = self.sessions[graph].io_binding()
        for name, tensor in inputs.items():
            io.bind_input(name, "cuda", self.device_id, np.float32, tuple(tensor.shape), tensor.data_ptr())
        for name, tensor in outputs.items():
            io.bind_output(name, "cuda", self.device_id, np.float32, tuple(tensor.shape), tensor.data_ptr())
        return io

    def _run(self, graph: str, io: Any) -> None:
        self.sessions[graph].run_with_iobinding(io)

    def load(self, work: Workload) -> None:
        import torch

        super().load(work)
        m = self.model.manifest
        cuda = lambda a: torch.from_numpy(np.ascontiguousarray(a)).cuda()  # noqa: E731
        images, content, adain = ([cuda(a) for a in arrays] for arrays in (work.images, work.content, work.adain))
        size = work.images[0].shape[2:]
        out_channels = int(m["domains"][self.model.target]["channels"])
        self.enc_out = torch.empty(content[0].shape, device="cuda")
        self.dec_out = torch.empty((work.batch, out_channels, *size), device="cuda")
        self.enc_io = [self._bind(self.enc_graph, {"image": x}, {"content": self.enc_out}) for x in images]
        self.dec_io = [self._bind(self.dec_graph, {"content": c, "adain_params": a}, {"output": self.dec_out})
                       for c, a in zip(content, adain)]
        self.inputs = (images, content, adain)  # keep the bound tensors alive
        n = work.job_count
        self.job_x = torch.empty(work.job_images[0].shape, device="cuda")
        self.job_codes = torch.empty(work.job_codes[0].shape, device="cuda")
        self.job_content = torch.empty((n, *content[0].shape[1:]), device="cuda")
        self.job_adain = torch.empty((work.styles, adain[0].shape[1]), device="cuda")
        self.job_enc_io = self._bind(self.enc_graph, {"image": self.job_x}, {"content": self.job_content})
        self.job_mlp_io = self._bind(self.mlp_graph, {"style": self.job_codes}, {"adain_params": self.job_adain})
        image_index, style_index = pair_indices(n, work.styles)
        self.image_index = torch.from_numpy(image_index).cuda()
        self.style_index = torch.from_numpy(style_index).cuda()
        self.out_host = torch.empty((work.job_outputs, out_channels, *size), pin_memory=True)
        torch.cuda.synchronize()
        self.memory.sample()

    def encode(self, k: int) -> Any:
        self._run(self.enc_graph, self.enc_io[k])
        return self.enc_out

    def decode(self, k: int) -> Any:
        self._run(self.dec_graph, self.dec_io[k])
        return self.dec_out

    def job(self, k: int) -> np.ndarray:
        import torch

        work = self.work
        self.job_x.copy_(torch.from_numpy(work.job_images[k]))  # pageable H2D: synchronous
        self.job_codes.copy_(torch.from_numpy(work.job_codes[k]))
        torch.cuda.synchronize()
        self._run(self.enc_graph, self.job_enc_io)
        self._run(self.mlp_graph, self.job_mlp_io)
        for start in range(0, work.job_outputs, work.batch):
            stop = min(start + work.batch, work.job_outputs)
            content = self.job_content.index_select(0, self.image_index[start:stop])
            adain = self.job_adain.index_select(0, self.style_index[start:stop])
            out = self.dec_out[:stop - start]
            torch.cuda.synchronize()  # the gathers (and the previous batch's download) are done
            io = self._bind(self.dec_graph, {"content": content, "adain_params": adain}, {"output": out})
            self._run(self.dec_graph, io)
            io.synchronize_outputs()
            self.out_host[start:stop].copy_(out, non_blocking=True)
        torch.cuda.synchronize()
        return self.out_host.numpy().reshape(work.job_count, work.styles, *self.out_host.shape[1:])

    def decode_numpy(self, result: Any) -> np.ndarray:
        return result.cpu().numpy()

    def sync(self) -> None:
        import torch

        torch.cuda.synchronize()

    def memory_peak(self) -> int | None:
        return self.memory.peak()

    def unload(self) -> None:
        import torch

        super().unload()
        self.enc_io = self.dec_io = self.inputs = self.job_enc_io = self.job_mlp_io = None
        self.enc_out = self.dec_out = self.job_x = self.job_codes = self.job_content = self.job_adain = None
        self.out_host = self.image_index = self.style_index = None
        torch.cuda.empty_cache()

    def close(self) -> None:
        self.sessions = {}


def _batch_limited(backend_class: type) -> type:
    """TensorRTBackend whose translate_batch cuts its image and decoder batches to `job_batch`."""

    class BatchLimitedTensorRT(backend_class):
        job_batch: int | None = None

        @property
        def max_batch(self) -> int:
            engine_max = super().max_batch
            return min(self.job_batch or engine_max, engine_max)

    return BatchLimitedTensorRT


class TensorRTRunner(Runner):
    device = "cuda"
    memory_method = FreeMemoryTracker.method

    def __init__(self, model: ModelInfo, precision: str, batches: list[int], size: int, rebuild: bool = False):
        super().__init__(model)
        self.precision, self.batches, self.size, self.rebuild = precision, batches, size, rebuild
        self.key, self.label = f"tensorrt-{precision}", f"TensorRT {precision.upper()}"

    def open(self) -> None:
        from munit_rt.backends.tensorrt import TensorRTBackend
        from munit_rt.tensorrt import runner as trt_runner
        from munit_rt.tensorrt.builder import BuildOptions, prepare_engines
        from munit_rt.tensorrt.profiles import ProfileOptions

        reason = TensorRTBackend.unavailable_reason()
        if reason:
            raise Unavailable(reason)
        if self.precision not in self.model.bundle.precisions:
            raise Unavailable(f"the bundle has no {self.precision} graphs (export with precision 'both')")
        self.cudart = trt_runner._import_cudart()  # the seam munit_rt's own backend uses
        self.memory = FreeMemoryTracker()
        max_batch = max(self.batches)
        self.profile = ProfileOptions(max_batch=max_batch, opt_batch=min(32, max_batch), min_size=self.size,
                                      opt_size=self.size, max_size=self.size)
        options = BuildOptions(precision=self.precision, profile=self.profile, graphs=self.model.graphs,
                               force=self.rebuild)
        started = time.perf_counter()
        records = prepare_engines(self.model.bundle, options, progress=lambda line: print(f"  {line}", flush=True))
        seconds = time.perf_counter() - started
        built = [r.graph for r in records if r.built]
        self.build_s = seconds if built else None
        self.build_note = (f"engine build of {', '.join(built)} (batch 1..{max_batch}, opt {self.profile.opt_batch}, "
                           f"{self.size}x{self.size})" if built else
                           "engines found in the bundle's cache (--rebuild-engines times a build)")
        self.backend = _batch_limited(TensorRTBackend)(self.model.bundle, self.precision, profile=self.profile)
        self.backend.open()
        self.runners = {graph: self.backend.runner(graph) for graph in self.model.graphs}
        if not self.model.generator_only:
            self.enc_graph, self.mlp_graph, self.dec_graph = self.model.graphs

    def _device_copy(self, runner: Any, name: str, array: np.ndarray) -> tuple[Any, tuple[int, ...]]:
        """A device buffer holding `array` (the copy is queued on the engines' stream; load() synchronises)."""
        from munit_rt.tensorrt import cuda_check
        from munit_rt.tensorrt.runner import DeviceArray

        host = np.ascontiguousarray(array, dtype=runner.tensor(name).dtype)
        buffer = DeviceArray(self.cudart, name, host.nbytes)
        self.buffers.append(buffer)
        self.staged.append(host)  # the source of a queued copy must outlive it
        cuda_check(self.cudart, self.cudart.cudaMemcpyAsync(buffer.device_ptr, host.ctypes.data, host.nbytes,
                                                            self.cudart.cudaMemcpyKind.cudaMemcpyHostToDevice,
                                                            runner.stream), "cudaMemcpyAsync")
        return buffer, host.shape

    def load(self, work: Workload) -> None:
        super().load(work)
        enc, dec = self.runners[self.enc_graph], self.runners[self.dec_graph]
        self.buffers: list[Any] = []
        self.staged: list[np.ndarray] = []
        self.enc_inputs = [{"image": self._device_copy(enc, "image", x)} for x in work.images]
        self.dec_inputs = [{"content": self._device_copy(dec, "content", c),
                            "adain_params": self._device_copy(dec, "adain_params", a)}
                           for c, a in zip(work.content, work.adain)]
        self.sync()
        self.staged = []
        self.memory.sample()

    def _execute(self, graph: str, inputs: dict[str, tuple[Any, tuple[int, ...]]]) -> None:
        runner = self.runners[graph]
        for name, (buffer, shape) in inputs.items():
            runner.set_input_shape(name, shape)
            runner.context.set_tensor_address(name, buffer.device_ptr)
        runner.execute()

    def _restore_addresses(self) -> None:
        for runner in self.runners.values():
            for name in runner.input_names:
                runner.context.set_tensor_address(name, runner.tensor(name).device_ptr)

    def encode(self, k: int) -> Any:
        self._execute(self.enc_graph, self.enc_inputs[k])

    def decode(self, k: int) -> Any:
        self._execute(self.dec_graph, self.dec_inputs[k])

    def decode_numpy(self, result: Any) -> np.ndarray:
        runner = self.runners[self.dec_graph]
        view = runner.download_async("output")
        runner.sync()
        return view.copy()

    def job(self, k: int) -> np.ndarray:
        self._restore_addresses()
        self.backend.job_batch = self.work.batch
        direction = f"{self.model.source}2{self.model.target}"
        return self.backend.translate_batch(self.work.job_images[k], self.work.job_codes[k], direction)

    def sync(self) -> None:
        self.runners[self.enc_graph].sync()

    def memory_peak(self) -> int | None:
        return self.memory.peak()

    def unload(self) -> None:
        self.sync()
        self._restore_addresses()
        for buffer in getattr(self, "buffers", []):
            buffer.free()
        self.buffers = []
        super().unload()

    def close(self) -> None:
        self.backend.close()
