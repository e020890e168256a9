"""Batch translation of files and folders: `translate_paths(TranslateOptions(...)) -> Report`.

Three stages overlap: a thread pool decodes and preprocesses inputs into a bounded prefetch queue (memory
stays flat for huge folders), the main thread runs inference in batches of images of the same size, and a
writer pool encodes and writes PNG/JPEG files atomically. A bad input is recorded in the report and
skipped; setup problems (model, options, output folder) raise `MunitRtError` before any work starts.
"""
from __future__ import annotations

import os
import sys
import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from munit_rt.bundle import Bundle
from munit_rt.errors import InputError
from munit_rt.images import InputImage, Preprocess, find_images, normalize, read_image, to_pixels
from munit_rt.outputs import OutputLayout, encode_image, make_grid, output_key, prepare_roots, write_atomic, write_index
from munit_rt.styles import interpolate_styles, load_style_codes, random_styles
from munit_rt.translator import Translator, direction_domains

DEFAULT_STYLES = 8
DEFAULT_MODEL_DIR = Path(__file__).resolve().parent / "models" / "default"
MODEL_ENV_VAR = "MUNIT_RT_MODEL"
STAGES = ("decode", "infer", "write")


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
        return "\n".join(lines)


def resolve_model(model: Path | str | None) -> Path:
    if model:
        return Path(model)
    if os.environ.get(MODEL_ENV_VAR):
        return Path(os.environ[MODEL_ENV_VAR])
    if (DEFAULT_MODEL_DIR / "manifest.json").is_file():
        return DEFAULT_MODEL_DIR
    raise InputError("no model given and no default model is installed; export one with `munit-rt export CKPT` "
                     "and pass --model X.bundle")


def translate_paths(options: TranslateOptions) -> Report:
    started = time.perf_counter()
    options.validate()
    bundle = Bundle(resolve_model(options.model))
    source, target = direction_domains(options.direction)
    source_prep = Preprocess.from_bundle(bundle.preprocess, bundle.domains[source], options.size)
    target_prep = Preprocess.from_bundle(bundle.preprocess, bundle.domains[target], options.size)

    # Inputs and outputs: everything checked before a model session is built
    plan = StylePlan.from_options(options, bundle.style_dim)
    num_styles = plan.count + (plan.count - 1) * options.interpolate
    layout = OutputLayout(options.output, options.layout, num_styles, options.image_format, options.grid)
    items = _unique_inputs(find_images(list(options.inputs), options.recursive, exclude=layout.roots()))
    if not items:
        raise InputError(f"no images found in {', '.join(map(str, options.inputs))} (looking for "
                         ".jpg .jpeg .png .bmp .webp .gif .tif .tiff" + ("" if options.recursive else
                         "; add --recursive to search subfolders") + ")")
    prepare_roots(layout)
    report = Report(output=options.output, inputs=len(items))
    todo = [item for item in items if not (options.resume and layout.is_complete(item.relpath))]
    report.skipped = len(items) - len(todo)

    if todo:  # a finished run resumes without even opening the model
        _translate(todo, bundle, options, layout, plan, (source_prep, target_prep), report)
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
        plan.encode_references(translator, preps[1], direction_domains(options.direction)[1])
        _run_stages(todo, translator, options, layout, preps[0], plan.codes_for, report)
    finally:
        translator.close()

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


def _unique_inputs(items: list[InputImage]) -> list[InputImage]:
    """Drop repeats of the same file; refuse two inputs that would write the same outputs."""
    seen_files: set[Path] = set()
    owners: dict[str, InputImage] = {}
    unique = []
    for item in items:
        resolved = item.path.resolve()
        if resolved in seen_files:
            continue
        seen_files.add(resolved)
        key = output_key(item.relpath)
        if key in owners:
            raise InputError(f"inputs {owners[key].path} and {item.path} would write the same outputs "
                             f"('{key}'); rename one or translate them separately")
        owners[key] = item
        unique.append(item)
    return unique


# -- the three overlapping stages ----------------------------------------------------------------------
def _run_stages(todo: list[InputImage], translator: Translator, options: TranslateOptions, layout: OutputLayout,
                prep: Preprocess, codes_for, report: Report) -> None:
    from tqdm import tqdm

    workers = max(1, min(4, os.cpu_count() or 1))
    prefetch = max(2 * options.batch_size, 2 * workers)  # bounded: memory stays flat for any folder size
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
        except Exception as exc:  # noqa: BLE001 - a failed write fails that input only
            report.failures.append((item.relpath, f"cannot write outputs ({_reason(exc)})"))
        progress.update(1)

    def infer(batch: list[tuple[InputImage, np.ndarray, np.ndarray]]) -> None:
        started = time.perf_counter()
        try:
            images = np.stack([x for _, _, x in batch])
            codes = codes_for([item.relpath for item, _, _ in batch])
            outputs = translator.translate(images, codes, options.direction, options.batch_size)
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
            if len(bucket) >= options.batch_size:
                infer(buckets.pop(pixels.shape))
            elif sum(map(len, buckets.values())) > prefetch:  # many sizes: don't hoard part-filled batches
                infer(buckets.pop(max(buckets, key=lambda shape: len(buckets[shape]))))
        for shape in list(buckets):
            infer(buckets.pop(shape))
        while writes:
            finish_write(*writes.popleft())
    finally:
        readers.shutdown(wait=True, cancel_futures=True)
        writers.shutdown(wait=True)
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
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
