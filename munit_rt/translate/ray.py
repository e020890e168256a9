"""`munit-rt translate --engine ray`: the local engine's run, executed as a Ray Data pipeline.

Same inputs, options, outputs and resume behaviour as the local engine (munit_rt.translate.local), file for file.
The driver (the `munit-rt translate` process) does what the local engine does before any inference: it reads
the bundle's manifest, lists the inputs, drops clashes, cleans stale temporary files and skips the inputs whose
outputs are complete (translate_paths). Only the remaining inputs go through Ray:

    from_items([(path, relpath)])                 one record per input still to do
    -> map_batches(_decode_batch)                 Ray tasks: read + preprocess (stages.read_input)
    -> map_batches(TranslateWorker, ActorPoolStrategy(size=N), num_gpus=G)
                                                  each actor holds one munit_rt.Translator, built from the
                                                  bundle path, and the run's plan (prepared there); writing by
                                                  stages.write_outputs (atomic, in the worker)
    -> iter_rows() on the driver                  per input: ok / failed + reason -> the same Report

Outputs are identical to the local engine's: the family's plan decides every output from the input and the
options alone (MUNIT's random style codes from (seed, relative path)), whichever worker handles an input and in
whatever order; images are batched by size as the local engine does (batch composition does not change the
bytes).
Ray may fuse the decode step into the actors (same resources); with --gpus-per-worker it runs as CPU tasks.

Every path a worker touches must be reachable under the same absolute name on every node (a shared file
system): the bundle, the inputs, the --style-image/--style-dir references and the output folder; munit-rt
(with its backend) must be installed on every node. Without --address a local Ray instance is started for the
run (and shut down after it); with --address the run joins that cluster (`ray start --head` ...). An
already initialised Ray (ray.init in the calling program) is used as it is.

Ray is optional (`pip install 'munit-rt[ray]'`); this module never imports it at import time.
"""
from __future__ import annotations

import contextlib
import os
import socket
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import numpy as np

from munit_rt.errors import InputError, MunitRtError, one_line_reason
from munit_rt.translate.stages import read_input, write_outputs

if TYPE_CHECKING:
    from munit_rt.bundle import Bundle
    from munit_rt.families.base import TranslatePlan
    from munit_rt.io.images import InputImage
    from munit_rt.io.outputs import OutputLayout
    from munit_rt.translate.options import TranslateOptions
    from munit_rt.translate.report import Report

RAY_EXTRA = "munit-rt[ray]"
# per-input result states (the actor's output column "status"): FATAL stops the run (disk full, read-only),
# SETUP is a worker that could not start (backend, reference images): both exit 2 as the local engine does
OK, FAILED, FATAL, SETUP = "ok", "failed", "fatal", "setup"


def require_ray() -> Any:
    """The `ray` module (with ray.data), or InputError naming the extra to install (exit 2)."""
    try:
        import ray
        import ray.data  # noqa: F401 - the Data library is a separate extra of Ray
    except ImportError as exc:
        raise InputError(f"--engine ray needs Ray Data, which cannot be imported here ({exc}); "
                         f"install {RAY_EXTRA}: pip install '{RAY_EXTRA}'") from None
    return ray


# -- text through Arrow: file names may hold bytes that are not UTF-8 (os.fsdecode's surrogates) ----------
def _to_bytes(text: str) -> bytes:
    return text.encode("utf-8", "surrogateescape")


def _to_text(data: Any) -> str:
    return bytes(data).decode("utf-8", "surrogateescape")


def _absolute(path: Path) -> Path:
    """The same file for a worker whose working directory differs (no symlink resolution: same semantics)."""
    return Path(path) if Path(path).is_absolute() else Path.cwd() / path


# -- stage 2: decode + preprocess (Ray tasks) ----------------------------------------------------------------
def _decode_batch(batch: dict[str, np.ndarray], plan: TranslatePlan) -> dict[str, np.ndarray]:
    """Records (path, relpath) -> the preprocessed uint8 pixels (raw bytes + shape) or the failure reason."""
    n = len(batch["relpath"])
    status, reason, pixels, notes = [OK] * n, [b""] * n, [b""] * n, [b""] * n
    shape, size, seconds = np.zeros((n, 3), np.int64), np.zeros((n, 2), np.int64), np.zeros(n, np.float64)
    for i, raw_path in enumerate(batch["path"]):
        try:
            decoded, _, seconds[i] = read_input(Path(os.fsdecode(bytes(raw_path))), plan.prep, plan.channels)
        except Exception as exc:  # noqa: BLE001 - unreadable input: reported by name, the run goes on
            status[i], reason[i] = FAILED, _to_bytes(one_line_reason(exc))
            continue
        pixels[i], shape[i] = np.ascontiguousarray(decoded.pixels).tobytes(), decoded.pixels.shape
        size[i], notes[i] = decoded.size, _to_bytes("\n".join(decoded.notes))
    return {"relpath": batch["relpath"], "status": np.array(status, dtype=object),
            "reason": np.array(reason, dtype=object), "pixels": np.array(pixels, dtype=object),
            "shape": shape, "size": size, "notes": np.array(notes, dtype=object), "decode_s": seconds}


# -- stage 3: inference + writing (one Translator per Ray actor) ---------------------------------------------
class TranslateWorker:
    """A Ray Data actor: builds the bundle's Translator once from its path, then translates and writes batches."""

    def __init__(self, bundle_path: str, options: TranslateOptions, layout: OutputLayout, plan: TranslatePlan):
        from munit_rt.translator import Translator

        self.layout, self.plan, self.translator, self.setup_error = layout, plan, None, ""
        self.name = f"{socket.gethostname()}:{os.getpid()}"
        try:
            self.translator = Translator(bundle_path, backend=options.backend, precision=options.precision,
                                         **options.backend_options())
            self.backend = f"{self.translator.backend.name} ({self.translator.backend.device})"
            plan.prepare(self.translator)  # as the local engine does, once per worker
        except MunitRtError as exc:  # Ray would keep only its text in a traceback: hand it to the driver instead
            self.setup_error, self.backend = str(exc), ""

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        from munit_rt.io.outputs import OutputError
        from munit_rt.preprocess import normalize

        n = len(batch["relpath"])
        relpaths = [_to_text(r) for r in batch["relpath"]]
        status, reason = list(batch["status"]), [bytes(r) for r in batch["reason"]]
        if self.setup_error:
            status, reason = [SETUP] * n, [_to_bytes(self.setup_error)] * n
        files, infer_s, write_s = np.zeros(n, np.int64), np.zeros(n, np.float64), np.zeros(n, np.float64)
        buckets: dict[tuple[int, ...], list[tuple[int, np.ndarray]]] = {}  # same-size images batch together
        for i in range(n):
            if status[i] == OK:
                pixels = np.frombuffer(batch["pixels"][i], np.uint8).reshape(tuple(batch["shape"][i]))
                buckets.setdefault(pixels.shape, []).append((i, pixels))
        for members in buckets.values():
            started = time.perf_counter()
            try:
                images = np.stack([normalize(pixels, self.plan.prep) for _, pixels in members])
                outputs = self.plan.run(self.translator, images, [relpaths[i] for i, _ in members])
            except Exception as exc:  # noqa: BLE001 - the batch fails, the run goes on
                for i, _ in members:
                    status[i], reason[i] = FAILED, _to_bytes(f"inference failed ({one_line_reason(exc)})")
                continue
            per_input = (time.perf_counter() - started) / len(members)
            for (i, pixels), styled in zip(members, outputs):
                infer_s[i] = per_input
                try:
                    files[i], write_s[i] = write_outputs(self.layout, relpaths[i], pixels, styled)
                except OutputError as exc:  # disk full, quota, read-only: the driver stops the run (exit 2)
                    status[i], reason[i] = FATAL, _to_bytes(str(exc))
                except Exception as exc:  # noqa: BLE001 - a failed write fails that input only
                    status[i], reason[i] = FAILED, _to_bytes(f"cannot write outputs ({one_line_reason(exc)})")
        return {"relpath": batch["relpath"], "status": np.array(status, dtype=object),
                "reason": np.array(reason, dtype=object), "files": files, "decode_s": batch["decode_s"],
                "shape": batch["shape"], "size": batch["size"], "notes": batch["notes"],
                "infer_s": infer_s, "write_s": write_s, "backend": np.array([self.backend] * n, dtype=object),
                "worker": np.array([self.name] * n, dtype=object)}

    def __del__(self):
        translator = getattr(self, "translator", None)
        if translator is not None:
            translator.close()


# -- the driver ---------------------------------------------------------------------------------------------
class RayEngine:
    """The run on Ray workers; the driver (this process) prepares a plan that needs the model (reference images
    to encode) once, so every worker gets the same codes and the run record keeps them."""

    def __init__(self, has_work: bool):
        self.has_work = has_work

    @contextlib.contextmanager
    def setup(self, bundle: Bundle, options: TranslateOptions, plan: TranslatePlan, report: Report):
        if self.has_work and plan.needs_model:
            from munit_rt.translator import Translator

            with Translator(bundle, backend=options.backend, precision=options.precision,
                            **options.backend_options()) as translator:
                plan.prepare(translator)
        yield

    def run(self, todo: list[InputImage], bundle: Bundle, options: TranslateOptions, layout: OutputLayout,
            plan: TranslatePlan, report: Report, notify: Callable[[str], None]) -> None:
        if todo:
            translate_ray(todo, bundle, options, layout, plan, report, notify)


def translate_ray(todo: list[InputImage], bundle: Bundle, options: TranslateOptions, layout: OutputLayout,
                  plan: TranslatePlan, report: Report, notify: Callable[[str], None] | None = None) -> None:
    """Translate `todo` on Ray workers into `report`, as munit_rt.translate.local does in this process."""
    import copy

    from tqdm import tqdm

    from munit_rt.io.outputs import OutputError

    ray = require_ray()
    notify = notify or (lambda line: print(line, file=sys.stderr))
    started_here = _connect(ray, options)
    context = ray.data.DataContext.get_current()
    ray_bars = context.enable_progress_bars
    progress = rows = None
    try:
        workers = _worker_count(ray, options, notify)
        # workers may run elsewhere, in another folder: every path they get is absolute
        worker_layout = copy.copy(layout)
        worker_layout.root = _absolute(layout.root)
        plan = plan.with_absolute_paths(_absolute)
        records = [{"path": os.fsencode(_absolute(item.path)), "relpath": _to_bytes(item.relpath)} for item in todo]

        context.enable_progress_bars = False  # one bar, ours, counting inputs as the local engine's does
        _mark_logged("ray_data_progress_manager_disabled")  # Ray's hint to turn its bars back on: not here
        gpus = {"num_gpus": options.gpus_per_worker} if options.gpus_per_worker else {}
        dataset = (ray.data.from_items(records)
                   .map_batches(_decode_batch, fn_kwargs={"plan": plan}, batch_size=options.batch_size,
                                batch_format="numpy")
                   .map_batches(TranslateWorker, batch_size=options.batch_size, batch_format="numpy",
                                fn_constructor_kwargs={"bundle_path": str(_absolute(bundle.path)), "options": options,
                                                       "layout": worker_layout, "plan": plan},
                                compute=ray.data.ActorPoolStrategy(size=workers), **gpus))
        progress = tqdm(total=len(todo), unit="img", file=sys.stderr, desc="translate (ray)",
                        disable=None if options.progress is None else not options.progress)
        backend, busy = "", set()  # the workers that handled inputs
        rows = iter(dataset.iter_rows())
        for row in rows:
            relpath, state, why = _to_text(row["relpath"]), str(row["status"]), _to_text(row["reason"])
            if state == FATAL:
                raise OutputError(why)
            if state == SETUP:
                raise MunitRtError(f"{why} (on a Ray worker)")
            if row["decode_s"] > 0:  # decoded (a decode failure has no time)
                report.add_stage("decode", float(row["decode_s"]), 1)
                notes = _to_text(row["notes"])
                report.add_input(relpath, tuple(int(v) for v in row["size"]), notes.split("\n") if notes else [],
                                 (int(row["shape"][1]), int(row["shape"][0])))
            if state == OK:
                report.add_stage("infer", float(row["infer_s"]), 1)
                report.add_stage("write", float(row["write_s"]), 1)
                report.files_written += int(row["files"])
                report.translated += 1
                backend = backend or str(row["backend"])
                busy.add(str(row["worker"]))
            else:
                report.failures.append((relpath, why))
            progress.update(1)
        used = len(busy) or workers  # no input translated: nothing to tell
        workers_text = f"{workers} worker{'s' if workers != 1 else ''}"
        report.backend = f"{backend or options.backend} on ray, " + (
            workers_text if used == workers else f"{used} of {workers_text} busy")
        report.failures.sort()
    finally:
        if rows is not None and hasattr(rows, "close"):
            rows.close()  # stopped early (a fatal error, Ctrl-C): Ray Data stops its workers now, not at exit
        if progress is not None:
            progress.close()
        context.enable_progress_bars = ray_bars
        if started_here:
            ray.shutdown()


def _connect(ray: Any, options: TranslateOptions) -> bool:
    """Join --address, else start a local instance; True when this call started Ray (and must shut it down)."""
    if ray.is_initialized():  # the calling program set Ray up (tests, notebooks): use it as it is
        return False
    try:
        if options.address:
            ray.init(address=options.address)
        else:
            ray.init(num_cpus=os.cpu_count() or 1, include_dashboard=False, log_to_driver=False)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        where = f"the Ray cluster at {options.address}" if options.address else "a local Ray instance"
        raise InputError(f"--engine ray: cannot start or join {where} ({str(exc).strip().splitlines()[0]})") \
            from None
    return True


def _worker_count(ray: Any, options: TranslateOptions, notify: Callable[[str], None]) -> int:
    """--workers, else one per G GPUs of the cluster (--gpus-per-worker G), else one per node (CPU).

    Each worker reserves G GPUs, or 1 CPU. More than Ray has: an error without --address (nothing can add
    resources to a local instance: the workers would wait forever), a note with --address (an autoscaling
    cluster may add nodes)."""
    resources = ray.cluster_resources()
    gpus_per_worker = options.gpus_per_worker
    if gpus_per_worker:
        available = float(resources.get("GPU", 0))
        workers = options.workers or max(1, int(available / gpus_per_worker + 1e-9))
        needed, what = workers * gpus_per_worker, "GPU"
        flag = f"--gpus-per-worker {gpus_per_worker:g} x {workers} worker{'s' if workers > 1 else ''}"
    else:
        available = float(resources.get("CPU", 0))
        workers = options.workers or max(1, sum(1 for node in ray.nodes()
                                                if node.get("Alive") and node.get("Resources", {}).get("CPU")))
        needed, what, flag = workers, "CPU", f"--workers {workers} (1 CPU each)"
    if needed > available + 1e-9:
        message = f"{flag} needs {needed:g} {what}{'s' if needed != 1 else ''}; Ray sees {available:g}"
        if not options.address:
            raise InputError(message)
        notify(f"note: {message}; the workers wait until the cluster has them")
    return workers


def _mark_logged(key: str) -> None:
    """Ray logs some hints once per process (ray.util.debug.log_once): count this one as logged already."""
    try:
        from ray.util.debug import log_once

        log_once(key)
    except ImportError:
        pass
