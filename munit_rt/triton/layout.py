"""Which Triton models a bundle becomes: one model per graph, plus the ensembles a family defines.

The family decides (munit_rt.families.X.triton_layout): MUNIT chains its graphs into ensembles per direction
(image + style code -> output, and a guided one: image + reference image -> output), since an ensemble
cannot draw noise; CycleGAN and StarGAN serve their end-to-end generators as they are. This module holds
the shapes they build with. The batch dimension is implicit (max_batch_size > 0): row i of every input belongs
to request row i, so an ensemble call translates image i with style (or reference) i.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from munit_rt.errors import BundleError, InputError
from munit_rt.triton.pbtxt import TRITON_DTYPES

DIRECTIONS = ("a2b", "b2a")


@dataclass(frozen=True)
class Tensor:
    name: str
    dtype: str                 # manifest dtype, e.g. "float32"
    dims: tuple[int, ...]      # without the batch dim; -1 = dynamic


@dataclass(frozen=True)
class ModelSpec:
    """One bundle graph served as one Triton model."""

    name: str
    graph: str
    inputs: tuple[Tensor, ...]
    outputs: tuple[Tensor, ...]

    def tensor(self, name: str) -> Tensor:
        for t in self.inputs + self.outputs:
            if t.name == name:
                return t
        raise BundleError(f"graph '{self.graph}' has no tensor '{name}'")


@dataclass(frozen=True)
class Step:
    model: str
    input_map: dict[str, str]   # model input name -> ensemble tensor name
    output_map: dict[str, str]  # model output name -> ensemble tensor name


@dataclass(frozen=True)
class EnsembleSpec:
    name: str
    inputs: tuple[Tensor, ...]
    outputs: tuple[Tensor, ...]
    steps: tuple[Step, ...]
    description: str = ""


@dataclass(frozen=True)
class Layout:
    models: tuple[ModelSpec, ...]
    ensembles: tuple[EnsembleSpec, ...] = field(default_factory=tuple)


def graph_tensors(bundle: Any, graph: str) -> tuple[tuple[Tensor, ...], tuple[Tensor, ...]]:
    """The graph's inputs and outputs with the batch dim dropped and symbolic dims as -1."""
    spec = bundle.graphs.get(graph)
    if spec is None:
        raise BundleError(f"the bundle has no graph '{graph}' (graphs: {', '.join(sorted(bundle.graphs))})")

    def convert(tensor) -> Tensor:
        if not isinstance(tensor.shape[0], str):
            raise BundleError(f"graph '{graph}': tensor '{tensor.name}' has shape {list(tensor.shape)}; Triton "
                              "batching needs a dynamic first (batch) dim")
        if tensor.dtype not in TRITON_DTYPES:
            raise BundleError(f"graph '{graph}': tensor '{tensor.name}' has dtype {tensor.dtype!r}, which has no "
                              "Triton data type here")
        return Tensor(tensor.name, tensor.dtype, tuple(-1 if isinstance(d, str) else int(d) for d in tensor.shape[1:]))

    return tuple(map(convert, spec.inputs)), tuple(map(convert, spec.outputs))


def graph_model(bundle: Any, prefix: str, graph: str) -> ModelSpec:
    """The Triton model serving one graph, named <prefix>_<graph>."""
    inputs, outputs = graph_tensors(bundle, graph)
    return ModelSpec(f"{prefix}_{graph}", graph, inputs, outputs)


def renamed(tensor: Tensor, name: str) -> Tensor:
    return Tensor(name, tensor.dtype, tensor.dims)


def family_layout(bundle: Any, direction: str, prefix: str) -> Layout:
    """The bundle family's layout for --direction a2b, b2a or both."""
    if direction not in (*DIRECTIONS, "both"):
        raise InputError(f"--direction must be a2b, b2a or both, got {direction!r}")
    directions = tuple(DIRECTIONS) if direction == "both" else (direction,)
    return bundle.spec.triton_layout(bundle, directions, prefix)
