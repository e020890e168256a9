"""A model family on the torch side: what training, checkpoint reading and export need to know about it.

Each family describes itself once, in its own package under training/families/ (munit_rt.training.families.X),
and registers an instance of its `TrainingFamily` subclass (munit_rt.training.registry.register); shared code
(the driver, checkpoint reading, export, `info`) looks families up by the name a checkpoint or config carries
and never branches on it. A family names its `package` and implements methods as functions of its modules, found
by name (CONVENTIONS: check_config in config, build_generator in model, ...) or bound with `delegate`, so the
torch-side code loads on first use. The runtime half of a family (manifest block, translate job, Triton layout) is
munit_rt.families.X; the two meet only through the bundle manifest, which export writes from this half and the
runtime validates with its half.

    config        config_class, check_config           YAML / stored config -> frozen dataclass (upstream names)
    weights       build_generator, remap, model_part,  strict loads of munit-rt and upstream state dicts
                  weight_label
    files         detect, upstream_iteration,          which plain (upstream) files are this family's and the
                  upstream_config                      config of one read without a config; munit-rt files carry
                                                       their family in the "munit_rt" block and need no detector;
                                                       training.checkpoint reads both kinds
    export        graphs, preprocess, manifest_model,  the graph split, the preprocessing description, and the
                  source_details                       family's own manifest keys
    info          describe_checkpoint
    training      open_training_data, build_job,       the family's data and trainer; training.engine.driver runs
                  schedule                             the one loop for every family, up to max_iter, which may
                                                       not pass the end of the LR schedule
"""
from __future__ import annotations

import abc
import importlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, ClassVar

import numpy as np

from munit_rt.training.config_fields import build_config

if TYPE_CHECKING:  # torch stays a lazy import for code that only lists families
    from torch import nn

    from munit_rt.preprocess import Preprocess
    from munit_rt.training.engine.driver import Job


# --------------------------------------------------------------------------------------------- graphs

@dataclass(frozen=True)
class TensorSpec:
    """One graph input or output: fixed dims are ints, symbolic (dynamic) dims strings ("N", "H", "H/4")."""

    name: str
    shape: tuple
    dtype: str = "float32"

    def to_dict(self) -> dict:
        return {"name": self.name, "dtype": self.dtype, "shape": list(self.shape)}


@dataclass
class ParityCase:
    """One set of feeds for the export parity check (numpy, seeded); `note` says what is special about it."""

    batch: int
    feeds: dict[str, np.ndarray] = field(repr=False)
    height: int | None = None  # image size; None for graphs without a spatial input (MUNIT's style MLP)
    width: int | None = None
    note: dict[str, str] = field(default_factory=dict)  # e.g. {"adain": "hand_built"}, recorded in the manifest

    def describe(self) -> dict:
        out: dict = {"batch": self.batch}
        if self.height is not None:
            out.update(height=self.height, width=self.width)
        return {**out, **self.note}

    def label(self) -> str:
        parts = [f"batch {self.batch}"]
        if self.height is not None:
            parts.append(f"{self.height}x{self.width}")
        return ", ".join(parts + [f"{key} {value}" for key, value in self.note.items()])


@dataclass
class GraphSpec:
    """One graph of a bundle: the module export traces, its I/O contract, and how to check it.

    `cases(rng)` gives the parity feeds (batch 1 and 3, two sizes neither traced at); `reference` is what parity
    compares against when `module` is a rewritten equivalent of the training module (MUNIT's sub-pixel decoder);
    `image_output` marks an output image in [-1, 1] (reduced-precision checks use peak-to-peak 2.0);
    `manifest_fields` are the family's extra keys of the graph's manifest entry (direction, generator, ...).
    """

    name: str
    role: str
    domain: str | None
    module: nn.Module
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    example_inputs: tuple = field(repr=False)
    cases: Callable[[np.random.Generator], list[ParityCase]] = field(repr=False)
    image_output: bool = False
    manifest_fields: dict = field(default_factory=dict)
    reference: nn.Module | None = field(default=None, repr=False)

    @property
    def reference_module(self) -> nn.Module:
        return self.module if self.reference is None else self.reference


# ---------------------------------------------------------------------------------------- checkpoints

@dataclass
class Checkpoint:
    """A generator checkpoint, read (munit_rt.training.checkpoint.read_checkpoint) and its config resolved.

    `state_dicts` are keyed by the family's generator keys; `source_format` is "munit-rt" or "official";
    `sha256` is the file's (an upstream pair: sha256 of both files' hex digests, in the order given);
    `meta` holds the munit-rt block, or for upstream files {"files": {key: path}, "config_source": "given" |
    "defaults" | "inferred" | "none"}. `config` is None only for an upstream file of a family without upstream
    defaults (official MUNIT) read without a config."""

    path: Path
    family: str
    config: Any
    state_dicts: dict[str, dict[str, Any]]
    iteration: int | None
    source_format: str
    sha256: str = ""
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Schedule:
    """Where a config's learning-rate schedule ends (TrainingFamily.schedule): `iterations` in all; `length`
    says how the config sets it and `extend` how to make it longer (both for the --max-iter refusal)."""

    iterations: int
    length: str  # "num_iters 10"
    extend: str  # "raise num_iters (and num_iters_decay) in the config"


@dataclass(frozen=True)
class Detection:
    """What a family recognises in a loaded plain (upstream) file.

    `key`: the one generator the file holds as a flat state dict (CycleGAN's G_A / G_B, StarGAN's G), or None
    for a file holding one state dict per generator key (official MUNIT `{"a": ..., "b": ...}`). `refusal`:
    the file is this family's but no generator (a discriminator, say); one line without the path, naming the
    file to pass instead. A generator found by any family wins over refusals; a file that several families
    refuse (upstream discriminators look alike across families) is refused with every family's line."""

    family: str
    key: str | None = None
    refusal: str = ""


# ---------------------------------------------------------------------------------------------- family

# Where a family's methods live by convention: a family that sets `package` and does not define one of these
# methods gets the function of the method's name (or the one named after ":") from the package's module named
# here, imported on the first call, so listing families needs no torch. A module without that function leaves
# the base class's default (for an abstract method: an error naming the module and the function).
CONVENTIONS = {
    "check_config": "config",
    "build_generator": "model",
    "remap": "upstream", "detect": "upstream", "upstream_iteration": "upstream", "upstream_config": "upstream",
    "describe_checkpoint": "upstream",
    "graphs": "graphs:describe_graphs", "manifest_model": "graphs",
    "preprocess": "data", "open_training_data": "data",
    "build_job": "trainer", "schedule": "trainer",
}


def delegate(target: str, default: Callable[..., Any] | None = None) -> Callable[..., Any]:
    """A family method implemented by the function `target` ("package.module:function"), which takes the method's
    arguments without `self` and is imported on the first call: a family's torch-side modules stay unimported
    until used. With `default` (a method), a module without the function falls back to it."""
    module_name, _, function_name = target.partition(":")

    def method(self, *args: Any, **kwargs: Any) -> Any:
        module = importlib.import_module(module_name)
        if default is None or hasattr(module, function_name):
            return getattr(module, function_name)(*args, **kwargs)
        if getattr(default, "__isabstractmethod__", False):
            raise NotImplementedError(f"{type(self).__name__}: {module_name} has no {function_name}()")
        return default(self, *args, **kwargs)

    method.__name__, method.__doc__ = function_name, f"{target}, imported on the first call."
    return method


# The keys the training driver reads from every family's config (besides to_dict()): `register` checks them.
TRAINING_KEYS = ("seed", "max_iter", "batch_size", "log_iter", "image_save_iter", "snapshot_save_iter")


class TrainingFamily(abc.ABC):
    """One model family's torch-side description. Subclasses set the class attributes and methods below."""

    name: ClassVar[str]                     # the manifest's and the checkpoint's "family"
    title: ClassVar[str]                    # for messages ("MUNIT", "CycleGAN")
    config_class: ClassVar[type]            # a dataclass with TRAINING_KEYS and to_dict()
    generator_keys: ClassVar[tuple[str, ...]]  # state dicts of a generator checkpoint (a munit-rt file holds all)
    snapshot_prefix: ClassVar[str]          # <prefix>_XXXXXXXX.pt, the generator file of a training snapshot
    default_for_configs: ClassVar[bool] = False  # a YAML without a `family` key is this family's (official MUNIT)
    tiny_config: ClassVar[dict | None] = None  # config keys of a tiny model: the test suite and `bench --quick`
    checkpoint_names: ClassVar[str]         # the generator files it reads, for messages ("gen_XXXXXXXX.pt")
    pair_files: ClassVar[str] = ""          # upstream files that may come as a pair (CycleGAN's G_A with G_B)
    upstream_defaults: ClassVar[bool] = False  # plain files without a config: assume config_class() (upstream's)
                                               # (the default `upstream_config`)
    package: ClassVar[str | None] = None    # "munit_rt.training.families.X": methods not defined come from its
                                            # modules (CONVENTIONS)

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """Bind, for a family with a `package`, every method of CONVENTIONS that neither it nor a parent family
        defines (runs before ABCMeta counts the abstract methods, so the bound ones count as implemented)."""
        super().__init_subclass__(**kwargs)
        if cls.package is None:
            return
        for method, place in CONVENTIONS.items():
            default = getattr(TrainingFamily, method)
            if getattr(cls, method) is default:
                module, _, function = place.partition(":")
                setattr(cls, method, delegate(f"{cls.package}.{module}:{function or method}", default))

    # -- config ----------------------------------------------------------------------------------------
    def config_from_dict(self, data: dict[str, Any], source: str) -> Any:
        """The frozen config (unknown keys and bad values: ConfigError naming `source` and the key): every key
        checked on its own (config_fields.build_config, the checks ride on the fields), then `check_config`."""
        config = build_config(self.config_class, data, source)
        self.check_config(config, source)
        return config

    def check_config(self, config: Any, source: str) -> None:
        """What single keys cannot say (sizes that must fit together): a ConfigError naming `source`."""

    # -- weights ---------------------------------------------------------------------------------------
    @abc.abstractmethod
    def build_generator(self, config: Any, key: str) -> nn.Module: ...

    def remap(self, state: dict[str, Any], model: nn.Module) -> dict[str, Any]:
        """Upstream key fixes (pure; e.g. pre-0.4 InstanceNorm buffers dropped). Default: unchanged."""
        return state

    @abc.abstractmethod
    def model_part(self, config: Any) -> tuple:
        """The config values the generator weights depend on (a --config that disagrees is refused)."""

    def weight_label(self, key: str) -> str:
        """How messages name the state dict under `key` ("G_A"; MUNIT: "domain a")."""
        return key

    # -- files -----------------------------------------------------------------------------------------
    def detect(self, obj: Any, path: Path) -> Detection | None:
        """Is `obj` (a loaded file without the munit-rt block) one of this family's upstream files?"""
        return None

    def upstream_iteration(self, path: Path) -> int | None:
        """The iteration an upstream file's name tells (yunjey's NNNNNN-G.ckpt), else None."""
        return None

    def upstream_config(self, state_dicts: dict[str, dict[str, Any]]) -> tuple[Any, str]:
        """(config, config_source) of upstream files read without a config: upstream's defaults
        (config_class(), "defaults") for families with `upstream_defaults`, else (None, "none"): a config is
        needed. A family whose tensor shapes fix its architecture returns (that config, "inferred"); one it cannot
        infer is a CheckpointError saying which config keys to pass."""
        return (self.config_class(), "defaults") if self.upstream_defaults else (None, "none")

    # -- export ----------------------------------------------------------------------------------------
    @abc.abstractmethod
    def graphs(self, gens: dict[str, nn.Module], config: Any, **options: Any) -> list[GraphSpec]:
        """The graph split of a checkpoint's generators (keys as `generator_keys`); `options` are the
        family's export options (MUNIT: upsample) and unknown ones are ignored."""

    @abc.abstractmethod
    def preprocess(self, config: Any) -> Preprocess:
        """The preprocessing description: written into the bundle and used by the family's data loading."""

    @abc.abstractmethod
    def manifest_model(self, ckpt: Checkpoint, gens: dict[str, nn.Module],
                       graphs: dict[str, dict]) -> dict[str, Any]:
        """The family's own top-level manifest keys (MUNIT: domains, style_dim, adain, ...), as JSON values;
        the runtime family (munit_rt.families.X) validates them when export checks the manifest it wrote."""

    def source_details(self, ckpt: Checkpoint) -> dict[str, Any]:
        """Keys the manifest's `source_checkpoint` adds to name, path, sha256, format and iteration
        (CycleGAN, StarGAN: config_source and every file with its sha256). Default: none."""
        return {}

    # -- info ------------------------------------------------------------------------------------------
    @abc.abstractmethod
    def describe_checkpoint(self, ckpt: Checkpoint, config_path: str | Path | None) -> str:
        """`munit-rt info CKPT`: family, format, iteration, config and parameter counts."""

    # -- training (munit_rt.training.engine.driver.train calls these, then runs its loop) ----------------
    @abc.abstractmethod
    def open_training_data(self, config: Any, data_dir: str | Path | None, world_size: int,
                           config_dir: Path | None = None) -> Any:
        """Find and check the training data (DataError naming the folder or file); nothing is written yet.
        `data_dir` (--data) stands for every data path of the config; `config_dir` is the config file's folder
        (None: a config object), where relative paths may also count from. `world_size` processes each take a
        batch per step, so the data must hold that many at least."""

    def schedule(self, config: Any, data: Any, world_size: int) -> Schedule | None:
        """Where the config's LR schedule ends on `data` (the driver refuses a max_iter past it, naming
        `Schedule.extend`); None: the schedule has no end, max_iter alone decides (MUNIT's step policy)."""
        return None

    @abc.abstractmethod
    def build_job(self, config: Any, data: Any, device: Any, dist: Any) -> Job:
        """The trainer (on `device`, after torch.manual_seed(config.seed)), this rank's batch stream, the fixed
        sample-grid inputs and the number of iterations; `dist` is this process's place in a torchrun job."""
