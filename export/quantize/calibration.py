"""What each graph sees in the family's own translate job: the jobs, the images, and a recording backend.

Nothing here names a family. The jobs are the family's TranslatePlan with every `translate` option at its default,
once per direction it translates (a family without directions: once); the images are read and preprocessed as
`translate` reads them (munit_rt.translate.stages.read_input) and run through `munit_rt.Translator` in batches of
the same shape, as the local engine does. `RecordingBackend` wraps the FP32 backend and keeps what each graph
receives: the shapes of every call (for the FLOP shares) and a bounded, reproducible sample of its batch rows (the
calibration data).
"""
from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Mapping

import numpy as np

from munit_rt.backends.base import Backend
from munit_rt.errors import InputError, one_line_reason
from munit_rt.text import printable

if TYPE_CHECKING:
    from munit_rt.bundle import Bundle
    from munit_rt.families.base import TranslatePlan
    from munit_rt.io.images import InputImage
    from munit_rt.translator import Translator

ROW_BUDGET_BYTES = 256 << 20  # calibration rows kept per graph: at most this many bytes of feeds ...
MAX_ROWS = 256                # ... and at most this many rows
EXTENSIONS = ".jpg .jpeg .png .bmp .webp .gif .tif .tiff"


@dataclass(frozen=True)
class Job:
    """One translate job: the plan and its name ("a2b", or "default" for a family without directions)."""

    name: str
    plan: TranslatePlan


def job_plans(bundle: Bundle) -> list[Job]:
    """The family's translate job with the default options, once per direction that gives another plan."""
    from munit_rt.translate.options import TranslateOptions
    from munit_rt.translator import DIRECTIONS

    jobs: list[Job] = []
    for direction in DIRECTIONS:
        options = TranslateOptions(inputs=[], direction=direction).for_family(bundle.spec, lambda note: None)
        plan = bundle.spec.plan(bundle, options)
        name = plan.direction or "default"
        if all(job.name != name for job in jobs):
            jobs.append(Job(name, plan))
    return jobs


def list_calibration_images(folder: Path) -> list[InputImage]:
    """Every image under `folder` (recursive), sorted; none is an InputError (one line)."""
    from munit_rt.io.images import list_images

    items, _ = list_images([Path(folder)], recursive=True)
    if not items:
        raise InputError(f"--calibrate {printable(str(folder), control=True)}: no images found (looking for "
                         f"{EXTENSIONS}, recursively); give a folder of images like the ones you will translate")
    return items


def read_images(items: list[InputImage], plan: TranslatePlan, notify: Callable[[str], None]) \
        -> list[tuple[str, np.ndarray]]:
    """(relative path, the model's input [C, H, W]) of every readable image, as `translate` preprocesses it;
    unreadable ones are skipped with a note."""
    from munit_rt.translate.stages import read_input

    images = []
    for item in items:
        try:
            images.append((item.relpath, read_input(item.path, plan.prep, plan.channels)[1]))
        except Exception as exc:  # noqa: BLE001 - a bad file is skipped, as translate does
            notify(f"skipped {printable(item.relpath, control=True)}: {one_line_reason(exc)}")
    return images


def run_job(translator: Translator, plan: TranslatePlan, images: list[tuple[str, np.ndarray]],
            batch_size: int = 8, each: Callable[[str, np.ndarray], None] | None = None) -> int:
    """The job over `images`, inputs of one shape batched as `translate` batches them (batch_size // outputs per
    input); `each(relpath, outputs [S, C, H, W])` gets every input's outputs. Returns the outputs produced."""
    per_call = max(1, batch_size // max(1, len(plan.names)))
    by_shape: dict[tuple[int, ...], list[tuple[str, np.ndarray]]] = defaultdict(list)
    for relpath, x in images:
        by_shape[x.shape].append((relpath, x))
    produced = 0
    for group in by_shape.values():
        for start in range(0, len(group), per_call):
            chunk = group[start:start + per_call]
            outputs = plan.run(translator, np.stack([x for _, x in chunk]), [relpath for relpath, _ in chunk])
            produced += int(np.prod(outputs.shape[:2]))
            if each is not None:
                for (relpath, _), styled in zip(chunk, outputs):
                    each(relpath, styled)
    return produced


class RecordingBackend(Backend):
    """Runs `inner` and records, per graph, the feed shapes of every call and a reservoir sample (seeded, so the
    same images give the same sample) of the batch rows it received, at most ROW_BUDGET_BYTES / MAX_ROWS."""

    name = "recording"

    def __init__(self, inner: Backend, seed: int = 0):
        super().__init__(inner.bundle, inner.precision)
        self.inner = inner
        self.shapes: dict[str, Counter] = defaultdict(Counter)  # graph -> Counter of call shape signatures
        self.rows: dict[str, list[dict[str, np.ndarray]]] = defaultdict(list)
        self.seen: Counter = Counter()  # graph -> rows offered to the reservoir
        self._rng = np.random.default_rng(seed)

    def run(self, graph: str, feeds: Mapping[str, Any], to_host: bool = True) -> dict[str, Any]:
        host = {name: np.asarray(self.inner.to_host(value)) for name, value in feeds.items()}
        self.shapes[graph][tuple(sorted((name, value.shape) for name, value in host.items()))] += 1
        self._keep_rows(graph, host)
        return self.inner.run(graph, feeds, to_host)

    def _keep_rows(self, graph: str, host: dict[str, np.ndarray]) -> None:
        counts = {value.shape[0] if value.ndim else 0 for value in host.values()}
        rows = [host] if len(counts) != 1 else [{k: v[i:i + 1].copy() for k, v in host.items()}
                                                 for i in range(counts.pop())]
        for row in rows:
            capacity = max(1, min(MAX_ROWS, ROW_BUDGET_BYTES // max(1, sum(v.nbytes for v in row.values()))))
            self.seen[graph] += 1
            kept = self.rows[graph]
            if len(kept) < capacity:
                kept.append(row)
            else:  # Algorithm R: every row offered so far is kept with the same probability
                slot = int(self._rng.integers(0, self.seen[graph]))
                if slot < capacity:
                    kept[slot] = row

    # everything else is the inner backend's
    def to_device(self, array: np.ndarray) -> Any:
        return self.inner.to_device(array)

    def to_host(self, value: Any) -> np.ndarray:
        return self.inner.to_host(value)

    def take(self, value: Any, rows: np.ndarray) -> Any:
        return self.inner.take(value, rows)

    def value_info(self, value: Any) -> tuple[tuple[int, ...], str]:
        return self.inner.value_info(value)

    def synchronize(self) -> None:
        self.inner.synchronize()

    @property
    def max_batch(self) -> int | None:
        return self.inner.max_batch

    @property
    def device(self) -> str:
        return self.inner.device

    def _open(self) -> None:
        self.inner.open()

    def _run(self, graph, feeds):  # never called: run() delegates to the inner backend
        raise NotImplementedError

    def _close(self) -> None:
        self.inner.close()
