"""PyTorch reference backend: runs the bundle's source checkpoint through the `training` modules.

Slow, CPU fp32, and needs torch; it exists to check the exported graphs against the model they came
from. torch and `training` are imported in `_open` only.
"""
from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import numpy as np

from munit_rt.backends.base import Backend
from munit_rt.bundle import Bundle, GraphSpec
from munit_rt.errors import BackendUnavailable, BundleError

INSTALL_HINT = "pip install 'munit-rt[train]'"


class TorchBackend(Backend):
    name = "torch"
    install_hint = INSTALL_HINT

    def __init__(self, bundle: Bundle, precision: str = "fp32", checkpoint: str | Path | None = None,
                 trust: bool = False):
        if precision != "fp32":
            raise BackendUnavailable("torch", f"the reference backend runs fp32 only, not {precision}",
                                     hint="pass --precision fp32")
        super().__init__(bundle, precision)
        source = bundle.manifest.get("source_checkpoint") or {}
        self.checkpoint = Path(checkpoint) if checkpoint is not None else Path(source.get("path", ""))
        self._expected_sha256 = source.get("sha256")
        self._trust = trust
        self._gens: dict[str, Any] = {}

    @classmethod
    def unavailable_reason(cls) -> str | None:
        return None if importlib.util.find_spec("torch") else "torch is not installed"

    def _open(self) -> None:
        try:
            import torch  # noqa: F401
        except ImportError as exc:
            raise BackendUnavailable("torch", f"cannot import torch ({exc})", hint=INSTALL_HINT) from None
        from training.checkpoint import file_sha256, load_generators, read_checkpoint
        from training.config import config_from_dict

        label = f"bundle {self.bundle.path}"
        if not self.checkpoint.is_file():
            raise BundleError(f"{label}: its source checkpoint {self.checkpoint} is not there; pass the checkpoint "
                              "it was exported from (checkpoint=...)")
        if self._expected_sha256 and file_sha256(self.checkpoint) != self._expected_sha256:
            raise BundleError(f"{label}: checkpoint {self.checkpoint} is not the file the bundle was exported from "
                              "(sha256 differs from manifest.json)")
        config = config_from_dict(self.bundle.manifest["config"], source=f"{label} manifest.json config")
        ckpt = read_checkpoint(self.checkpoint, config=config, trust=self._trust)
        self._gens = load_generators(ckpt)

    def _run(self, graph: GraphSpec, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        import torch

        gen = self._gens[graph.domain]
        x = {name: torch.from_numpy(np.ascontiguousarray(value)) for name, value in feeds.items()}
        with torch.inference_mode():
            if graph.role == "content_encoder":
                out = gen.enc_content(x["image"])
            elif graph.role == "style_encoder":
                out = gen.enc_style(x["image"]).flatten(1)
            elif graph.role == "style_mlp":
                out = gen.mlp(x["style"])
            elif graph.role == "decoder":
                out = gen.dec(x["content"], x["adain_params"])
            else:
                raise BundleError(f"bundle {self.bundle.path}: graph role '{graph.role}' unknown to the torch backend")
        return {graph.outputs[0].name: out.numpy().astype(np.float32, copy=False)}

    def _close(self) -> None:
        self._gens = {}
