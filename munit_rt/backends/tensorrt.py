"""TensorRT backend: one engine per graph, built and cached on first use, run through cuda-python.

`run(graph, feeds)` is the generic numpy path of every backend. `translate_batch(images, style_codes,
direction)` is the device-resident path for the Translator: it never copies the content code or the AdaIN
parameters to the host.

    per image chunk (<= max batch images):   H2D images -> content_encoder -> content rows stay on the GPU
    once per call:                           H2D style codes -> style_mlp -> AdaIN store on the GPU (S rows)
    per decoder batch (<= max batch pairs):  device-to-device row copies build the decoder inputs for
                                             (image, style) pairs, row r = image * S + style (decode_plan):
                                             content broadcast over the styles by doubling copies, AdaIN
                                             rows as one run per image; decoder -> D2H output rows

Everything is queued on one CUDA stream shared by all engines, so the only host synchronisation is the
download of each decoder batch. Engines and buffers are sized for the optimisation profile (ProfileOptions,
the same options as `munit-rt build`); batches are cut to its max batch, and an image larger than the profile's
max size is refused with the option to rebuild with.
"""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from typing import Any, Callable

import numpy as np

from munit_rt.backends.base import Backend
from munit_rt.errors import InputError
from munit_rt.tensorrt import TENSORRT_HINT, cuda_check
from munit_rt.tensorrt import runner as trt_runner
from munit_rt.tensorrt.builder import ensure_engines
from munit_rt.tensorrt.profiles import ProfileOptions, resolve
from munit_rt.tensorrt.runner import DeviceArray, EngineRunner, decode_plan

DIRECTIONS = {"a2b": ("a", "b"), "b2a": ("b", "a")}


class TensorRTBackend(Backend):
    name = "tensorrt"
    install_hint = TENSORRT_HINT

    def __init__(self, bundle: Any, precision: str = "fp32", profile: ProfileOptions | None = None,
                 workspace_mib: int | None = None, progress: Callable[[str], None] | None = None):
        super().__init__(bundle, precision)
        self.profile_options = profile or ProfileOptions()
        self.resolved = resolve(self.profile_options, bundle.manifest)  # option errors before opening
        self._workspace_mib = workspace_mib
        self._progress = progress
        self._runners: dict[str, EngineRunner] = {}
        self._adain_store: DeviceArray | None = None
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

    def _run(self, graph: Any, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return self.runner(graph.name).run(feeds)

    def _close(self) -> None:
        for runner in self._runners.values():
            runner.close()
        self._runners.clear()
        if self._adain_store is not None:
            self._adain_store.free()
            self._adain_store = None
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

    # -- device-resident translation -----------------------------------------------------------------
    def translate_batch(self, images: np.ndarray, style_codes: np.ndarray, direction: str = "a2b") -> np.ndarray:
        """N images x S shared style codes -> float32 [N, S, C, H, W], content and AdaIN kept on the GPU.

        images: float32 [N, C, H, W] in [-1, 1], H and W multiples of the bundle's spatial multiple and within
        the profile; style_codes: [S, style_dim]. Equals Translator.translate for shared style codes.
        """
        if direction not in DIRECTIONS:
            raise InputError(f"unknown direction {direction!r} (expected {' or '.join(DIRECTIONS)})")
        source, target = DIRECTIONS[direction]
        images = np.ascontiguousarray(images, dtype=np.float32)
        codes = np.ascontiguousarray(style_codes, dtype=np.float32)
        style_dim = int(self.bundle.manifest["style_dim"])
        if images.ndim != 4:
            raise InputError(f"images must be [N, C, H, W], got shape {list(images.shape)}")
        if codes.ndim != 2 or codes.shape[1] != style_dim:
            raise InputError(f"style codes must have shape [S, {style_dim}], got {list(codes.shape)}")
        n, s = images.shape[0], codes.shape[0]
        encoder, mlp, decoder = (self.runner(f"{role}_{domain}") for role, domain in
                                 (("content_encoder", source), ("style_mlp", target), ("decoder", target)))
        if n == 0 or s == 0:
            channels = int(self.bundle.manifest["domains"][target]["channels"])
            return np.zeros((n, s, channels, *images.shape[2:]), np.float32)

        store = self._fill_adain_store(mlp, codes)
        batch = self.max_batch
        outputs: np.ndarray | None = None
        for first in range(0, n, batch):
            count = min(batch, n - first)
            encoder.upload("image", images[first:first + count])
            encoder.execute()
            content = encoder.tensor("content")
            content_shape = encoder.tensor_shape("content")
            for start in range(first * s, (first + count) * s, batch):
                stop = min(start + batch, (first + count) * s)
                decoded = self._decode_rows(decoder, content, content_shape, store, first, s, start, stop)
                if outputs is None:
                    outputs = np.empty((n * s, *decoded.shape[1:]), np.float32)
                outputs[start:stop] = decoded
        return outputs.reshape(n, s, *outputs.shape[1:])

    def _fill_adain_store(self, mlp: EngineRunner, codes: np.ndarray) -> DeviceArray:
        """Run the style MLP over all codes (in max-batch chunks) into one device array of S AdaIN rows."""
        params = int(self.bundle.manifest["adain"]["total"])
        row_bytes = params * mlp.tensor("adain_params").dtype.itemsize
        needed = codes.shape[0] * row_bytes
        if self._adain_store is None or self._adain_store.nbytes < needed:
            if self._adain_store is not None:
                mlp.sync()  # the old store may still be read by queued copies
                self._adain_store.free()
            self._adain_store = DeviceArray(self._cudart, "adain_store", needed)
        for first in range(0, codes.shape[0], self.max_batch):
            chunk = codes[first:first + self.max_batch]
            mlp.upload("style", chunk)
            mlp.execute()
            mlp.copy_rows(self._adain_store, first, mlp.tensor("adain_params"), 0, len(chunk), row_bytes)
        return self._adain_store

    def _decode_rows(self, decoder: EngineRunner, content: Any, content_shape: tuple[int, ...], store: DeviceArray,
                     first_image: int, n_styles: int, start: int, stop: int) -> np.ndarray:
        rows = stop - start
        params = int(self.bundle.manifest["adain"]["total"])
        decoder.set_input_shape("content", (rows, *content_shape[1:]))
        decoder.set_input_shape("adain_params", (rows, params))
        targets = {"content": decoder.tensor("content"), "adain_params": decoder.tensor("adain_params")}
        if content.dtype != targets["content"].dtype:
            raise InputError(f"content encoder output is {content.dtype} but the decoder takes "
                             f"{targets['content'].dtype}; re-export the bundle")
        row_bytes = {"content": int(np.prod(content_shape[1:])) * content.dtype.itemsize,
                     "adain_params": params * targets["adain_params"].dtype.itemsize}
        for copy in decode_plan(first_image, n_styles, start, stop):
            source = {"content": content, "adain": store, "self": targets[copy.target]}[copy.source]
            decoder.copy_rows(targets[copy.target], copy.dst_row, source, copy.src_row, copy.rows,
                              row_bytes[copy.target])
        decoder.execute()
        view = decoder.download_async("output")
        decoder.sync()
        return view.copy()
