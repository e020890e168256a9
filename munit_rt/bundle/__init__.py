"""The bundle: manifest.json + ONNX graphs (+ cached engines), the contract between export and the runtime.

    schema.py      the typed manifest, its names and versions (export writes it, the reader checks it)
    fields.py      bounded JSON parsing and key-by-key validation
    onnx_proto.py  what the reader checks inside a graph file without the onnx package
    reader.py      Bundle(path): opened and validated once, before any graph runs
    describe.py    the text of `munit-rt info BUNDLE`
"""
from __future__ import annotations

from pathlib import Path

from munit_rt.bundle.reader import Bundle
from munit_rt.errors import BundleError  # noqa: F401


def open_bundle(bundle_or_path: Bundle | str | Path) -> Bundle:
    """A Bundle from itself, a bundle folder, or the name of an installed model ("default")."""
    if isinstance(bundle_or_path, Bundle):
        return bundle_or_path
    from munit_rt.models import resolve_model

    return Bundle(resolve_model(bundle_or_path))
