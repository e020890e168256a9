"""Untrusted files: checkpoints never run pickled code unless --trust-checkpoint; bundles are checked (sha256,
paths, external data, schema) before any graph is used, and every refusal is one line with exit 2."""
from __future__ import annotations

import os
import re
import shutil
import time
from pathlib import Path

import pytest
from test_bundle import edit_manifest  # noqa: E402
from click.testing import CliRunner
from PIL import Image
from test_bundle import build_tiny_bundle

from munit_rt.bundle import Bundle
from munit_rt.cli import cli
from munit_rt.cli.common import EXIT_USAGE
from munit_rt.errors import BundleError

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> tuple[Path, Path]:
    return build_tiny_bundle(tmp_path_factory)


def run_cli(*args) -> tuple[int, str]:
    result = CliRunner().invoke(cli, [str(a) for a in args])
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.output


def one_line_error(output: str) -> str:
    lines = output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), output
    return lines[0]


# -- checkpoints ---------------------------------------------------------------------------------------------
class CreatesFile:
    """Unpickling this calls builtins.open(marker, 'w'): the file appears iff pickled code ran."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


@pytest.fixture
def malicious_checkpoint(tmp_path) -> tuple[Path, Path]:
    import torch

    marker = tmp_path / "code-ran.txt"
    path = tmp_path / "gen_00000010.pt"
    torch.save({"a": {"enc_style.model.0.conv.weight": torch.zeros(1)}, "b": {}, "payload": CreatesFile(marker)},
               path)
    assert not marker.exists()
    return path, marker


@pytest.mark.parametrize("command", [["info"], ["export", "-o", "{tmp}/out.bundle"]], ids=["info", "export"])
def test_malicious_pickle_is_refused_without_running(malicious_checkpoint, tmp_path, command):
    path, marker = malicious_checkpoint
    args = [a.replace("{tmp}", str(tmp_path)) for a in command]
    code, output = run_cli(*args, path)
    assert code == EXIT_USAGE
    line = one_line_error(output)
    assert "refused, the file contains pickled objects that could run code" in line and "--trust-checkpoint" in line
    assert not marker.exists()
    assert not (tmp_path / "out.bundle").exists()


@pytest.mark.parametrize("command", [["info"], ["export", "-o", "{tmp}/out.bundle"]], ids=["info", "export"])
def test_trust_checkpoint_really_unpickles(malicious_checkpoint, tmp_path, command):
    """The control: with --trust-checkpoint (documented as unsafe) the same file does run its code."""
    path, marker = malicious_checkpoint
    args = [a.replace("{tmp}", str(tmp_path)) for a in command]
    code, output = run_cli(*args, "--trust-checkpoint", path)
    assert marker.exists()  # this is what the flag allows
    assert code == EXIT_USAGE and one_line_error(output)  # the dict is still no usable generator


def test_trust_checkpoint_is_documented_as_unsafe():
    for command in ("info", "export"):
        text = " ".join(run_cli(command, "--help")[1].split())
        assert "--trust-checkpoint UNSAFE: allow pickled objects" in text


def test_every_torch_load_in_the_repository_is_weights_only():
    """Static guard: a torch.load call anywhere must say weights_only (training.checkpoint.torch_load is the
    one that may set it False, from --trust-checkpoint)."""
    calls = []
    for folder in ("munit_rt", "training", "export", "bench", "tests"):
        for path in (REPO / folder).rglob("*.py"):
            text = path.read_text(encoding="utf-8")
            for match in re.finditer(r"torch\.load\((?:[^()]|\([^()]*\))*\)", text):
                calls.append((path.relative_to(REPO).as_posix(), match.group(0)))
    assert calls, "no torch.load call found at all: the pattern is broken"
    unsafe = [(p, c) for p, c in calls if "weights_only" not in c]
    assert not unsafe, unsafe
    checkpoint = (REPO / "training" / "checkpoint.py").read_text(encoding="utf-8")
    assert "weights_only=not trust" in checkpoint


def test_torch_backend_does_not_trust_by_default(tiny):
    from munit_rt.backends.torch import TorchBackend

    assert TorchBackend(Bundle(tiny[1]))._trust is False


# -- bundles -------------------------------------------------------------------------------------------------
@pytest.fixture
def bundle_copy(tiny, tmp_path) -> Path:
    target = tmp_path / "work" / "copy.bundle"
    shutil.copytree(tiny[1], target)
    return target


@pytest.fixture
def image(tmp_path) -> Path:
    path = tmp_path / "in" / "face.png"
    path.parent.mkdir()
    Image.new("RGB", (32, 32), (120, 60, 30)).save(path)
    return path


def rehash(bundle: Path, rel: str) -> None:
    """Make the manifest agree with the file's new bytes (an attacker controls the manifest too)."""
    import hashlib

    data = (bundle / rel).read_bytes()
    digest = hashlib.sha256(data).hexdigest()

    def fix(manifest):
        manifest["files"][rel] = digest
        for graph in manifest["graphs"].values():
            for entry in graph["files"].values():
                if entry["path"] == rel:
                    entry.update(sha256=digest, bytes=len(data))

    edit_manifest(bundle, fix)


def move_graph_path(bundle: Path, new_path: str) -> None:
    def move(manifest):
        entry = manifest["graphs"]["decoder_b"]["files"]["fp32"]
        manifest["files"][new_path] = manifest["files"].pop(entry["path"])
        entry["path"] = new_path

    edit_manifest(bundle, move)


def changed_byte(bundle: Path) -> None:
    graph = bundle / "fp32" / "decoder_b.onnx"
    data = bytearray(graph.read_bytes())
    data[len(data) // 2] ^= 0x01
    graph.write_bytes(bytes(data))


def dotdot_path(bundle: Path) -> None:
    shutil.copyfile(bundle / "fp32" / "decoder_b.onnx", bundle.parent / "decoder_b.onnx")  # same bytes outside
    move_graph_path(bundle, "../decoder_b.onnx")


def absolute_path(bundle: Path) -> None:
    outside = bundle.parent / "decoder_b.onnx"
    shutil.copyfile(bundle / "fp32" / "decoder_b.onnx", outside)
    move_graph_path(bundle, str(outside))


def symlink_out(bundle: Path) -> None:
    graph = bundle / "fp32" / "decoder_b.onnx"
    outside = bundle.parent / "decoder_b.onnx"
    shutil.move(graph, outside)
    graph.symlink_to(outside)


def unknown_schema(bundle: Path) -> None:
    edit_manifest(bundle, lambda m: m.update(schema_version=99))


def unknown_family(bundle: Path) -> None:
    edit_manifest(bundle, lambda m: m.update(family="pix2pixhd"))


def varint(n: int) -> bytes:
    out = bytearray()
    while True:
        out.append((n & 0x7F) | (0x80 if n > 0x7F else 0))
        n >>= 7
        if not n:
            return bytes(out)


def message_field(number: int, body: bytes) -> bytes:
    return varint(number << 3 | 2) + varint(len(body)) + body


def deeply_nested_graph(levels: int = 40) -> bytes:
    """Model.graph -> Graph.node -> Node.attribute -> Attribute.g -> Graph.node ...: 3 x levels messages deep."""
    graph = b""
    for _ in range(levels):
        graph = message_field(1, message_field(5, message_field(6, graph)))  # node { attribute { g { ... } } }
    return message_field(7, graph)


def too_deep(bundle: Path) -> None:
    (bundle / "fp32" / "decoder_b.onnx").write_bytes(deeply_nested_graph())
    rehash(bundle, "fp32/decoder_b.onnx")


TAMPERING = {
    changed_byte: "file fp32/decoder_b.onnx does not match its sha256",
    dotdot_path: "manifest.json: key 'files.../decoder_b.onnx' names the path '../decoder_b.onnx'; bundle paths "
                 "must be relative and stay inside the bundle",
    absolute_path: "must be relative and stay inside the bundle",
    symlink_out: "fp32/decoder_b.onnx resolves outside the bundle",
    unknown_schema: "key 'schema_version' is 99; this munit-rt reads 1, 2: upgrade munit-rt or re-export",
    unknown_family: "key 'family' is 'pix2pixhd', a model family this munit-rt does not know",
    too_deep: "graph file fp32/decoder_b.onnx is refused (messages nested deeper than 100)",
}


@pytest.mark.parametrize("tamper", list(TAMPERING), ids=lambda f: f.__name__)
def test_tampered_bundle_is_refused_in_one_line(bundle_copy, image, tmp_path, tamper):
    tamper(bundle_copy)
    code, output = run_cli("translate", "--model", bundle_copy, "-s", 1, "-o", tmp_path / "out", image)
    assert code == EXIT_USAGE
    assert TAMPERING[tamper] in one_line_error(output)
    assert not any((tmp_path / "out").rglob("*.png"))
    code, output = run_cli("info", bundle_copy)
    assert code == EXIT_USAGE and TAMPERING[tamper] in one_line_error(output)


# -- ONNX external data --------------------------------------------------------------------------------------
def add_external_reference(bundle: Path, location: str, where: str = "initializer") -> None:
    """Rewrite fp32/decoder_b.onnx so one tensor keeps its bytes in `location` (external data), and fix the
    manifest's hashes: everything an attacker who ships the whole bundle can do."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rel = "fp32/decoder_b.onnx"
    model = onnx.load(str(bundle / rel))
    if where == "initializer":
        tensor = model.graph.initializer[0]
    else:  # a Constant node's value attribute (not an initializer): the walk must find these too
        value = numpy_helper.from_array(numpy_helper.to_array(model.graph.initializer[0]), "c")
        node = helper.make_node("Constant", [], ["unused_constant"], value=value)
        model.graph.node.insert(0, node)
        tensor = model.graph.node[0].attribute[0].t
    tensor.ClearField("raw_data")
    tensor.ClearField("float_data")
    tensor.data_location = TensorProto.EXTERNAL
    for key, value in (("location", location), ("offset", "0"), ("length", "4")):
        entry = tensor.external_data.add()
        entry.key, entry.value = key, value
    (bundle / rel).write_bytes(model.SerializeToString())
    rehash(bundle, rel)


@pytest.fixture
def secret(tmp_path) -> Path:
    """A file outside the bundle; its atime shows whether anything read it (relatime: a read updates an atime
    older than mtime). Skips the never-read assertion where the file system does not keep atimes."""
    path = tmp_path / "secret.bin"
    path.write_bytes(b"\0" * 4096)
    os.utime(path, (1, time.time()))
    path.read_bytes()
    if os.stat(path).st_atime == 1:
        pytest.skip("this file system does not update access times (noatime)")
    os.utime(path, (1, time.time()))
    return path


def secret_was_read(path: Path) -> bool:
    return os.stat(path).st_atime != 1


@pytest.mark.parametrize("kind", ["dotdot", "absolute", "symlink_inside", "constant_node"])
def test_external_data_reference_is_refused_and_never_read(bundle_copy, image, tmp_path, secret, kind):
    location = {"dotdot": os.path.relpath(secret, bundle_copy / "fp32"), "absolute": str(secret),
                "symlink_inside": "weights.bin", "constant_node": "../../secret.bin"}[kind]
    if kind == "symlink_inside":
        (bundle_copy / "fp32" / "weights.bin").symlink_to(secret)
    add_external_reference(bundle_copy, location, "constant" if kind == "constant_node" else "initializer")
    with pytest.raises(BundleError, match=r"fp32/decoder_b\.onnx references external tensor data .*refused"):
        Bundle(bundle_copy)
    code, output = run_cli("translate", "--model", bundle_copy, "-s", 1, "-o", tmp_path / "out", image)
    assert code == EXIT_USAGE and repr(location) in one_line_error(output)
    assert not secret_was_read(secret)


def test_external_data_walk_agrees_with_the_onnx_package(tiny, bundle_copy):
    """munit_rt.bundle.onnx_proto (no onnx dependency) against onnx's own helper, on real and crafted graphs."""
    import onnx
    from onnx.external_data_helper import _get_all_tensors, uses_external_data

    from munit_rt.bundle.onnx_proto import external_data_locations

    def reference(data: bytes) -> list[str]:
        model = onnx.load_from_string(data)
        return sorted(next((e.value for e in t.external_data if e.key == "location"), "")
                      for t in _get_all_tensors(model) if uses_external_data(t))

    for graph in sorted((tiny[1] / "fp32").glob("*.onnx")):
        data = graph.read_bytes()
        assert external_data_locations(data) == reference(data) == []
    add_external_reference(bundle_copy, "../a.bin")
    data = (bundle_copy / "fp32" / "decoder_b.onnx").read_bytes()
    assert sorted(external_data_locations(data)) == reference(data) == ["../a.bin"]


def test_external_data_walk_follows_protobuf_parsing_rules(bundle_copy):
    """What protobuf accepts, the walk reads the same way (unknown groups skipped, a known field with the wrong
    wire type ignored); what the walk cannot parse, protobuf cannot either, so no runtime loads it."""
    import onnx
    from google.protobuf.message import DecodeError

    from munit_rt.bundle.onnx_proto import MalformedModel, external_data_locations

    add_external_reference(bundle_copy, "../a.bin")
    data = (bundle_copy / "fp32" / "decoder_b.onnx").read_bytes()
    group = varint(99 << 3 | 3) + varint(1 << 3 | 0) + varint(5) + varint(99 << 3 | 4)  # unknown field 99, a group
    graph_as_varint = varint(7 << 3 | 0) + varint(1)  # Model.graph (a message) sent as a varint: unknown to protobuf
    unusual = group + data + graph_as_varint
    parsed = onnx.load_from_string(unusual)
    assert parsed.graph.initializer[0].external_data[0].value == "../a.bin"
    assert external_data_locations(unusual) == ["../a.bin"]
    for garbage in (b"\x0f\x00\x01 not protobuf", data[:-3], varint(99 << 3 | 4), data + b"\xff"):
        with pytest.raises(MalformedModel):
            external_data_locations(garbage)
        with pytest.raises(DecodeError):
            onnx.load_from_string(garbage)


def test_exporter_writes_self_contained_graphs(tiny):
    """Every graph of a real export passes the reader's external-data check (Bundle() succeeding) and has no
    file beside it that ONNX Runtime could pick up."""
    bundle = Bundle(tiny[1])
    names = {p.relative_to(tiny[1]).as_posix() for p in tiny[1].rglob("*") if p.is_file()}
    assert names == set(bundle.manifest.files) | {"manifest.json"}
