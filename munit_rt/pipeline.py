"""Batch translation of files and folders: `translate_paths(TranslateOptions(...)) -> Report`.

Three stages overlap: a thread pool decodes and preprocesses inputs into a bounded prefetch queue (memory
stays flat for huge folders), the main thread runs inference in batches of images of the same size, and a
writer pool encodes and writes PNG/JPEG files atomically. A bad input is recorded in the report and
skipped; setup problems (model, options, output folder) raise `MunitRtError` before any work starts.
`engine="ray"` runs the same todo list through munit_rt.ray_engine (Ray Data workers) instead of the stages
here; listing, resume, the per-batch inference (`batch_runner`) and the output writing are shared.
"""
from __future__ import annotations

import os
import sys
import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from munit_rt.bundle import Bundle
from munit_rt.errors import InputError, MunitRtError
from munit_rt.family.plans import FamilyPlan, family_options, plan_for
from munit_rt.images import InputImage, Preprocess, find_images, normalize, printable, read_image, to_pixels
from munit_rt.outputs import (OutputError, OutputLayout, clean_stale_temps, encode_image, make_grid, output_key,
                              prepare_roots, write_atomic, write_index)
from munit_rt.styles import interpolate_styles, load_style_codes, random_styles
from munit_rt.translator import Translator, direction_domains

DEFAULT_STYLES = 8
DEFAULT_MODEL_DIR = Path(__file__).resolve().parent / "models" / "default"
MODEL_ENV_VAR = "MUNIT_RT_MODEL"
STAGES = ("decode", "infer", "write")
ENGINES = ("local", "ray")  # ray: munit_rt.ray_engine (pip install 'munit-rt[ray]')


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
    engine: str = "local"  # "ray": the same run as a Ray Data pipeline (munit_rt.ray_engine)
    address: str | None = None  # ray: the cluster to join (None: start a local Ray instance)
    workers: int | None = None  # ray: inference actors (None: one per G GPUs with gpus_per_worker, else per node)
    gpus_per_worker: float | None = None  # ray: GPUs each actor reserves (may be fractional)

    def validate(self) -> None:
        """Checks spanning several options; messages name the command-line flags."""
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


@dataclass
class Report:
    output: Path
    inputs: int = 0
    translated: int = 0
    skipped: int = 0  # outputs already complete (--resume)
    files_written: int = 0
    failures: list[tuple[str, str]] = field(default_factory=list)  # (relative path, reason)
    wall_s: float = 0.0
    stage_s: dict[str, float] = field(default_factory=lambda: dict.fromkeys(STAGES, 0.0))
    stage_images: dict[str, int] = field(default_factory=lambda: dict.fromkeys(STAGES, 0))
    backend: str = ""

    @property
    def ok(self) -> bool:
        return not self.failures

    def add_stage(self, stage: str, seconds: float, images: int) -> None:
        self.stage_s[stage] += seconds
        self.stage_images[stage] += images

    def summary(self) -> str:
        rate = self.translated / self.wall_s if self.wall_s > 0 else 0.0
        lines = [f"{self.inputs} inputs: {self.translated} translated, {self.skipped} already done, "
                 f"{len(self.failures)} failed; {self.files_written} files written under {self.output} "
                 f"in {self.wall_s:.2f} s ({rate:.2f} images/s, backend {self.backend})",
                 f"  {'stage':<8}{'images':>8}{'busy s':>10}{'images/s':>10}"]
        for stage in STAGES:
            seconds, images = self.stage_s[stage], self.stage_images[stage]
            per_s = f"{images / seconds:.2f}" if seconds > 0 else "-"
            lines.append(f"  {stage:<8}{images:>8}{seconds:>10.2f}{per_s:>10}")
        if self.failures:
            lines.append("failed inputs:")
            lines += [f"  {relpath}: {reason}" for relpath, reason in self.failures]
        return printable("\n".join(lines))  # file names that are not UTF-8 print as \xNN


def resolve_model(model: Path | str | None) -> Path:
    from munit_rt.models import default_model_path

    model = model or os.environ.get(MODEL_ENV_VAR)
    if model:
        # a shipped model's name ("default", "default-cyclegan") unless a path of that name exists
        named = None if Path(model).exists() else default_model_path(str(model))
        return named or Path(model)
    if (DEFAULT_MODEL_DIR / "manifest.json").is_file():
        return DEFAULT_MODEL_DIR
    raise InputError("no model given and no default model is installed; export one with `munit-rt export CKPT` "
                     "and pass --model X.bundle")


def translate_paths(options: TranslateOptions, notify: Callable[[str], None] | None = None) -> Report:
    """`notify` gets one-line notes (options the bundle's family ignores); default: printed on stderr."""
    started = time.perf_counter()
    bundle = Bundle(resolve_model(options.model))
    options = family_options(options, bundle.spec, notify)  # the family's ignored options: noted, reset
    options.validate()
    if options.engine == "ray":  # without Ray: exit 2 naming the extra, before anything is listed or written
        from munit_rt.ray_engine import require_ray

        require_ray()

    # Inputs and outputs: everything checked before a model session is built
    if bundle.family == "munit":
        source, target = direction_domains(options.direction)
        source_prep = Preprocess.from_bundle(bundle.preprocess, bundle.domains[source], options.size)
        target_prep = Preprocess.from_bundle(bundle.preprocess, bundle.domains[target], options.size)
        plan = StylePlan.from_options(options, bundle.style_dim)
        num_styles = plan.count + (plan.count - 1) * options.interpolate
        layout = OutputLayout(options.output, options.layout, num_styles, options.image_format, options.grid)
        run = lambda todo, report: _translate(todo, bundle, options, layout, plan,  # noqa: E731
                                              (source_prep, target_prep), report)
        engine_plan = (plan, (source_prep, target_prep))  # what --engine ray ships to its workers
    else:  # CycleGAN, StarGAN: one output per input, or one per attribute (munit_rt.family.plans)
        family_plan = plan_for(options, bundle)
        layout = OutputLayout(options.output, options.layout, len(family_plan.names), options.image_format,
                              options.grid, names=family_plan.names, single=family_plan.single)
        run = lambda todo, report: _translate_family(todo, bundle, options, layout, family_plan,  # noqa: E731
                                                     report)
        engine_plan = (family_plan, (family_plan.prep, None))
    items, clashes = _unique_inputs(find_images(list(options.inputs), options.recursive, exclude=layout.roots()))
    sheets = layout.sheet_clashes(item.relpath for item in items)
    if sheets:  # both inputs skipped, as for other clashes: neither output may overwrite the other
        blocked = set(sheets) | set(sheets.values())
        clashes += [(item.relpath, _sheet_reason(item.relpath, sheets)) for item in items if item.relpath in blocked]
        items = [item for item in items if item.relpath not in blocked]
    if not items and not clashes:
        raise InputError(f"no images found in {', '.join(map(str, options.inputs))} (looking for "
                         ".jpg .jpeg .png .bmp .webp .gif .tif .tiff" + ("" if options.recursive else
                         "; add --recursive to search subfolders") + ")")
    prepare_roots(layout)
    clean_stale_temps(layout.folders(item.relpath for item in items))  # left by a run that was killed
    report = Report(output=options.output, inputs=len(items) + len(clashes), failures=clashes)
    todo = [item for item in items if not (options.resume and layout.is_complete(item.relpath))]
    report.skipped = len(items) - len(todo)

    if todo and options.engine == "ray":  # the same todo, plan and layout, on Ray workers
        from munit_rt.ray_engine import translate_ray

        translate_ray(todo, bundle, options, layout, *engine_plan, report, notify)
    elif todo:  # a finished run resumes without even opening the model
        run(todo, report)
    if options.grid:
        write_index(layout.root, [item.relpath for item in items])
    report.wall_s = time.perf_counter() - started
    return report


@dataclass
class StylePlan:
    """Where the styles come from: `count` per input, shared `codes` (or None: random per input)."""

    count: int
    seed: int
    style_dim: int
    interpolate: int = 0
    slerp: bool = False
    reference_paths: list[Path] = field(default_factory=list)
    codes: np.ndarray | None = None

    @classmethod
    def from_options(cls, options: TranslateOptions, style_dim: int) -> StylePlan:
        references = _reference_paths(options)
        codes = load_style_codes(options.style_codes, style_dim) if options.style_codes else None
        count = len(references) or (len(codes) if codes is not None else options.styles or DEFAULT_STYLES)
        if options.interpolate and count < 2:
            raise InputError("--interpolate needs at least 2 styles to interpolate between")
        if codes is None and not references and options.synchronized:
            codes = random_styles(count, style_dim, options.seed)  # official semantics: seed only
        return cls(count, options.seed, style_dim, options.interpolate, options.slerp, references, codes)

    def encode_references(self, translator: Translator, prep: Preprocess, domain: str) -> None:
        if self.reference_paths:
            self.codes = _encode_references(translator, self.reference_paths, prep, domain)

    def codes_for(self, relpaths: list[str]) -> np.ndarray:
        """[S, style_dim] when shared by every input, else [N, S, style_dim] from (seed, relpath) alone."""
        if self.codes is not None:
            return interpolate_styles(self.codes, self.interpolate, self.slerp)
        return np.stack([interpolate_styles(random_styles(self.count, self.style_dim, self.seed, relpath),
                                            self.interpolate, self.slerp) for relpath in relpaths])


def _translate(todo: list[InputImage], bundle: Bundle, options: TranslateOptions, layout: OutputLayout,
               plan: StylePlan, preps: tuple[Preprocess, Preprocess], report: Report) -> None:
    translator = Translator(bundle, backend=options.backend, precision=options.precision)
    report.backend = f"{translator.backend.name} ({translator.backend.device})"
    try:
        _run_stages(todo, translator, options, layout, preps[0], batch_runner(translator, options, plan, preps[1]),
                    report)
    finally:
        translator.close()


def batch_runner(translator: Translator, options: TranslateOptions, plan: StylePlan | FamilyPlan,
                 target_prep: Preprocess | None = None) -> Callable[[np.ndarray, list[str]], np.ndarray]:
    """The inference of a run, shared by both engines: `(images [N, C, H, W], relpaths)` -> [N, S, C, H, W].
    MUNIT: reference images are encoded first (with `target_prep`); random codes come from (seed, relpath)."""
    if isinstance(plan, StylePlan):
        plan.encode_references(translator, target_prep, direction_domains(options.direction)[1])
        return lambda images, relpaths: translator.translate(images, plan.codes_for(relpaths), options.direction,
                                                             options.batch_size)
    return lambda images, relpaths: plan.run(translator, images)


def _translate_family(todo: list[InputImage], bundle: Bundle, options: TranslateOptions, layout: OutputLayout,
                      plan: FamilyPlan, report: Report) -> None:
    translator = Translator(bundle, backend=options.backend, precision=options.precision)
    report.backend = f"{translator.backend.name} ({translator.backend.device})"
    try:
        _run_stages(todo, translator, options, layout, plan.prep, batch_runner(translator, options, plan), report)
    finally:
        translator.close()


def _sheet_reason(relpath: str, sheets: dict[str, str]) -> str:
    translated = relpath if relpath in sheets else next(k for k, v in sheets.items() if v == relpath)
    return (f"the translation of {translated} and the --grid contact sheet of {sheets[translated]} would be the "
            "same file; rename one, or drop --grid")


def _reference_paths(options: TranslateOptions) -> list[Path]:
    if options.style_dir is not None:
        paths = [item.path for item in find_images([Path(options.style_dir)], options.recursive)]
        if not paths:
            raise InputError(f"--style-dir {options.style_dir}: no images found")
        return paths
    return [Path(p) for p in options.style_images]


def _encode_references(translator: Translator, paths: list[Path], prep: Preprocess, domain: str) -> np.ndarray:
    """Style codes of reference images, one at a time (their sizes may differ)."""
    codes = []
    for path in paths:
        try:
            pixels = read_image(path, prep)
        except Exception as exc:  # noqa: BLE001 - any decode failure of a reference is a setup error
            raise InputError(f"style image {path}: cannot read it ({_reason(exc)})") from None
        codes.append(translator.encode_style(normalize(pixels, prep)[None], domain)[0])
    return np.stack(codes)


def _unique_inputs(items: list[InputImage]) -> tuple[list[InputImage], list[tuple[str, str]]]:
    """Drop repeats of the same file. Inputs that would write the same outputs (cat.png and cat.jpg in one
    folder) are all skipped, each as a failure naming the others: no output is shared or overwritten."""
    seen_files: set[Path] = set()
    by_key: dict[str, list[InputImage]] = {}
    for item in items:
        resolved = item.path.resolve()
        if resolved in seen_files:
            continue
        seen_files.add(resolved)
        by_key.setdefault(output_key(item.relpath), []).append(item)
    unique, clashes = [], []
    for key, group in by_key.items():
        if len(group) == 1:
            unique.append(group[0])
            continue
        names = " and ".join(item.relpath for item in group)
        clashes += [(item.relpath, f"{names} would write the same outputs ('{key}'); rename one") for item in group]
    return unique, clashes


# -- the three overlapping stages ----------------------------------------------------------------------
def _run_stages(todo: list[InputImage], translator: Translator, options: TranslateOptions, layout: OutputLayout,
                prep: Preprocess, run_batch: Callable[[np.ndarray, list[str]], np.ndarray], report: Report) -> None:
    """`run_batch(images [N, C, H, W], relpaths)` -> outputs [N, S, C, H, W] (S outputs per input)."""
    from tqdm import tqdm

    workers = max(1, min(4, os.cpu_count() or 1))
    prefetch = max(2 * options.batch_size, 2 * workers)  # bounded: memory stays flat for any folder size
    # --batch-size counts (input, output) pairs: with S outputs per input, batch_size // S inputs fill one
    # decode batch, and a smaller call lets the writers save one input's outputs while the next decodes
    inputs_per_call = max(1, options.batch_size // max(1, layout.num_styles))
    progress = tqdm(total=len(todo), unit="img", file=sys.stderr, disable=None if options.progress is None
                    else not options.progress, desc="translate")
    readers = ThreadPoolExecutor(workers, thread_name_prefix="munit-rt-read")
    writers = ThreadPoolExecutor(workers, thread_name_prefix="munit-rt-write")
    reads: deque[tuple[InputImage, Future]] = deque()
    writes: deque[tuple[InputImage, Future]] = deque()
    buckets: dict[tuple[int, ...], list[tuple[InputImage, np.ndarray, np.ndarray]]] = {}
    pending = iter(todo)

    def finish_write(item: InputImage, future: Future) -> None:
        try:
            files, seconds = future.result()
            report.add_stage("write", seconds, 1)
            report.files_written += files
            report.translated += 1
        except OutputError:  # disk full, quota, read-only file system: every later write would fail too
            raise
        except Exception as exc:  # noqa: BLE001 - a failed write fails that input only
            report.failures.append((item.relpath, f"cannot write outputs ({_reason(exc)})"))
        progress.update(1)

    def infer(batch: list[tuple[InputImage, np.ndarray, np.ndarray]]) -> None:
        started = time.perf_counter()
        try:
            images = np.stack([x for _, _, x in batch])
            outputs = run_batch(images, [item.relpath for item, _, _ in batch])
        except Exception as exc:  # noqa: BLE001 - record the batch as failed, go on with the rest
            report.failures += [(item.relpath, f"inference failed ({_reason(exc)})") for item, _, _ in batch]
            progress.update(len(batch))
            return
        report.add_stage("infer", time.perf_counter() - started, len(batch))
        for (item, pixels, _), styled in zip(batch, outputs):
            writes.append((item, writers.submit(_write_outputs, layout, item.relpath, pixels, styled)))
        while len(writes) > prefetch:  # bounded too: never hold more than a few batches of outputs
            finish_write(*writes.popleft())

    try:
        while True:
            while len(reads) < prefetch and (item := next(pending, None)) is not None:
                reads.append((item, readers.submit(_read_input, item.path, prep)))
            if not reads:
                break
            item, future = reads.popleft()
            try:
                pixels, x, seconds = future.result()
            except Exception as exc:  # noqa: BLE001 - unreadable input: report it by name, skip it
                report.failures.append((item.relpath, _reason(exc)))
                progress.update(1)
                continue
            report.add_stage("decode", seconds, 1)
            bucket = buckets.setdefault(pixels.shape, [])
            bucket.append((item, pixels, x))
            if len(bucket) >= inputs_per_call:
                infer(buckets.pop(pixels.shape))
            elif sum(map(len, buckets.values())) > prefetch:  # many sizes: don't hoard part-filled batches
                infer(buckets.pop(max(buckets, key=lambda shape: len(buckets[shape]))))
        for shape in list(buckets):
            infer(buckets.pop(shape))
        while writes:
            finish_write(*writes.popleft())
    finally:
        readers.shutdown(wait=True, cancel_futures=True)
        writers.shutdown(wait=True, cancel_futures=True)  # running writes finish (atomic), queued ones are dropped
        progress.close()
    report.failures.sort()


def _read_input(path: Path, prep: Preprocess) -> tuple[np.ndarray, np.ndarray, float]:
    started = time.perf_counter()
    pixels = read_image(path, prep)
    return pixels, normalize(pixels, prep), time.perf_counter() - started


def _write_outputs(layout: OutputLayout, relpath: str, input_pixels: np.ndarray, styled: np.ndarray):
    """All files of one input: its S styles (and the contact sheet). Returns (files written, seconds)."""
    started = time.perf_counter()
    outputs = [to_pixels(y) for y in styled]
    for path, pixels in zip(layout.style_paths(relpath), outputs):
        write_atomic(path, encode_image(pixels, layout.image_format))
    if layout.grid:
        write_atomic(layout.grid_path(relpath), encode_image(make_grid(input_pixels, outputs), "png"))
    return len(outputs) + int(layout.grid), time.perf_counter() - started


def _reason(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    if isinstance(exc, MunitRtError) and text:  # our own refusals already read as a reason
        return text
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
