"""A model family on the runtime side: its manifest keys, its graphs, its translate job and how it is served.

Each family is one module in munit_rt/families/ that subclasses `Family` and registers an instance
(munit_rt.families.register); the bundle reader, `Translator`, the translate pipeline, Triton and `info` look
the family up by the manifest's name and never branch on it. The torch half of a family (config, networks,
training, the graph split that export traces) is munit_rt.training.families.X; the bundle manifest is the only
thing the two halves share.

    manifest      parse_model, graphs, check      the family's own keys, typed; the graphs (with fixed I/O
                                                   names) a bundle of the family must hold
    translate     translator, plan                 the Python API class (the translate job, written once for
                                                   every backend) and what `munit-rt translate` does per input
    serving       triton_layout                    Triton models and ensembles
    info          describe                         the family's lines of `munit-rt info BUNDLE`
"""
from __future__ import annotations

import abc
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

if TYPE_CHECKING:
    from munit_rt.bundle.fields import Fields
    from munit_rt.bundle.reader import Bundle
    from munit_rt.bundle.schema import Manifest
    from munit_rt.preprocess import Preprocess
    from munit_rt.translator import Translator
    from munit_rt.triton.layout import Layout

IO = tuple[tuple[str, ...], tuple[str, ...]]  # (input names, output names) of a graph


@dataclass
class TranslatePlan:
    """What `munit-rt translate` does with each input, decided once per run from the options and the bundle.

    `prep` brings inputs to the model (the bundle's description, `--size` applied) with `channels`; each input
    gets the outputs `names` (nested file names; `single`: one output, written as OUT/<input>.png). The plan is
    pickled to Ray workers, so it holds data, not open resources: `prepare` runs on each worker once its
    Translator exists (e.g. MUNIT encodes --style-image references there), then `run` translates batches.
    """

    prep: Preprocess
    channels: int
    names: list[str]
    single: bool
    direction: str | None = None  # the direction this run translates, when the family has directions

    def prepare(self, translator: Translator) -> None:
        """Setup work that needs the model (InputError on failure: a setup error, exit 2); runs once per plan
        (a plan prepared by the Ray driver is not prepared again on its workers)."""

    @property
    def needs_model(self) -> bool:
        """Whether `prepare` has work to do (the Ray driver then prepares the plan before shipping it)."""
        return False

    def shared_codes(self) -> np.ndarray | None:
        """Style codes every input shares, once prepared (kept beside the run record); None: none."""
        return None

    def run(self, translator: Translator, images: np.ndarray, relpaths: list[str]) -> np.ndarray:
        """images [N, C, H, W] (float32, `prep`'s range), their relative paths -> outputs [N, S, C', H', W']."""
        raise NotImplementedError

    def column_labels(self) -> list[str]:
        """What each output of an input is, for people (index.html): the output names by default."""
        return list(self.names)

    def with_absolute_paths(self, absolute) -> TranslatePlan:
        """This plan for workers in another folder (Ray): every path it holds made absolute with `absolute`."""
        return self

    def record(self) -> dict[str, Any]:
        """The options that decide this run's pixels (styles, seed, labels, ...), as JSON values."""
        return {}


@dataclass
class GeneratePlan(TranslatePlan):
    """One output per input, through the translator's `generate(images, batch_size)`: the plan of a family whose
    bundle runs one generator graph in one direction (pix2pix)."""

    batch_size: int = 8

    def run(self, translator: Any, images: np.ndarray, relpaths: list[str]) -> np.ndarray:
        return translator.generate(images, self.batch_size)[:, None]


class Family(abc.ABC):
    """One model family's runtime description. Subclasses set the class attributes and implement the methods."""

    name: ClassVar[str]                  # the manifest's "family"
    title: ClassVar[str]                 # for messages: "MUNIT", "CycleGAN"
    translator: ClassVar[type]           # its Translator subclass (munit_rt.Translator(bundle) returns one)
    options: ClassVar[dict[str, str]]    # TranslateOptions fields the family reads -> their flags; options of
    ignored_why: ClassVar[str]           # other families are ignored with a note saying why (this text)
    default_fit: ClassVar[str] = "crop"  # schema-1 manifests did not record preprocess.fit: the family's rule

    # -- manifest --------------------------------------------------------------------------------------
    @abc.abstractmethod
    def parse_model(self, fields: Fields) -> Any:
        """The family's own top-level manifest keys as a typed, validated object (ManifestError naming the
        key on any problem); available afterwards as `manifest.model`."""

    @abc.abstractmethod
    def graphs(self, model: Any) -> dict[str, IO]:
        """The graphs a bundle of this family must list, with their fixed input and output names."""

    def check(self, manifest: Manifest) -> None:
        """Checks across the family keys and the graph specs (e.g. a label input's width); ManifestError."""

    def channels(self, manifest: Manifest, domain: str | None = None) -> int:
        """Image channels of `domain` (families without domains: of their images)."""
        raise NotImplementedError

    # -- translate -------------------------------------------------------------------------------------
    @abc.abstractmethod
    def plan(self, bundle: Bundle, options: Any) -> TranslatePlan:
        """The plan of a `translate` run (InputError for options that do not fit the bundle)."""

    # -- serving and info ------------------------------------------------------------------------------
    @abc.abstractmethod
    def triton_layout(self, bundle: Bundle, directions: tuple[str, ...], prefix: str) -> Layout:
        """The Triton models (one per graph) and ensembles serving `directions` ("a2b", "b2a")."""

    @abc.abstractmethod
    def describe(self, manifest: Manifest) -> list[tuple[str, str]]:
        """(label, text) lines of `munit-rt info BUNDLE` about the family's keys."""

    def ignored_note(self, flags: list[str]) -> str:
        verb = "is" if len(flags) == 1 else "are"
        return f"note: {', '.join(flags)} {verb} ignored for {self.title} bundles ({self.ignored_why})"


def parse_domains(fields: Fields) -> dict[str, int]:
    """The manifest's "domains": {"a": {"channels": C}, "b": {"channels": C}}, both required, 1 to 4 channels."""
    domains = {domain: entry.int("channels", low=1, high=4)
               for domain, entry in fields.entries("domains", key_choices=("a", "b"))}
    fields.check(sorted(domains) == ["a", "b"], "domains", f"must be ['a', 'b'], got {sorted(domains)}")
    return domains


def domains_text(domains: dict[str, int]) -> str:
    """`info`'s line for families with image domains: "a: 3 channels, b: 1 channel"."""
    return ", ".join(f"{d}: {c} channel{'s' if c != 1 else ''}" for d, c in domains.items())
