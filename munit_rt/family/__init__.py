"""The model families a bundle can hold, in one table (docs/bundle-format.md "Families").

Per family: the manifest keys it must have beyond the common header, the graphs it must list with their
fixed I/O names, how images are brought to the spatial multiple, which `translate` options apply, and the
family lines of `munit-rt info`. The bundle reader, the translator factory, the pipeline and the CLI look
families up here; nothing else branches on the family name. Plain data and json-level checks only.

    family    graphs (I/O)                                              translate
    munit     {content_encoder,style_encoder,style_mlp,decoder}_{a,b}   S styles per input, --direction
    cyclegan  generator_a2b / generator_b2a: image -> output            one output per input, --direction
    stargan   generator: image, label [N, c_dim] -> output              --attrs (one output) or --sweep
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

# the header keys every family has (docs/bundle-format.md); a family adds its own `required_keys`
COMMON_KEYS = ("preprocess", "precisions", "graphs", "files")

IO = tuple[tuple[str, ...], tuple[str, ...]]  # (input names, output names)

# translate options by the TranslateOptions field they set -> the command-line flag (for notes)
STYLE_OPTIONS = {"styles": "--styles", "seed": "--seed", "synchronized": "--synchronized",
                 "style_images": "--style-image", "style_dir": "--style-dir", "style_codes": "--style-codes",
                 "interpolate": "--interpolate", "slerp": "--slerp"}
LABEL_OPTIONS = {"attrs": "--attrs", "from_attrs": "--from-attrs", "sweep": "--sweep"}
DIRECTION_OPTIONS = {"direction": "--direction"}
DIRECTIONS = ("a2b", "b2a")


class ManifestProblem(ValueError):
    """A family-level inconsistency in a manifest; the bundle reader prefixes the bundle's name."""


@dataclass(frozen=True)
class FamilySpec:
    name: str
    title: str                                    # for messages: "MUNIT", "CycleGAN", "StarGAN"
    required_keys: tuple[str, ...]                # manifest keys beyond COMMON_KEYS
    domains: tuple[str, ...] | None               # required names in manifest["domains"]; None: no domains
    graphs: Callable[[dict[str, Any]], dict[str, IO]]  # manifest -> the graphs it must list, with their I/O
    check: Callable[[dict[str, Any]], None]       # further checks of the family keys (ManifestProblem)
    fit: str                                      # H, W to the multiple: "crop" (center crop), "round" (resize)
    ignored_options: dict[str, str]               # TranslateOptions field -> flag, options that do not apply
    describe: Callable[[dict[str, Any]], list[tuple[str, str]]]  # (label, text) lines for `munit-rt info`


# ------------------------------------------------------------------------------------------------ MUNIT
MUNIT_ROLES: dict[str, IO] = {
    "content_encoder": (("image",), ("content",)),
    "style_encoder": (("image",), ("style",)),
    "style_mlp": (("style",), ("adain_params",)),
    "decoder": (("content", "adain_params"), ("output",)),
}


def _munit_graphs(manifest: dict[str, Any]) -> dict[str, IO]:
    return {f"{role}_{domain}": io for role, io in MUNIT_ROLES.items() for domain in manifest["domains"]}


def _munit_describe(m: dict[str, Any]) -> list[tuple[str, str]]:
    adain = m.get("adain") or {}
    return [("domains", _domains_text(m)),
            ("style_dim", f"{m['style_dim']}   content channels {m.get('content_channels', '?')}   "
                          f"AdaIN parameters {adain.get('total', '?')} in {len(adain.get('layers', []))} layers"),
            ("translate", "S styles per input (random, reference images or codes), --direction a2b|b2a")]


# --------------------------------------------------------------------------------------------- CycleGAN
def _cyclegan_graphs(manifest: dict[str, Any]) -> dict[str, IO]:
    directions = manifest["directions"]
    if not isinstance(directions, dict) or not directions:
        raise ManifestProblem("'directions' must name at least one of a2b, b2a")
    graphs = {}
    for direction, entry in directions.items():
        if direction not in DIRECTIONS or not isinstance(entry, dict) or not isinstance(entry.get("graph"), str):
            raise ManifestProblem(f"direction {direction!r} is malformed (expected a2b or b2a with a 'graph' name)")
        graphs[entry["graph"]] = (("image",), ("output",))
    return graphs


def _cyclegan_check(manifest: dict[str, Any]) -> None:
    for direction, entry in manifest["directions"].items():
        source, target = direction[0], direction[2]
        if (entry.get("source_domain", source), entry.get("target_domain", target)) != (source, target):
            raise ManifestProblem(f"direction {direction} must go from domain {source} to {target}")


def _cyclegan_describe(m: dict[str, Any]) -> list[tuple[str, str]]:
    directions = ", ".join(f"{d} ({e['graph']}, {e.get('generator', '?')}: {d[0]} -> {d[2]})"
                           for d, e in m["directions"].items())
    return [("domains", _domains_text(m)), ("directions", directions),
            ("translate", "one output per input, --direction " + "|".join(m["directions"]))]


# ---------------------------------------------------------------------------------------------- StarGAN
def _stargan_graphs(manifest: dict[str, Any]) -> dict[str, IO]:
    return {"generator": (("image", "label"), ("output",))}


def _stargan_check(manifest: dict[str, Any]) -> None:
    from munit_rt.family.labels import LabelSpace

    space = LabelSpace.from_manifest(manifest["labels"])  # raises ManifestProblem when inconsistent
    label = next((t for t in manifest["graphs"]["generator"].get("inputs", []) if t.get("name") == "label"), None)
    shape = label.get("shape") if isinstance(label, dict) else None
    if not isinstance(shape, list) or len(shape) != 2 or shape[1] != space.c_dim:
        raise ManifestProblem(f"graph 'generator' input 'label' must be [N, {space.c_dim}] (labels.c_dim), "
                              f"got {shape}")
    if int(manifest["channels"]) < 1:
        raise ManifestProblem(f"'channels' must be positive, got {manifest['channels']}")


def _stargan_describe(m: dict[str, Any]) -> list[tuple[str, str]]:
    from munit_rt.family.labels import LabelSpace

    space = LabelSpace.from_manifest(m["labels"])
    lines = [("channels", str(m["channels"]))]
    for dataset in space.datasets:
        label = "attributes" if len(space.datasets) == 1 else f"  {dataset.name}"
        hair = f"; hair colours, one at a time: {', '.join(dataset.hair)}" if dataset.hair else ""
        lines.append((label, f"{', '.join(dataset.attrs)} (label offset {dataset.offset}){hair}"))
    if len(space.datasets) > 1:
        lines.insert(1, ("attributes", f"{len(space.datasets)} datasets, mask at offset {space.mask_offset}"))
    lines.append(("label", f"[N, {space.c_dim}] float32 0/1"))
    lines.append(("translate", "--attrs A,B=0 (one output) or --sweep (one output per attribute, default)"))
    return lines


def _domains_text(m: dict[str, Any]) -> str:
    return ", ".join(f"{d}: {int(s['channels'])} channel{'s' if int(s['channels']) != 1 else ''}"
                     for d, s in m["domains"].items())


def _no_check(manifest: dict[str, Any]) -> None:
    return None


FAMILIES: dict[str, FamilySpec] = {
    "munit": FamilySpec("munit", "MUNIT", ("domains", "style_dim"), ("a", "b"), _munit_graphs, _no_check,
                        "crop", dict(LABEL_OPTIONS), _munit_describe),
    "cyclegan": FamilySpec("cyclegan", "CycleGAN", ("domains", "directions"), ("a", "b"), _cyclegan_graphs,
                           _cyclegan_check, "round", {**STYLE_OPTIONS, **LABEL_OPTIONS}, _cyclegan_describe),
    "stargan": FamilySpec("stargan", "StarGAN", ("channels", "labels"), None, _stargan_graphs, _stargan_check,
                          "crop", {**STYLE_OPTIONS, **DIRECTION_OPTIONS}, _stargan_describe),
}


def get_family(name: Any) -> FamilySpec:
    """The family's spec; a ManifestProblem naming the known families otherwise."""
    if name not in FAMILIES:
        raise ManifestProblem(f"unknown model family {name!r} (known: {', '.join(FAMILIES)}); "
                              "written by a newer munit-rt?")
    return FAMILIES[name]


def ignored_note(family: FamilySpec, flags: list[str]) -> str:
    """The one-line note for options given on the command line that this family does not use."""
    what = {"munit": "they apply to StarGAN bundles",
            "cyclegan": "one output per input through the direction's generator",
            "stargan": "outputs are chosen by --attrs / --sweep"}[family.name]
    verb = "is" if len(flags) == 1 else "are"
    return f"note: {', '.join(flags)} {verb} ignored for {family.title} bundles ({what})"
