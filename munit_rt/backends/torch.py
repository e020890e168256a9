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

    def __init__(self, bundle: Bundle, precision: str = "fp32",
                 checkpoint: str | Path | list[str | Path] | None = None,
                 trust: bool = False):
        if precision != "fp32":
            raise BackendUnavailable("torch", f"the reference backend runs fp32 only, not {precision}",
                                     hint="pass --precision fp32")
        super().__init__(bundle, precision)
        source = bundle.manifest.get("source_checkpoint") or {}
        # CycleGAN/StarGAN: every source file (an upstream G_A/G_B pair is two, the first given at export
        # first: the pair's sha256 depends on the order); `checkpoint` may be such a pair too
        if isinstance(checkpoint, (list, tuple)):
            self.checkpoints = [Path(p) for p in checkpoint]
        elif checkpoint is not None or not source.get("files"):
            self.checkpoints = [Path(checkpoint) if checkpoint is not None else Path(source.get("path", ""))]
        else:
            self.checkpoints = sorted((Path(f["path"]) for f in source["files"]),
                                      key=lambda p: str(p) != source.get("path"))
        self.checkpoint = self.checkpoints[0]
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
        if self.bundle.family != "munit":
            self._open_family()
            return
        from munit_rt.training.checkpoint import file_sha256, load_generators, read_checkpoint
        from munit_rt.training.config import config_from_dict

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

    def _open_family(self) -> None:
        """CycleGAN/StarGAN: training.checkpoint.read_any_checkpoint + training.registry.load_generators."""
        from munit_rt.training.checkpoint import read_any_checkpoint
        from munit_rt.training.config import family_config_from_dict
        from munit_rt.training.registry import load_generators

        label = f"bundle {self.bundle.path}"
        missing = [str(p) for p in self.checkpoints if not p.is_file()]
        if missing:
            raise BundleError(f"{label}: its source checkpoint {', '.join(missing)} is not there; pass the "
                              "checkpoint it was exported from (checkpoint=...)")
        config = family_config_from_dict(self.bundle.manifest["config"], source=f"{label} manifest.json config",
                                         family=self.bundle.family)
        paths = self.checkpoints[0] if len(self.checkpoints) == 1 else tuple(self.checkpoints)
        ckpt = read_any_checkpoint(paths, config=config, trust=self._trust)
        if self._expected_sha256 and ckpt.sha256 != self._expected_sha256:
            raise BundleError(f"{label}: checkpoint {', '.join(map(str, self.checkpoints))} is not what the bundle "
                              "was exported from (sha256 differs from manifest.json)")
        self._gens = load_generators(ckpt)

    def _run(self, graph: GraphSpec, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        import torch

        if self.bundle.family != "munit":  # the manifest names each graph's generator (G_A, G_B, G)
            gen = self._gens[self.bundle.manifest["graphs"][graph.name]["generator"]]
            x = [torch.from_numpy(np.ascontiguousarray(feeds[t.name])) for t in graph.inputs]
            by_name = dict(zip((t.name for t in graph.inputs), x))
            with torch.inference_mode():
                out = gen(by_name["image"], by_name["label"]) if "label" in by_name else gen(by_name["image"])
            return {graph.outputs[0].name: out.numpy().astype(np.float32, copy=False)}
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
