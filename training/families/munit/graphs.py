"""MUNIT's graph split for export: four graphs per domain with fixed I/O names.

    content_encoder_d  image [N, C, H, W]                         -> content [N, Cc, H/m, W/m]
    style_encoder_d    image [N, C, H, W]                         -> style [N, style_dim]
    style_mlp_d        style [N, style_dim]                       -> adain_params [N, P]
    decoder_d          content [N, Cc, h, w], adain_params [N, P] -> output [N, C, h*m, w*m]

(m = 2**n_downsample.) The graphs wrap the training modules in thin adapters; the architecture is only ever
defined in model.py. The decoder's upsampling is exported as trained ("nearest") or as the exactly equivalent
sub-pixel convolutions ("subpixel", subpixel.py), checked against the unmodified training decoder either way.

Parity cases (batch 1 and 3; 32x32 and 48x40 for the tiny test model, neither the traced size): the decoder is
fed real content codes (the other domain's content encoder on random images, as in translation) with two AdaIN
vectors: the MLP of a random style, and a hand-built one (random shifts, scales in [0.5, 1.5]) laid out by
`AdaINGen.adain_layout()`.
"""
from __future__ import annotations

from functools import partial
from typing import Any

import numpy as np
import torch
from torch import nn

from munit_rt.training.family import Checkpoint, GraphSpec, ParityCase, TensorSpec
from munit_rt.training.families.munit.config import MunitConfig
from munit_rt.training.families.munit.model import STYLE_ENCODER_DOWNSAMPLES, AdaINGen
from munit_rt.training.families.munit.subpixel import SubpixelDecoder
from munit_rt.training.graphs import BATCH_SIZES, EXPORT_BATCH, normal, parity_resolutions, trace_size, uniform

DOMAINS = ("a", "b")
UPSAMPLE_MODES = ("subpixel", "nearest")


class PartGraph(nn.Module):
    """One part of an AdaINGen as a graph, held under the generator's attribute name (enc_content, enc_style,
    mlp, dec) so the graph's weights keep the checkpoint's names; `flatten` turns the official style code
    [N, style_dim, 1, 1] into [N, style_dim]."""

    def __init__(self, name: str, part: nn.Module, flatten: bool = False):
        super().__init__()
        self.part_name, self.flatten = name, flatten
        self.add_module(name, part)

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        out = self._modules[self.part_name](*inputs)
        return out.flatten(1) if self.flatten else out


def spatial_multiple(config: MunitConfig) -> int:
    return 2 ** config.gen.n_downsample


def parity_unit(config: MunitConfig) -> int:
    """Smallest image side every graph handles: the style encoder always downsamples 4 times."""
    return max(2 ** STYLE_ENCODER_DOWNSAMPLES, spatial_multiple(config))


def _div(dim: str, m: int) -> str:
    return dim if m == 1 else f"{dim}/{m}"


def _mul(dim: str, m: int) -> str:
    return dim if m == 1 else f"{dim}*{m}"


def describe_graphs(gens: dict[str, AdaINGen], config: MunitConfig, upsample: str = "subpixel",
                    **_options: Any) -> list[GraphSpec]:
    """The eight graphs of a bundle, domain a first, in role order (other families' export options ignored)."""
    if upsample not in UPSAMPLE_MODES:
        raise ValueError(f"upsample must be one of {', '.join(UPSAMPLE_MODES)}, got {upsample!r}")
    m = spatial_multiple(config)
    height, width = trace_size(parity_unit(config))
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
        cases = partial(parity_cases, gens=gens, config=config, domain=domain)
        specs += [
            GraphSpec(f"content_encoder_{domain}", "content_encoder", domain,
                      PartGraph("enc_content", gen.enc_content), (image,),
                      (TensorSpec("content", ("N", content_channels, _div("H", m), _div("W", m))),),
                      (example_image,), partial(cases, role="content_encoder")),
            GraphSpec(f"style_encoder_{domain}", "style_encoder", domain,
                      PartGraph("enc_style", gen.enc_style, flatten=True), (image,),
                      (TensorSpec("style", ("N", style_dim)),), (example_image,), partial(cases, role="style_encoder")),
            GraphSpec(f"style_mlp_{domain}", "style_mlp", domain, PartGraph("mlp", gen.mlp),
                      (TensorSpec("style", ("N", style_dim)),), (TensorSpec("adain_params", ("N", n_adain)),),
                      (torch.randn(EXPORT_BATCH, style_dim, generator=rng),), partial(cases, role="style_mlp")),
            GraphSpec(f"decoder_{domain}", "decoder", domain,
                      PartGraph("dec", SubpixelDecoder(gen.dec) if upsample == "subpixel" else gen.dec),
                      (TensorSpec("content", ("N", content_channels, "h", "w")),
                       TensorSpec("adain_params", ("N", n_adain))),
                      (TensorSpec("output", ("N", channels, _mul("h", m), _mul("w", m))),),
                      (example_content, torch.randn(EXPORT_BATCH, n_adain, generator=rng)),
                      partial(cases, role="decoder"), image_output=True, manifest_fields={"upsample": upsample},
                      reference=PartGraph("dec", gen.dec)),
        ]
    return specs


def manifest_model(ckpt: Checkpoint, gens: dict[str, AdaINGen], graphs: dict[str, dict]) -> dict[str, Any]:
    """MUNIT's manifest keys: domains and channels, the style size and the AdaIN parameter layout."""
    config, layout = ckpt.config, gens["a"].adain_layout()
    return {
        "domains": {d: {"channels": config.input_dim(d)} for d in DOMAINS},
        "style_dim": config.gen.style_dim,
        "content_channels": gens["a"].enc_content.output_dim,
        "adain": {"total": sum(2 * layer["channels"] for layer in layout), "layers": layout},
    }


def parity_cases(rng: np.random.Generator, *, gens: dict[str, AdaINGen], config: MunitConfig, domain: str,
                 role: str) -> list[ParityCase]:
    """Seeded feeds for one graph (see the module docstring)."""
    gen, style_dim = gens[domain], config.gen.style_dim
    if role == "style_mlp":
        return [ParityCase(batch, {"style": normal(rng, (batch, style_dim))}) for batch in BATCH_SIZES]
    cases = []
    for batch in BATCH_SIZES:
        for height, width in parity_resolutions(parity_unit(config), spatial_multiple(config)):
            if role in ("content_encoder", "style_encoder"):
                image = uniform(rng, (batch, config.input_dim(domain), height, width))
                cases.append(ParityCase(batch, {"image": image}, height, width))
                continue
            other = "b" if domain == "a" else "a"
            image = uniform(rng, (batch, config.input_dim(other), height, width))
            with torch.no_grad():
                content = gens[other].enc_content(torch.from_numpy(image)).numpy()
                from_mlp = gen.mlp(torch.from_numpy(normal(rng, (batch, style_dim)))).numpy()
            for source, adain in (("mlp", from_mlp), ("hand_built", hand_built_adain(gen, batch, rng))):
                cases.append(ParityCase(batch, {"content": content, "adain_params": adain}, height, width,
                                        {"adain": source}))
    return cases


def hand_built_adain(gen: AdaINGen, batch: int, rng: np.random.Generator) -> np.ndarray:
    """AdaIN vector written layer by layer from the layout: random shifts, scales in [0.5, 1.5]."""
    vector = np.zeros((batch, gen.dec.num_adain_params), np.float32)
    for layer in gen.adain_layout():
        c, shift, scale = layer["channels"], layer["shift_offset"], layer["scale_offset"]
        vector[:, shift:shift + c] = rng.normal(0.0, 0.5, (batch, c))
        vector[:, scale:scale + c] = rng.uniform(0.5, 1.5, (batch, c))
    return vector
