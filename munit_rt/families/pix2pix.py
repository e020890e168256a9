"""pix2pix on the runtime side: one U-Net generator trained in one direction (upstream --direction AtoB or
BtoA), one output per input, one Triton model without ensembles, and `info`.

Manifest keys (written by munit_rt.training.families.pix2pix.graphs.manifest_keys):

    domains     {"a": {"channels": C}, "b": {"channels": C}}
    direction   "AtoB" | "BtoA": the training direction; the generator maps the source domain to the target
    generator   {"graph": "generator", "netG": "unet_256", "num_downs": 8, "norm": "batch", "eval": false}

`eval` is upstream test.py's option: true runs BatchNorm on its running statistics (--eval); false (upstream's
default) normalises each image by its own statistics, whatever else shares its batch. Upstream's default also
keeps dropout on, so its outputs are random per run; the exported graph has no dropout (deterministic).

Preprocessing is the bundle's description (written by the torch side): the largest centred square, resized to
crop_size x crop_size (bicubic, upstream's filter). Upstream's test resizes the whole image to load_size x
load_size without keeping its aspect ratio; for its square datasets (facades, edges2shoes, maps) the two agree,
and for other photos cropping keeps shapes undistorted. H and W must be multiples of 2**num_downs.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from munit_rt.bundle.fields import Fields, ManifestError
from munit_rt.errors import InputError
from munit_rt.families import register
from munit_rt.families.base import Family, GeneratePlan, domains_text, parse_domains
from munit_rt.translator import Translator

TRAINING_DIRECTIONS = {"AtoB": ("a", "b", "a2b"), "BtoA": ("b", "a", "b2a")}  # -> source, target, our name
NORMS = ("batch", "instance", "none")
DETERMINISTIC = "dropout off: deterministic; upstream's outputs are random per run"


@dataclass(frozen=True)
class Pix2PixModel:
    domains: dict[str, int]   # channels of a and b
    direction: str            # AtoB or BtoA (upstream's name)
    graph: str
    net: str                  # netG: unet_256, unet_128
    num_downs: int
    norm: str
    eval_mode: bool           # upstream test.py --eval

    @property
    def source(self) -> str:
        return TRAINING_DIRECTIONS[self.direction][0]

    @property
    def target(self) -> str:
        return TRAINING_DIRECTIONS[self.direction][1]

    @property
    def translates(self) -> str:
        """The direction in munit-rt's spelling: a2b or b2a."""
        return TRAINING_DIRECTIONS[self.direction][2]


class Pix2PixTranslator(Translator):
    """pix2pix: `generate(images)` -> [N, C_target, H, W], one output per image, through the one generator."""

    family = "pix2pix"

    @property
    def direction(self) -> str:
        """a2b or b2a: the direction the generator was trained to translate (upstream AtoB / BtoA)."""
        return self.bundle.model.translates

    def generate(self, images: np.ndarray, batch_size: int = 8) -> np.ndarray:
        """[N, C_source, H, W] in [-1, 1] -> [N, C_target, H, W]; H, W multiples of the bundle's multiple."""
        model = self.bundle.model
        batch_size = self._check_batch_size(batch_size)
        images = self._check_image_array(images, model.domains[model.source], f"images of domain {model.source}")
        if images.shape[0] == 0:
            return np.zeros((0, model.domains[model.target], *images.shape[2:]), np.float32)
        return self._run_batches(model.graph, {"image": images}, batch_size)


class Pix2PixFamily(Family):
    name = "pix2pix"
    title = "pix2pix"
    translator = Pix2PixTranslator
    options: dict[str, str] = {}
    ignored_why = "one output per input through the one generator, in its training direction"
    default_fit = "crop"

    def parse_model(self, fields: Fields) -> Pix2PixModel:
        domains = parse_domains(fields)
        direction = fields.str("direction", choices=tuple(TRAINING_DIRECTIONS))
        gen = fields.obj("generator")
        return Pix2PixModel(domains, direction, gen.str("graph"), gen.str("netG", "?", max_len=64),
                            gen.int("num_downs", low=1, high=16), gen.str("norm", choices=NORMS), gen.bool("eval"))

    def graphs(self, model: Pix2PixModel):
        return {model.graph: (("image",), ("output",))}

    def check(self, manifest) -> None:
        model = manifest.model
        graph = manifest.graphs[model.graph]
        for kind, tensor, domain in (("inputs", "image", model.source), ("outputs", "output", model.target)):
            spec = graph.tensor(tensor)
            if spec.rank != 4 or spec.shape[1] != model.domains[domain]:
                raise ManifestError(f"graphs.{model.graph}.{kind}", f"'{tensor}' must have the "
                                    f"{model.domains[domain]} channels of domain {domain} ({model.direction}), "
                                    f"got {list(spec.shape)}")
        if manifest.spatial_multiple != 2 ** model.num_downs:
            raise ManifestError("spatial_multiple", f"is {manifest.spatial_multiple}, but a U-Net of "
                                f"{model.num_downs} blocks needs multiples of {2 ** model.num_downs}")

    def channels(self, manifest, domain: str | None = None) -> int:
        model = manifest.model
        return model.domains[domain or model.source]

    def plan(self, bundle, options) -> GeneratePlan:
        model, multiple = bundle.model, bundle.preprocess.multiple
        if options.size is not None and options.size % multiple:
            raise InputError(f"--size {options.size}: this pix2pix generator ({model.net}) takes sizes that are "
                             f"multiples of {multiple}")
        return GeneratePlan(bundle.preprocess.with_size(options.size), model.domains[model.source], ["output"], True,
                            model.translates, options.batch_size)

    def triton_layout(self, bundle, directions: tuple[str, ...], prefix: str):
        from munit_rt.triton.layout import Layout, graph_model

        model = bundle.model
        if len(directions) == 1 and directions[0] != model.translates:
            raise InputError(f"--direction {directions[0]}: this pix2pix bundle's generator translates "
                             f"{model.translates} (trained {model.direction}); leave --direction at 'both'")
        return Layout((graph_model(bundle, prefix, model.graph),))

    def describe(self, manifest) -> list[tuple[str, str]]:
        model = manifest.model
        if model.norm != "batch":
            statistics = f"norm {model.norm}, the same in both modes"
        elif model.eval_mode:
            statistics = "BatchNorm with its running statistics (upstream test.py --eval)"
        else:
            statistics = "BatchNorm with each image's own statistics (upstream test.py without --eval)"
        return [("domains", domains_text(model.domains)),
                ("direction", f"{model.direction}: {model.source} -> {model.target} (the training direction)"),
                ("network", f"{model.net}, {model.num_downs} blocks, norm {model.norm}; H and W multiples of "
                              f"{2 ** model.num_downs}"),
                ("test mode", f"eval: {str(model.eval_mode).lower()}: {statistics}; {DETERMINISTIC}"),
                ("translate", f"one output per input ({model.translates})")]


register(Pix2PixFamily())
