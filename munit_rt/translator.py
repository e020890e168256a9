"""Python API: `Translator(bundle).translate(images, style_codes)`.

The work of a batch translate is shared, never repeated: each image's content is encoded once, the style
codes go through the MLP once, and decoding runs over (image, style) pairs in batches, indexing the
already-computed content and AdaIN parameters.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from munit_rt.backends import get_backend
from munit_rt.backends.base import Backend
from munit_rt.bundle import Bundle
from munit_rt.errors import InputError

DIRECTIONS = {"a2b": ("a", "b"), "b2a": ("b", "a")}  # direction -> (source domain, target domain)


def direction_domains(direction: str) -> tuple[str, str]:
    if direction not in DIRECTIONS:
        raise InputError(f"unknown direction {direction!r} (expected {' or '.join(DIRECTIONS)})")
    return DIRECTIONS[direction]


class Translator:
    """Runs a bundle's graphs. Images are float32 [N, C, H, W] in [-1, 1]; style codes float32."""

    def __init__(self, bundle_or_path: Bundle | str | Path, backend: str | Backend = "auto",
                 precision: str = "fp32", **backend_opts):
        self.bundle = bundle_or_path if isinstance(bundle_or_path, Bundle) else Bundle(bundle_or_path)
        if isinstance(backend, Backend):
            self.backend = backend
        else:
            self.backend = get_backend(backend, self.bundle, precision=precision, **backend_opts)
        self.backend.open()

    @property
    def style_dim(self) -> int:
        return self.bundle.style_dim

    def close(self) -> None:
        self.backend.close()

    def __enter__(self) -> Translator:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    # -- the four graphs -----------------------------------------------------------------------------
    def encode_content(self, images: np.ndarray, domain: str) -> np.ndarray:
        images = self._check_images(images, domain)
        return self.backend.run(f"content_encoder_{domain}", {"image": images})["content"]

    def encode_style(self, images: np.ndarray, domain: str) -> np.ndarray:
        """Style codes [N, style_dim] of reference images of `domain` (example-guided translation)."""
        images = self._check_images(images, domain)
        return self.backend.run(f"style_encoder_{domain}", {"image": images})["style"]

    def style_to_adain(self, style_codes: np.ndarray, domain: str) -> np.ndarray:
        codes = np.ascontiguousarray(style_codes, dtype=np.float32)
        if codes.ndim != 2 or codes.shape[1] != self.style_dim:
            raise InputError(f"style codes must have shape [N, {self.style_dim}], got {list(codes.shape)}")
        return self.backend.run(f"style_mlp_{domain}", {"style": codes})["adain_params"]

    def decode(self, content: np.ndarray, adain: np.ndarray, domain: str) -> np.ndarray:
        feeds = {"content": np.ascontiguousarray(content, dtype=np.float32),
                 "adain_params": np.ascontiguousarray(adain, dtype=np.float32)}
        return self.backend.run(f"decoder_{domain}", feeds)["output"]

    # -- batch translation ---------------------------------------------------------------------------
    def translate(self, images: np.ndarray, style_codes: np.ndarray, direction: str = "a2b",
                  batch_size: int = 8) -> np.ndarray:
        """Translate N images with S styles each -> float32 [N, S, C, H, W] in [-1, 1].

        style_codes: [S, style_dim] (the same styles for every image) or [N, S, style_dim] (per image).
        """
        source, target = direction_domains(direction)
        if batch_size < 1:
            raise InputError(f"batch_size must be >= 1, got {batch_size}")
        images = self._check_images(images, source)
        n = images.shape[0]
        codes = np.asarray(style_codes, dtype=np.float32)
        per_image = codes.ndim == 3
        if codes.ndim not in (2, 3) or codes.shape[-1] != self.style_dim or (per_image and codes.shape[0] != n):
            raise InputError(f"style codes must have shape [S, {self.style_dim}] or [{n}, S, {self.style_dim}], "
                             f"got {list(codes.shape)}")
        s = codes.shape[-2]
        if n == 0 or s == 0:
            return np.zeros((n, s, self.bundle.domains[target], *images.shape[2:]), np.float32)

        fused = getattr(self.backend, "translate_batch", None)
        if fused is not None:  # e.g. TensorRT: content and AdaIN parameters never leave the GPU
            if not per_image:
                return fused(images, codes, direction)
            return np.stack([fused(images[i:i + 1], codes[i], direction)[0] for i in range(n)])

        content = np.concatenate([self.encode_content(images[i:i + batch_size], source)
                                  for i in range(0, n, batch_size)])
        if per_image:  # one MLP call per image, so results never depend on how images were batched
            adain = np.concatenate([self.style_to_adain(codes[i], target) for i in range(n)])
        else:
            adain = self.style_to_adain(codes, target)

        outputs: np.ndarray | None = None
        pairs = np.arange(n * s)
        for start in range(0, n * s, batch_size):
            chunk = pairs[start:start + batch_size]
            image_index, style_index = np.divmod(chunk, s)
            decoded = self.decode(content[image_index], adain[chunk if per_image else style_index], target)
            if outputs is None:
                outputs = np.empty((n * s, *decoded.shape[1:]), np.float32)
            outputs[chunk] = decoded
        return outputs.reshape(n, s, *outputs.shape[1:])

    def _check_images(self, images: np.ndarray, domain: str) -> np.ndarray:
        if domain not in self.bundle.domains:
            raise InputError(f"unknown domain {domain!r} (bundle has {', '.join(self.bundle.domains)})")
        images = np.ascontiguousarray(images, dtype=np.float32)
        channels, multiple = self.bundle.domains[domain], int(self.bundle.preprocess.get("multiple", 1))
        if images.ndim != 4 or images.shape[1] != channels:
            raise InputError(f"images of domain {domain} must be [N, {channels}, H, W], got {list(images.shape)}")
        if images.shape[2] % multiple or images.shape[3] % multiple:
            raise InputError(f"image height and width must be multiples of {multiple}, got {list(images.shape[2:])}")
        return images
