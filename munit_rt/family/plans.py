"""What `translate` does with a CycleGAN or StarGAN bundle: preprocessing, the outputs per input, and the
batch call. MUNIT's plan (styles) stays in munit_rt.pipeline; the stages, layouts and resume are shared.

    CycleGAN  one output per input through the --direction's generator          OUT/sub/cat.png
    StarGAN   --attrs A,B=0: one output, the target label                       OUT/sub/cat.png
              --sweep (the default without --attrs): one output per attribute   OUT/sub/cat/<attribute>.png
              (upstream create_labels from --from-attrs, default all zeros)
--layout official writes OUT_00/sub/cat.png (OUT_01 ... for a sweep, in attribute order); --grid writes
OUT/sub/cat/grid.png: the input, then the outputs, in one row.
"""
from __future__ import annotations

import dataclasses
import sys
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from munit_rt.errors import InputError
from munit_rt.family import FamilySpec
from munit_rt.images import Preprocess


@dataclass
class FamilyPlan:
    prep: Preprocess
    names: list[str]              # the outputs of one input (nested file names)
    single: bool                  # one output per input: OUT/sub/cat.png
    run: Callable[[Any, np.ndarray], np.ndarray]  # (translator, images [N, C, H, W]) -> [N, S, C, H, W]
    labels: np.ndarray | None = None  # StarGAN: the [S, c_dim] label vectors, one per output


def explicit_options(options: Any) -> set[str]:
    """The options the caller set: the CLI's (click's parameter source), else those not at their default."""
    if getattr(options, "explicit", None) is not None:
        return set(options.explicit)
    given = set()
    for f in dataclasses.fields(options):
        default = f.default if f.default is not dataclasses.MISSING else (
            f.default_factory() if f.default_factory is not dataclasses.MISSING else dataclasses.MISSING)
        if default is not dataclasses.MISSING and getattr(options, f.name) != default:
            given.add(f.name)
    return given


def family_options(options: Any, spec: FamilySpec, notify: Callable[[str], None] | None = None) -> Any:
    """Options the family does not use: one note if any was given explicitly, and all reset to their
    defaults (so that, e.g., MUNIT's checks of --styles against --style-codes never fire for CycleGAN)."""
    from munit_rt.family import ignored_note

    given = explicit_options(options)
    flags = [flag for name, flag in spec.ignored_options.items() if name in given]
    if flags:
        (notify or (lambda line: print(line, file=sys.stderr)))(ignored_note(spec, flags))
    defaults = {f.name: f.default for f in dataclasses.fields(options)
                if f.name in spec.ignored_options and f.default is not dataclasses.MISSING}
    defaults.update({f.name: f.default_factory() for f in dataclasses.fields(options)
                     if f.name in spec.ignored_options and f.default_factory is not dataclasses.MISSING})
    return dataclasses.replace(options, **defaults)


def plan_for(options: Any, bundle: Any) -> FamilyPlan:
    """The plan of a CycleGAN or StarGAN bundle; InputError for options that do not fit the bundle."""
    if bundle.family == "cyclegan":
        return _cyclegan_plan(options, bundle)
    if bundle.family == "stargan":
        return _stargan_plan(options, bundle)
    raise InputError(f"no translate plan for family {bundle.family!r}")


def _cyclegan_plan(options: Any, bundle: Any) -> FamilyPlan:
    directions = bundle.directions
    direction = options.direction
    if len(directions) == 1 and "direction" not in explicit_options(options):
        direction = next(iter(directions))  # a bundle with one generator: its direction is the default
    if direction not in directions:
        raise InputError(f"--direction {direction}: this CycleGAN bundle has no {direction} generator "
                         f"(available: {', '.join(directions)}); export the checkpoint holding "
                         f"{'G_A' if direction == 'a2b' else 'G_B'}")
    source = directions[direction].get("source_domain", direction[0])
    prep = Preprocess.from_bundle(bundle.preprocess, bundle.domains[source], options.size, fit=bundle.spec.fit)
    batch_size = options.batch_size
    return FamilyPlan(prep, ["output"], True,
                      lambda translator, images: translator.generate(images, direction, batch_size)[:, None])


def _stargan_plan(options: Any, bundle: Any) -> FamilyPlan:
    from munit_rt.family.labels import LabelSpace, file_stem

    space = LabelSpace.from_manifest(bundle.labels)
    if options.attrs and options.sweep:
        raise InputError("--attrs and --sweep are alternatives: --attrs sets one target, --sweep writes one "
                         "output per attribute")
    if options.attrs:
        names, labels, single = ["output"], space.target(options.attrs, options.from_attrs)[None], True
    else:
        attrs, labels = space.sweep(options.from_attrs)
        names, single = unique_stems([file_stem(a) for a in attrs]), False
    prep = Preprocess.from_bundle(bundle.preprocess, int(bundle.manifest["channels"]), options.size,
                                  fit=bundle.spec.fit)
    batch_size = options.batch_size
    return FamilyPlan(prep, names, single,
                      lambda translator, images: translator.translate(images, labels, batch_size), labels)


def unique_stems(stems: list[str]) -> list[str]:
    """File names that differ also on case-insensitive file systems (a suffix _2, _3 ... on repeats)."""
    seen: dict[str, int] = {}
    out = []
    for stem in stems:
        count = seen.get(stem.lower(), 0) + 1
        seen[stem.lower()] = count
        out.append(stem if count == 1 else f"{stem}_{count}")
    return out
