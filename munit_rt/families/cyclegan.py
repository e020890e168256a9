"""CycleGAN on the runtime side: one generator per direction (generator_a2b = G_A, generator_b2a = G_B), one
output per input, Triton models without ensembles (each graph is end to end), and `info`.

Images are brought to the generator's multiple of 4 by resizing each side to the nearest multiple (upstream's
__make_power_2), not by cropping: the preprocessing description's fit "round".
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from munit_rt.bundle.fields import Fields, ManifestError
from munit_rt.errors import BundleError, InputError
from munit_rt.families import register
from munit_rt.families.base import Family, TranslatePlan, domains_text, parse_domains
from munit_rt.translator import DIRECTIONS, Translator, direction_domains


@dataclass(frozen=True)
class Direction:
    graph: str
    generator: str      # G_A or G_B (upstream's names)
    source: str
    target: str


@dataclass(frozen=True)
class CycleGanModel:
    domains: dict[str, int]               # a: input_nc, b: output_nc
    directions: dict[str, Direction]      # the exported ones: a2b and/or b2a


def _missing_generator(direction: str, exported) -> str:
    return (f"this CycleGAN bundle has no {direction} generator (available: {', '.join(exported) or 'none'}); "
            f"export the checkpoint holding {'G_A' if direction == 'a2b' else 'G_B'}")


class CycleGanTranslator(Translator):
    """CycleGAN: `generate(images, direction)` -> [N, C, H, W], one output per image."""

    family = "cyclegan"

    @property
    def directions(self) -> list[str]:
        """The directions this bundle can translate (those whose generator was exported)."""
        return list(self.bundle.model.directions)

    def graph_for(self, direction: str) -> str:
        directions = self.bundle.model.directions
        if direction not in directions:
            if direction in DIRECTIONS:
                raise InputError(_missing_generator(direction, directions))
            raise InputError(f"unknown direction {direction!r} (this bundle has {', '.join(directions)})")
        return directions[direction].graph

    def generate(self, images: np.ndarray, direction: str = "a2b", batch_size: int = 8) -> np.ndarray:
        """[N, C_source, H, W] in [-1, 1] -> [N, C_target, H, W]; H, W multiples of 4."""
        graph = self.graph_for(direction)
        source, target = direction_domains(direction)
        batch_size = self._check_batch_size(batch_size)
        domains = self.bundle.model.domains
        images = self._check_image_array(images, domains[source], f"images of domain {source}")
        if images.shape[0] == 0:
            return np.zeros((0, domains[target], *images.shape[2:]), np.float32)
        return self._run_batches(graph, {"image": images}, batch_size)


@dataclass
class CycleGanPlan(TranslatePlan):
    batch_size: int = 8

    def run(self, translator: CycleGanTranslator, images: np.ndarray, relpaths: list[str]) -> np.ndarray:
        return translator.generate(images, self.direction, self.batch_size)[:, None]

    def record(self) -> dict:
        return {"direction": self.direction}


class CycleGanFamily(Family):
    name = "cyclegan"
    title = "CycleGAN"
    translator = CycleGanTranslator
    options = {"direction": "--direction"}
    ignored_why = "one output per input through the direction's generator"
    default_fit = "round"

    def parse_model(self, fields: Fields) -> CycleGanModel:
        domains = parse_domains(fields)
        directions = {}
        for direction, entry in fields.entries("directions", min_items=1, key_choices=tuple(DIRECTIONS)):
            source, target = DIRECTIONS[direction]
            graph = Direction(entry.str("graph"), entry.str("generator", "?"), entry.str("source_domain", source),
                              entry.str("target_domain", target))
            entry.check((graph.source, graph.target) == (source, target), "source_domain",
                        f"and target_domain must be {source} and {target} for {direction}")
            directions[direction] = graph
        return CycleGanModel(domains, directions)

    def graphs(self, model: CycleGanModel):
        return {d.graph: (("image",), ("output",)) for d in model.directions.values()}

    def check(self, manifest) -> None:
        model = manifest.model
        for direction, entry in model.directions.items():
            source, target = DIRECTIONS[direction]
            graph = manifest.graphs[entry.graph]
            for kind, tensor, domain in (("inputs", "image", source), ("outputs", "output", target)):
                spec = graph.tensor(tensor)
                if spec.rank != 4 or spec.shape[1] != model.domains[domain]:
                    raise ManifestError(f"graphs.{entry.graph}.{kind}", f"'{tensor}' must have the {model.domains[domain]} "
                                        f"channels of domain {domain}, got {list(spec.shape)}")

    def channels(self, manifest, domain: str | None = None) -> int:
        return manifest.model.domains[domain]

    def plan(self, bundle, options) -> CycleGanPlan:
        directions = bundle.model.directions
        direction = options.direction
        if len(directions) == 1 and "direction" not in options.given():
            direction = next(iter(directions))  # a bundle with one generator: its direction is the default
        if direction not in directions:
            raise InputError(f"--direction {direction}: {_missing_generator(direction, directions)}")
        source = directions[direction].source
        return CycleGanPlan(bundle.preprocess.with_size(options.size), bundle.model.domains[source], ["output"], True,
                            direction, options.batch_size)

    def triton_layout(self, bundle, directions: tuple[str, ...], prefix: str):
        from munit_rt.triton.layout import Layout, graph_model

        exported = bundle.model.directions
        missing = [d for d in directions if d not in exported]
        if missing and len(directions) == 1:
            raise InputError(f"--direction {missing[0]}: {_missing_generator(missing[0], exported)}")
        present = [d for d in directions if d in exported]
        if not present:
            raise BundleError("the CycleGAN bundle lists no directions in its manifest")
        return Layout(tuple(graph_model(bundle, prefix, exported[d].graph) for d in present))

    def describe(self, manifest) -> list[tuple[str, str]]:
        model = manifest.model
        directions = ", ".join(f"{d} ({e.graph}, {e.generator}: {e.source} -> {e.target})"
                               for d, e in model.directions.items())
        return [("domains", domains_text(model.domains)), ("directions", directions),
                ("translate", "one output per input, --direction " + "|".join(model.directions))]


register(CycleGanFamily())
