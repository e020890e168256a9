"""`munit-rt translate --engine ray`: the local engine's run, on Ray actors.

Same inputs, options, outputs and resume behaviour as the local engine (munit_rt.translate.local), file for file.
The driver (the `munit-rt translate` process) does what the local engine does before any inference: it reads
the bundle's manifest, lists the inputs, drops clashes, cleans stale temporary files and skips the inputs whose
outputs are complete (translate_paths). Only the remaining inputs go through Ray, with plain Ray actors (no Ray
Data):

    N x TranslateActor (ray.remote, max_restarts=0; num_gpus=G, else 1 CPU each)
                            each builds one munit_rt.Translator from the bundle path and holds the run's plan
                            (prepared by the driver when it needs the model: the same codes everywhere)
    driver -> actor         batches of --batch-size inputs, as (absolute path, relative path); at most
                            IN_FLIGHT batches per actor are queued (backpressure: memory stays flat)
    actor                   reads, translates and writes its batch with the local engine's stages
                            (run_stages: munit_rt.translate.stages read_input / plan.run / write_outputs,
                            batched by image size, every file written atomically) and returns a small summary
    driver                  folds each batch's summary into the run's Report; the next batch goes to the actor
                            that finished one

Outputs are identical to the local engine's: the family's plan decides every output from the input and the
options alone (MUNIT's random style codes from (seed, relative path)), whichever worker handles an input and in
whatever order (batch composition does not change the bytes). An actor that dies (node lost, out of memory) is
not restarted: its batches fail with the reason, the others go on, and the same command resumes them.
(Ray Data's actor pools restart actors whose constructor arguments sit in the object store, which made every
run log a false "E ... core_worker.cc" alarm: ray-project/ray#57733.)

Every path a worker touches must be reachable under the same absolute name on every node (a shared file
system): the bundle, the inputs, the --style-image/--style-dir references and the output folder; munit-rt
(with its backend) must be installed on every node. Without --address a local Ray instance is started for the
run (and shut down after it); with --address the run joins that cluster (`ray start --head` ...). An
already initialised Ray (ray.init in the calling program) is used as it is.

Ray is optional (`pip install 'munit-rt[ray]'`); this module never imports it at import time.
"""
from __future__ import annotations

import contextlib
import copy
import dataclasses
import os
import socket
import sys
from collections import deque
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from munit_rt.errors import InputError, MunitRtError, one_line_reason

if TYPE_CHECKING:
    from munit_rt.bundle import Bundle
    from munit_rt.families.base import TranslatePlan
    from munit_rt.io.images import InputImage
    from munit_rt.io.outputs import OutputLayout
    from munit_rt.translate.options import TranslateOptions
    from munit_rt.translate.report import Report

RAY_EXTRA = "munit-rt[ray]"
IN_FLIGHT = 2  # batches queued per actor: one running, one waiting (so an actor never idles between batches)


def require_ray() -> Any:
    """The `ray` module, or InputError naming the extra to install (exit 2)."""
    try:
        import ray
    except ImportError as exc:
        raise InputError(f"--engine ray needs Ray, which cannot be imported here ({exc}); "
                         f"install {RAY_EXTRA}: pip install '{RAY_EXTRA}'") from None
    return ray


def _absolute(path: Path) -> Path:
    """The same file for a worker whose working directory differs (no symlink resolution: same semantics)."""
    return Path(path) if Path(path).is_absolute() else Path.cwd() / path


# -- the workers: one Translator per Ray actor --------------------------------------------------------------
class TranslateActor:
    """A Ray actor (made remote by the driver): builds the bundle's Translator once from its path, then reads,
    translates and writes the batches it is sent. Its constructor takes small plain values (paths, the options,
    the layout and the plan: kilobytes), and the results are small dicts; pixels never cross Ray."""

    def __init__(self, bundle_path: str, options: TranslateOptions, layout: OutputLayout, plan: TranslatePlan):
        from munit_rt.translator import Translator

        self.options, self.layout, self.plan, self.translator, self.setup_error = options, layout, plan, None, ""
        self.name = f"{socket.gethostname()}:{os.getpid()}"
        try:
            self.translator = Translator(bundle_path, backend=options.backend, precision=options.precision,
                                         **options.backend_options())
            self.backend = f"{self.translator.backend.name} ({self.translator.backend.device})"
            plan.prepare(self.translator)  # as the local engine does (a no-op for a plan the driver prepared)
        except MunitRtError as exc:  # Ray would keep only its text in a traceback: hand it to the driver instead
            self.setup_error, self.backend = str(exc), ""

    def setup_problem(self) -> str:
        """'' once the model is open here, else why not (the driver calls this before any output exists)."""
        return self.setup_error

    def translate(self, batch: list[tuple[str, str]]) -> dict[str, Any]:
        """(absolute path, relative path) per input -> what the batch did, as the Report's fields; "fatal" (disk
        full, read-only) and "setup" (no model on this worker) stop the run on the driver (exit 2)."""
        from munit_rt.io.images import InputImage, route_warnings
        from munit_rt.io.outputs import OutputError
        from munit_rt.translate.local import run_stages
        from munit_rt.translate.report import Report

        if self.setup_error:
            return {"setup": self.setup_error}
        report = Report(output=self.layout.root)
        try:
            with route_warnings():  # decoder warnings become the inputs' notes here too, not worker log lines
                run_stages([InputImage(Path(path), relpath) for path, relpath in batch], self.translator,
                           self.options, self.layout, self.plan, report)
        except OutputError as exc:
            return {"fatal": str(exc)}
        return {"translated": report.translated, "files_written": report.files_written, "failures": report.failures,
                "notes": report.notes, "stage_s": report.stage_s, "stage_images": report.stage_images,
                "largest": (report.largest_input, report.largest_output),
                "backend": f"{self.translator.backend.name} ({self.translator.backend.device})",  # what executed
                "worker": self.name}

    def close(self) -> None:
        if self.translator is not None:
            self.translator.close()
            self.translator = None


# -- the driver ---------------------------------------------------------------------------------------------
class RayEngine:
    """The run on Ray actors. Setup joins (or starts) Ray, prepares a plan that needs the model on the driver
    (reference images encoded once: every worker gets the same codes and the run record keeps them) and starts
    the actors, waiting until each has opened the model: a worker that cannot (no backend, no GPU there) is a
    setup error, before the output folder holds anything."""

    def __init__(self, has_work: bool):
        self.has_work = has_work
        self.actors: list[Any] = []
        self.workers = 0

    @contextlib.contextmanager
    def setup(self, bundle: Bundle, options: TranslateOptions, plan: TranslatePlan, report: Report,
              layout: OutputLayout, notify: Callable[[str], None]):
        if not self.has_work:
            yield
            return
        ray = require_ray()
        started_here = _connect(ray, options)
        try:
            if plan.needs_model:
                from munit_rt.translator import Translator

                with Translator(bundle, backend=options.backend, precision=options.precision,
                                **options.backend_options()) as translator:
                    plan.prepare(translator)
            self.workers = _worker_count(ray, options, notify)
            # workers may run elsewhere, in another folder: every path they get is absolute
            worker_layout = copy.copy(layout)
            worker_layout.root = _absolute(layout.root)
            resources = {"num_gpus": options.gpus_per_worker, "num_cpus": 0} if options.gpus_per_worker else \
                {"num_cpus": 1}
            remote = ray.remote(TranslateActor).options(max_restarts=0, **resources)
            self.actors = [remote.remote(str(_absolute(bundle.path)), dataclasses.replace(options, progress=False),
                                         worker_layout, plan.with_absolute_paths(_absolute))
                           for _ in range(self.workers)]
            problems = [p for p in ray.get([actor.setup_problem.remote() for actor in self.actors]) if p]
            if problems:
                raise MunitRtError(f"{problems[0]} (on a Ray worker)")
            yield
        finally:
            for actor in self.actors:  # done, or stopped early (an error, Ctrl-C): the workers go now
                ray.kill(actor, no_restart=True)
            self.actors = []
            if started_here:
                ray.shutdown()

    def run(self, todo: list[InputImage], bundle: Bundle, options: TranslateOptions, layout: OutputLayout,
            plan: TranslatePlan, report: Report, notify: Callable[[str], None]) -> None:
        """Translate `todo` on the actors into `report`, as munit_rt.translate.local does in this process."""
        from tqdm import tqdm

        if not todo:
            return
        ray = require_ray()
        batches = deque([(str(_absolute(item.path)), item.relpath) for item in todo[i:i + options.batch_size]]
                        for i in range(0, len(todo), options.batch_size))
        progress = tqdm(total=len(todo), unit="img", file=sys.stderr, desc="translate (ray)",
                        disable=None if options.progress is None else not options.progress)
        try:
            backend, busy = _dispatch(ray, self.actors, batches, report, progress)
        finally:
            progress.close()
        used = len(busy) or self.workers  # no input translated: nothing to tell
        workers_text = f"{self.workers} worker{'s' if self.workers != 1 else ''}"
        report.backend = f"{backend or options.backend} on ray, " + (
            workers_text if used == self.workers else f"{used} of {workers_text} busy")
        report.failures.sort()


def _dispatch(ray: Any, actors: list[Any], batches: deque, report: Report, progress: Any) -> tuple[str, set[str]]:
    """Feed `batches` to the actors, IN_FLIGHT at a time each, folding every result into `report`; returns
    (the backend the workers use, the workers that translated inputs)."""
    from munit_rt.io.outputs import OutputError

    in_flight: dict[Any, tuple[int, list[tuple[str, str]]]] = {}  # result ref -> (actor index, its batch)
    alive = [True] * len(actors)

    def submit(index: int) -> None:
        batch = batches.popleft()
        in_flight[actors[index].translate.remote(batch)] = (index, batch)

    for _ in range(IN_FLIGHT):  # round-robin, so that every actor gets work from the start
        for index in range(len(actors)):
            if batches:
                submit(index)
    backend, busy = "", set()
    while in_flight:
        (ready,), _ = ray.wait(list(in_flight), num_returns=1)
        index, batch = in_flight.pop(ready)
        try:
            result = ray.get(ready)
        except ray.exceptions.RayActorError as exc:  # the worker died (node lost, out of memory): not restarted
            alive[index] = False
            reason = f"its Ray worker was lost ({one_line_reason(exc)}); run the command again to redo it"
            report.failures += [(relpath, reason) for _, relpath in batch]
            if not any(alive):  # nobody left to do the rest: it fails the same way, and resumes the same way
                report.failures += [(relpath, reason) for pending in batches for _, relpath in pending]
                progress.update(sum(map(len, batches)))
                batches.clear()
            progress.update(len(batch))
            continue
        if "fatal" in result:  # disk full, read-only: every later write would fail too (exit 2, as local)
            raise OutputError(result["fatal"])
        if "setup" in result:
            raise MunitRtError(f"{result['setup']} (on a Ray worker)")
        _fold(report, result)
        if result["translated"]:
            backend = backend or result["backend"]
            busy.add(result["worker"])
        progress.update(len(batch))
        alive_now = [i for i, ok in enumerate(alive) if ok]
        if batches and alive_now:
            submit(index if alive[index] else alive_now[0])
    return backend, busy


def _fold(report: Report, result: dict[str, Any]) -> None:
    """Add one batch's summary (TranslateActor.translate) to the run's report."""
    report.translated += result["translated"]
    report.files_written += result["files_written"]
    report.failures += [tuple(failure) for failure in result["failures"]]
    report.notes += [tuple(note) for note in result["notes"]]
    for stage, seconds in result["stage_s"].items():
        report.add_stage(stage, seconds, result["stage_images"][stage])
    largest, output = result["largest"]
    if largest is not None and (report.largest_input is None or min(largest) > min(report.largest_input)):
        report.largest_input, report.largest_output = tuple(largest), tuple(output) if output else None


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
