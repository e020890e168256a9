"""`translate_paths(TranslateOptions(...)) -> Report`: one `munit-rt translate` run, whatever the family.

Everything is decided before a model session exists: the bundle is opened and checked, the options of other
families are noted and reset, the family makes the run's plan (munit_rt.families.X.plan: preprocessing,
outputs per input, the batch call), inputs are listed and clashes refused, output folders proven writable and
inputs whose outputs are complete skipped. Then the remaining inputs go through the local engine
(munit_rt.translate.local) or Ray (munit_rt.translate.ray); both run the same stages (stages.py) and plan.
"""
from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Callable

from munit_rt.bundle import Bundle
from munit_rt.errors import InputError
from munit_rt.io.images import InputImage, find_images
from munit_rt.io.outputs import OutputLayout, clean_stale_temps, output_key, prepare_roots, write_index
from munit_rt.models import resolve_model
from munit_rt.translate.options import TranslateOptions
from munit_rt.translate.report import Report


def translate_paths(options: TranslateOptions, notify: Callable[[str], None] | None = None) -> Report:
    """`notify` gets one-line notes (options the bundle's family ignores); default: printed on stderr."""
    notify = notify or (lambda line: print(line, file=sys.stderr))
    started = time.perf_counter()
    bundle = Bundle(resolve_model(options.model))
    options = options.for_family(bundle.spec, notify)
    options.validate()
    if options.engine == "ray":  # without Ray: exit 2 naming the extra, before anything is listed or written
        from munit_rt.translate.ray import require_ray

        require_ray()

    # Inputs and outputs: everything checked before a model session is built
    plan = bundle.spec.plan(bundle, options)
    layout = OutputLayout(options.output, options.layout, len(plan.names), options.image_format, options.grid,
                          names=plan.names, single=plan.single)
    items, clashes = unique_inputs(find_images(list(options.inputs), options.recursive, exclude=layout.roots()))
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
        from munit_rt.translate.ray import translate_ray

        translate_ray(todo, bundle, options, layout, plan, report, notify)
    elif todo:  # a finished run resumes without even opening the model
        from munit_rt.translate.local import translate_local

        translate_local(todo, bundle, options, layout, plan, report)
    if options.grid:
        write_index(layout.root, [item.relpath for item in items])
    report.wall_s = time.perf_counter() - started
    return report


def unique_inputs(items: list[InputImage]) -> tuple[list[InputImage], list[tuple[str, str]]]:
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


def _sheet_reason(relpath: str, sheets: dict[str, str]) -> str:
    translated = relpath if relpath in sheets else next(k for k, v in sheets.items() if v == relpath)
    return (f"the translation of {translated} and the --grid contact sheet of {sheets[translated]} would be the "
            "same file; rename one, or drop --grid")
