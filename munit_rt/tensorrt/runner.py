"""Run one serialized TensorRT engine through cuda-python (TensorRT >= 10 named-tensor API only).

Memory is allocated once per engine, for the profile maximum, and reused for every call:

    device  one cudaMalloc buffer per I/O tensor, sized for the max profile shape; its address is bound with
            context.set_tensor_address once, at activation (addresses never change afterwards)
    host    pinned (cudaMallocHost) staging buffers, allocated on a tensor's first host transfer only, so
            tensors that stay on the device (the content code between encoder and decoder) cost no pinned RAM

A call is: set_input_shape + H2D copy per input, execute_async_v3 on the stream, D2H copy per output, one
stream synchronize. Runners may share a stream, so work queued on several engines runs in order without
host synchronisation; `copy_rows` moves rows between device tensors (also across runners) on that stream.

Values that outlive one call (a job's content codes) are `DeviceArray`s: plain device buffers with a shape,
filled by device-to-device copies from an engine's output (`keep`), gathered by rows (`gather_plan`: the pure
part, which copies build `value[rows]`), or uploaded once.
"""
from __future__ import annotations

import ctypes
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from munit_rt.errors import InputError
from munit_rt.tensorrt import EngineBuildError, cuda_check, import_cudart, import_tensorrt


def _import_tensorrt():  # seams: tests replace these with fakes
    return import_tensorrt()


def _import_cudart():
    return import_cudart()


_LOGGERS: dict[int, Any] = {}


def trt_logger(trt) -> Any:
    """One process-wide WARNING logger per tensorrt module (TensorRT wants a logger to outlive its objects)."""
    logger = _LOGGERS.get(id(trt))
    if logger is None:
        logger = _LOGGERS[id(trt)] = trt.Logger(trt.Logger.WARNING)
    return logger


@dataclass
class TensorInfo:
    name: str
    is_input: bool
    dtype: np.dtype
    max_shape: tuple[int, ...]
    min_shape: tuple[int, ...] | None = None  # inputs only: the profile's bounds
    device_ptr: int = 0
    nbytes: int = 0
    host_ptr: int = 0  # pinned staging buffer, 0 until first host transfer


class EngineRunner:
    """One engine: deserialize, allocate, bind; `run(feeds)` for numpy I/O, or the device-level calls."""

    def __init__(self, plan: bytes, name: str = "engine", stream: Any = None):
        self.name = name
        self._plan = plan
        self._external_stream = stream
        self.stream: Any = None
        self.tensors: dict[str, TensorInfo] = {}
        self.engine = self.context = self._runtime = None
        self._trt = self._cudart = None
        self._host_busy = False  # a queued copy still reads/writes a pinned staging buffer

    # -- lifecycle -----------------------------------------------------------------------------------
    def activate(self) -> EngineRunner:
        trt, cudart = self._trt, self._cudart = _import_tensorrt(), _import_cudart()
        try:
            self._activate(trt, cudart)
        except BaseException:
            self.close()  # free whatever was allocated before the failure
            raise
        return self

    def _activate(self, trt, cudart) -> None:
        self._runtime = trt.Runtime(trt_logger(trt))
        self.engine = self._runtime.deserialize_cuda_engine(self._plan)
        if self.engine is None:
            raise EngineBuildError(f"TensorRT could not deserialize the engine for {self.name}; delete it so that "
                                   "it is rebuilt (it may come from another TensorRT version or GPU)")
        self._plan = None  # the engine holds its own copy
        self.context = self.engine.create_execution_context()
        self.stream = (self._external_stream if self._external_stream is not None
                       else cuda_check(cudart, cudart.cudaStreamCreate(), "cudaStreamCreate"))

        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        for name in names:
            is_input = self.engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT
            dtype = np.dtype(trt.nptype(self.engine.get_tensor_dtype(name)))
            info = TensorInfo(name, is_input, dtype, ())
            if is_input:
                low, _, high = self.engine.get_tensor_profile_shape(name, 0)
                info.min_shape, info.max_shape = tuple(low), tuple(high)
                self.context.set_input_shape(name, info.max_shape)
            self.tensors[name] = info
        for info in self.tensors.values():  # output sizes follow from the max input shapes
            if not info.is_input:
                info.max_shape = tuple(self.context.get_tensor_shape(info.name))
            info.nbytes = max(1, math.prod(info.max_shape)) * info.dtype.itemsize
            info.device_ptr = int(cuda_check(cudart, cudart.cudaMalloc(info.nbytes), f"cudaMalloc({info.nbytes})"))
            self.context.set_tensor_address(info.name, info.device_ptr)

    def close(self) -> None:
        cudart = self._cudart
        if cudart is None:
            return
        if self.stream is not None:
            cudart.cudaStreamSynchronize(self.stream)
        for info in self.tensors.values():
            if info.device_ptr:
                cudart.cudaFree(info.device_ptr)
            if info.host_ptr:
                cudart.cudaFreeHost(info.host_ptr)
            info.device_ptr = info.host_ptr = 0
        if self.stream is not None and self._external_stream is None:
            cudart.cudaStreamDestroy(self.stream)
        self.stream = self.context = self.engine = self._runtime = None
        self._cudart = None

    def __enter__(self) -> EngineRunner:
        return self.activate()

    def __exit__(self, *exc_info) -> None:
        self.close()

    # -- shapes --------------------------------------------------------------------------------------
    @property
    def input_names(self) -> list[str]:
        return [n for n, t in self.tensors.items() if t.is_input]

    @property
    def output_names(self) -> list[str]:
        return [n for n, t in self.tensors.items() if not t.is_input]

    def set_input_shape(self, name: str, shape: tuple[int, ...]) -> None:
        info = self._tensor(name)
        shape = tuple(int(d) for d in shape)
        low, high = info.min_shape or (), info.max_shape
        if len(shape) != len(high) or any(not lo <= d <= hi for lo, d, hi in zip(low, shape, high)):
            raise InputError(f"{self.name}: input '{name}' shape {list(shape)} is outside the engine's profile "
                             f"(min {list(low)}, max {list(high)}); rebuild with `munit-rt build` and a larger "
                             "--max-batch/--max-size, or use smaller batches")
        if not self.context.set_input_shape(name, shape):
            raise InputError(f"{self.name}: TensorRT refused shape {list(shape)} for input '{name}'")

    def tensor_shape(self, name: str) -> tuple[int, ...]:
        """The current shape (outputs: as implied by the input shapes set so far)."""
        return tuple(int(d) for d in self.context.get_tensor_shape(name))

    # -- transfers and execution (all asynchronous on self.stream) -------------------------------------
    def upload(self, name: str, array: np.ndarray) -> None:
        """Set the input's shape and queue its H2D copy through the pinned staging buffer."""
        info = self._tensor(name)
        self.set_input_shape(name, array.shape)
        if self._host_busy:  # never overwrite a staging buffer that a queued copy still reads
            self.sync()
        host = self._host_view(info, array.shape)
        np.copyto(host, array, casting="same_kind")
        self._memcpy(info.device_ptr, info.host_ptr, host.nbytes, "cudaMemcpyHostToDevice")

    def execute(self) -> None:
        if not self.context.execute_async_v3(int(self.stream)):
            raise InputError(f"{self.name}: TensorRT failed to enqueue the engine (see the TensorRT log above)")

    def download_async(self, name: str) -> np.ndarray:
        """Queue the D2H copy of a tensor's current contents; the returned pinned view is valid after sync()."""
        info = self._tensor(name)
        host = self._host_view(info, self.tensor_shape(name))
        self._memcpy(info.host_ptr, info.device_ptr, host.nbytes, "cudaMemcpyDeviceToHost")
        return host

    def sync(self) -> None:
        cuda_check(self._cudart, self._cudart.cudaStreamSynchronize(self.stream), "cudaStreamSynchronize")
        self._host_busy = False

    def copy_rows(self, dst: TensorInfo, dst_row: int, src: TensorInfo, src_row: int, rows: int,
                  row_bytes: int) -> None:
        """Queue a device-to-device copy of `rows` batch rows (`row_bytes` each) on this runner's stream.

        `dst`/`src` are TensorInfo of any runner sharing the stream (`runner.tensor(name)`) or a DeviceArray.
        """
        if rows < 0 or (dst_row + rows) * row_bytes > dst.nbytes or (src_row + rows) * row_bytes > src.nbytes:
            raise ValueError(f"row copy out of bounds: {src.name}[{src_row}:+{rows}] -> {dst.name}[{dst_row}:+{rows}]")
        if rows:
            self._memcpy(dst.device_ptr + dst_row * row_bytes, src.device_ptr + src_row * row_bytes,
                         rows * row_bytes, "cudaMemcpyDeviceToDevice")

    def tensor(self, name: str) -> TensorInfo:
        return self._tensor(name)

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """numpy in, numpy out: uploads, one execute, downloads, one synchronize.

        A batch larger than the profile's max batch (the same N on every input) runs in max-batch chunks.
        """
        missing = set(self.input_names) - set(feeds)
        if missing:
            raise InputError(f"{self.name}: missing inputs {sorted(missing)}")
        limit = min(self.tensors[name].max_shape[0] for name in self.input_names)
        batches = {np.shape(feeds[name])[0] if np.ndim(feeds[name]) else 0 for name in self.input_names}
        batch = batches.pop() if len(batches) == 1 else 0
        if batch > limit:
            parts = [self._run_once({name: feeds[name][i:i + limit] for name in self.input_names})
                     for i in range(0, batch, limit)]
            return {name: np.concatenate([part[name] for part in parts]) for name in self.output_names}
        return self._run_once(feeds)

    def _run_once(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        for name in self.input_names:
            self.upload(name, np.ascontiguousarray(feeds[name], dtype=self.tensors[name].dtype))
        self.execute()
        views = {name: self.download_async(name) for name in self.output_names}
        self.sync()
        return {name: view.copy() for name, view in views.items()}

    # -- internals -----------------------------------------------------------------------------------
    def _tensor(self, name: str) -> TensorInfo:
        if self.context is None:
            raise RuntimeError(f"{self.name}: runner is not active (call activate() first)")
        if name not in self.tensors:
            raise InputError(f"{self.name}: no tensor '{name}' (has: {', '.join(self.tensors)})")
        return self.tensors[name]

    def _host_view(self, info: TensorInfo, shape: tuple[int, ...]) -> np.ndarray:
        if not info.host_ptr:
            info.host_ptr = int(cuda_check(self._cudart, self._cudart.cudaMallocHost(info.nbytes),
                                           f"cudaMallocHost({info.nbytes})"))
        count = math.prod(shape)
        if count * info.dtype.itemsize > info.nbytes:
            raise InputError(f"{self.name}: tensor '{info.name}' shape {list(shape)} exceeds its buffer "
                             f"(max {list(info.max_shape)})")
        raw = (ctypes.c_byte * info.nbytes).from_address(info.host_ptr)
        return np.frombuffer(raw, dtype=info.dtype, count=count).reshape(shape)

    def _memcpy(self, dst: int, src: int, nbytes: int, kind: str) -> None:
        cudart = self._cudart
        self._host_busy = self._host_busy or kind != "cudaMemcpyDeviceToDevice"
        cuda_check(cudart, cudart.cudaMemcpyAsync(dst, src, nbytes, getattr(cudart.cudaMemcpyKind, kind), self.stream),
                   f"cudaMemcpyAsync({kind}, {nbytes} bytes)")


# ---------------------------------------------------------------------------------------- device values


class DeviceArray(TensorInfo):
    """A device buffer outside any engine holding one array (`shape`, `dtype`); its memory belongs to whoever
    allocated it (the TensorRT backend's pool)."""

    def __init__(self, name: str, shape: tuple[int, ...], dtype: np.dtype, device_ptr: int):
        dtype = np.dtype(dtype)
        super().__init__(name, False, dtype, tuple(shape), device_ptr=device_ptr,
                         nbytes=array_nbytes(shape, dtype))
        self.shape = tuple(shape)

    @property
    def row_bytes(self) -> int:
        return math.prod(self.shape[1:]) * self.dtype.itemsize


def array_nbytes(shape: tuple[int, ...], dtype: np.dtype) -> int:
    return max(1, math.prod(shape)) * np.dtype(dtype).itemsize


@dataclass(frozen=True)
class RowCopy:
    """Copy `rows` rows from source row `src_row` (of the gathered value, or with `from_self` of the result
    itself: doubling a repeated row) to result row `dst_row`."""

    src_row: int
    dst_row: int
    rows: int
    from_self: bool = False


def gather_plan(rows: np.ndarray) -> list[RowCopy]:
    """Device-to-device copies that build `value[rows]`: a run of consecutive source rows is one copy; a row
    repeated k times is copied once, then doubled inside the result (1 + log2(k) copies, not k), which is how
    a job broadcasts one image's content over its S styles."""
    rows = [int(r) for r in np.asarray(rows).reshape(-1)]
    if any(r < 0 for r in rows):
        raise ValueError("row indices must be >= 0")
    plan: list[RowCopy] = []
    i = 0
    while i < len(rows):
        j = i
        while j + 1 < len(rows) and rows[j + 1] == rows[i]:
            j += 1
        if j > i:  # repeated: once, then doubling
            plan.append(RowCopy(rows[i], i, 1))
            filled, run = 1, j - i + 1
            while filled < run:
                count = min(filled, run - filled)
                plan.append(RowCopy(i, i + filled, count, from_self=True))
                filled += count
            i = j + 1
            continue
        while j + 1 < len(rows) and rows[j + 1] == rows[j] + 1 and (j + 2 >= len(rows) or rows[j + 2] != rows[j + 1]):
            j += 1
        plan.append(RowCopy(rows[i], i, j - i + 1))
        i = j + 1
    return plan
