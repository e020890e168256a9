"""StarGAN label vectors from attribute names: `--attrs`, `--from-attrs` and the upstream sweep.

The manifest's `labels` block (docs/bundle-format.md) gives the layout: dataset 1's attributes, and for
two-dataset bundles dataset 2's and a 2-way mask. A label vector sets one dataset's attributes (the
"active" dataset), zeros for the other's, and that dataset's mask bit.

At inference the source image's own attributes are unknown, so the base vector is all zeros unless
`--from-attrs` names them. Then:

  target (--attrs A,B=0,C=1)  base, with each listed attribute set (to 1, or the value after `=`); setting
                              a hair colour to 1 clears the other hair colours; two hair colours set to 1
                              is an error (they are mutually exclusive)
  sweep                       one vector per attribute, upstream's `create_labels`: a hair colour is set to
                              1 and the other hair colours cleared; any other attribute is flipped

Attributes are named as in `selected_attrs` (exact, else a unique case-insensitive match); a name both
datasets use is written `dataset_2:Name`.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from munit_rt.errors import InputError
from munit_rt.bundle.fields import Fields


@dataclass(frozen=True)
class LabelDataset:
    index: int                 # 0 or 1 (its mask bit)
    name: str                  # "dataset_1", "dataset_2"
    offset: int                # where its attributes start in the label vector
    attrs: tuple[str, ...]
    hair: tuple[str, ...]      # its hair colours (mutually exclusive), a subset of attrs


@dataclass(frozen=True)
class LabelSpace:
    c_dim: int
    datasets: tuple[LabelDataset, ...]
    mask_offset: int | None    # two datasets: the 2-way mask; one: None

    @classmethod
    def from_manifest(cls, labels: Fields | dict) -> LabelSpace:
        """The manifest's `labels` block, validated (ManifestError naming the key)."""
        labels = labels if isinstance(labels, Fields) else Fields(labels, "labels")
        c_dim = labels.int("c_dim", low=1, high=4096)
        layout = {}
        for entry in labels.objects("layout", min_items=1):
            layout[entry.str("name", choices=("dataset_1", "dataset_2", "mask"))] = entry
        datasets, used = [], 0
        for index, suffix in enumerate(("", "_2")):
            entry = layout.get(f"dataset_{index + 1}")
            if entry is None:
                continue
            attrs = entry.strings("attrs")
            offset, length = entry.int("offset", low=0, high=c_dim), entry.int("length", low=1, high=c_dim)
            hair = labels.strings(f"hair_color_attrs{suffix}", default=())
            entry.check(length == len(attrs) and offset + length <= c_dim and bool(attrs), "length",
                        f"(offset {offset}, length {length}, {len(attrs)} attrs) does not fit c_dim {c_dim}")
            labels.check(set(hair) <= set(attrs), f"hair_color_attrs{suffix}",
                         f"names hair colours that are not among dataset_{index + 1}'s attributes")
            datasets.append(LabelDataset(index, f"dataset_{index + 1}", offset, attrs, hair))
            used += length
        labels.check(bool(datasets) and datasets[0].index == 0, "layout", "has no dataset_1")
        mask_offset = None
        if len(datasets) == 2:
            mask = layout.get("mask")
            labels.check(mask is not None, "layout", "of two datasets needs a 2-long 'mask' inside c_dim")
            mask.check(mask.int("length") == 2, "length", "must be 2")
            mask_offset, used = mask.int("offset", low=0, high=c_dim - 2), used + 2
        labels.check(used == c_dim, "c_dim", f"is {c_dim} but the layout covers {used} entries")
        return cls(c_dim, tuple(datasets), mask_offset)

    # -- names -----------------------------------------------------------------------------------------
    def attribute_names(self) -> list[str]:
        """Every attribute as it can be named (qualified where both datasets use the name)."""
        return [self._display(d, a) for d in self.datasets for a in d.attrs]

    def _ambiguous(self, attr: str) -> bool:
        return sum(attr in d.attrs for d in self.datasets) > 1

    def _display(self, dataset: LabelDataset, attr: str) -> str:
        return f"{dataset.name}:{attr}" if self._ambiguous(attr) else attr

    def resolve(self, ref: str, flag: str) -> tuple[LabelDataset, int]:
        """(dataset, index in its attrs) of an attribute reference; InputError naming the known ones."""
        scope, _, attr = ref.rpartition(":")
        candidates = [d for d in self.datasets if not scope or d.name == scope]
        for exact in (True, False):
            matches = [(d, i) for d in candidates for i, a in enumerate(d.attrs)
                       if (a == attr if exact else a.lower() == attr.lower())]
            if len(matches) == 1:
                return matches[0]
            if len(matches) > 1:
                names = " or ".join(f"{d.name}:{d.attrs[i]}" for d, i in matches)
                raise InputError(f"{flag}: attribute {ref!r} is ambiguous; write {names}")
        raise InputError(f"{flag}: unknown attribute {ref!r}; this bundle's attributes: "
                         f"{', '.join(self.attribute_names())}")

    def parse(self, text: str, flag: str) -> list[tuple[LabelDataset, int, float]]:
        """`A,B=0,C=1` -> [(dataset, index, value)]; a repeated attribute must keep its value."""
        items = [item.strip() for item in str(text).split(",") if item.strip()]
        if not items:
            raise InputError(f"{flag} names no attribute (expected e.g. {self.attribute_names()[0]})")
        parsed: dict[tuple[int, int], tuple[LabelDataset, int, float]] = {}
        for item in items:
            ref, sep, value_text = item.partition("=")
            value_text = value_text.strip()
            if sep and value_text not in ("0", "1"):
                raise InputError(f"{flag}: {item!r}: the value after '=' must be 0 or 1")
            value = float(value_text) if sep else 1.0
            dataset, index = self.resolve(ref.strip(), flag)
            key = (dataset.index, index)
            if key in parsed and parsed[key][2] != value:
                raise InputError(f"{flag}: {dataset.attrs[index]} is given twice with different values")
            parsed[key] = (dataset, index, value)
        return list(parsed.values())

    # -- vectors ---------------------------------------------------------------------------------------
    def vector(self, dataset: LabelDataset, values: np.ndarray) -> np.ndarray:
        """The full [c_dim] label: `values` in the dataset's slice, zeros elsewhere, its mask bit set."""
        label = np.zeros(self.c_dim, np.float32)
        label[dataset.offset:dataset.offset + len(dataset.attrs)] = values
        if self.mask_offset is not None:
            label[self.mask_offset + dataset.index] = 1.0
        return label

    def _bases(self, from_attrs: str | None) -> dict[int, np.ndarray]:
        """Per dataset, the source attributes: zeros unless --from-attrs names them."""
        bases = {d.index: np.zeros(len(d.attrs), np.float32) for d in self.datasets}
        if from_attrs:
            assignments = self.parse(from_attrs, "--from-attrs")
            _check_hair(assignments, "--from-attrs")
            for dataset, index, value in assignments:
                bases[dataset.index][index] = value
        return bases

    def target(self, attrs: str, from_attrs: str | None = None) -> np.ndarray:
        """The [c_dim] label of `--attrs` (on top of `--from-attrs`)."""
        assignments = self.parse(attrs, "--attrs")
        involved = {d.name: d for d, _, _ in assignments}
        if len(involved) > 1:
            raise InputError(f"--attrs names attributes of {' and '.join(involved)}; a label sets one dataset's "
                             "attributes (the mask selects it)")
        _check_hair(assignments, "--attrs")
        dataset = next(iter(involved.values()))
        if from_attrs:
            other = {d.name for d, _, _ in self.parse(from_attrs, "--from-attrs")} - {dataset.name}
            if other:
                raise InputError(f"--from-attrs names attributes of {', '.join(sorted(other))} but --attrs sets "
                                 f"{dataset.name}'s")
        values = self._bases(from_attrs)[dataset.index].copy()
        for _, index, value in assignments:
            if value == 1.0 and dataset.attrs[index] in dataset.hair:
                for hair in dataset.hair:
                    values[dataset.attrs.index(hair)] = 0.0
        for _, index, value in assignments:
            values[index] = value
        return self.vector(dataset, values)

    def sweep(self, from_attrs: str | None = None) -> tuple[list[str], np.ndarray]:
        """Upstream's create_labels for every attribute of every dataset: (names, [S, c_dim])."""
        bases = self._bases(from_attrs)
        names, rows = [], []
        for dataset in self.datasets:
            hair = [dataset.attrs.index(h) for h in dataset.hair]
            for index, attr in enumerate(dataset.attrs):
                values = bases[dataset.index].copy()
                if index in hair:
                    values[hair] = 0.0
                    values[index] = 1.0
                else:
                    values[index] = 1.0 - values[index]
                names.append(self._display(dataset, attr))
                rows.append(self.vector(dataset, values))
        return names, np.stack(rows)


def _check_hair(assignments: list[tuple[LabelDataset, int, float]], flag: str) -> None:
    for dataset in {d.index: d for d, _, _ in assignments}.values():
        hair = [dataset.attrs[i] for d, i, v in assignments
                if d.index == dataset.index and v == 1.0 and dataset.attrs[i] in dataset.hair]
        if len(hair) > 1:
            raise InputError(f"{flag} sets {len(hair)} hair colours ({', '.join(hair)}); they are mutually "
                             "exclusive, give one")


def file_stem(name: str) -> str:
    """An attribute name as a file name: characters other than letters, digits, '-', '_', '.' become '_'."""
    stem = re.sub(r"[^A-Za-z0-9_.-]", "_", name.replace(":", "-")).strip(".") or "attr"
    return f"attr_{stem}" if stem.lower() == "grid" else stem
