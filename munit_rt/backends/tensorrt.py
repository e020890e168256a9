"""TensorRT backend: one engine per graph, built and cached on first use, run through cuda-python.

`run(graph, feeds)` takes numpy arrays or DeviceArrays (values this backend returned with to_host=False, or
uploaded with to_device) and fills the engine's input buffers from either; outputs are downloaded, or with
to_host=False copied device-to-device into a DeviceArray that outlives the engine's next call. `take` gathers
rows on the device (tensorrt.runner.gather_plan: one copy per run of rows, doubling for repeats), so a family's
job, written against the backend contract, keeps an image's content code on the GPU while its styles decode.

Everything is queued on one CUDA stream shared by all engines, so the only host synchronisations are the
downloads. Engines and buffers are sized for the optimisation profile (ProfileOptions, the same options as
`munit-rt build`); `max_batch` tells jobs the largest batch, and an image larger than the profile's max size is
refused with the option to rebuild with.
"""
from __future__ import annotations

import importlib.util
import sys
import weakref
from pathlib import Path
from typing import Any, Callable

import numpy as np

from munit_rt.backends.base import Backend
from munit_rt.errors import InputError
from munit_rt.tensorrt import TENSORRT_HINT, cuda_check
from munit_rt.tensorrt import runner as trt_runner
from munit_rt.tensorrt.builder import ensure_engines
from munit_rt.tensorrt.profiles import ProfileOptions, resolve
from munit_rt.tensorrt.runner import DeviceArray, EngineRunner, array_nbytes, gather_plan


class TensorRTBackend(Backend):
    name = "tensorrt"
    install_hint = TENSORRT_HINT

    def __init__(self, bundle: Any, precision: str = "fp32", profile: ProfileOptions | None = None,
                 workspace_mib: int | None = None, progress: Callable[[str], None] | None = None):
        super().__init__(bundle, precision)
        self.profile_options = profile or ProfileOptions()
        self.resolved = resolve(self.profile_options, bundle)  # option errors before opening
        self._workspace_mib = workspace_mib
        self._progress = progress
        self._runners: dict[str, EngineRunner] = {}
        self._pool: dict[int, list[int]] = {}  # nbytes -> free device buffers of dropped values
        self._stream: Any = None
        self._cudart: Any = None
        self._trt_version = "?"

    @classmethod
    def unavailable_reason(cls) -> str | None:
        if importlib.util.find_spec("tensorrt") is None:
            return "the 'tensorrt' Python package is not installed"
        if importlib.util.find_spec("cuda") is None:
            return "the 'cuda-python' package is not installed"
        if sys.platform.startswith("linux") and not Path("/dev/nvidiactl").exists():
            return "no NVIDIA GPU is visible (/dev/nvidiactl is missing)"
        return None

    @property
    def device(self) -> str:
        return f"cuda (TensorRT {self._trt_version}, {self.precision})"

    @property
    def max_batch(self) -> int:
        """The largest batch the engines take; callers cut their batches to this."""
        return self.resolved.batch[2]

    # -- Backend hooks -------------------------------------------------------------------------------
    def _open(self) -> None:
        trt = trt_runner._import_tensorrt()
        self._cudart = trt_runner._import_cudart()
        self._trt_version = str(trt.__version__)
        self._stream = cuda_check(self._cudart, self._cudart.cudaStreamCreate(), "cudaStreamCreate")

    def _run(self, graph: Any, feeds: dict[str, Any]) -> dict[str, Any]:
        runner = self._execute(graph.name, feeds)
        outputs = {}
        for name in runner.output_names:  # kept past the engine's next call
            shape = runner.tensor_shape(name)
            value = self._device_array(shape, runner.tensor(name).dtype, name)
            self._copy_rows(value, 0, runner.tensor(name), 0, shape[0], value.row_bytes)
            outputs[name] = value
        return outputs

    def _run_to_host(self, graph: Any, feeds: dict[str, Any]) -> dict[str, np.ndarray]:
        if all(isinstance(v, np.ndarray) for v in feeds.values()):
            return self.runner(graph.name).run(feeds)  # host in, host out (chunks batches above the max)
        runner = self._execute(graph.name, feeds)
        views = {name: runner.download_async(name) for name in runner.output_names}
        runner.sync()
        return {name: view.copy() for name, view in views.items()}

    def _execute(self, graph: str, feeds: dict[str, Any]) -> EngineRunner:
        """Fill the engine's inputs from host arrays (uploads) or device values (device copies), then enqueue."""
        runner = self.runner(graph)
        for name, value in feeds.items():
            if isinstance(value, DeviceArray):
                runner.set_input_shape(name, value.shape)
                self._copy_rows(runner.tensor(name), 0, value, 0, value.shape[0], value.row_bytes)
            else:
                runner.upload(name, np.ascontiguousarray(value, dtype=runner.tensor(name).dtype))
        runner.execute()
        return runner

    def _close(self) -> None:
        for runner in self._runners.values():
            runner.close()
        self._runners.clear()
        if self._stream is not None:
            self._cudart.cudaStreamSynchronize(self._stream)
        for pointers in self._pool.values():
            for pointer in pointers:
                self._cudart.cudaFree(pointer)
        self._pool.clear()
        if self._stream is not None:
            self._cudart.cudaStreamDestroy(self._stream)
            self._stream = None

    def runner(self, graph: str) -> EngineRunner:
        """The active runner of `graph`, building its engine first if the cache has none current."""
        self.open()
        runner = self._runners.get(graph)
        if runner is None:
            kwargs = {"progress": self._progress} if self._progress is not None else {}
            path = ensure_engines(self.bundle, self.precision, self.profile_options, graphs=[graph],
                                  workspace_mib=self._workspace_mib, **kwargs)[graph]
            runner = EngineRunner(path.read_bytes(), name=f"{graph} ({self.precision})", stream=self._stream)
            self._runners[graph] = runner.activate()
        return runner

    # -- device values ------------------------------------------------------------------------------
    def _device_array(self, shape: tuple[int, ...], dtype: Any, name: str) -> DeviceArray:
        """A device value from the pool. When Python drops it, its buffer goes back to the pool: reusing it is
        safe without a synchronisation because every read of it was queued earlier on the same stream."""
        nbytes = array_nbytes(shape, dtype)
        free = self._pool.get(nbytes)
        pointer = free.pop() if free else int(cuda_check(self._cudart, self._cudart.cudaMalloc(nbytes),
                                                         f"cudaMalloc({nbytes})"))
        value = DeviceArray(name, shape, dtype, pointer)
        weakref.finalize(value, self._release, nbytes, pointer)
        return value

    def _release(self, nbytes: int, pointer: int) -> None:
        if self._stream is None:  # the backend was closed first: nobody queues work any more
            self._cudart.cudaFree(pointer)
        else:
            self._pool.setdefault(nbytes, []).append(pointer)

    def to_device(self, array: np.ndarray) -> DeviceArray:
        self.open()
        array = np.ascontiguousarray(array)
        value = self._device_array(array.shape, array.dtype, "uploaded")
        cuda_check(self._cudart, self._cudart.cudaMemcpyAsync(
            value.device_ptr, array.ctypes.data, array.nbytes, self._cudart.cudaMemcpyKind.cudaMemcpyHostToDevice,
            self._stream), "cudaMemcpyAsync(HostToDevice)")
        self.synchronize()  # the host array may be freed once we return
        return value

    def to_host(self, value: Any) -> np.ndarray:
        if not isinstance(value, DeviceArray):
            return np.asarray(value)
        out = np.empty(value.shape, value.dtype)
        self.synchronize()
        cuda_check(self._cudart, self._cudart.cudaMemcpy(out.ctypes.data, value.device_ptr, out.nbytes,
                                                         self._cudart.cudaMemcpyKind.cudaMemcpyDeviceToHost),
                   "cudaMemcpy(DeviceToHost)")
        return out

    def take(self, value: Any, rows: np.ndarray) -> Any:
        if not isinstance(value, DeviceArray):
            return np.asarray(value)[np.asarray(rows)]
        rows = np.asarray(rows).reshape(-1)
        if rows.size and (rows.min() < 0 or rows.max() >= value.shape[0]):
            raise InputError(f"row index out of range for a value of {value.shape[0]} rows")
        result = self._device_array((len(rows), *value.shape[1:]), value.dtype, f"{value.name}[rows]")
        for copy in gather_plan(rows):
            self._copy_rows(result, copy.dst_row, result if copy.from_self else value, copy.src_row, copy.rows,
                            value.row_bytes)
        return result

    def value_info(self, value: Any) -> tuple[tuple[int, ...], str]:
        if isinstance(value, DeviceArray):
            return value.shape, value.dtype.name
        return super().value_info(value)

    def synchronize(self) -> None:
        if self._stream is not None:
            cuda_check(self._cudart, self._cudart.cudaStreamSynchronize(self._stream), "cudaStreamSynchronize")

    def _copy_rows(self, dst: Any, dst_row: int, src: Any, src_row: int, rows: int, row_bytes: int) -> None:
        if rows:
            cuda_check(self._cudart, self._cudart.cudaMemcpyAsync(
                dst.device_ptr + dst_row * row_bytes, src.device_ptr + src_row * row_bytes, rows * row_bytes,
                self._cudart.cudaMemcpyKind.cudaMemcpyDeviceToDevice, self._stream),
                "cudaMemcpyAsync(DeviceToDevice)")
