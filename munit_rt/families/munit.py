"""MUNIT on the runtime side: its manifest keys, its graphs, the translate job, Triton ensembles and `info`.

    graphs (per domain d)  content_encoder_d  image -> content          style_encoder_d  image -> style
                           style_mlp_d        style -> adain_params     decoder_d  content, adain_params -> output
    direction a2b          content_encoder_a, style_mlp_b, decoder_b (style_encoder_b for reference images)

The translate job shares work, never repeats it: each image's content is encoded once, the style codes go
through the MLP once (per run, when every image shares them), and decoding runs over (image, style) pairs in
batches, broadcasting each image's content with `backend.take`, so on a GPU it never leaves the device.
What `munit-rt translate` does per input (styles: random, reference images, codes) is munit_styles.py.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from munit_rt.bundle.fields import Fields, ManifestError
from munit_rt.errors import InputError
from munit_rt.families import register
from munit_rt.families.base import Family, domains_text, parse_domains
from munit_rt.translator import DIRECTIONS, Translator, direction_domains

ROLES = {"content_encoder": (("image",), ("content",)), "style_encoder": (("image",), ("style",)),
         "style_mlp": (("style",), ("adain_params",)), "decoder": (("content", "adain_params"), ("output",))}


@dataclass(frozen=True)
class AdainLayer:
    name: str
    channels: int
    shift_offset: int
    scale_offset: int


@dataclass(frozen=True)
class MunitModel:
    """MUNIT's manifest keys: domains (channels), style code size, content channels, AdaIN layout."""

    domains: dict[str, int]
    style_dim: int
    content_channels: int | None
    adain_total: int | None
    adain_layers: tuple[AdainLayer, ...]


class MunitTranslator(Translator):
    """MUNIT: content encoded once per image, S style codes per image decoded in (image, style) batches."""

    family = "munit"
    _last_shared_adain: tuple | None = None  # (domain, shape, code bytes) -> AdaIN parameters

    @property
    def style_dim(self) -> int:
        return self.bundle.model.style_dim

    # -- the four graphs -----------------------------------------------------------------------------
    def encode_content(self, images: np.ndarray, domain: str) -> np.ndarray:
        return self.backend.run(f"content_encoder_{domain}", {"image": self._check_images(images, domain)})["content"]

    def encode_style(self, images: np.ndarray, domain: str) -> np.ndarray:
        """Style codes [N, style_dim] of reference images of `domain` (example-guided translation)."""
        return self.backend.run(f"style_encoder_{domain}", {"image": self._check_images(images, domain)})["style"]

    def style_to_adain(self, style_codes: np.ndarray, domain: str) -> np.ndarray:
        codes = np.ascontiguousarray(style_codes, dtype=np.float32)
        if codes.ndim != 2 or codes.shape[1] != self.style_dim:
            raise InputError(f"style codes must have shape [N, {self.style_dim}], got {list(codes.shape)}")
        return self.backend.run(f"style_mlp_{domain}", {"style": codes})["adain_params"]

    def decode(self, content: np.ndarray, adain: np.ndarray, domain: str) -> np.ndarray:
        feeds = {"content": np.ascontiguousarray(content, dtype=np.float32),
                 "adain_params": np.ascontiguousarray(adain, dtype=np.float32)}
        return self.backend.run(f"decoder_{domain}", feeds)["output"]

    # -- batch translation ---------------------------------------------------------------------------
    def translate(self, images: np.ndarray, style_codes: np.ndarray, direction: str = "a2b",
                  batch_size: int = 8) -> np.ndarray:
        """Translate N images with S styles each -> float32 [N, S, C, H, W] in [-1, 1].

        style_codes: [S, style_dim] (the same styles for every image) or [N, S, style_dim] (per image).
        Images are encoded `batch_size` at a time; their (image, style) rows, r = image * S + style, are decoded
        `batch_size` at a time, so a row batch never spans two encoder batches.
        """
        source, target = direction_domains(direction)
        batch_size = self._check_batch_size(batch_size)
        images = self._check_images(images, source)
        n = images.shape[0]
        codes = np.asarray(style_codes, dtype=np.float32)
        per_image = codes.ndim == 3
        if codes.ndim not in (2, 3) or codes.shape[-1] != self.style_dim or (per_image and codes.shape[0] != n):
            raise InputError(f"style codes must have shape [S, {self.style_dim}] or [{n}, S, {self.style_dim}], "
                             f"got {list(codes.shape)}")
        s = codes.shape[-2]
        if n == 0 or s == 0:
            return np.zeros((n, s, self.bundle.model.domains[target], *images.shape[2:]), np.float32)
        if per_image:  # one MLP call per image, so results never depend on how images were batched
            adain = np.concatenate([self.style_to_adain(codes[i], target) for i in range(n)])
        else:
            adain = self._shared_adain(codes, target)

        outputs: np.ndarray | None = None
        for first in range(0, n, batch_size):
            chunk = images[first:first + batch_size]
            content = self.backend.run(f"content_encoder_{source}", {"image": chunk}, to_host=False)["content"]
            rows = np.arange(first * s, (first + len(chunk)) * s)
            for start in range(0, len(rows), batch_size):
                batch = rows[start:start + batch_size]
                image_index, style_index = np.divmod(batch, s)
                feeds = {"content": self.backend.take(content, image_index - first),
                         "adain_params": adain[batch if per_image else style_index]}
                decoded = self.backend.run(f"decoder_{target}", feeds)["output"]
                if outputs is None:
                    outputs = np.empty((n * s, *decoded.shape[1:]), np.float32)
                outputs[batch] = decoded
        return outputs.reshape(n, s, *outputs.shape[1:])

    def _shared_adain(self, codes: np.ndarray, domain: str) -> np.ndarray:
        """AdaIN parameters of styles shared by every image: a run passes the same codes with each batch of
        images, so the MLP runs once per run, not once per batch."""
        key = (domain, codes.shape, codes.tobytes())
        cached = self._last_shared_adain
        if cached is None or cached[0] != key:
            cached = (key, self.style_to_adain(codes, domain))
            self._last_shared_adain = cached
        return cached[1]

    def _check_images(self, images: np.ndarray, domain: str) -> np.ndarray:
        domains = self.bundle.model.domains
        if domain not in domains:
            raise InputError(f"unknown domain {domain!r} (bundle has {', '.join(domains)})")
        return self._check_image_array(images, domains[domain], f"images of domain {domain}")


class MunitFamily(Family):
    name = "munit"
    title = "MUNIT"
    translator = MunitTranslator
    options = {"direction": "--direction", "styles": "--styles", "seed": "--seed", "synchronized": "--synchronized",
               "style_images": "--style-image", "style_dir": "--style-dir", "style_codes": "--style-codes",
               "interpolate": "--interpolate", "slerp": "--slerp"}
    ignored_why = "S styles per input come from --styles, --style-image, --style-dir or --style-codes"
    default_fit = "crop"

    def parse_model(self, fields: Fields) -> MunitModel:
        domains = parse_domains(fields)
        layers = ()
        total = None
        if fields.has("adain"):
            adain = fields.obj("adain")
            total = adain.int("total", low=1, high=1 << 24)
            layers = tuple(AdainLayer(layer.str("name", "?"), layer.int("channels", low=1, high=1 << 16),
                                      layer.int("shift_offset", low=0, high=total), layer.int("scale_offset", low=0,
                                                                                              high=total))
                           for layer in adain.objects("layers"))
        return MunitModel(domains, fields.int("style_dim", low=1, high=1 << 16),
                          fields.int("content_channels", None, low=1, high=1 << 16), total, layers)

    def graphs(self, model: MunitModel) -> dict[str, tuple[tuple[str, ...], tuple[str, ...]]]:
        return {f"{role}_{domain}": io for role, io in ROLES.items() for domain in model.domains}

    def check(self, manifest) -> None:
        model = manifest.model
        for domain in model.domains:
            widths = {"style_encoder": ("outputs", "style", model.style_dim),
                      "style_mlp": ("inputs", "style", model.style_dim)}
            if model.adain_total is not None:
                widths["decoder"] = ("inputs", "adain_params", model.adain_total)
            for role, (kind, tensor, width) in widths.items():
                spec = manifest.graphs[f"{role}_{domain}"].tensor(tensor)
                if spec.rank != 2 or spec.shape[1] != width:
                    raise ManifestError(f"graphs.{role}_{domain}.{kind}", f"'{tensor}' must be [N, {width}], got "
                                        f"{list(spec.shape)}")
            # images [N, C, H, W] with the domain's channels; content [N, content_channels, h, w] where recorded
            key = f"domains.{domain}.channels"
            four_d = [(f"content_encoder_{domain}", "inputs", "image", model.domains[domain], key),
                      (f"style_encoder_{domain}", "inputs", "image", model.domains[domain], key),
                      (f"decoder_{domain}", "outputs", "output", model.domains[domain], key)]
            if model.content_channels is not None:
                four_d += [(f"content_encoder_{domain}", "outputs", "content", model.content_channels,
                            "content_channels"),
                           (f"decoder_{domain}", "inputs", "content", model.content_channels, "content_channels")]
            for graph, kind, tensor, channels, key in four_d:
                spec = manifest.graphs[graph].tensor(tensor)
                if spec.rank != 4 or spec.shape[1] != channels:
                    raise ManifestError(f"graphs.{graph}.{kind}", f"'{tensor}' must be [N, {channels}, H, W] ({key}), "
                                        f"got {list(spec.shape)}")

    def channels(self, manifest, domain: str | None = None) -> int:
        return manifest.model.domains[domain]

    def plan(self, bundle, options):
        from munit_rt.families.munit_styles import MunitPlan

        return MunitPlan.from_options(bundle, options)

    def triton_layout(self, bundle, directions: tuple[str, ...], prefix: str):
        from munit_rt.triton.layout import EnsembleSpec, Layout, Step, graph_model, renamed

        models: dict[str, Any] = {}

        def model(graph: str):
            return models.setdefault(graph, graph_model(bundle, prefix, graph))

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
            ensembles.append(EnsembleSpec(
                f"{prefix}_{direction}_guided", (image, renamed(style_encoder.tensor("image"), "reference")),
                (output,), (encode, Step(style_encoder.name, {"image": "reference"}, {"style": "style"}), adain,
                            decode),
                f"{direction}: image of domain {source} + reference image of domain {target} (its style) -> "
                "translated image"))
        return Layout(tuple(models.values()), tuple(ensembles))

    def describe(self, manifest) -> list[tuple[str, str]]:
        model = manifest.model
        return [("domains", domains_text(model.domains)),
                ("style_dim", f"{model.style_dim}   content channels {model.content_channels or '?'}   "
                              f"AdaIN parameters {model.adain_total or '?'} in {len(model.adain_layers)} layers"),
                ("translate", "S styles per input (random, reference images or codes), --direction a2b|b2a")]


register(MunitFamily())
