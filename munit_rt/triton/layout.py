"""Which Triton models a bundle becomes, per family: one model per graph, plus MUNIT's ensembles.

    family    models (<prefix>_<graph>)                                ensembles
    munit     content_encoder_d, style_encoder_d, style_mlp_d,         <prefix>_a2b, <prefix>_a2b_guided,
              decoder_d for the domains the directions use              <prefix>_b2a, <prefix>_b2a_guided
    cyclegan  generator_a2b, generator_b2a (those exported)            none: each graph is end to end
    stargan   generator (image + label)                                none

A MUNIT ensemble cannot draw noise, so the random style code is an input:

    <prefix>_a2b         image [C_a, H, W], style [style_dim]   -> output [C_b, H, W]
        content_encoder_a  image -> content
        style_mlp_b        style -> adain_params
        decoder_b          content, adain_params -> output
    <prefix>_a2b_guided  image [C_a, H, W], reference [C_b, H', W'] -> output [C_b, H, W]
        content_encoder_a  image -> content
        style_encoder_b    reference -> style
        style_mlp_b        style -> adain_params
        decoder_b          content, adain_params -> output

The batch dimension is implicit (max_batch_size > 0): row i of every input belongs to request row i, so an
ensemble call translates image i with style (or reference) i. b2a mirrors a2b.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

from munit_rt.errors import BundleError, InputError
from munit_rt.triton.pbtxt import TRITON_DTYPES

DIRECTIONS = {"a2b": ("a", "b"), "b2a": ("b", "a")}


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


def graph_tensors(manifest: Mapping[str, Any], graph: str) -> tuple[tuple[Tensor, ...], tuple[Tensor, ...]]:
    """The graph's inputs and outputs with the batch dim dropped and symbolic dims as -1."""
    entry = manifest.get("graphs", {}).get(graph)
    if not isinstance(entry, dict):
        raise BundleError(f"the bundle has no graph '{graph}' (graphs: "
                          f"{', '.join(sorted(manifest.get('graphs', {})))})")

    def convert(spec: Mapping[str, Any]) -> Tensor:
        shape = list(spec.get("shape", []))
        if not shape or not isinstance(shape[0], str):
            raise BundleError(f"graph '{graph}': tensor '{spec.get('name')}' has shape {shape}; Triton batching needs "
                              "a dynamic first (batch) dim")
        dtype = spec.get("dtype")
        if dtype not in TRITON_DTYPES:
            raise BundleError(f"graph '{graph}': tensor '{spec.get('name')}' has dtype {dtype!r}, which has no Triton "
                              "data type here")
        return Tensor(spec["name"], dtype, tuple(-1 if isinstance(d, str) else int(d) for d in shape[1:]))

    try:
        return tuple(map(convert, entry["inputs"])), tuple(map(convert, entry["outputs"]))
    except (KeyError, TypeError, ValueError) as exc:
        raise BundleError(f"graph '{graph}' entry is malformed ({type(exc).__name__}: {exc})") from None


def _model(manifest: Mapping[str, Any], prefix: str, graph: str) -> ModelSpec:
    inputs, outputs = graph_tensors(manifest, graph)
    return ModelSpec(f"{prefix}_{graph}", graph, inputs, outputs)


def _renamed(tensor: Tensor, name: str) -> Tensor:
    return Tensor(name, tensor.dtype, tensor.dims)


# ------------------------------------------------------------------------------------------------ families


def munit_layout(manifest: Mapping[str, Any], directions: tuple[str, ...], prefix: str) -> Layout:
    models: dict[str, ModelSpec] = {}

    def model(graph: str) -> ModelSpec:
        if graph not in models:
            models[graph] = _model(manifest, prefix, graph)
        return models[graph]

    ensembles = []
    for direction in directions:
        source, target = DIRECTIONS[direction]
        content, mlp = model(f"content_encoder_{source}"), model(f"style_mlp_{target}")
        style_encoder, decoder = model(f"style_encoder_{target}"), model(f"decoder_{target}")
        image, output = content.tensor("image"), decoder.tensor("output")
        encode = Step(content.name, {"image": "image"}, {"content": "content"})
        adain = Step(mlp.name, {"style": "style"}, {"adain_params": "adain_params"})
        decode = Step(decoder.name, {"content": "content", "adain_params": "adain_params"}, {"output": "output"})
        ensembles.append(EnsembleSpec(
            f"{prefix}_{direction}", (image, mlp.tensor("style")), (output,), (encode, adain, decode),
            f"{direction}: image of domain {source} + style code of domain {target} -> translated image"))
        reference = _renamed(style_encoder.tensor("image"), "reference")
        ensembles.append(EnsembleSpec(
            f"{prefix}_{direction}_guided", (image, reference), (output,),
            (encode, Step(style_encoder.name, {"image": "reference"}, {"style": "style"}), adain, decode),
            f"{direction}: image of domain {source} + reference image of domain {target} (its style) -> "
            "translated image"))
    return Layout(tuple(models.values()), tuple(ensembles))


def cyclegan_layout(manifest: Mapping[str, Any], directions: tuple[str, ...], prefix: str) -> Layout:
    exported = manifest.get("directions") or {}
    missing = [d for d in directions if d not in exported]
    if missing and len(directions) == 1:
        raise InputError(f"--direction {missing[0]}: this CycleGAN bundle has no {missing[0]} generator "
                         f"(exported: {', '.join(exported) or 'none'})")
    present = [d for d in directions if d in exported]
    if not present:
        raise BundleError("the CycleGAN bundle lists no directions in its manifest")
    return Layout(tuple(_model(manifest, prefix, exported[d]["graph"]) for d in present))


def stargan_layout(manifest: Mapping[str, Any], directions: tuple[str, ...], prefix: str) -> Layout:
    if set(directions) != set(DIRECTIONS):
        raise InputError("--direction: a StarGAN bundle has no directions (its generator takes a target label); "
                         "leave --direction at 'both'")
    return Layout((_model(manifest, prefix, "generator"),))


FAMILY_LAYOUTS: dict[str, Callable[[Mapping[str, Any], tuple[str, ...], str], Layout]] = {
    "munit": munit_layout,
    "cyclegan": cyclegan_layout,
    "stargan": stargan_layout,
}


def family_layout(manifest: Mapping[str, Any], direction: str, prefix: str) -> Layout:
    family = manifest.get("family")
    if family not in FAMILY_LAYOUTS:
        raise BundleError(f"model family {family!r} has no Triton layout (known: {', '.join(FAMILY_LAYOUTS)})")
    if direction not in (*DIRECTIONS, "both"):
        raise InputError(f"--direction must be a2b, b2a or both, got {direction!r}")
    directions = tuple(DIRECTIONS) if direction == "both" else (direction,)
    return FAMILY_LAYOUTS[family](manifest, directions, prefix)
