"""Optimisation-profile shapes: the (min, opt, max) shape of every input of every graph of a bundle.

TensorRT engines with dynamic dims need one profile that bounds N, H and W. The options are the CLI's
(`--max-batch --opt-batch --min-size --opt-size --max-size`); anything not given is derived from the bundle:

    batch  min 1, opt min(8, max), max 16 (or --opt-batch when that is larger)
    size   opt = the bundle's preprocess size, min = opt / 2, max = 2 * opt, each kept inside the explicit
           bounds and rounded to the bundle's `spatial_multiple` (2**n_downsample); explicit sizes must already
           be multiples, so the profile holds only sizes the pipeline can produce

Shapes follow the manifest's symbolic input shapes: integer dims stay fixed, a string dim is N at position
0 and a spatial dim at positions 2 and 3, by input name:

    image         [N, C, H, W]
    content       [N, Cc, H/m, W/m]        m = spatial_multiple
    style         [N, style_dim]
    adain_params  [N, P]

Pure python, no numpy needed: the cache key and the builder both consume `ShapeRange.to_json()`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable

from munit_rt.bundle.schema import TensorSpec
from munit_rt.errors import BundleError
from munit_rt.tensorrt import ProfileError

DEFAULT_MAX_BATCH = 16
DEFAULT_OPT_BATCH = 8
DEFAULT_SIZE = 256  # when a manifest has no preprocess.size

Shape = tuple[int, ...]


@dataclass(frozen=True)
class ProfileOptions:
    """The user's profile options; None means "derive from the bundle"."""

    max_batch: int | None = None
    opt_batch: int | None = None
    min_size: int | None = None
    opt_size: int | None = None
    max_size: int | None = None


@dataclass(frozen=True)
class ResolvedProfile:
    """Concrete (min, opt, max) batch and spatial sizes after defaults, rounding and validation."""

    batch: tuple[int, int, int]
    size: tuple[int, int, int]
    multiple: int


@dataclass(frozen=True)
class ShapeRange:
    """One input's optimisation-profile shapes."""

    min: Shape
    opt: Shape
    max: Shape

    def contains(self, shape: Iterable[int]) -> bool:
        shape = tuple(int(d) for d in shape)
        return len(shape) == len(self.min) and all(lo <= d <= hi for lo, d, hi in zip(self.min, shape, self.max))

    def to_json(self) -> dict[str, list[int]]:
        return {"min": list(self.min), "opt": list(self.opt), "max": list(self.max)}


GraphProfile = dict[str, ShapeRange]  # input name -> shapes


# ---------------------------------------------------------------------------------------------- options


def _round_up(value: int, multiple: int) -> int:
    return max(multiple, -(-value // multiple) * multiple)


def _check_positive(option: str, value: int | None, minimum: int = 1) -> None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < minimum):
        raise ProfileError(f"{option} must be an integer >= {minimum}, got {value!r}")


def _check_order(low: tuple[str, int], high: tuple[str, int]) -> None:
    (low_name, low_value), (high_name, high_value) = low, high
    if low_value > high_value:
        raise ProfileError(f"{low_name} {low_value} is larger than {high_name} {high_value}; "
                           f"the profile needs min <= opt <= max")


def resolve_batch(options: ProfileOptions) -> tuple[int, int, int]:
    _check_positive("--max-batch", options.max_batch)
    _check_positive("--opt-batch", options.opt_batch)
    max_batch = options.max_batch if options.max_batch is not None else max(DEFAULT_MAX_BATCH, options.opt_batch or 0)
    opt_batch = options.opt_batch if options.opt_batch is not None else min(DEFAULT_OPT_BATCH, max_batch)
    max_label = "--max-batch" if options.max_batch is not None else "--max-batch (default)"
    _check_order(("--opt-batch", opt_batch), (max_label, max_batch))
    return 1, opt_batch, max_batch


def resolve_sizes(options: ProfileOptions, multiple: int, base_size: int) -> tuple[int, int, int]:
    explicit = {"--min-size": options.min_size, "--opt-size": options.opt_size, "--max-size": options.max_size}
    for option, value in explicit.items():
        _check_positive(option, value, minimum=multiple)
        if value is not None and value % multiple:
            lower = value // multiple * multiple
            raise ProfileError(f"{option} {value} is not a multiple of {multiple} (the bundle's spatial multiple); "
                               f"use {lower or multiple} or {lower + multiple}")
    low, high = options.min_size, options.max_size
    if low is not None and high is not None:
        _check_order(("--min-size", low), ("--max-size", high))

    opt = options.opt_size
    if opt is None:  # the bundle's size, kept inside explicit bounds
        opt = max(multiple, round(base_size / multiple) * multiple)
        if low is not None:
            opt = max(opt, low)
        if high is not None:
            opt = min(opt, high)
    min_size = low if low is not None else min(opt, _round_up(opt // 2, multiple))
    max_size = high if high is not None else 2 * opt
    _check_order(("--min-size" if low is not None else "--min-size (default)", min_size), ("--opt-size", opt))
    _check_order(("--opt-size", opt), ("--max-size" if high is not None else "--max-size (default)", max_size))
    return min_size, opt, max_size


def resolve(options: ProfileOptions | None, bundle: Any) -> ResolvedProfile:
    """Apply defaults from the bundle (its spatial multiple and preprocess size) and validate; errors name the
    option."""
    options = options or ProfileOptions()
    manifest = bundle.manifest
    return ResolvedProfile(resolve_batch(options), resolve_sizes(options, manifest.spatial_multiple,
                                                                 manifest.preprocess.size), manifest.spatial_multiple)


# ----------------------------------------------------------------------------------------------- shapes


def input_range(graph: str, tensor: TensorSpec, resolved: ResolvedProfile) -> ShapeRange:
    """(min, opt, max) for one input of `graph`, its symbolic dims sized by TensorSpec.shape_at."""
    try:
        return ShapeRange(*(tensor.shape_at(resolved.batch[level], resolved.size[level], resolved.multiple)
                            for level in range(3)))
    except ValueError as exc:
        raise BundleError(f"graph {graph}: {exc}, which a TensorRT profile cannot size") from None


def graph_profile(bundle: Any, graph: str, resolved: ResolvedProfile) -> GraphProfile:
    graphs = bundle.graphs
    if graph not in graphs:
        raise BundleError(f"the bundle has no graph '{graph}' (graphs: {', '.join(sorted(graphs))})")
    return {tensor.name: input_range(graph, tensor, resolved) for tensor in graphs[graph].inputs}


def profile_shapes(bundle: Any, options: ProfileOptions | None = None,
                   graphs: Iterable[str] | None = None) -> dict[str, GraphProfile]:
    """Profile shapes for `graphs` (default: all) of a Bundle."""
    resolved = resolve(options, bundle)
    names = list(graphs) if graphs is not None else list(bundle.graphs)
    return {name: graph_profile(bundle, name, resolved) for name in names}


def profile_json(profile: GraphProfile) -> dict[str, dict[str, list[int]]]:
    """The JSON form used in cache keys and sidecars: {input: {"min": [...], "opt": [...], "max": [...]}}."""
    return {name: profile[name].to_json() for name in sorted(profile)}
