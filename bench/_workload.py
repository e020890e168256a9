"""The model under test (ModelInfo), its stage inputs (Workload) and the FLOPs of its calls, for every family.

    family    stages timed (besides the job)             job (host arrays in and out)
    munit     encode: content_encoder_a, decode: decoder_b  Translator.translate: ceil(B/S) images x S styles
    cyclegan  generate: generator_a2b (else the bundle's     Translator.generate(images, direction): B images
              one direction)
    stargan   generate: generator, with one label for the    Translator.generate(images, labels): B images
              whole batch (the first label of the sweep)

MUNIT's encode/decode have no counterpart in the generator-only families: their rows mark them n/a.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np


class Unavailable(Exception):
    """This backend cannot run here; the message says why (reported as skipped, not failed)."""


@dataclass
class ModelInfo:
    """The bundle under test, its source checkpoint(s) (for the PyTorch runners) and the graphs timed."""

    bundle: Any  # munit_rt.bundle.Bundle
    checkpoint: Path | None
    checkpoint_problem: str | None = None  # why the PyTorch runners cannot load the checkpoint
    source: str = "a"
    target: str = "b"
    checkpoints: tuple[Path, ...] = ()  # CycleGAN/StarGAN: every source file (an upstream G_A/G_B pair is two)
    check_sha256: bool = True  # CycleGAN/StarGAN: refuse checkpoints whose sha256 is not the manifest's

    @property
    def manifest(self) -> dict:
        return self.bundle.manifest

    @property
    def family(self) -> str:
        return self.bundle.family

    @property
    def generator_only(self) -> bool:
        return self.family != "munit"

    @property
    def stages(self) -> tuple[str, ...]:
        """The stages timed before the job; the last is the one checked for parity (its output fetched)."""
        return ("generate",) if self.generator_only else ("encode", "decode")

    @property
    def direction(self) -> str:
        """CycleGAN: a2b when exported, else the bundle's one direction; MUNIT: source2target."""
        if self.family == "cyclegan":
            directions = self.bundle.directions
            wanted = f"{self.source}2{self.target}"
            return wanted if wanted in directions else next(iter(directions))
        return f"{self.source}2{self.target}"

    @property
    def generator_graph(self) -> str:
        if self.family == "cyclegan":
            return self.bundle.directions[self.direction]["graph"]
        return "generator"

    @property
    def generator_key(self) -> str:
        """The generator of the timed graph as load_generators keys it (G_A, G_B, G)."""
        return self.manifest["graphs"][self.generator_graph].get("generator", "G")

    @property
    def graphs(self) -> tuple[str, ...]:
        """MUNIT: (content encoder, style MLP, decoder); the others: (generator,)."""
        if self.generator_only:
            return (self.generator_graph,)
        return f"content_encoder_{self.source}", f"style_mlp_{self.target}", f"decoder_{self.target}"

    @property
    def stage_graphs(self) -> dict[str, str]:
        if self.generator_only:
            return {"generate": self.generator_graph}
        return dict(zip(("encode", "mlp", "decode"), self.graphs))

    @property
    def multiple(self) -> int:
        return int(self.manifest.get("spatial_multiple") or self.manifest["preprocess"]["multiple"])

    def channels(self, side: str) -> int:
        """Image channels of the input ("in") or output ("out") of the timed direction."""
        if self.family == "stargan":
            return int(self.manifest["channels"])
        if self.family == "cyclegan":
            entry, source = self.bundle.directions[self.direction], side == "in"
            domain = entry.get("source_domain" if source else "target_domain", self.direction[0 if source else 2])
            return int(self.manifest["domains"][domain]["channels"])
        return int(self.manifest["domains"][self.source if side == "in" else self.target]["channels"])

    def label(self) -> tuple[str, np.ndarray] | None:
        """StarGAN: (attribute, [c_dim] vector) of the first sweep label (upstream create_labels from zeros)."""
        if self.family != "stargan":
            return None
        from munit_rt.family.labels import LabelSpace

        attrs, labels = LabelSpace.from_manifest(self.bundle.labels).sweep(None)
        return attrs[0], np.ascontiguousarray(labels[0], dtype=np.float32)

    def tensor_shapes(self, batch: int, size: int) -> dict[str, tuple[int, ...]]:
        """Shapes of every graph input name of this family at (batch, size)."""
        shapes = {"image": (batch, self.channels("in"), size, size)}
        if self.family == "stargan":
            shapes["label"] = (batch, int(self.bundle.labels["c_dim"]))
        if not self.generator_only:
            m, h = self.manifest, size // self.multiple
            shapes.update(content=(batch, int(m["content_channels"]), h, h),
                          adain_params=(batch, int(m["adain"]["total"])), style=(batch, int(m["style_dim"])))
        return shapes

    def load_generators(self) -> dict[str, Any]:
        """A fresh copy of the generators (each runner casts and moves its own)."""
        if self.checkpoint_problem:
            raise Unavailable(self.checkpoint_problem)
        if self.generator_only:
            return self._load_family_generators()
        from munit_rt.training.checkpoint import read_checkpoint
        from munit_rt.training.config import config_from_dict
        from munit_rt.training.registry import load_generators

        config = config_from_dict(self.manifest["config"], source=f"bundle {self.bundle.path} manifest.json config")
        return load_generators(read_checkpoint(self.checkpoint, config=config))

    def _load_family_generators(self) -> dict[str, Any]:
        """As munit_rt.backends.torch does: read_checkpoint, the sha256 check, registry.load_generators."""
        from munit_rt.training.checkpoint import read_checkpoint
        from munit_rt.training.config import config_from_dict
        from munit_rt.training.registry import load_generators

        label = f"bundle {self.bundle.path}"
        config = config_from_dict(self.manifest["config"], source=f"{label} manifest.json config",
                                         family=self.family)
        paths = self.checkpoints or (self.checkpoint,)
        ckpt = read_checkpoint(paths[0] if len(paths) == 1 else tuple(paths), config=config)
        expected = (self.manifest.get("source_checkpoint") or {}).get("sha256")
        if self.check_sha256 and expected and ckpt.sha256 != expected:
            raise Unavailable(f"{', '.join(map(str, paths))} is not what the bundle was exported from (sha256 "
                              "differs from manifest.json; pass --checkpoint)")
        return load_generators(ckpt)


@dataclass
class Workload:
    """Host inputs of one batch size, shared by every runner: K rotating sets of each (MUNIT's content,
    adain and job_codes are empty for the generator-only families, `labels` is StarGAN's)."""

    batch: int
    styles: int                    # styles per job image (1 for the generator-only families)
    images: list[np.ndarray]       # [B, C, S, S] in [-1, 1]
    content: list[np.ndarray]      # [B, Cc, S/m, S/m]
    adain: list[np.ndarray]        # [B, P]
    job_images: list[np.ndarray]   # [N, C, S, S], N = ceil(B / styles)
    job_codes: list[np.ndarray]    # [styles, style_dim]
    labels: list[np.ndarray] = field(default_factory=list)  # StarGAN: [B, c_dim], one label repeated

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
    rng = np.random.default_rng([seed, batch, size])
    cin = model.channels("in")

    def normal(*shape: int) -> np.ndarray:
        return rng.standard_normal(shape, dtype=np.float32)

    def uniform(*shape: int) -> np.ndarray:
        return rng.uniform(-1.0, 1.0, shape).astype(np.float32)

    if model.generator_only:  # the job generates from the stage's own host images: B in, B out
        images = [uniform(batch, cin, size, size) for _ in range(rotate)]
        label = model.label()
        labels = [np.repeat(label[1][None], batch, axis=0) for _ in range(rotate)] if label else []
        return Workload(batch, 1, images, [], [], images, [], labels)
    m = model.manifest
    cc, h = int(m["content_channels"]), size // model.multiple
    params, style_dim = int(m["adain"]["total"]), int(m["style_dim"])
    n = job_images_for(batch, styles)
    return Workload(batch, styles, [uniform(batch, cin, size, size) for _ in range(rotate)],
                    [normal(batch, cc, h, h) for _ in range(rotate)], [normal(batch, params) for _ in range(rotate)],
                    [uniform(n, cin, size, size) for _ in range(rotate)], [normal(styles, style_dim) for _ in range(rotate)])


def pair_indices(count: int, styles: int) -> tuple[np.ndarray, np.ndarray]:
    """(image index, style index) of every output row, row r = image * styles + style (Translator order)."""
    return np.divmod(np.arange(count * styles), styles)


# -------------------------------------------------------------------------------------------------- FLOPs


def graph_flops_at(model: ModelInfo, cache: dict, graph: str, batch: int, size: int) -> int:
    """Exact FLOPs of one call of `graph` on `batch` rows at `size` (cached: cache[(graph, batch, size)])."""
    from munit_rt.export.flops import graph_flops

    key = (graph, batch, size)
    if key not in cache:
        shapes = model.tensor_shapes(batch, size)
        spec = model.bundle.graphs[graph]
        cache[key] = graph_flops(model.bundle.graph_path(graph, "fp32"),
                                 {t.name: shapes[t.name] for t in spec.inputs})
    return cache[key].total


def stage_flops(model: ModelInfo, cache: dict, work: Workload, size: int) -> dict[str, int]:
    """FLOPs of one call of each stage and of one job at the workload's batch."""
    batch = work.batch
    calls = [min(batch, work.job_outputs - start) for start in range(0, work.job_outputs, batch)]
    if model.generator_only:
        graph = model.generator_graph
        return {"generate": graph_flops_at(model, cache, graph, batch, size),
                "job": sum(graph_flops_at(model, cache, graph, rows, size) for rows in calls)}
    enc, mlp, dec = model.graphs
    return {"encode": graph_flops_at(model, cache, enc, batch, size),
            "decode": graph_flops_at(model, cache, dec, batch, size),
            "job": graph_flops_at(model, cache, enc, work.job_count, size)
            + graph_flops_at(model, cache, mlp, work.styles, size)
            + sum(graph_flops_at(model, cache, dec, rows, size) for rows in calls)}


def flops_summary(model: ModelInfo, size: int) -> dict[str, Any]:
    """FLOPs per image (per code for the MLP) of the graphs timed, and what was counted as 0."""
    cache: dict = {}
    if model.generator_only:
        per = {"generate_per_image": graph_flops_at(model, cache, model.generator_graph, 1, size)}
    else:
        enc, mlp, dec = model.graphs
        per = {name: graph_flops_at(model, cache, graph, 1, size) for name, graph in
               (("encode_per_image", enc), ("mlp_per_code", mlp), ("decode_per_image", dec))}
    zero: dict[str, int] = {}
    for count in cache.values():
        for op, n in count.uncounted.items():
            zero[op] = zero.get(op, 0) + n
    per["uncounted_ops"] = zero
    per["note"] = ("Conv, ConvTranspose, Gemm and MatMul counted exactly at these shapes (2 FLOPs per "
                   f"multiply-add); {sum(zero.values())} other nodes ({', '.join(sorted(zero))}) counted as 0")
    if not model.generator_only and model.manifest["graphs"][dec].get("upsample") == "subpixel":
        per["note"] += ("; the decoder is the exported sub-pixel graph, which needs fewer FLOPs than the training "
                        "decoder the PyTorch backends run, so their GFLOP/s are understated by that ratio")
    per["note"] += ("; every backend is credited with the FLOPs of the bundle's graphs, also ONNX Runtime on the CPU, "
                    "which runs the wide 3x3 convs as Winograd F(4x4, 3x3) with fewer (munit_rt/winograd.py; "
                    "bench/translate_cpu.py counts what it executes)")
    return per
