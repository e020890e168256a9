"""Python API: `Translator(bundle)` gives the translator of the bundle's family.

`Translator` holds the backend (opened once, closed with the translator or its `with` block) and the checks
every family's job shares; each family's subclass (munit_rt.families.X) adds its translate job, written once
against the backend contract (munit_rt/backends/base.py) so it runs the same on every backend. `Translator(b)`
returns that subclass, so `isinstance(t, Translator)` holds for every family; a family's class called
directly refuses another family's bundle.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from munit_rt.backends import get_backend
from munit_rt.backends.base import Backend
from munit_rt.bundle import Bundle, open_bundle
from munit_rt.errors import InputError

DIRECTIONS = {"a2b": ("a", "b"), "b2a": ("b", "a")}  # between a family's two domains: (source, target)


def direction_domains(direction: str) -> tuple[str, str]:
    if direction not in DIRECTIONS:
        raise InputError(f"unknown direction {direction!r} (expected {' or '.join(DIRECTIONS)})")
    return DIRECTIONS[direction]


class Translator:
    """Runs a bundle's graphs. Images are float32 [N, C, H, W] in [-1, 1].

    `Translator(bundle_or_path, backend="auto", precision="fp32", **backend_opts)` returns the translator of
    the bundle's family; `backend` may also be an unopened Backend instance.
    """

    family = ""  # the family a subclass runs (its Family.name)

    def __new__(cls, bundle_or_path: Bundle | str | Path, *args, **kwargs):
        bundle = open_bundle(bundle_or_path)
        family_class = bundle.spec.translator
        if cls is Translator:
            cls = family_class
        elif not issubclass(family_class, cls):
            raise InputError(f"{cls.__name__} runs {cls.family} bundles; {bundle.path} is a {bundle.family} bundle "
                             "(use munit_rt.Translator, which picks the right class)")
        translator = super().__new__(cls)
        translator._bundle_read = bundle  # __init__ gets the same argument: the bundle is read and checked once
        return translator

    def __init__(self, bundle_or_path: Bundle | str | Path, backend: str | Backend = "auto",
                 precision: str = "fp32", **backend_opts: Any):
        self.bundle = getattr(self, "_bundle_read", None) or open_bundle(bundle_or_path)
        self.backend = backend if isinstance(backend, Backend) else \
            get_backend(backend, self.bundle, precision=precision, **backend_opts)
        self.backend.open()

    def close(self) -> None:
        self.backend.close()

    def __enter__(self) -> Translator:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    # -- checks the jobs share -----------------------------------------------------------------------
    def _check_batch_size(self, batch_size: int) -> int:
        if batch_size < 1:
            raise InputError(f"batch_size must be >= 1, got {batch_size}")
        limit = self.backend.max_batch  # TensorRT profiles cap it
        return batch_size if limit is None else min(batch_size, limit)

    def _check_image_array(self, images: np.ndarray, channels: int, what: str) -> np.ndarray:
        images = np.ascontiguousarray(images, dtype=np.float32)
        multiple = self.bundle.preprocess.multiple
        if images.ndim != 4 or images.shape[1] != channels:
            raise InputError(f"{what} must be [N, {channels}, H, W], got {list(images.shape)}")
        if images.shape[2] % multiple or images.shape[3] % multiple:
            raise InputError(f"image height and width must be multiples of {multiple}, got {list(images.shape[2:])}")
        return images

    def _run_batches(self, graph: str, feeds: dict[str, np.ndarray], batch_size: int, output: str = "output") \
            -> np.ndarray:
        """One graph over N rows in calls of `batch_size` (every feed indexed by row), host arrays in and out."""
        n = len(next(iter(feeds.values())))
        return np.concatenate([self.backend.run(graph, {k: v[i:i + batch_size] for k, v in feeds.items()})[output]
                               for i in range(0, n, batch_size)])
