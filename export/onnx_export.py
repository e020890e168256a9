"""Split ONNX export of one MUNIT generator pair: four graphs per domain with fixed I/O names.

    content_encoder_d  image [N, C, H, W]                      -> content [N, Cc, H/m, W/m]
    style_encoder_d    image [N, C, H, W]                      -> style [N, style_dim]
    style_mlp_d        style [N, style_dim]                    -> adain_params [N, P]
    decoder_d          content [N, Cc, h, w], adain_params [N, P] -> output [N, C, h*m, w*m]

(m = 2**n_downsample.) CycleGAN and StarGAN export one graph per generator, the whole generator:

    generator_a2b / generator_b2a   image [N, C, H, W]                   -> output [N, C', H, W]   (G_A / G_B)
    generator                       image [N, 3, H, W], label [N, c_dim] -> output [N, 3, H, W]    (StarGAN G)

(H, W multiples of 4; StarGAN tiles the label over H x W inside the graph, so H and W stay symbolic.)
The graphs wrap the training modules in thin adapters; the architecture is only ever defined in `training`.
Tracing uses the TorchScript exporter with named dynamic axes: batch and spatial sizes stay symbolic,
including the LayerNorm's `C*H*W - 1` divisor (a Shape -> Gather -> Sub chain), which parity checks at sizes
other than the traced one confirm. ONNX Runtime's basic optimiser then folds constants.
"""
from __future__ import annotations

import io
import tempfile
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import onnx
import torch
from torch import nn

from munit_rt.export.errors import ExportError
from munit_rt.export.operators import check_tensorrt_ops
from munit_rt.export.subpixel import SubpixelDecoder
from munit_rt.training.munit import STYLE_ENCODER_DOWNSAMPLES, AdaINGen

DEFAULT_OPSET = 18
MIN_OPSET = 17  # TensorRT 8.5 parses up to 17
MAX_OPSET = 20  # the TorchScript exporter's newest
DOMAINS = ("a", "b")
EXPORT_BATCH = 2  # not 1: a size-1 trace can bake the batch into reshapes


class ContentEncoderGraph(nn.Module):
    def __init__(self, gen: AdaINGen):
        super().__init__()
        self.enc_content = gen.enc_content

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.enc_content(image)


class StyleEncoderGraph(nn.Module):
    def __init__(self, gen: AdaINGen):
        super().__init__()
        self.enc_style = gen.enc_style

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.enc_style(image).flatten(1)  # official [N, style_dim, 1, 1] -> [N, style_dim]


class StyleMlpGraph(nn.Module):
    def __init__(self, gen: AdaINGen):
        super().__init__()
        self.mlp = gen.mlp

    def forward(self, style: torch.Tensor) -> torch.Tensor:
        return self.mlp(style)


class DecoderGraph(nn.Module):
    def __init__(self, gen: AdaINGen, subpixel: bool = False):
        super().__init__()
        self.dec = SubpixelDecoder(gen.dec) if subpixel else gen.dec

    def forward(self, content: torch.Tensor, adain_params: torch.Tensor) -> torch.Tensor:
        return self.dec(content, adain_params)


@dataclass(frozen=True)
class TensorSpec:
    name: str
    shape: tuple  # ints, and strings for symbolic dims
    dtype: str = "float32"

    def to_dict(self) -> dict:
        return {"name": self.name, "dtype": self.dtype, "shape": list(self.shape)}


@dataclass
class GraphSpec:
    """One graph to export: the adapter module, its I/O contract and example inputs for tracing.

    `domain` is MUNIT's (None for the other families); `manifest_fields` are extra keys of the graph's
    manifest entry (CycleGAN: direction, generator; StarGAN: generator). `reference` is what parity compares
    against when `module` is a rewritten equivalent of the training module (the sub-pixel decoder).
    """

    name: str
    role: str
    domain: str | None
    module: nn.Module
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    example_inputs: tuple[torch.Tensor, ...] = field(repr=False)
    manifest_fields: dict = field(default_factory=dict)
    reference: nn.Module | None = field(default=None, repr=False)

    @property
    def reference_module(self) -> nn.Module:
        return self.module if self.reference is None else self.reference


def spatial_multiple(gen_config) -> int:
    return 2 ** gen_config.n_downsample


def parity_unit(gen_config) -> int:
    """Smallest image side every graph handles: the style encoder always downsamples 4 times."""
    return max(2 ** STYLE_ENCODER_DOWNSAMPLES, spatial_multiple(gen_config))


def _div(dim: str, m: int) -> str:
    return dim if m == 1 else f"{dim}/{m}"


def _mul(dim: str, m: int) -> str:
    return dim if m == 1 else f"{dim}*{m}"


UPSAMPLE_MODES = ("subpixel", "nearest")  # decoder upsampling as exported; see export/subpixel.py


def describe_graphs(gens: dict[str, AdaINGen], config, upsample: str = "subpixel") -> list[GraphSpec]:
    """The eight graphs of a bundle, domain a first, in role order.

    upsample="subpixel" exports each decoder upsample stage as the equivalent low-resolution convolutions
    (2.8x fewer FLOPs in those stages), checked against the unmodified training decoder.
    """
    m = spatial_multiple(config.gen)
    unit = parity_unit(config.gen)
    # traced at a non-square size that no parity case uses, so a frozen size cannot hide
    height, width = 2 * unit, 3 * unit
    rng = torch.Generator().manual_seed(0)  # example values only steer tracing; keep the global RNG untouched
    specs = []
    for domain in DOMAINS:
        gen = gens[domain]
        channels = config.input_dim(domain)
        content_channels = gen.enc_content.output_dim
        n_adain = gen.dec.num_adain_params
        style_dim = config.gen.style_dim
        image = TensorSpec("image", ("N", channels, "H", "W"))
        example_image = torch.randn(EXPORT_BATCH, channels, height, width, generator=rng)
        example_content = torch.randn(EXPORT_BATCH, content_channels, height // m, width // m, generator=rng)
        specs += [
            GraphSpec(f"content_encoder_{domain}", "content_encoder", domain, ContentEncoderGraph(gen), (image,),
                      (TensorSpec("content", ("N", content_channels, _div("H", m), _div("W", m))),),
                      (example_image,)),
            GraphSpec(f"style_encoder_{domain}", "style_encoder", domain, StyleEncoderGraph(gen), (image,),
                      (TensorSpec("style", ("N", style_dim)),), (example_image,)),
            GraphSpec(f"style_mlp_{domain}", "style_mlp", domain, StyleMlpGraph(gen),
                      (TensorSpec("style", ("N", style_dim)),), (TensorSpec("adain_params", ("N", n_adain)),),
                      (torch.randn(EXPORT_BATCH, style_dim, generator=rng),)),
            GraphSpec(f"decoder_{domain}", "decoder", domain, DecoderGraph(gen, upsample == "subpixel"),
                      (TensorSpec("content", ("N", content_channels, "h", "w")),
                       TensorSpec("adain_params", ("N", n_adain))),
                      (TensorSpec("output", ("N", channels, _mul("h", m), _mul("w", m))),),
                      (example_content, torch.randn(EXPORT_BATCH, n_adain, generator=rng)),
                      manifest_fields={"upsample": upsample}, reference=DecoderGraph(gen)),
        ]
    for spec in specs:
        spec.module.eval()
        spec.reference_module.eval()
    return specs


# ------------------------------------------------------------------------------ CycleGAN and StarGAN
GENERATOR_MULTIPLE = 4  # both families' generators halve H and W twice (fixed upstream) and double them back
GENERATOR_UNIT = 16  # parity and tracing sizes are multiples of this (32x32, 48x40; traced at 32x48)
CYCLEGAN_DIRECTIONS = {"G_A": ("a2b", "a", "b"), "G_B": ("b2a", "b", "a")}  # key -> (direction, source, target)


class CycleGanGraph(nn.Module):
    def __init__(self, generator: nn.Module):
        super().__init__()
        self.generator = generator

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.generator(image)


class StarGanGraph(nn.Module):
    """image + label -> output; the generator tiles the label over the image's H x W itself, so the traced
    graph reads H and W from the image's shape (Shape -> Expand) instead of baking in the traced size."""

    def __init__(self, generator: nn.Module):
        super().__init__()
        self.generator = generator

    def forward(self, image: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
        return self.generator(image, label)


def describe_family_graphs(family: str, gens: dict[str, nn.Module], config,
                           upsample: str = "subpixel") -> list[GraphSpec]:
    """The graphs of a bundle of any family (`gens` keyed as `training.registry.load_generators` returns);
    `upsample` applies to MUNIT decoders only (the other families upsample with ConvTranspose)."""
    if family == "munit":
        return describe_graphs(gens, config, upsample)
    if family == "cyclegan":
        specs = _cyclegan_specs(gens, config)
    elif family == "stargan":
        specs = _stargan_specs(gens, config)
    else:
        raise ExportError(f"cannot export model family {family!r} (known: munit, cyclegan, stargan)")
    for spec in specs:
        spec.module.eval()
    return specs


def cyclegan_channels(config, key: str) -> tuple[int, int]:
    """(input, output) channels of G_A (A -> B) or G_B (B -> A)."""
    return (config.input_nc, config.output_nc) if key == "G_A" else (config.output_nc, config.input_nc)


def _example_image(rng: torch.Generator, channels: int) -> torch.Tensor:
    # traced at a non-square size that no parity case uses, so a frozen size cannot hide
    return torch.randn(EXPORT_BATCH, channels, 2 * GENERATOR_UNIT, 3 * GENERATOR_UNIT, generator=rng)


def _cyclegan_specs(gens: dict[str, nn.Module], config) -> list[GraphSpec]:
    rng = torch.Generator().manual_seed(0)
    specs = []
    for key in ("G_A", "G_B"):  # a2b first; only the generators the checkpoint holds
        if key not in gens:
            continue
        direction, source, target = CYCLEGAN_DIRECTIONS[key]
        channels_in, channels_out = cyclegan_channels(config, key)
        specs.append(GraphSpec(
            f"generator_{direction}", "generator", None, CycleGanGraph(gens[key]),
            (TensorSpec("image", ("N", channels_in, "H", "W")),),
            (TensorSpec("output", ("N", channels_out, "H", "W")),),
            (_example_image(rng, channels_in),),
            {"direction": direction, "source_domain": source, "target_domain": target, "generator": key}))
    if not specs:
        raise ExportError(f"no CycleGAN generator to export (expected G_A and/or G_B, got {', '.join(gens)})")
    return specs


def _stargan_specs(gens: dict[str, nn.Module], config) -> list[GraphSpec]:
    from munit_rt.training.stargan import IMAGE_CHANNELS

    rng = torch.Generator().manual_seed(0)
    c_dim = config.c_dim
    label = (torch.rand(EXPORT_BATCH, c_dim, generator=rng) < 0.5).float()
    return [GraphSpec(
        "generator", "generator", None, StarGanGraph(gens["G"]),
        (TensorSpec("image", ("N", IMAGE_CHANNELS, "H", "W")), TensorSpec("label", ("N", c_dim))),
        (TensorSpec("output", ("N", IMAGE_CHANNELS, "H", "W")),),
        (_example_image(rng, IMAGE_CHANNELS), label),
        {"generator": "G"})]


def export_graph(spec: GraphSpec, opset: int = DEFAULT_OPSET) -> onnx.ModelProto:
    """Trace one adapter to ONNX with dynamic N/H/W, fold its constants, check its I/O dims, validate it."""
    model = fold_constants(_trace_to_onnx(spec, opset), spec.name)
    _check_io_dims(model, spec)
    validate_graph(model, spec.name)
    return model


def _trace_to_onnx(spec: GraphSpec, opset: int) -> onnx.ModelProto:
    """The TorchScript exporter (`dynamo=False`). The torch.export-based one gives the same parity but takes
    4-9 s per graph on two CPU cores against 0.1-0.2 s here; this function is the only place to switch."""
    dynamic_axes = {t.name: {axis: dim for axis, dim in enumerate(t.shape) if isinstance(dim, str)}
                    for t in spec.inputs + spec.outputs}
    buffer = io.BytesIO()
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")  # exporter deprecation and tracer notes are not for users
            torch.onnx.export(spec.module, spec.example_inputs, buffer, dynamo=False, opset_version=opset,
                              input_names=[t.name for t in spec.inputs], output_names=[t.name for t in spec.outputs],
                              dynamic_axes=dynamic_axes, do_constant_folding=True)
    except Exception as exc:  # noqa: BLE001 - the exporter raises many types; one line is what users need
        raise ExportError(f"graph '{spec.name}': torch.onnx.export failed: {_first_line(exc)}") from exc
    return onnx.load_from_string(buffer.getvalue())


def fold_constants(model: onnx.ModelProto, graph_name: str) -> onnx.ModelProto:
    """Constant-fold with ONNX Runtime's basic level, which only rewrites to standard ONNX ops.

    The exporter leaves constants as Constant nodes and computes reflect-pad amounts in a small subgraph
    (Slice with step -1, which it cannot fold); after folding, pads, norm scales and Resize scales are
    initializers, as TensorRT's parser wants them.
    """
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    options.log_severity_level = 3
    with tempfile.TemporaryDirectory() as tmp:
        options.optimized_model_filepath = str(Path(tmp) / "folded.onnx")
        try:
            ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # noqa: BLE001 - ORT raises its own exception types
            raise ExportError(f"graph '{graph_name}': ONNX Runtime cannot load the exported graph: "
                              f"{_first_line(exc)}") from None
        folded = onnx.load(options.optimized_model_filepath)
    del folded.graph.value_info[:]  # ORT's intermediate shape guesses; consumers infer their own
    used_domains = {node.domain for node in folded.graph.node}
    kept = [op for op in folded.opset_import if op.domain in used_domains or op.domain in ("", "ai.onnx")]
    del folded.opset_import[:]
    folded.opset_import.extend(kept)
    for index, node in enumerate(folded.graph.node):  # FP16 conversion selects nodes by name
        if not node.name:
            node.name = f"{node.op_type}_{index}"
    folded.producer_name, folded.producer_version = model.producer_name, model.producer_version
    return folded


def validate_graph(model: onnx.ModelProto, graph_name: str) -> None:
    """Full ONNX check, strict shape inference, and the TensorRT operator allow-list."""
    try:
        onnx.checker.check_model(model, full_check=True)
        onnx.shape_inference.infer_shapes(model, check_type=True, strict_mode=True, data_prop=True)
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as exc:
        raise ExportError(f"graph '{graph_name}' is not valid ONNX: {_first_line(exc)}") from None
    check_tensorrt_ops(model, graph_name)


def _check_io_dims(model: onnx.ModelProto, spec: GraphSpec) -> None:
    """The graph's I/O must match the spec: names, ranks, fixed sizes, and symbolic (dynamic) N/H/W."""
    for values, tensors in ((model.graph.input, spec.inputs), (model.graph.output, spec.outputs)):
        got = [v.name for v in values]
        if got != [t.name for t in tensors]:
            raise ExportError(f"graph '{spec.name}': I/O names {got}, expected {[t.name for t in tensors]}")
        for value, tensor in zip(values, tensors):
            dims = [d.dim_param or d.dim_value for d in value.type.tensor_type.shape.dim]
            if dims != list(tensor.shape):
                raise ExportError(f"graph '{spec.name}': '{tensor.name}' has shape {dims}, expected "
                                  f"{list(tensor.shape)} (a dynamic size frozen by the exporter?)")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return (text.splitlines()[0] if text else type(exc).__name__)[:300]
