"""PyTorch backend: the bundle's source checkpoint run through the training modules, graph by graph.

It exists to check the exported graphs against the model they came from, and as the PyTorch rows of the
benchmarks: eager FP32, FP16 with channels-last memory, and `torch.compile` (CUDA graphs on a GPU with
mode="reduce-overhead"). Which module computes which graph is the family's graph split
(munit_rt.training.families.X `graphs`), the same one export traced, so this backend names no family.
torch and munit_rt.training are imported in `_open` only.
"""
from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import numpy as np

from munit_rt.backends.base import Backend
from munit_rt.bundle import Bundle
from munit_rt.bundle.schema import GraphSpec
from munit_rt.errors import BackendUnavailable, BundleError, InputError

INSTALL_HINT = "pip install 'munit-rt[train]'"
PRECISIONS = ("fp32", "fp16")


class TorchBackend(Backend):
    name = "torch"
    install_hint = INSTALL_HINT

    def __init__(self, bundle: Bundle, precision: str = "fp32", checkpoint: str | Path | list | None = None,
                 trust: bool = False, device: str = "cpu", channels_last: bool = False, compile: str | None = None):
        """`checkpoint`: the file(s) the bundle was exported from (default: the manifest's source paths);
        `device`: cpu, cuda or auto; precision fp16 casts weights and inputs to half (normalisations the family
        marks stay FP32, as in the FP16 graphs); `compile`: a torch.compile mode (default, reduce-overhead,
        max-autotune)."""
        if precision not in PRECISIONS:
            raise BackendUnavailable("torch", f"the PyTorch backend runs {' or '.join(PRECISIONS)}, not {precision}",
                                     hint="pass --precision fp32")
        super().__init__(bundle, precision)
        source = bundle.manifest.source
        if isinstance(checkpoint, (list, tuple)):
            self.checkpoints = [Path(p) for p in checkpoint]
        elif checkpoint is not None or not source.files:
            self.checkpoints = [Path(checkpoint) if checkpoint is not None else Path(source.path)]
        else:  # an upstream pair: the file given first at export first (the pair's sha256 depends on the order)
            self.checkpoints = sorted((Path(f.path) for f in source.files), key=lambda p: str(p) != source.path)
        self.checkpoint = self.checkpoints[0]
        self._trust, self._device_name = trust, device
        self.channels_last, self.compile_mode = channels_last, compile
        self._modules: dict[str, Any] = {}
        self._torch_device: Any = None

    @classmethod
    def unavailable_reason(cls) -> str | None:
        return None if importlib.util.find_spec("torch") else "torch is not installed"

    @property
    def device(self) -> str:
        name = str(self._torch_device or self._device_name)
        extras = [self.precision] + (["channels-last"] if self.channels_last else []) + \
            ([f"torch.compile {self.compile_mode}"] if self.compile_mode else [])
        return f"{name}, {', '.join(extras)}"

    def _open(self) -> None:
        try:
            import torch
        except ImportError as exc:
            raise BackendUnavailable("torch", f"cannot import torch ({exc})", hint=INSTALL_HINT) from None
        from munit_rt.training.checkpoint import read_checkpoint
        from munit_rt.training.config import config_from_dict
        from munit_rt.training.errors import TrainingError
        from munit_rt.training.registry import get_family, load_generators

        label = f"bundle {self.bundle.path}"
        missing = [str(p) for p in self.checkpoints if not p.is_file()]
        if missing:
            raise BundleError(f"{label}: its source checkpoint {', '.join(missing)} is not there; pass the "
                              "checkpoint it was exported from (checkpoint=...)")
        try:
            family = get_family(self.bundle.family)
            config = config_from_dict(dict(self.bundle.manifest.config), source="manifest.json config",
                                      family=family.name)
            paths = self.checkpoints[0] if len(self.checkpoints) == 1 else list(self.checkpoints)
            ckpt = read_checkpoint(paths, config=config, trust=self._trust)
            expected = self.bundle.manifest.source.sha256
            if expected and ckpt.sha256 != expected:
                raise BundleError(f"{label}: checkpoint {', '.join(map(str, self.checkpoints))} is not the file the "
                                  "bundle was exported from (sha256 differs from manifest.json)")
            gens = load_generators(ckpt)
        except TrainingError as exc:
            raise BundleError(f"{label}: {exc}") from None
        self._torch_device = torch.device("cuda" if self._device_name == "auto" and torch.cuda.is_available()
                                          else "cpu" if self._device_name == "auto" else self._device_name)
        half = self.precision == "fp16"
        for spec in family.graphs(gens, ckpt.config):
            if spec.name in self.bundle.graphs:
                module = spec.reference_module.to(self._torch_device).eval()
                if half:
                    module = family.to_half(module) if hasattr(family, "to_half") else module.half()
                if self.channels_last:
                    module = module.to(memory_format=torch.channels_last)
                self._modules[spec.name] = torch.compile(module, mode=self.compile_mode) if self.compile_mode \
                    else module

    def _run(self, graph: GraphSpec, feeds: dict[str, Any]) -> dict[str, Any]:
        import torch

        module = self._modules.get(graph.name)
        if module is None:
            raise InputError(f"graph '{graph.name}' has no module in this checkpoint's graph split")
        with torch.inference_mode():
            if self._cuda_graphs:
                torch.compiler.cudagraph_mark_step_begin()  # a replay may overwrite the previous step's outputs
            result = module(*[self.to_device(feeds[t.name]) for t in graph.inputs])
            results = result if isinstance(result, tuple) else (result,)
            if self._cuda_graphs:  # outputs kept past the next replay (a job keeps the content code)
                results = tuple(r.clone() for r in results)
        return {t.name: r for t, r in zip(graph.outputs, results)}

    @property
    def _cuda_graphs(self) -> bool:
        return bool(self.compile_mode) and self._torch_device is not None and self._torch_device.type == "cuda"

    # -- moving values -------------------------------------------------------------------------------
    def to_device(self, array: Any) -> Any:
        import torch

        if not isinstance(array, torch.Tensor):
            array = torch.from_numpy(np.ascontiguousarray(array))
        dtype = torch.float16 if self.precision == "fp16" and array.is_floating_point() else array.dtype
        tensor = array.to(self._torch_device or "cpu", dtype=dtype)
        if self.channels_last and tensor.dim() == 4:
            tensor = tensor.contiguous(memory_format=torch.channels_last)
        return tensor

    def to_host(self, value: Any) -> np.ndarray:
        import torch

        if isinstance(value, torch.Tensor):
            value = value.float() if value.is_floating_point() else value
            return value.cpu().numpy()
        return np.asarray(value)

    def take(self, value: Any, rows: np.ndarray) -> Any:
        import torch

        if not isinstance(value, torch.Tensor):
            return value[np.asarray(rows)]
        return value.index_select(0, torch.as_tensor(np.asarray(rows), device=value.device))

    def value_info(self, value: Any) -> tuple[tuple[int, ...], str]:
        if isinstance(value, np.ndarray):
            return super().value_info(value)
        # our own tensors: FP16 ones stand for the graphs' float32 I/O (the cast is this backend's business)
        return tuple(value.shape), "float32" if value.is_floating_point() else str(value.dtype).split(".")[-1]

    def synchronize(self) -> None:
        if self._torch_device is not None and self._torch_device.type == "cuda":
            import torch

            torch.cuda.synchronize(self._torch_device)

    def _close(self) -> None:
        self._modules = {}
