"""OUT/index.html of a `translate --grid` run: the run's settings, then one contact sheet per input under a row
of column labels (input, then each output: style index, reference image, attribute), shown at the model's
size but never below MIN_HEIGHT pixels (small models are enlarged, pixelated rather than blurred)."""
from __future__ import annotations

import html
import math
import os
import urllib.parse
from pathlib import Path

from munit_rt.io.outputs import GRID_NAME, output_key, write_atomic
from munit_rt.text import printable

INDEX_NAME = "index.html"
MIN_HEIGHT = 128
STYLE = ("body{font-family:sans-serif;margin:1em}table.run td{padding:0 1em 0 0}figure{margin:0 0 1.2em}"
         "figcaption{margin-bottom:.2em}.labels{display:flex;font-size:12px;color:#444}"
         ".labels span{flex:1;overflow:hidden;text-overflow:ellipsis;white-space:nowrap;text-align:center}"
         "img{image-rendering:pixelated;display:block}")


def write_index(root: Path, relpaths: list[str], labels: list[str], run: list[tuple[str, str]],
                title: str = "munit-rt translate") -> Path:
    """Write OUT/index.html (atomically) for the inputs whose grid.png exists; `labels` name the outputs."""
    from PIL import Image

    columns = ["input", *(printable(label, control=True) for label in labels)]  # reference names come from files
    figures = []
    for relpath in relpaths:
        grid_rel = f"{output_key(relpath)}/{GRID_NAME}"
        try:
            with Image.open(root / grid_rel) as grid:
                width, height = grid.size
        except OSError:
            continue
        scale = max(1, math.ceil(MIN_HEIGHT / height))
        # the file name's own bytes, percent-encoded: right for names that are not UTF-8 too
        href = html.escape(urllib.parse.quote(os.fsencode(grid_rel)), quote=True)
        shown = html.escape(printable(relpath, control=True))
        cells = "".join(f"<span title=\"{html.escape(c, quote=True)}\">{html.escape(c)}</span>" for c in columns)
        figures.append(f'<figure><figcaption>{shown}</figcaption>'
                       f'<div class="labels" style="width:{width * scale}px">{cells}</div>'
                       f'<a href="{href}"><img src="{href}" loading="lazy" alt="{shown}" '
                       f'width="{width * scale}" height="{height * scale}"></a></figure>')
    settings = "".join(f"<tr><td>{html.escape(label)}</td><td>{html.escape(text)}</td></tr>" for label, text in run)
    page = (f"<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>{html.escape(title)}</title>"
            f"<style>{STYLE}</style></head>\n<body><h1>{html.escape(title)}</h1>\n"
            f"<table class=\"run\">{settings}</table>\n"
            f"<p>{len(figures)} inputs: the input first, then its {len(labels)} output"
            f"{'s' if len(labels) != 1 else ''}.</p>\n" + "\n".join(figures) + "\n</body></html>\n")
    path = root / INDEX_NAME
    write_atomic(path, page.encode("utf-8"))
    return path
