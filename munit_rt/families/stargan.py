"""StarGAN on the runtime side: one generator conditioned on a label vector [c_dim] of 0/1 target attributes.

`translate` writes one output per input with --attrs (the target label), or one per attribute with --sweep
(upstream's create_labels: a hair colour set alone, any other attribute flipped); labels come from attribute
names through stargan_labels.LabelSpace. Images are center-cropped to `crop_size` and resized square.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from munit_rt.bundle.fields import Fields, ManifestError
from munit_rt.errors import InputError
from munit_rt.families import register
from munit_rt.families.base import Family, TranslatePlan
from munit_rt.families.stargan_labels import LabelSpace, file_stem
from munit_rt.translator import DIRECTIONS, Translator


@dataclass(frozen=True)
class StarGanModel:
    channels: int
    labels: LabelSpace


class StarGanTranslator(Translator):
    """StarGAN: `generate(images, labels)` -> [N, C, H, W]; `translate(images, labels)` -> [N, S, C, H, W].

    Label vectors from attribute names: `target_label("Black_Hair,Male")`, `sweep_labels()` (upstream's
    create_labels: one per attribute); see munit_rt.families.stargan_labels.
    """

    family = "stargan"

    @property
    def label_space(self) -> LabelSpace:
        return self.bundle.model.labels

    @property
    def attributes(self) -> list[str]:
        return self.label_space.attribute_names()

    @property
    def c_dim(self) -> int:
        return self.label_space.c_dim

    def target_label(self, attrs: str, from_attrs: str | None = None) -> np.ndarray:
        """[c_dim] label: the listed attributes set (`A,B=0`), others from `from_attrs` (default 0)."""
        return self.label_space.target(attrs, from_attrs)

    def sweep_labels(self, from_attrs: str | None = None) -> tuple[list[str], np.ndarray]:
        """(attribute names, [S, c_dim]): per attribute, a hair colour set alone, any other flipped."""
        return self.label_space.sweep(from_attrs)

    def generate(self, images: np.ndarray, labels: np.ndarray, batch_size: int = 8) -> np.ndarray:
        """images [N, 3, H, W] in [-1, 1], labels [N, c_dim] (or one [c_dim] for all) -> [N, 3, H, W]."""
        batch_size = self._check_batch_size(batch_size)
        images = self._check_image_array(images, self.bundle.model.channels, "images")
        labels = self._check_labels(labels, "[N, c_dim] or [c_dim]")
        if labels.ndim == 1:
            labels = np.repeat(labels[None], len(images), axis=0)
        if labels.shape[0] != images.shape[0]:
            raise InputError(f"labels must have one row per image ({images.shape[0]}), got {labels.shape[0]}")
        if images.shape[0] == 0:
            return np.zeros(images.shape, np.float32)
        return self._run_batches("generator", {"image": images, "label": labels}, batch_size)

    def translate(self, images: np.ndarray, labels: np.ndarray, batch_size: int = 8) -> np.ndarray:
        """N images x S labels each -> [N, S, 3, H, W]; labels [S, c_dim] (shared) or [N, S, c_dim].

        (image, label) pairs run in batches of `batch_size`, row r = image * S + label (MUNIT's order)."""
        images = self._check_image_array(images, self.bundle.model.channels, "images")
        labels = self._check_labels(labels, "[S, c_dim] or [N, S, c_dim]", ndims=(2, 3))
        n, s = images.shape[0], labels.shape[-2]
        if labels.ndim == 3 and labels.shape[0] != n:
            raise InputError(f"per-image labels must be [{n}, S, {self.c_dim}], got {list(labels.shape)}")
        batch_size = self._check_batch_size(batch_size)
        if n == 0 or s == 0:
            return np.zeros((n, s, *images.shape[1:]), np.float32)
        flat_labels = labels.reshape(n * s, -1) if labels.ndim == 3 else None
        outputs = np.empty((n * s, *images.shape[1:]), np.float32)
        for start in range(0, n * s, batch_size):  # rows gathered per batch: N x S images never all at once
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


@dataclass
class StarGanPlan(TranslatePlan):
    labels: np.ndarray | None = None  # [S, c_dim], one per output
    batch_size: int = 8
    attrs: str | None = None
    from_attrs: str | None = None
    attribute_names: tuple[str, ...] = ()  # a sweep's outputs, as attributes (file names are their stems)

    def run(self, translator: StarGanTranslator, images: np.ndarray, relpaths: list[str]) -> np.ndarray:
        return translator.translate(images, self.labels, self.batch_size)

    def column_labels(self) -> list[str]:
        return [self.attrs or "output"] if self.single else list(self.attribute_names)

    def record(self) -> dict:
        return {"attrs": self.attrs, "sweep": not self.single, "from_attrs": self.from_attrs,
                "labels": self.labels.astype(int).tolist()}


class StarGanFamily(Family):
    name = "stargan"
    title = "StarGAN"
    translator = StarGanTranslator
    options = {"attrs": "--attrs", "from_attrs": "--from-attrs", "sweep": "--sweep"}
    ignored_why = "outputs are chosen by --attrs / --sweep"
    default_fit = "crop"

    def parse_model(self, fields: Fields) -> StarGanModel:
        return StarGanModel(fields.int("channels", low=1, high=4), LabelSpace.from_manifest(fields.obj("labels")))

    def graphs(self, model: StarGanModel):
        return {"generator": (("image", "label"), ("output",))}

    def check(self, manifest) -> None:
        label = manifest.graphs["generator"].tensor("label")
        c_dim = manifest.model.labels.c_dim
        if label.rank != 2 or label.shape[1] != c_dim:
            raise ManifestError("graphs.generator.inputs", f"'label' must be [N, {c_dim}] (labels.c_dim), got "
                                f"{list(label.shape)}")

    def channels(self, manifest, domain: str | None = None) -> int:
        return manifest.model.channels

    def plan(self, bundle, options) -> StarGanPlan:
        space = bundle.model.labels
        if options.attrs and options.sweep:
            raise InputError("--attrs and --sweep are alternatives: --attrs sets one target, --sweep writes one "
                             "output per attribute")
        if options.attrs:
            names, labels, single = ["output"], space.target(options.attrs, options.from_attrs)[None], True
            attrs = ()
        else:
            attrs, labels = space.sweep(options.from_attrs)
            names, single = unique_stems([file_stem(a) for a in attrs]), False
        return StarGanPlan(bundle.preprocess.with_size(options.size), bundle.model.channels, names, single, None,
                           labels, options.batch_size, options.attrs, options.from_attrs, tuple(attrs))

    def triton_layout(self, bundle, directions: tuple[str, ...], prefix: str):
        from munit_rt.triton.layout import Layout, graph_model

        if set(directions) != set(DIRECTIONS):
            raise InputError("--direction: a StarGAN bundle has no directions (its generator takes a target "
                             "label); leave --direction at 'both'")
        return Layout((graph_model(bundle, prefix, "generator"),))

    def describe(self, manifest) -> list[tuple[str, str]]:
        space = manifest.model.labels
        lines = [("channels", str(manifest.model.channels))]
        for dataset in space.datasets:
            label = "attributes" if len(space.datasets) == 1 else f"  {dataset.name}"
            hair = f"; hair colours, one at a time: {', '.join(dataset.hair)}" if dataset.hair else ""
            lines.append((label, f"{', '.join(dataset.attrs)} (label offset {dataset.offset}){hair}"))
        if len(space.datasets) > 1:
            lines.insert(1, ("attributes", f"{len(space.datasets)} datasets, mask at offset {space.mask_offset}"))
        lines.append(("label", f"[N, {space.c_dim}] float32 0/1"))
        lines.append(("translate", "--attrs A,B=0 (one output) or --sweep (one output per attribute, default)"))
        return lines


def unique_stems(stems: list[str]) -> list[str]:
    """File names that differ also on case-insensitive file systems (a suffix _2, _3 ... on repeats)."""
    seen: dict[str, int] = {}
    out = []
    for stem in stems:
        count = seen.get(stem.lower(), 0) + 1
        seen[stem.lower()] = count
        out.append(stem if count == 1 else f"{stem}_{count}")
    return out


register(StarGanFamily())
