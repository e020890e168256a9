"""Python API: `Translator(bundle)` gives the bundle family's translator.

    MUNIT     MunitTranslator.translate(images, style_codes, direction)  -> [N, S, C, H, W]
    CycleGAN  CycleGanTranslator.generate(images, direction)             -> [N, C, H, W]
    StarGAN   StarGanTranslator.generate(images, labels)                 -> [N, C, H, W]  (labels [N, c_dim])
              StarGanTranslator.translate(images, labels)                -> [N, S, C, H, W] (labels [S, c_dim])

`Translator` is the common base (backend, context manager) and a factory: `Translator(bundle, ...)` returns
the subclass for the manifest's `family`, so `isinstance(t, Translator)` holds for every family.

MUNIT's batch translate shares work, never repeats it: each image's content is encoded once, the style
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
    """Runs a bundle's graphs. Images are float32 [N, C, H, W] in [-1, 1].

    `Translator(bundle_or_path, backend="auto", precision="fp32", **backend_opts)` returns the translator
    of the bundle's family (MunitTranslator, CycleGanTranslator, StarGanTranslator).
    """

    family = ""

    def __new__(cls, bundle_or_path: Bundle | str | Path, *args, **kwargs):
        bundle = bundle_or_path if isinstance(bundle_or_path, Bundle) else Bundle(bundle_or_path)
        if cls is Translator:
            cls = TRANSLATORS[bundle.family]
        elif cls.family and bundle.family != cls.family:
            raise InputError(f"{cls.__name__} runs {cls.family} bundles; {bundle.path} is a {bundle.family} bundle "
                             "(use munit_rt.Translator, which picks the right class)")
        translator = super().__new__(cls)
        translator._bundle_read = bundle  # __init__ gets the same argument: the bundle is read and checked once
        return translator

    def __init__(self, bundle_or_path: Bundle | str | Path, backend: str | Backend = "auto",
                 precision: str = "fp32", **backend_opts):
        self.bundle = getattr(self, "_bundle_read", None) or (
            bundle_or_path if isinstance(bundle_or_path, Bundle) else Bundle(bundle_or_path))
        if isinstance(backend, Backend):
            self.backend = backend
        else:
            self.backend = get_backend(backend, self.bundle, precision=precision, **backend_opts)
        self.backend.open()

    def close(self) -> None:
        self.backend.close()

    def __enter__(self) -> Translator:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def _check_batch_size(self, batch_size: int) -> int:
        if batch_size < 1:
            raise InputError(f"batch_size must be >= 1, got {batch_size}")
        return min(batch_size, getattr(self.backend, "max_batch", batch_size))  # TensorRT profiles cap it

    def _check_image_array(self, images: np.ndarray, channels: int, what: str) -> np.ndarray:
        images = np.ascontiguousarray(images, dtype=np.float32)
        multiple = int(self.bundle.preprocess.get("multiple", 1))
        if images.ndim != 4 or images.shape[1] != channels:
            raise InputError(f"{what} must be [N, {channels}, H, W], got {list(images.shape)}")
        if images.shape[2] % multiple or images.shape[3] % multiple:
            raise InputError(f"image height and width must be multiples of {multiple}, got {list(images.shape[2:])}")
        return images


class MunitTranslator(Translator):
    """MUNIT: content encoded once per image, S style codes per image decoded in (image, style) batches."""

    family = "munit"
    _last_shared_adain: tuple | None = None  # (domain, shape, code bytes) -> AdaIN parameters

    @property
    def style_dim(self) -> int:
        return self.bundle.style_dim

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
            adain = self._shared_adain(codes, target)

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

    def _shared_adain(self, codes: np.ndarray, domain: str) -> np.ndarray:
        """AdaIN parameters of styles shared by every image: a run passes the same codes with each batch of
        images, so the MLP runs once per run, not once per batch."""
        key = (domain, codes.shape, codes.tobytes())
        cached = self._last_shared_adain
        if cached is None or cached[0] != key:
            cached = (key, self.style_to_adain(codes, domain))
            self._last_shared_adain = cached
        return cached[1]

    def _check_images(self, images: np.ndarray, domain: str) -> np.ndarray:
        if domain not in self.bundle.domains:
            raise InputError(f"unknown domain {domain!r} (bundle has {', '.join(self.bundle.domains)})")
        return self._check_image_array(images, self.bundle.domains[domain], f"images of domain {domain}")


class CycleGanTranslator(Translator):
    """CycleGAN: one generator per direction (generator_a2b = G_A, generator_b2a = G_B), one output per image."""

    family = "cyclegan"

    @property
    def directions(self) -> list[str]:
        """The directions this bundle can translate (those whose generator was exported)."""
        return list(self.bundle.directions)

    def graph_for(self, direction: str) -> str:
        directions = self.bundle.directions
        if direction not in directions:
            if direction in DIRECTIONS:
                raise InputError(f"this CycleGAN bundle has no {direction} generator (available: "
                                 f"{', '.join(directions)}); export the checkpoint holding "
                                 f"{'G_A' if direction == 'a2b' else 'G_B'}")
            raise InputError(f"unknown direction {direction!r} (this bundle has {', '.join(directions)})")
        return directions[direction]["graph"]

    def generate(self, images: np.ndarray, direction: str = "a2b", batch_size: int = 8) -> np.ndarray:
        """[N, C_source, H, W] in [-1, 1] -> [N, C_target, H, W]; H, W multiples of 4."""
        graph = self.graph_for(direction)
        source, target = direction_domains(direction)
        batch_size = self._check_batch_size(batch_size)
        images = self._check_image_array(images, self.bundle.domains[source], f"images of domain {source}")
        if images.shape[0] == 0:
            return np.zeros((0, self.bundle.domains[target], *images.shape[2:]), np.float32)
        return np.concatenate([self.backend.run(graph, {"image": images[i:i + batch_size]})["output"]
                               for i in range(0, len(images), batch_size)])


class StarGanTranslator(Translator):
    """StarGAN: one generator conditioned on a label vector [c_dim] of 0/1 target attributes.

    Label vectors from attribute names: `target_label("Black_Hair,Male")`, `sweep_labels()` (upstream's
    create_labels: one per attribute); see munit_rt.family.labels.
    """

    family = "stargan"

    @property
    def label_space(self):
        from munit_rt.family.labels import LabelSpace

        return LabelSpace.from_manifest(self.bundle.labels)

    @property
    def attributes(self) -> list[str]:
        return self.label_space.attribute_names()

    @property
    def c_dim(self) -> int:
        return int(self.bundle.labels["c_dim"])

    def target_label(self, attrs: str, from_attrs: str | None = None) -> np.ndarray:
        """[c_dim] label: the listed attributes set (`A,B=0`), others from `from_attrs` (default 0)."""
        return self.label_space.target(attrs, from_attrs)

    def sweep_labels(self, from_attrs: str | None = None) -> tuple[list[str], np.ndarray]:
        """(attribute names, [S, c_dim]): per attribute, a hair colour set alone, any other flipped."""
        return self.label_space.sweep(from_attrs)

    def generate(self, images: np.ndarray, labels: np.ndarray, batch_size: int = 8) -> np.ndarray:
        """images [N, 3, H, W] in [-1, 1], labels [N, c_dim] (or one [c_dim] for all) -> [N, 3, H, W]."""
        batch_size = self._check_batch_size(batch_size)
        images = self._check_image_array(images, int(self.bundle.manifest["channels"]), "images")
        labels = self._check_labels(labels, "[N, c_dim] or [c_dim]")
        if labels.ndim == 1:
            labels = np.repeat(labels[None], len(images), axis=0)
        if labels.shape[0] != images.shape[0]:
            raise InputError(f"labels must have one row per image ({images.shape[0]}), got {labels.shape[0]}")
        if images.shape[0] == 0:
            return np.zeros(images.shape, np.float32)
        return np.concatenate([self.backend.run("generator", {"image": images[i:i + batch_size],
                                                             "label": labels[i:i + batch_size]})["output"]
                               for i in range(0, len(images), batch_size)])

    def translate(self, images: np.ndarray, labels: np.ndarray, batch_size: int = 8) -> np.ndarray:
        """N images x S labels each -> [N, S, 3, H, W]; labels [S, c_dim] (shared) or [N, S, c_dim].

        (image, label) pairs run in batches of `batch_size`, row r = image * S + label (MUNIT's order)."""
        images = self._check_image_array(images, int(self.bundle.manifest["channels"]), "images")
        labels = self._check_labels(labels, "[S, c_dim] or [N, S, c_dim]", ndims=(2, 3))
        n, s = images.shape[0], labels.shape[-2]
        if labels.ndim == 3 and labels.shape[0] != n:
            raise InputError(f"per-image labels must be [{n}, S, {self.c_dim}], got {list(labels.shape)}")
        batch_size = self._check_batch_size(batch_size)
        if n == 0 or s == 0:
            return np.zeros((n, s, *images.shape[1:]), np.float32)
        flat_labels = labels.reshape(n * s, -1) if labels.ndim == 3 else None
        outputs = np.empty((n * s, *images.shape[1:]), np.float32)
        for start in range(0, n * s, batch_size):
            rows = np.arange(start, min(start + batch_size, n * s))
            image_index, label_index = np.divmod(rows, s)
            feeds = {"image": images[image_index],
                     "label": flat_labels[rows] if flat_labels is not None else labels[label_index]}
            outputs[rows] = self.backend.run("generator", feeds)["output"]
        return outputs.reshape(n, s, *images.shape[1:])

    def _check_labels(self, labels: np.ndarray, shapes: str, ndims: tuple[int, ...] = (1, 2)) -> np.ndarray:
        labels = np.ascontiguousarray(labels, dtype=np.float32)
        if labels.ndim not in ndims or labels.shape[-1] != self.c_dim:
            raise InputError(f"labels must be {shapes.replace('c_dim', str(self.c_dim))} float 0/1, "
                             f"got {list(labels.shape)}")
        if not np.isin(labels, (0.0, 1.0)).all():
            raise InputError("labels must hold 0 or 1 only (the attributes' target values)")
        return labels


TRANSLATORS: dict[str, type[Translator]] = {"munit": MunitTranslator, "cyclegan": CycleGanTranslator,
                                            "stargan": StarGanTranslator}
