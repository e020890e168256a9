"""Damaged, hand-edited and crafted manifests of the shipped default bundle (issue 14, item 9).

Every case ends in one of two ways: `Bundle()` opens (and `describe()` works), or a `BundleError` whose message is
one printable line naming manifest.json or a file. Any other exception is a reader bug: fix the reader
(munit_rt/bundle, the families' parse_model/check), not this test.

One temporary copy of the default bundle serves every case: its graph files are hard links (copies across file
systems), and each case only rewrites manifest.json. A few symbolic links (out of the bundle, to /etc/passwd, a
loop, one inside) are made once and named by the cases that need them.
"""
from __future__ import annotations

import copy
import hashlib
import json
import os
import re
import shutil
from collections import Counter
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from munit_rt.bundle import Bundle
from munit_rt.bundle.schema import MANIFEST_NAME
from munit_rt.errors import BundleError

DEFAULT = Path(__file__).resolve().parents[1] / "munit_rt" / "models" / "default"
BASE_TEXT = (DEFAULT / MANIFEST_NAME).read_text(encoding="utf-8")
BASE = json.loads(BASE_TEXT)
FUZZ_CASES = 600
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")  # as munit_rt/text.py

# -- the temporary bundle -------------------------------------------------------------------------------------
SYMLINKS = {  # name in the bundle -> target (relative to the bundle folder, or absolute)
    "escape.onnx": "../outside/style_encoder_a.onnx",
    "dirlink": "../outside",
    "abs.onnx": None,  # -> the outside file's absolute path (set up below)
    "passwd": "/etc/passwd",
    "fp32/loop.onnx": "loop.onnx",
    "inside.onnx": "fp32/style_encoder_a.onnx",
}


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _link_or_copy(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def make_bundle(root: Path) -> Path:
    """`root`/bundle: the default bundle, graph files hard-linked (never written to: cases rewrite manifest.json,
    which is a copy), plus the symbolic links of SYMLINKS and an outside folder they point to."""
    bundle, outside = root / "bundle", root / "outside"
    for src in sorted(DEFAULT.rglob("*")):
        if src.is_file() and src.name != MANIFEST_NAME:
            _link_or_copy(src, bundle / src.relative_to(DEFAULT))
    shutil.copyfile(DEFAULT / MANIFEST_NAME, bundle / MANIFEST_NAME)
    _link_or_copy(DEFAULT / "fp32" / "style_encoder_a.onnx", outside / "style_encoder_a.onnx")
    for name, target in SYMLINKS.items():
        os.symlink(target or outside / "style_encoder_a.onnx", bundle / name)
    return bundle


@pytest.fixture(scope="module")
def bundle_dir(tmp_path_factory) -> Path:
    return make_bundle(tmp_path_factory.mktemp("fuzz"))


# every file a manifest may name with a hash that fits it: the bundle's own files and the symbolic links' targets
FILE_SHAS = {str(p.relative_to(DEFAULT)): _sha(p) for p in sorted(DEFAULT.rglob("*"))
             if p.is_file() and p.name != MANIFEST_NAME}
for _name in ("escape.onnx", "abs.onnx", "inside.onnx"):
    FILE_SHAS[_name] = FILE_SHAS["fp32/style_encoder_a.onnx"]
FILE_SHAS["dirlink/style_encoder_a.onnx"] = FILE_SHAS["fp32/style_encoder_a.onnx"]
if os.access("/etc/passwd", os.R_OK):
    FILE_SHAS["passwd"] = _sha(Path("/etc/passwd"))

PATH_TRICKS = [
    "../x", "/etc/passwd", "a\\b", "C:x", "", "fp32/../../x", "fp32/../fp32/decoder_a.onnx", "./fp32/decoder_a.onnx",
    "fp32//decoder_a.onnx", "fp32/decoder_a.onnx/", "manifest.json", ".", "fp32", "fp32/", "\x00", "fp32/\nx.onnx",
    "fp32/decoder_a.onnx\x7f", "fp32/\x1b[31m.onnx", "\u202egpj.onnx", "é.onnx", "x" * 1025, "fp32/" + "y" * 300,
    "~/x", "$HOME/x", "\\\\server\\share", "file:///etc/passwd", "nonexistent.onnx", "fp32/DECODER_A.ONNX",
    "fp32/loop.onnx", "dirlink", "fp16/../fp32/style_encoder_a.onnx", *SYMLINKS, "dirlink/style_encoder_a.onnx",
]

# -- values -------------------------------------------------------------------------------------------------
CONTROL_STRINGS = ["\x1b[31mred\x1b[0m", "line\nbreak", "\r", "\x00", "\t", "\u2028", "\u202e", "\x85", "\ud800",
                   "é\u0301", "🙂", "\x7f", "\x9b2J"]
NAMES = ["", "a", "b", "c", "fp32", "fp16", "fp64", "munit", "cyclegan", "stargan", "float32", "float16", "int64",
         "N", "H", "content", "style", "image", "output", "adain_params", "label", "decoder_a", "style_encoder_a",
         "shorter_side", "square", "bilinear", "bicubic", "nearest", "crop", "round", "center", "munit-rt-bundle",
         "0" * 64, "A" * 64, "g" * 64, "a2b", "b2a", "dataset_1", "dataset_2", "mask"]
KEYS = ["channels", "style_dim", "multiple", "size", "files", "path", "sha256", "bytes", "inputs", "outputs",
        "shape", "dtype", "name", "domains", "graphs", "precisions", "preprocess", "adain", "total", "layers",
        "parity", "passed", "family", "schema_version", "directions", "labels", "c_dim", "layout", "graph"]
# written as JSON text: what json.dumps cannot write, or Python's json would crash on
RAW = ["Infinity", "-Infinity", "NaN", "1e400", "-1e400", "1e308", "-1e308", "1" + "0" * 5000, "-" + "9" * 5000,
       "10" * 12, "1" + "0" * 400 + ".5", "1e-400", "0.0", "-0", "[" * 10_000 + "]" * 10_000,
       '{"a":' * 10_000 + "1" + "}" * 10_000, "[" * 24 + "1" + "]" * 24, "[" * 40 + "]" * 40, '"' + "x" * 200_000 + '"',
       "[" + ",".join(["0"] * 200_000) + "]"]

SCALARS = st.one_of(
    st.none(), st.booleans(),
    st.sampled_from([0, -1, 1, 2, 3, 4, 5, 7, 8, 64, 768, 1 << 16, 1 << 31, 1 << 62, (1 << 63) - 1, -(1 << 63),
                     10 ** 19, 10 ** 20]),
    st.integers(),
    st.sampled_from([0.0, -0.0, 0.5, 1.0, 3.0, 8.0, 1e10, 1e308, -1e308, 5e-324, 1e-7]),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from(NAMES + CONTROL_STRINGS + ["x" * 5000]), st.text(max_size=12))
VALUES = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=4)
                      | st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=6), inner, max_size=4), max_leaves=8)



def _image_graph(*inputs: tuple[str, list]) -> dict:
    """A graph entry of image (+ label) -> output, its files those of decoder_a (whose I/O differs: the reader
    refuses it once the manifest itself has passed)."""
    return {"role": "generator", "inputs": [{"name": n, "dtype": "float32", "shape": s} for n, s in inputs],
            "outputs": [{"name": "output", "dtype": "float32", "shape": ["N", 3, "H", "W"]}],
            "files": copy.deepcopy(BASE["graphs"]["decoder_a"]["files"])}


# family templates: the default manifest turned into a (damaged) CycleGAN or StarGAN one, reaching their parse code
TEMPLATES = {
    "cyclegan": {"family": "cyclegan", "directions": {"a2b": {"graph": "generator_a2b", "generator": "G_A",
                                                              "source_domain": "a", "target_domain": "b"}},
                 "graphs": {"generator_a2b": _image_graph(("image", ["N", 3, "H", "W"]))}},
    "stargan": {"family": "stargan", "channels": 3,
                "graphs": {"generator": _image_graph(("image", ["N", 3, "H", "W"]), ("label", ["N", 7]))},
                "labels": {
        "c_dim": 7, "hair_color_attrs": ["Black_Hair"], "hair_color_attrs_2": ["x"],
        "layout": [{"name": "dataset_1", "attrs": ["Black_Hair", "Male"], "offset": 0, "length": 2},
                   {"name": "dataset_2", "attrs": ["x", "y", "z"], "offset": 2, "length": 3},
                   {"name": "mask", "offset": 5, "length": 2}]}},
}


# -- mutations --------------------------------------------------------------------------------------------------
def _paths(node, prefix=()):
    yield prefix
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _paths(value, prefix + (key,))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _paths(value, prefix + (index,))


def _focused(path) -> bool:
    """Keys the runtime or `info` reads (not the training config, not the per-case parity details)."""
    return "cases" not in path and not (path[:1] == ("config",) and len(path) > 2)


def _get(doc, path):
    for key in path:
        doc = doc[key]
    return doc


def _set(doc, path, value):
    if not path:
        return value
    _get(doc, path[:-1])[path[-1]] = value
    return doc


def _graph_files(doc) -> list[tuple[str, str]]:
    """(graph, precision) of every graph file entry still shaped as written."""
    graphs = doc.get("graphs") if isinstance(doc, dict) else None
    if not isinstance(graphs, dict):
        return []
    return [(g, p) for g, spec in graphs.items() if isinstance(spec, dict) and isinstance(spec.get("files"), dict)
            for p, entry in spec["files"].items() if isinstance(entry, dict)]


class Damage(bytes):
    """manifest.json's damaged bytes; shown by the steps that made them (a failing case prints these)."""

    steps: list[str]

    def __repr__(self) -> str:
        return f"Damage({'; '.join(self.steps)}; {len(self)} bytes)"


class Case:
    def __init__(self):
        self.raw: list[str] = []
        self.steps: list[str] = []
        self.family_keys: set[tuple] = set()  # a template's keys, damaged more often than the rest

    def raw_value(self, text: str) -> str:
        self.raw.append(text)
        return f"@@raw{len(self.raw) - 1}@@"


@st.composite
def damaged_manifests(draw) -> Damage:
    doc = copy.deepcopy(BASE)
    case = Case()
    template = draw(st.sampled_from([None] * 8 + list(TEMPLATES)))
    if template:
        extra = copy.deepcopy(TEMPLATES[template])
        graphs = extra.pop("graphs")
        doc["graphs"].update(graphs)
        doc.update(extra)
        case.family_keys = {(key,) for key in extra if key != "family"} | {("graphs", g) for g in graphs}
        case.steps.append(f"template {template}")
    for _ in range(draw(st.integers(1, 3))):
        doc = _mutate(draw, doc, case)
    text = json.dumps(doc, ensure_ascii=draw(st.booleans()))
    for index, raw in reversed(list(enumerate(case.raw))):  # a later raw value may hold earlier ones
        text = text.replace(json.dumps(f"@@raw{index}@@"), raw)
    data = text.encode("utf-8", "surrogatepass")
    ending = draw(st.sampled_from([None] * 30 + ["truncate", "garbage", "latin1", "bom", "empty", "null", "list",
                                                  "duplicate", "trailing"]))
    if ending == "truncate":
        data = data[:draw(st.integers(0, len(data) - 1))]
    elif ending == "garbage":
        at = draw(st.integers(0, len(data)))
        data = data[:at] + draw(st.binary(min_size=1, max_size=8)) + data[at:]
    elif ending == "latin1":
        data = data.replace(b'"munit"', b'"m\xfcnit"')
    elif ending == "bom":
        data = b"\xef\xbb\xbf" + data
    elif ending in ("empty", "null", "list"):
        data = {"empty": b"", "null": b"null", "list": b"[" + data + b"]"}[ending]
    elif ending == "duplicate":  # a second "files" block, contradicting the first: json keeps the last
        data = data[:-1] + b', "files": {"fp32/decoder_a.onnx": "' + b"0" * 64 + b'"}}'
    elif ending == "trailing":
        data += b" {}"
    if ending:
        case.steps.append(f"text {ending}")
    damage = Damage(data)
    damage.steps = case.steps
    return damage


def _mutate(draw, doc, case: Case):
    kind = draw(st.sampled_from(["set", "set", "set", "raw", "delete", "delete", "transplant", "rename", "add",
                                 "path_trick", "files_trick", "swap_graph", "swap_graph", "contradict_sha",
                                 "duplicate_key"]))
    paths = list(_paths(doc))[1:] or [()]  # the document itself: replaced by the text endings ("null", "list")
    focused = [p for p in paths if _focused(p)] or paths
    family_keys = [p for p in focused if p[:1] in case.family_keys or p[:2] in case.family_keys]
    pool = family_keys if family_keys and draw(st.booleans()) else focused if draw(st.integers(0, 4)) else paths
    # uniform picks (Hypothesis's own choices favour the first path, schema_version, which is checked first)
    uniform = draw(st.randoms(use_true_random=True))
    path = uniform.choice(pool)
    graph_files = _graph_files(doc)
    if kind in ("path_trick", "swap_graph", "contradict_sha") and graph_files:
        graph, precision = draw(st.sampled_from(graph_files))
        entry = doc["graphs"][graph]["files"][precision]
        if kind == "path_trick":
            trick = draw(st.sampled_from(PATH_TRICKS))
            entry["path"] = trick
            entry["sha256"] = draw(st.sampled_from([FILE_SHAS.get(trick, "0" * 64), "0" * 64, entry.get("sha256")]))
            case.steps.append(f"graphs.{graph}.files.{precision}.path = {trick!r}")
        elif kind == "swap_graph":  # another graph's file (or any bundle file), hash updated to match
            target = draw(st.sampled_from(sorted(FILE_SHAS)))
            entry.update(path=target, sha256=FILE_SHAS[target])
            if draw(st.booleans()) and isinstance(doc.get("files"), dict):
                doc["files"][target] = FILE_SHAS[target]
            case.steps.append(f"graphs.{graph}.files.{precision} -> {target}")
        else:  # one path, two hashes: the graph's and the files list's
            other = draw(st.sampled_from(sorted(set(FILE_SHAS.values()))))
            if draw(st.booleans()):
                entry["sha256"] = other
            elif isinstance(doc.get("files"), dict) and isinstance(entry.get("path"), str):
                doc["files"][entry["path"]] = other
            case.steps.append(f"contradicting sha256 for graphs.{graph}.files.{precision}")
        return doc
    if kind == "files_trick" and isinstance(doc, dict) and isinstance(doc.get("files"), dict):
        trick = draw(st.sampled_from(PATH_TRICKS + sorted(FILE_SHAS)))
        doc["files"][trick] = draw(st.sampled_from([FILE_SHAS.get(trick, "0" * 64), "0" * 64, "not a hash", None]))
        case.steps.append(f"files[{trick!r}]")
        return doc
    container = _get(doc, path[:-1]) if path else None
    if kind == "delete" and path:
        del container[path[-1]]
        case.steps.append(f"delete {path}")
        return doc
    if kind == "rename" and path and isinstance(container, dict):
        new = draw(st.sampled_from(KEYS + CONTROL_STRINGS + ["x" * 5000]) | st.text(max_size=8))
        container[new] = container.pop(path[-1])
        case.steps.append(f"rename {path} -> {new!r}")
        return doc
    if kind == "add" and isinstance(_get(doc, path), dict):
        key = draw(st.sampled_from(KEYS + CONTROL_STRINGS) | st.text(max_size=8))
        _get(doc, path)[key] = draw(VALUES)
        case.steps.append(f"add {path}.{key!r}")
        return doc
    if kind == "transplant":
        source = uniform.choice(focused)
        case.steps.append(f"{path} = copy of {source}")
        return _set(doc, path, copy.deepcopy(_get(doc, source)))
    if kind == "duplicate_key" and isinstance(_get(doc, path), dict) and _get(doc, path):
        node = _get(doc, path)
        key = draw(st.sampled_from(sorted(node, key=str)))
        value = draw(VALUES)
        items = [json.dumps(k) + ":" + json.dumps(v) for k, v in node.items()]
        items.insert(draw(st.integers(0, len(items))), json.dumps(key) + ":" + json.dumps(value))
        case.steps.append(f"duplicate key {path}.{key}")
        return _set(doc, path, case.raw_value("{" + ",".join(items) + "}"))
    if kind == "raw":
        raw = draw(st.sampled_from(RAW))
        case.steps.append(f"{path} = raw {raw[:20]}")
        return _set(doc, path, case.raw_value(raw))
    value = draw(VALUES)
    case.steps.append(f"{path} = {value!r:.60}")
    return _set(doc, path, value)


# -- the oracle ---------------------------------------------------------------------------------------------------
def file_names(data: bytes) -> set[str]:
    """The file paths a manifest names (where it is still readable as such)."""
    try:
        doc = json.loads(data)
    except (ValueError, RecursionError):
        return set()
    names = set(doc.get("files", {})) if isinstance(doc, dict) and isinstance(doc.get("files"), dict) else set()
    for graph, precision in _graph_files(doc):
        path = doc["graphs"][graph]["files"][precision].get("path")
        if isinstance(path, str) and path:
            names.add(path)
    return names


def check_message(message: str, bundle: Path, names: set[str]) -> None:
    assert message.splitlines() == [message] and not _CONTROL.search(message), repr(message)
    assert len(message) < 2000, message[:2000]
    prefix = f"bundle {bundle}: "
    assert message.startswith(prefix), message
    rest = message[len(prefix):]
    assert MANIFEST_NAME in rest or any(name in rest for name in names if len(name) > 2), message


def open_case(bundle: Path, data: bytes) -> tuple[str, str]:
    """('opened', summary) or ('refused', message); any other exception escapes."""
    (bundle / MANIFEST_NAME).write_bytes(data)
    try:
        opened = Bundle(bundle)
    except BundleError as exc:
        check_message(str(exc), bundle, file_names(data))
        return "refused", str(exc)
    summary = opened.describe()
    assert not any(_CONTROL.search(line) for line in summary.splitlines()), summary
    return "opened", summary


# -- 1. the fuzz test ------------------------------------------------------------------------------------------
def test_damaged_manifests_open_or_raise_bundle_error(bundle_dir):
    outcomes: Counter[str] = Counter()

    @settings(max_examples=FUZZ_CASES, derandomize=True, deadline=None, database=None, print_blob=False,
              suppress_health_check=list(HealthCheck))
    @given(damaged_manifests())
    def case(damage):
        outcome, _ = open_case(bundle_dir, damage)
        outcomes[outcome] += 1

    case()
    assert sum(outcomes.values()) >= 500, outcomes
    assert outcomes["opened"] and outcomes["refused"], outcomes


def _edit(edit) -> bytes:
    doc = copy.deepcopy(BASE)
    edit(doc)
    return json.dumps(doc).encode()


def _text_edit(old: str, new: str) -> bytes:
    assert old in BASE_TEXT
    return BASE_TEXT.replace(old, new, 1).encode()


def _swap(graph: str, target: str, precision: str = "fp32"):
    def edit(doc):
        doc["graphs"][graph]["files"][precision].update(path=target, sha256=FILE_SHAS[target])
    return _edit(edit)


def _graph_path(graph: str, path: str, sha: str | None = None):
    def edit(doc):
        doc["graphs"][graph]["files"]["fp32"].update(path=path, sha256=sha or FILE_SHAS.get(path, "0" * 64))
    return _edit(edit)


# the crash classes and each kind of damage once, with the key or file the message must name
NAMED_CASES = {
    "bool where an object is expected": (_edit(lambda d: d.update(preprocess=True)), "'preprocess' must be an object"),
    "bool as a graph": (_edit(lambda d: d["graphs"].update(decoder_a=True)), "'graphs.decoder_a'"),
    "list as a domain": (_edit(lambda d: d["domains"].update(a=[3])), "'domains.a'"),
    "list as a file's sha256": (_edit(lambda d: d["files"].update({"MODEL_CARD.md": ["x"]})), "files.MODEL_CARD.md"),
    "list as the family": (_edit(lambda d: d.update(family=["munit"])), "'family'"),
    "missing size": (_edit(lambda d: d["preprocess"].pop("size")), "'preprocess.size' is missing"),
    "missing graph": (_edit(lambda d: d["graphs"].pop("style_mlp_b")), "graphs.style_mlp_b"),
    "missing files of a graph": (_edit(lambda d: d["graphs"]["decoder_b"].pop("files")), "graphs.decoder_b.files"),
    "channels Infinity": (_text_edit('"channels": 3', '"channels": Infinity'), "Infinity"),
    "channels NaN": (_text_edit('"channels": 3', '"channels": NaN'), "NaN"),
    "channels -Infinity": (_text_edit('"channels": 3', '"channels": -Infinity'), "Infinity"),
    "channels 1e400": (_text_edit('"channels": 3', '"channels": 1e400'), "not finite"),
    "multiple 0": (_edit(lambda d: d["preprocess"].update(multiple=0)), "'preprocess.multiple'"),
    "multiple -1": (_edit(lambda d: d["preprocess"].update(multiple=-1)), "'preprocess.multiple'"),
    "size 1e308": (_edit(lambda d: d["preprocess"].update(size=1e308)), "'preprocess.size'"),
    "style_dim 1e10": (_edit(lambda d: d.update(style_dim=1e10)), "'style_dim'"),
    "style_dim 10**10": (_edit(lambda d: d.update(style_dim=10 ** 10)), "'style_dim'"),
    "style_dim 0": (_edit(lambda d: d.update(style_dim=0)), "'style_dim'"),
    "channels that the graphs do not have": (_edit(lambda d: d["domains"]["a"].update(channels=1)),
                                             "graphs.content_encoder_a.inputs' 'image' must be [N, 1, H, W] "
                                             "(domains.a.channels)"),
    "content_channels that the graphs do not have": (_edit(lambda d: d.update(content_channels=32)),
                                                     "(content_channels)"),
    "adain total huge": (_edit(lambda d: d["adain"].update(total=1 << 40)), "'adain.total'"),
    "5000-digit integer": (_text_edit('"style_dim": 8', '"style_dim": 1' + "0" * 5000), "integer of 5001 digits"),
    "5000-digit negative": (_text_edit('"size": 64', '"size": -' + "9" * 5000), "digits"),
    "10_000 nested lists": (_text_edit('"style_dim": 8', '"style_dim": ' + "[" * 10_000 + "]" * 10_000), "nests"),
    "10_000 nested objects": (_text_edit('"adain": {', '"adain": ' + '{"a":' * 10_000 + "{}" + "}" * 10_000 + ", "
                                         '"adain2": {'), "nests"),
    "long string": (_edit(lambda d: d["preprocess"].update(resample="x" * 100_000)), "'preprocess.resample'"),
    "escape in a key": (_edit(lambda d: d["graphs"].update({"\x1b[2Jx\n": d["graphs"]["decoder_a"]})), "graphs."),
    "huge key": (_edit(lambda d: d["graphs"].update({"k" * 100_000: {}})), "graphs.k"),
    "lone surrogate": (_text_edit('"family": "munit"', '"family": "\\ud800"'), "'family'"),
    "not UTF-8": (BASE_TEXT.encode().replace(b'"munit"', b'"m\xfcnit"', 1), "not UTF-8"),
    "schema_version 1.0": (_edit(lambda d: d.update(schema_version=1.0)), "'schema_version'"),
    "schema_version true": (_edit(lambda d: d.update(schema_version=True)), "'schema_version'"),
    "float shape dim": (_edit(lambda d: d["graphs"]["decoder_a"]["inputs"][0].update(shape=["N", 64.0, "h", "w"])),
                        "graphs.decoder_a.inputs[0].shape"),
    "one graph path, two hashes": (_edit(lambda d: d["graphs"]["decoder_a"]["files"]["fp32"].update(
        sha256=FILE_SHAS["fp32/decoder_b.onnx"])), "graphs.decoder_a.files.fp32.sha256"),
    "two graphs, one path, two hashes": (_edit(lambda d: d["graphs"]["decoder_b"]["files"]["fp32"].update(
        path="fp32/decoder_a.onnx", sha256="0" * 64)), "fp32/decoder_a.onnx"),
    "files list hash wrong": (_edit(lambda d: d["files"].update({"MODEL_CARD.md": "0" * 64})), "MODEL_CARD.md"),
    # swapped graphs, hashes updated: refused when the I/O differs (content -> style encoder, MLP -> decoder, ...)
    "content_encoder_a -> style_encoder_a": (_swap("content_encoder_a", "fp32/style_encoder_a.onnx"),
                                             "fp32/style_encoder_a.onnx does not fit graph 'content_encoder_a'"),
    "style_encoder_b -> content_encoder_b fp16": (_swap("style_encoder_b", "fp16/content_encoder_b.onnx", "fp16"),
                                                  "does not fit graph 'style_encoder_b'"),
    "decoder_a -> style_mlp_a": (_swap("decoder_a", "fp32/style_mlp_a.onnx"), "does not fit graph 'decoder_a'"),
    "style_mlp_b -> decoder_b": (_swap("style_mlp_b", "fp32/decoder_b.onnx"), "does not fit graph 'style_mlp_b'"),
    "decoder_a -> MODEL_CARD.md": (_swap("decoder_a", "MODEL_CARD.md"), "MODEL_CARD.md is not a readable ONNX"),
    # the same I/O: indistinguishable, opening is right
    "decoder_a -> decoder_b": (_swap("decoder_a", "fp32/decoder_b.onnx"), None),
    "style_mlp_a -> style_mlp_b fp16": (_swap("style_mlp_a", "fp16/style_mlp_b.onnx", "fp16"), None),
    # path tricks
    "../x": (_graph_path("decoder_a", "../x"), "'../x'"),
    "/etc/passwd": (_graph_path("decoder_a", "/etc/passwd"), "'/etc/passwd'"),
    "backslash": (_graph_path("decoder_a", "a\\b"), "graphs.decoder_a.files.fp32.path"),
    "drive": (_graph_path("decoder_a", "C:x"), "'C:x'"),
    "empty path": (_graph_path("decoder_a", ""), "graphs.decoder_a.files.fp32.path"),
    "fp32/../../x": (_graph_path("decoder_a", "fp32/../../x"), "'fp32/../../x'"),
    "newline in path": (_graph_path("decoder_a", "fp32/\nx.onnx"), "graphs.decoder_a.files.fp32.path"),
    "manifest.json as a graph": (_graph_path("decoder_a", "manifest.json"), "graphs.decoder_a.files.fp32.path"),
    "a folder as a graph": (_graph_path("decoder_a", "fp32"), "fp32"),
    "long path component": (_graph_path("decoder_a", "fp32/" + "y" * 300), "fp32/yyy"),
    "symlink out of the bundle": (_graph_path("style_encoder_a", "escape.onnx"), "escape.onnx resolves outside"),
    "absolute symlink": (_graph_path("style_encoder_a", "abs.onnx"), "abs.onnx resolves outside"),
    "symlinked folder": (_graph_path("style_encoder_a", "dirlink/style_encoder_a.onnx"), "resolves outside"),
    "symlink to /etc/passwd": (_graph_path("decoder_a", "passwd"), "passwd resolves outside"),
    "symlink loop": (_graph_path("decoder_a", "fp32/loop.onnx"), "fp32/loop.onnx"),
    "symlink inside": (_graph_path("style_encoder_a", "inside.onnx"), None),
}


@pytest.mark.parametrize("name", list(NAMED_CASES))
def test_named_damage(bundle_dir, name):
    data, expected = NAMED_CASES[name]
    outcome, text = open_case(bundle_dir, data)
    if expected is None:
        assert outcome == "opened", text
    else:
        assert outcome == "refused" and expected in text, text


def test_swapped_graph_is_refused_whichever_graph_comes_first(bundle_dir):
    """Two graphs naming one file, hash right: the file is checked against each graph's I/O, not only the last."""
    for graph, target in (("content_encoder_a", "fp32/style_encoder_a.onnx"),
                          ("style_encoder_a", "fp32/content_encoder_a.onnx")):
        outcome, text = open_case(bundle_dir, _swap(graph, target))
        assert outcome == "refused" and f"does not fit graph '{graph}'" in text, text


# -- 2. the command line ------------------------------------------------------------------------------------------
CLI_CASES = ["bool where an object is expected", "list as a domain", "channels Infinity", "multiple 0",
             "style_dim 1e10", "10_000 nested lists", "5000-digit integer", "content_encoder_a -> style_encoder_a"]


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> Path:
    from PIL import Image

    folder = tmp_path_factory.mktemp("inputs")
    Image.new("RGB", (40, 32), (120, 60, 30)).save(folder / "x.png")
    return folder


def assert_one_error_line(result) -> str:
    assert isinstance(result.exception, SystemExit) and result.exit_code == 2, (result.exit_code, result.output)
    lines = result.output.splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ") and lines[0] != "Error: ", result.output
    assert "Traceback" not in result.output
    return lines[0]


@pytest.mark.parametrize("name", CLI_CASES)
def test_cli_refuses_a_damaged_bundle_in_one_line(bundle_dir, images, tmp_path, name):
    from munit_rt.cli import cli

    (bundle_dir / MANIFEST_NAME).write_bytes(NAMED_CASES[name][0])
    runner = CliRunner()
    info = assert_one_error_line(runner.invoke(cli, ["info", str(bundle_dir)]))
    out = tmp_path / "out"
    translate = assert_one_error_line(runner.invoke(cli, ["translate", "-m", str(bundle_dir), str(images),
                                                          "-o", str(out)]))
    assert not out.exists()
    assert NAMED_CASES[name][1] in info and NAMED_CASES[name][1] in translate


def test_cli_process_prints_one_line_on_stderr(bundle_dir, images, tmp_path):
    """The real entry point, in its own process: exit 2, nothing on stdout, one line on stderr."""
    import subprocess
    import sys

    (bundle_dir / MANIFEST_NAME).write_bytes(NAMED_CASES["10_000 nested lists"][0])
    out = tmp_path / "out"
    code = "import sys; from munit_rt.cli import main; sys.argv[0] = 'munit-rt'; main()"
    for args in (["info", str(bundle_dir)], ["translate", "-m", str(bundle_dir), str(images), "-o", str(out)]):
        proc = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=120)
        assert proc.returncode == 2 and proc.stdout == "", (proc.returncode, proc.stdout, proc.stderr)
        lines = proc.stderr.splitlines()
        assert len(lines) == 1 and lines[0].startswith("Error: ") and "nests 10" in lines[0], proc.stderr
    assert not out.exists()


def test_cli_refuses_a_graph_file_replaced_by_another_graph(tmp_path, images):
    """The file itself replaced (same name, another graph's bytes) and both hashes updated to match."""
    from munit_rt.cli import cli

    bundle = make_bundle(tmp_path)
    victim = bundle / "fp32" / "content_encoder_a.onnx"
    victim.unlink()  # a hard link: replace it, never write through it
    _link_or_copy(DEFAULT / "fp32" / "style_encoder_a.onnx", victim)
    sha = FILE_SHAS["fp32/style_encoder_a.onnx"]

    def edit(doc):
        doc["files"]["fp32/content_encoder_a.onnx"] = sha
        doc["graphs"]["content_encoder_a"]["files"]["fp32"]["sha256"] = sha
    (bundle / MANIFEST_NAME).write_bytes(_edit(edit))
    for args in (["info", str(bundle)], ["translate", "-m", str(bundle), str(images), "-o", str(tmp_path / "out")]):
        line = assert_one_error_line(CliRunner().invoke(cli, args))
        assert "fp32/content_encoder_a.onnx does not fit graph 'content_encoder_a'" in line
    assert not (tmp_path / "out").exists()
    assert _sha(DEFAULT / "fp32" / "content_encoder_a.onnx") == FILE_SHAS["fp32/content_encoder_a.onnx"]


# -- 3. terminal escapes in manifest text -------------------------------------------------------------------------
def test_info_prints_manifest_text_escaped(bundle_dir):
    from munit_rt.cli import cli

    def edit(doc):
        doc["source_checkpoint"].update(name="\x1b[31mred\x1b[0m", path="runs/\u202eevil\rx\x07")
        doc["created"] = "2026-01-01\nfamily      forged line"
        doc["munit_rt_version"] = "0.1\x85\u2028"
    (bundle_dir / MANIFEST_NAME).write_bytes(_edit(edit))
    result = CliRunner().invoke(cli, ["info", str(bundle_dir)])
    assert result.exit_code == 0, result.output
    assert not re.search(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e]", result.output), result.output
    assert "\\x1b[31mred\\x1b[0m" in result.output
    assert "2026-01-01\\nfamily      forged line" in result.output
    assert "\\u202eevil\\rx\\x07" in result.output
    assert not any(line.startswith("family      forged") for line in result.output.splitlines())
    default_lines = len(Bundle(DEFAULT).describe().splitlines())
    assert len(result.output.splitlines()) == default_lines
