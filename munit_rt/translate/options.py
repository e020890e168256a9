"""The options of a `translate` run, checked across each other before anything is listed or written."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from munit_rt.errors import InputError

ENGINES = ("local", "ray")  # ray: munit_rt.translate.ray (pip install 'munit-rt[ray]')


@dataclass
class TranslateOptions:
    inputs: list[Path]
    output: Path = Path("translated")
    model: Path | None = None  # None: $MUNIT_RT_MODEL, then the installed default model
    styles: int | None = None  # None: 8 random styles, or as many as the reference images / codes given
    direction: str = "a2b"
    seed: int = 0
    synchronized: bool = False
    style_images: tuple[Path, ...] = ()
    style_dir: Path | None = None
    style_codes: Path | None = None
    interpolate: int = 0
    slerp: bool = False
    size: int | None = None  # None: the bundle's preprocess size
    batch_size: int = 8
    backend: str = "auto"
    precision: str = "fp32"
    checkpoint: Path | None = None  # --backend torch: the checkpoint the bundle was exported from
    layout: str = "nested"
    image_format: str = "png"
    grid: bool = False
    recursive: bool = False
    resume: bool = True
    progress: bool | None = None  # None: a progress bar only when stderr is a terminal
    attrs: str | None = None  # StarGAN: target attributes "A,B=0,C=1" (one output per input)
    from_attrs: str | None = None  # StarGAN: the inputs' own attributes, base of --attrs and --sweep (default 0)
    sweep: bool = False  # StarGAN: one output per attribute (also the default without --attrs)
    explicit: frozenset[str] | None = None  # options the caller set (CLI); None: those not at their default
    engine: str = "local"  # "ray": the same run on Ray actors (munit_rt.translate.ray)
    address: str | None = None  # ray: the cluster to join (None: start a local Ray instance)
    workers: int | None = None  # ray: inference actors (None: one per G GPUs with gpus_per_worker, else per node)
    gpus_per_worker: float | None = None  # ray: GPUs each actor reserves (may be fractional)

    def backend_options(self) -> dict:
        """Keyword options of the backend (Translator(..., **options))."""
        return {"checkpoint": self.checkpoint} if self.checkpoint is not None else {}

    def given(self) -> set[str]:
        """The options the caller set: the CLI's (click's parameter source), else those not at their default."""
        if self.explicit is not None:
            return set(self.explicit)
        return {f.name for f in dataclasses.fields(self)
                if (default := _default(f)) is not dataclasses.MISSING and getattr(self, f.name) != default}

    def for_family(self, family, notify: Callable[[str], None]) -> TranslateOptions:
        """The options of other families reset to their defaults, with one note when any was given (so that,
        e.g., MUNIT's checks of --styles against --style-codes never fire for a CycleGAN bundle)."""
        from munit_rt.families import families

        foreign = {name: flag for other in families().values() for name, flag in other.options.items()
                   if name not in family.options}
        given = self.given()
        flags = [foreign[f.name] for f in dataclasses.fields(self) if f.name in foreign and f.name in given]
        if flags:
            notify(family.ignored_note(flags))
        defaults = {f.name: _default(f) for f in dataclasses.fields(self) if f.name in foreign}
        return dataclasses.replace(self, **defaults)

    def validate(self) -> None:
        """Checks spanning several options; messages name the command-line flags."""
        from munit_rt.translator import direction_domains

        sources = [flag for flag, value in (("--style-image", self.style_images), ("--style-dir", self.style_dir),
                                            ("--style-codes", self.style_codes)) if value]
        if len(sources) > 1:
            raise InputError(f"{' and '.join(sources)} are alternatives; give one style source")
        if sources and self.styles is not None:
            raise InputError(f"--styles cannot be combined with {sources[0]} (the number of styles comes from it)")
        if sources and self.synchronized:
            raise InputError(f"--synchronized applies to random styles; {sources[0]} is already the same for all")
        if self.slerp and not self.interpolate:
            raise InputError("--slerp needs --interpolate K")
        for flag, value, low in (("--styles", self.styles, 1), ("--batch-size", self.batch_size, 1),
                                 ("--interpolate", self.interpolate, 0), ("--size", self.size, 1)):
            if value is not None and value < low:
                raise InputError(f"{flag} must be >= {low}, got {value}")
        direction_domains(self.direction)
        if self.checkpoint is not None and self.backend != "torch":
            raise InputError("--checkpoint is the PyTorch reference backend's source checkpoint; it needs "
                             "--backend torch")
        self._validate_engine()
        if self.backend in ("auto", "onnxruntime"):  # $MUNIT_RT_WINOGRAD, before any output folder is made
            from munit_rt.backends.onnxruntime import winograd_mode

            winograd_mode()

    def _validate_engine(self) -> None:
        if self.engine not in ENGINES:
            raise InputError(f"unknown engine {self.engine!r} (expected {' or '.join(ENGINES)})")
        ray_only = [flag for flag, value in (("--address", self.address), ("--workers", self.workers),
                                             ("--gpus-per-worker", self.gpus_per_worker)) if value is not None]
        if ray_only and self.engine != "ray":
            raise InputError(f"{', '.join(ray_only)} appl{'ies' if len(ray_only) == 1 else 'y'} to --engine ray only")
        if self.workers is not None and self.workers < 1:
            raise InputError(f"--workers must be >= 1, got {self.workers}")
        if self.gpus_per_worker is not None and not self.gpus_per_worker > 0:
            raise InputError(f"--gpus-per-worker must be > 0, got {self.gpus_per_worker}")


def _default(f: dataclasses.Field):
    if f.default is not dataclasses.MISSING:
        return f.default
    return f.default_factory() if f.default_factory is not dataclasses.MISSING else dataclasses.MISSING
