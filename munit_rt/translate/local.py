"""The local engine: three overlapping stages in this process.

A thread pool decodes and preprocesses inputs into a bounded prefetch queue (memory stays flat for huge
folders), the calling thread runs inference in batches of images of the same size, and a writer pool encodes
and writes PNG/JPEG files atomically while the next batch decodes. A bad input is recorded in the report and
skipped; a full disk (OutputError) stops the run.
"""
from __future__ import annotations

import contextlib
import os
import sys
import threading
import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING

import numpy as np

from munit_rt.errors import one_line_reason
from munit_rt.io.outputs import OutputError
from munit_rt.translate.stages import read_input, write_outputs

if TYPE_CHECKING:
    from munit_rt.families.base import TranslatePlan
    from munit_rt.io.images import InputImage
    from munit_rt.io.outputs import OutputLayout
    from munit_rt.translate.options import TranslateOptions
    from munit_rt.translate.report import Report
    from munit_rt.translator import Translator


class LocalEngine:
    """Translates in this process: the model opens once (setup), then the stages run."""

    def __init__(self, has_work: bool):
        self.has_work = has_work
        self.translator: Translator | None = None

    @contextlib.contextmanager
    def setup(self, bundle, options: TranslateOptions, plan: TranslatePlan, report: Report, layout: OutputLayout,
              notify):
        """Open the bundle's Translator on the chosen backend and let the plan prepare (nothing to do: neither)."""
        if not self.has_work:  # a finished run resumes without even opening the model
            yield
            return
        from munit_rt.translator import Translator

        self.translator = Translator(bundle, backend=options.backend, precision=options.precision,
                                     **options.backend_options())
        report.backend = f"{self.translator.backend.name} ({self.translator.backend.device})"
        try:
            plan.prepare(self.translator)
            yield
        finally:
            self.translator.close()

    def run(self, todo: list[InputImage], bundle, options: TranslateOptions, layout: OutputLayout,
            plan: TranslatePlan, report: Report, notify) -> None:
        if todo:
            run_stages(todo, self.translator, options, layout, plan, report)


def run_stages(todo: list[InputImage], translator: Translator, options: TranslateOptions, layout: OutputLayout,
               plan: TranslatePlan, report: Report) -> None:
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

    counted = threading.Lock()

    def write_and_count(item: InputImage, pixels: np.ndarray, styled: np.ndarray) -> None:
        files, seconds = write_outputs(layout, item.relpath, pixels, styled)
        with counted:  # counted by the thread that completed the files: a Ctrl-C anywhere in the calling
            report.add_stage("write", seconds, 1)  # thread can neither lose nor double-count a finished input
            report.files_written += files
            report.translated += 1

    def finish_write(item: InputImage, future: Future) -> None:
        try:
            future.result()
        except OutputError:  # disk full, quota, read-only file system: every later write would fail too
            raise
        except Exception as exc:  # noqa: BLE001 - a failed write fails that input only
            report.failures.append((item.relpath, f"cannot write outputs ({one_line_reason(exc)})"))
        progress.update(1)

    def infer(batch: list[tuple[InputImage, np.ndarray, np.ndarray]]) -> None:
        started = time.perf_counter()
        try:
            images = np.stack([x for _, _, x in batch])
            outputs = plan.run(translator, images, [item.relpath for item, _, _ in batch])
        except Exception as exc:  # noqa: BLE001 - record the batch as failed, go on with the rest
            report.failures += [(item.relpath, f"inference failed ({one_line_reason(exc)})") for item, _, _ in batch]
            progress.update(len(batch))
            return
        report.add_stage("infer", time.perf_counter() - started, len(batch))
        for (item, pixels, _), styled in zip(batch, outputs):
            writes.append((item, writers.submit(write_and_count, item, pixels, styled)))
        while len(writes) > prefetch:  # bounded too: never hold more than a few batches of outputs
            finish_write(*writes.popleft())

    try:
        while True:
            while len(reads) < prefetch and (item := next(pending, None)) is not None:
                reads.append((item, readers.submit(read_input, item.path, plan.prep, plan.channels)))
            if not reads:
                break
            item, future = reads.popleft()
            try:
                decoded, x, seconds = future.result()
            except Exception as exc:  # noqa: BLE001 - unreadable input: report it by name, skip it
                report.failures.append((item.relpath, one_line_reason(exc)))
                progress.update(1)
                continue
            report.add_stage("decode", seconds, 1)
            report.add_input(item.relpath, decoded.size, decoded.notes, decoded.pixels.shape[1::-1])
            pixels = decoded.pixels
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
        # stopped early (Ctrl-C, a full disk): running writes finish (atomic) and count, queued ones are dropped
        writers.shutdown(wait=True, cancel_futures=True)
        progress.close()
    report.failures.sort()
