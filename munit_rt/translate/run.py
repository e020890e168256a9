"""`translate_paths(TranslateOptions(...)) -> Report`: one `munit-rt translate` run, whatever the family.

Everything is decided before a model session exists: the bundle is opened and checked, the options of other
families are noted and reset, the family makes the run's plan (munit_rt.families.X.plan: preprocessing,
outputs per input, the batch call), inputs are listed and clashes refused, and the output folder is claimed
(munit_rt.translate.folder: one writer at a time; --resume only under the same run record). Then the model
opens (a setup failure leaves nothing behind), folders are created, and the remaining inputs go through the
local engine (munit_rt.translate.local) or Ray (munit_rt.translate.ray); both run the same stages and plan.
"""
from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Callable

from munit_rt.bundle import Bundle
from munit_rt.errors import InputError
from munit_rt.io.images import InputImage, list_images, route_warnings
from munit_rt.io.index_page import write_index
from munit_rt.io.outputs import OutputLayout, clean_stale_temps, output_key, prepare_roots, remove_outputs
from munit_rt.models import MODEL_ENV_VAR, resolve_model
from munit_rt.text import printable
from munit_rt.translate.folder import RECORD_NAME, RunFolder, RunRecord, check_record, save_codes, stale_outputs
from munit_rt.translate.options import TranslateOptions
from munit_rt.translate.report import Report


class Interrupted(KeyboardInterrupt):
    """Ctrl-C or SIGTERM during a run: only complete files are left; `report` says what was done."""

    def __init__(self, report: Report):
        super().__init__()
        self.report = report


def translate_paths(options: TranslateOptions, notify: Callable[[str], None] | None = None) -> Report:
    """`notify` gets one-line notes (options the bundle's family ignores); default: printed on stderr."""
    notify = notify or (lambda line: print(line, file=sys.stderr))
    started = time.perf_counter()
    bundle = Bundle(resolve_model(options.model))
    options = options.for_family(bundle.spec, notify)
    options.validate()
    quality = _precision_check(bundle, options, notify)  # a precision that cannot run here: refused now
    if options.engine == "ray":  # without Ray: exit 2 naming the extra, before anything is listed or written
        from munit_rt.translate.ray import require_ray

        require_ray()

    # Inputs and outputs: everything checked before a model session is built or a folder made
    plan = bundle.spec.plan(bundle, options)
    layout = OutputLayout(options.output, options.layout, len(plan.names), options.image_format, options.grid,
                          names=plan.names, single=plan.single)
    check_overlap(options.inputs, layout)
    items, failures = list_images(list(options.inputs), options.recursive, exclude=layout.roots())
    items, clashes = unique_inputs(items)
    failures += clashes
    sheets = layout.sheet_clashes(item.relpath for item in items)
    if sheets:  # both inputs skipped, as for other clashes: neither output may overwrite the other
        blocked = set(sheets) | set(sheets.values())
        failures += [(item.relpath, _sheet_reason(item.relpath, sheets)) for item in items if item.relpath in blocked]
        items = [item for item in items if item.relpath not in blocked]
    if not items and not failures:
        raise InputError(f"no images found in {', '.join(printable(str(p), control=True) for p in options.inputs)} "
                         "(looking for .jpg .jpeg .png .bmp .webp .gif .tif .tiff" + ("" if options.recursive else
                         "; add --recursive to search subfolders") + ")")
    report = Report(output=options.output, inputs=len(items) + len(failures), failures=failures,
                    model=model_label(options.model), family=bundle.spec.title, direction=plan.direction,
                    prep=plan.prep, per_input=len(plan.names), precision=options.precision, quality=quality)
    record = RunRecord(run_settings(bundle, options, plan), plan.names, plan.single,
                       [item.relpath for item in items], report.model)

    with RunFolder(layout.root) as folder:
        complete = {item.relpath for item in items if layout.is_complete(item.relpath)}
        has_outputs = bool(complete) or any(path.exists() for item in items for path in layout.all_paths(item.relpath))
        earlier = check_record(layout.root, record, options.resume, has_outputs)
        if options.resume and earlier is not None:
            record.inputs = sorted(set(record.inputs) | set(earlier.inputs))
        todo = [item for item in items if not (options.resume and item.relpath in complete)]
        report.skipped = len(items) - len(todo)

        engine = _engine(options, todo)
        with engine.setup(bundle, options, plan, report, layout, notify):  # the model opens: a failure here
            # leaves nothing behind
            save_codes(folder, plan.shared_codes(), compare_with=layout.root if options.resume else None)
            prepare_roots(layout)
            if not options.resume:  # --overwrite: what the earlier run wrote and this one will not
                remove_outputs(stale_outputs(earlier, record, _layout_of(earlier, options), layout))
            folder.write(RECORD_NAME, record.to_json())
            clean_stale_temps(layout.folders(item.relpath for item in items))  # left by a run that was killed
            folder.started()
            try:
                with route_warnings():
                    engine.run(todo, bundle, options, layout, plan, report, notify)
            except KeyboardInterrupt:
                report.wall_s = time.perf_counter() - started
                raise Interrupted(report) from None
            if options.grid:
                write_index(layout.root, [item.relpath for item in items], plan.column_labels(),
                            describe_run(report, record))
    report.wall_s = time.perf_counter() - started
    return report


def _precision_check(bundle: Bundle, options: TranslateOptions, notify: Callable[[str], None]) -> str:
    """Refuse a precision the backend or this machine cannot run, or whose graphs the bundle lacks (one line,
    before anything is listed or written); else what is known of its quality, for the summary's headline."""
    from munit_rt.backends import backend_class, check_precision, resolve_backend_name
    from munit_rt.bundle.describe import precision_quality

    cls = backend_class(resolve_backend_name(options.backend))
    check_precision(cls, bundle, options.precision)
    note = cls.precision_note(options.precision)
    if note:
        notify(note)
    return precision_quality(bundle.manifest, options.precision, cls.precisions[options.precision])


def _engine(options: TranslateOptions, todo: list[InputImage]):
    if options.engine == "ray":
        from munit_rt.translate import ray

        return ray.RayEngine(bool(todo))
    from munit_rt.translate import local

    return local.LocalEngine(bool(todo))


def _layout_of(record: RunRecord | None, options: TranslateOptions) -> OutputLayout | None:
    """The layout an earlier run wrote with (its recorded outputs and settings)."""
    if record is None:
        return None
    settings = record.settings
    return OutputLayout(options.output, settings.get("layout", options.layout), len(record.names),
                        settings.get("format", options.image_format), bool(settings.get("grid")), names=record.names,
                        single=record.single)


def run_settings(bundle: Bundle, options: TranslateOptions, plan) -> dict:
    """Every option that decides the pixels (backend-independent), as recorded and compared on --resume."""
    return {"model": bundle.manifest_sha256, "family": bundle.family, "precision": options.precision,
            "size": plan.prep.size, "layout": options.layout, "format": options.image_format, "grid": options.grid,
            **plan.record()}


def model_label(model: Path | str | None) -> str:
    """The model as the user named it: a path, an installed model's name, or the default."""
    given = model or os.environ.get(MODEL_ENV_VAR)
    return printable(str(given), control=True) if given else "default (installed)"


def describe_run(report: Report, record: RunRecord) -> list[tuple[str, str]]:
    """(label, text) of the run for index.html."""
    rows = [("model", report.model), ("family", report.family)]
    labels = {"model": "manifest sha256"}  # the record names the bundle by its manifest's hash
    rows += [(labels.get(key, key), printable(str(value), control=True)) for key, value in record.settings.items()
             if key not in ("family",) and value is not None]
    return rows


def check_overlap(inputs: list[Path], layout: OutputLayout) -> None:
    """An output folder that is an input folder, or holds one, is refused: outputs would become inputs."""
    roots = [Path(os.path.realpath(root)) for root in layout.roots()]
    for given in inputs:
        if not Path(given).is_dir():
            continue
        real = Path(os.path.realpath(given))
        for root, shown in zip(roots, layout.roots()):
            if real == root or real.is_relative_to(root):
                where = "is" if real == root else "holds"
                raise InputError(f"--output {printable(str(shown), control=True)} {where} the input folder "
                                 f"{printable(str(given), control=True)}: write the outputs to another folder "
                                 f"(e.g. -o {printable(str(Path(given).name or 'out'), control=True)}-translated)")


def unique_inputs(items: list[InputImage]) -> tuple[list[InputImage], list[tuple[str, str]]]:
    """Drop repeats of the same file. Inputs that would write the same outputs (cat.png and cat.jpg in one
    folder) are all skipped, each as a failure naming the others: no output is shared or overwritten."""
    seen_files: set[str] = set()
    by_key: dict[str, list[InputImage]] = {}
    for item in items:
        resolved = os.path.realpath(item.path)  # never raises, not even on a symbolic-link loop
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


def _sheet_reason(relpath: str, sheets: dict[str, str]) -> str:
    translated = relpath if relpath in sheets else next(k for k, v in sheets.items() if v == relpath)
    return (f"the translation of {translated} and the --grid contact sheet of {sheets[translated]} would be the "
            "same file; rename one, or drop --grid")
