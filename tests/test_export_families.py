"""ONNX export of CycleGAN and StarGAN: graphs vs the PyTorch modules, label tiling, per-image statistics, node
types, manifests, munit-rt and upstream files, the CLI, bad inputs. What every family's export must satisfy (I/O
names and dynamic dims, FP16 PSNR and weights, files and hashes) is the contract suite's: tests/contract/.

Tiny models (CycleGAN ngf 8 with 2 blocks, StarGAN conv_dim 8 with 2 blocks and c_dim 3) are built here and
saved as munit-rt checkpoints (`save_checkpoint`; `random_bundle` with the same seed) and as upstream plain state dicts. References are the
modules built in the test, never modules loaded back by the export code.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

onnx = pytest.importorskip("onnx", reason="export needs onnx (pip install 'munit-rt[export]')")
ort = pytest.importorskip("onnxruntime", reason="parity checks run the graphs in ONNX Runtime")
torch = pytest.importorskip("torch", reason="export needs torch")

from conftest import write_yaml  # noqa: E402

from munit_rt.cli import cli  # noqa: E402

ATOL = 1e-4
# (batch, height, width): batch 1 and 3, square and non-square, none the traced 32x48
SHAPES = [(1, 32, 32), (3, 48, 40), (3, 16, 80), (1, 64, 36)]
CYCLEGAN = {"family": "cyclegan", "ngf": 8, "ndf": 8, "n_blocks": 2, "load_size": 36, "crop_size": 32}
STARGAN = {"family": "stargan", "g_conv_dim": 8, "d_conv_dim": 8, "g_repeat_num": 2, "d_repeat_num": 3,
           "image_size": 32, "crop_size": 40, "selected_attrs": ["Black_Hair", "Male", "Gray_Hair"]}


def family_config(data: dict):
    from munit_rt.training.config import config_from_dict

    return config_from_dict(data, source="test")


def cyclegan_generators(config, seed: int) -> dict:
    from munit_rt.training.families.cyclegan.model import build_generator

    torch.manual_seed(seed)
    return {key: build_generator(config, key).eval() for key in ("G_A", "G_B")}


def stargan_generator(config, seed: int):
    """Random weights, norm affines away from (1, 0), and running statistics far from any image's: the
    graph must use per-image statistics, as the module does."""
    from munit_rt.training.families.stargan.model import build_generator

    torch.manual_seed(seed)
    gen = build_generator(config)
    with torch.no_grad():
        for m in gen.modules():
            if isinstance(m, torch.nn.InstanceNorm2d):
                m.weight.uniform_(0.5, 1.5)
                m.bias.normal_(0.0, 0.3)
                m.running_mean.fill_(5.0)
                m.running_var.fill_(40.0)
    return gen.eval()


def run_export(*args):
    return CliRunner().invoke(cli, ["export", *map(str, args)])


def read_manifest(bundle: Path) -> dict:
    return json.loads((bundle / "manifest.json").read_text())


def session(bundle: Path, graph: str, precision: str = "fp32"):
    return ort.InferenceSession(str(bundle / precision / f"{graph}.onnx"), providers=["CPUExecutionProvider"])


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def cyclegan_bundle(tmp_path_factory):
    """munit-rt cyclegan_XXXXXXXX.pt (config inside) of random weights, exported through the API, both precisions."""
    from munit_rt.export.random_bundle import random_bundle

    root = tmp_path_factory.mktemp("cyclegan")
    config = family_config(CYCLEGAN)
    lines: list[str] = []
    bundle = random_bundle("cyclegan", root, CYCLEGAN, precision="both", seed=1, iteration=20, progress=lines.append)
    ckpt = root / "cyclegan_00000020.pt"
    gens = cyclegan_generators(config, seed=1)  # the reference: the same seed, built here
    stored = torch.load(ckpt, weights_only=True)
    for key, gen in gens.items():
        assert all(torch.equal(stored[key][name], tensor) for name, tensor in gen.state_dict().items()), key
    return {"bundle": bundle, "ckpt": ckpt, "config": config, "gens": gens, "manifest": read_manifest(bundle),
            "log": lines}


@pytest.fixture(scope="module")
def stargan_bundle(tmp_path_factory):
    from munit_rt.export import export_bundle
    from munit_rt.training.checkpoint import save_checkpoint

    root = tmp_path_factory.mktemp("stargan")
    config = family_config(STARGAN)
    gen = stargan_generator(config, seed=2)
    ckpt = root / "stargan_00000030.pt"
    save_checkpoint(ckpt, "stargan", {"G": gen}, config, iteration=30)
    bundle = export_bundle(ckpt, root / "stargan.bundle", precision="both")
    return {"bundle": bundle, "ckpt": ckpt, "config": config, "gen": gen, "manifest": read_manifest(bundle)}


@pytest.fixture(scope="module")
def upstream_cyclegan(tmp_path_factory):
    """junyanz-style latest_net_G_A.pth / latest_net_G_B.pth (plain state dicts, 3 -> 1 channels) and their YAML."""
    root = tmp_path_factory.mktemp("upstream_cyclegan")
    data = {**CYCLEGAN, "input_nc": 3, "output_nc": 1, "lambda_identity": 0.0}
    config = family_config(data)
    gens = cyclegan_generators(config, seed=3)
    state_a = dict(gens["G_A"].state_dict())
    state_a["model.2.running_mean"] = torch.zeros(8)  # pre-0.4 instance-norm buffers, as old upstream files have
    state_a["model.2.running_var"] = torch.ones(8)
    torch.save(state_a, root / "latest_net_G_A.pth")
    torch.save(gens["G_B"].state_dict(), root / "latest_net_G_B.pth")
    return {"root": root, "config": config, "gens": gens, "yaml": write_yaml(root / "cyclegan.yaml", data),
            "G_A": root / "latest_net_G_A.pth", "G_B": root / "latest_net_G_B.pth"}


@pytest.fixture(scope="module")
def upstream_pair_export(upstream_cyclegan):
    """Both upstream files as two CHECKPOINT arguments, default output directory."""
    u = upstream_cyclegan
    result = run_export(u["G_A"], u["G_B"], "--config", u["yaml"], "--precision", "fp32")
    return {"result": result, "bundle": u["root"] / "latest_net.bundle"}


# -- parity against the PyTorch modules --------------------------------------------------------------------
def cyclegan_cases(channels: int, rng):
    for batch, height, width in SHAPES:
        yield rng.uniform(-1, 1, (batch, channels, height, width)).astype(np.float32)


@pytest.mark.parametrize("graph, key", [("generator_a2b", "G_A"), ("generator_b2a", "G_B")])
def test_cyclegan_graphs_match_pytorch_at_several_batches_and_sizes(cyclegan_bundle, graph, key):
    sess, gen, rng = session(cyclegan_bundle["bundle"], graph), cyclegan_bundle["gens"][key], np.random.default_rng(0)
    for image in cyclegan_cases(3, rng):
        (got,) = sess.run(None, {"image": image})
        with torch.no_grad():
            want = gen(torch.from_numpy(image)).numpy()
        assert got.shape == want.shape == image.shape
        np.testing.assert_allclose(got, want, rtol=0, atol=ATOL, err_msg=f"{graph} {image.shape}")


def test_stargan_graph_matches_pytorch_with_a_different_label_per_sample(stargan_bundle):
    sess, gen, rng = session(stargan_bundle["bundle"], "generator"), stargan_bundle["gen"], np.random.default_rng(1)
    labels = np.array([[1, 0, 0], [0, 1, 1], [0, 0, 1]], np.float32)
    for batch, height, width in SHAPES:
        image = rng.uniform(-1, 1, (batch, 3, height, width)).astype(np.float32)
        label = labels[:batch] if batch > 1 else labels[1:2]
        (got,) = sess.run(None, {"image": image, "label": label})
        with torch.no_grad():
            want = gen(torch.from_numpy(image), torch.from_numpy(label)).numpy()
        assert got.shape == want.shape == image.shape
        np.testing.assert_allclose(got, want, rtol=0, atol=ATOL, err_msg=f"{image.shape}")


def test_stargan_label_is_tiled_per_sample_inside_the_graph(stargan_bundle):
    """One image three times with three labels: three different outputs, each the module's for that label."""
    sess, gen = session(stargan_bundle["bundle"], "generator"), stargan_bundle["gen"]
    image = np.random.default_rng(2).uniform(-1, 1, (1, 3, 24, 44)).astype(np.float32)
    labels = np.array([[1, 0, 0], [0, 1, 0], [1, 1, 1]], np.float32)
    (got,) = sess.run(None, {"image": np.repeat(image, 3, axis=0), "label": labels})
    for i in range(3):
        with torch.no_grad():
            want = gen(torch.from_numpy(image), torch.from_numpy(labels[i:i + 1])).numpy()
        np.testing.assert_allclose(got[i:i + 1], want, rtol=0, atol=ATOL)
    assert min(np.abs(got[i] - got[j]).max() for i, j in ((0, 1), (0, 2), (1, 2))) > 1e-3


@pytest.mark.parametrize("family", ["cyclegan", "stargan"])
def test_each_image_is_normalised_with_its_own_statistics(cyclegan_bundle, stargan_bundle, family):
    """A batch of 3 gives each image the output it gets alone: no batch or running statistics in the graph."""
    rng = np.random.default_rng(3)
    images = rng.uniform(-1, 1, (3, 3, 40, 28)).astype(np.float32)
    images[1] *= 0.2  # very different per-image statistics
    images[2] += 0.5
    if family == "cyclegan":
        sess = session(cyclegan_bundle["bundle"], "generator_a2b")
        feeds = [{"image": images[i:i + 1]} for i in range(3)]
        batch = {"image": images}
    else:
        sess = session(stargan_bundle["bundle"], "generator")
        labels = np.array([[0, 1, 0], [1, 0, 1], [1, 1, 0]], np.float32)
        feeds = [{"image": images[i:i + 1], "label": labels[i:i + 1]} for i in range(3)]
        batch = {"image": images, "label": labels}
    (together,) = sess.run(None, batch)
    for i, feed in enumerate(feeds):
        (alone,) = sess.run(None, feed)
        np.testing.assert_allclose(together[i:i + 1], alone, rtol=0, atol=1e-5)


# -- graph structure -----------------------------------------------------------------------------------------
def all_graph_files(*bundles: Path) -> list[Path]:
    return sorted(path for bundle in bundles for path in bundle.glob("fp*/*.onnx"))


def test_every_graph_is_valid_onnx_with_tensorrt_ops_only(cyclegan_bundle, stargan_bundle, upstream_pair_export):
    from munit_rt.export.operators import TENSORRT_ONNX_OPS, initializer_input_problems

    assert "ConvTranspose" in TENSORRT_ONNX_OPS  # onnx-tensorrt docs/operators.md: Y (2D/3D, W an initializer)
    files = all_graph_files(cyclegan_bundle["bundle"], stargan_bundle["bundle"], upstream_pair_export["bundle"])
    assert len(files) == 4 + 2 + 2
    for path in files:
        model = onnx.load(str(path))
        onnx.checker.check_model(model, full_check=True)
        onnx.shape_inference.infer_shapes(model, strict_mode=True)
        ops = {node.op_type for node in model.graph.node}
        assert ops <= TENSORRT_ONNX_OPS, (path, ops - TENSORRT_ONNX_OPS)
        assert "BatchNormalization" not in ops, path  # instance norm only, never batch statistics
        assert {"ConvTranspose", "InstanceNormalization", "Conv", "Tanh"} <= ops, path
        assert all(node.domain in ("", "ai.onnx") for node in model.graph.node)
        assert initializer_input_problems(model) == [], path


# -- manifests -----------------------------------------------------------------------------------------------
def check_files_and_hashes(bundle: Path, manifest: dict) -> None:
    from munit_rt.export.writer import verify_bundle

    on_disk = {p.relative_to(bundle).as_posix() for p in bundle.rglob("*") if p.is_file()} - {"manifest.json"}
    assert on_disk == set(manifest["files"])
    for rel, digest in manifest["files"].items():
        assert sha256(bundle / rel) == digest
    assert verify_bundle(bundle) == []


def check_parity_record(graph: dict) -> None:
    fp32 = graph["parity"]["fp32"]
    assert fp32["passed"] and fp32["atol"] == ATOL and 0 <= fp32["max_abs_err"] <= ATOL
    assert {c["batch"] for c in fp32["cases"]} == {1, 3}
    assert {(c["height"], c["width"]) for c in fp32["cases"]} == {(32, 32), (48, 40)}


def test_cyclegan_manifest(cyclegan_bundle):
    m, ckpt, config = cyclegan_bundle["manifest"], cyclegan_bundle["ckpt"], cyclegan_bundle["config"]
    assert cyclegan_bundle["bundle"] == ckpt.with_name("cyclegan_00000020.bundle")
    assert (m["schema_version"], m["format"], m["family"], m["opset"]) == (2, "munit-rt-bundle", "cyclegan", 18)
    digest = sha256(ckpt)
    assert m["source_checkpoint"] == {
        "name": ckpt.name, "path": str(ckpt.resolve()), "sha256": digest, "format": "munit-rt", "iteration": 20,
        "config_source": "stored",
        "files": [{"name": ckpt.name, "path": str(ckpt.resolve()), "sha256": digest, "generators": ["G_A", "G_B"]}]}
    assert m["config"] == config.to_dict() and m["config"]["family"] == "cyclegan"
    assert m["domains"] == {"a": {"channels": 3}, "b": {"channels": 3}}
    assert m["directions"] == {
        "a2b": {"graph": "generator_a2b", "generator": "G_A", "source_domain": "a", "target_domain": "b"},
        "b2a": {"graph": "generator_b2a", "generator": "G_B", "source_domain": "b", "target_domain": "a"}}
    assert m["preprocess"] == {"resize": "shorter_side", "size": 32, "multiple": 4, "resample": "bicubic",
                               "fit": "round", "mean": [0.5] * 3, "std": [0.5] * 3, "value_range": [-1.0, 1.0],
                               "load_size": 36, "crop_size": 32}
    assert m["spatial_multiple"] == 4 and m["precisions"] == ["fp32", "fp16"]
    assert list(m["graphs"]) == ["generator_a2b", "generator_b2a"]
    graph = m["graphs"]["generator_b2a"]
    assert (graph["role"], graph["direction"], graph["generator"]) == ("generator", "b2a", "G_B")
    assert graph["inputs"] == [{"name": "image", "dtype": "float32", "shape": ["N", 3, "H", "W"]}]
    assert graph["outputs"] == [{"name": "output", "dtype": "float32", "shape": ["N", 3, "H", "W"]}]
    for graph in m["graphs"].values():
        check_parity_record(graph)
    check_files_and_hashes(cyclegan_bundle["bundle"], m)
    assert len(cyclegan_bundle["log"]) == 3 and "cyclegan" in cyclegan_bundle["log"][0]


def test_stargan_manifest(stargan_bundle):
    m, ckpt, config = stargan_bundle["manifest"], stargan_bundle["ckpt"], stargan_bundle["config"]
    assert (m["family"], m["schema_version"], m["channels"], m["spatial_multiple"]) == ("stargan", 2, 3, 4)
    assert m["source_checkpoint"]["files"] == [{"name": ckpt.name, "path": str(ckpt.resolve()),
                                                "sha256": sha256(ckpt), "generators": ["G"]}]
    assert (m["source_checkpoint"]["iteration"], m["source_checkpoint"]["format"]) == (30, "munit-rt")
    assert m["config"] == config.to_dict()
    assert m["preprocess"] == {"crop": "center", "crop_size": 40, "resize": "square", "size": 32, "multiple": 4,
                               "resample": "bilinear", "fit": "crop", "mean": [0.5] * 3, "std": [0.5] * 3,
                               "value_range": [-1.0, 1.0]}
    assert m["labels"] == {
        "c_dim": 3, "dtype": "float32", "values": [0.0, 1.0], "num_datasets": 1,
        "selected_attrs": ["Black_Hair", "Male", "Gray_Hair"], "selected_attrs_2": [],
        "layout": [{"name": "dataset_1", "offset": 0, "length": 3, "attrs": ["Black_Hair", "Male", "Gray_Hair"]}],
        "hair_color_attrs": ["Black_Hair", "Gray_Hair"], "hair_color_attrs_2": []}
    assert list(m["graphs"]) == ["generator"] and "domains" not in m and "style_dim" not in m
    graph = m["graphs"]["generator"]
    assert (graph["role"], graph["generator"]) == ("generator", "G")
    assert [t["shape"] for t in graph["inputs"]] == [["N", 3, "H", "W"], ["N", 3]]
    check_parity_record(graph)
    check_files_and_hashes(stargan_bundle["bundle"], m)


def test_stargan_label_layout_with_two_datasets():
    from munit_rt.training.families.stargan.graphs import stargan_labels

    config = family_config({**STARGAN, "selected_attrs": ["Blond_Hair", "Young"], "attr_path_2": "rafd.txt",
                            "selected_attrs_2": ["happy", "sad", "Brown_Hair"]})
    labels = stargan_labels(config)
    assert labels["c_dim"] == 2 + 3 + 2 and labels["num_datasets"] == 2
    assert labels["layout"] == [
        {"name": "dataset_1", "offset": 0, "length": 2, "attrs": ["Blond_Hair", "Young"]},
        {"name": "dataset_2", "offset": 2, "length": 3, "attrs": ["happy", "sad", "Brown_Hair"]},
        {"name": "mask", "offset": 5, "length": 2, "attrs": ["dataset_1", "dataset_2"]}]
    assert (labels["hair_color_attrs"], labels["hair_color_attrs_2"]) == (["Blond_Hair"], ["Brown_Hair"])


# -- upstream files and the CLI ------------------------------------------------------------------------------
def test_upstream_cyclegan_pair_exports_both_directions(upstream_cyclegan, upstream_pair_export):
    result, bundle, u = upstream_pair_export["result"], upstream_pair_export["bundle"], upstream_cyclegan
    assert result.exit_code == 0, result.output
    assert "generator_b2a" in result.output and f"wrote {bundle}" in result.output
    m = read_manifest(bundle)
    assert m["family"] == "cyclegan" and sorted(m["directions"]) == ["a2b", "b2a"]
    assert m["domains"] == {"a": {"channels": 3}, "b": {"channels": 1}}
    assert m["graphs"]["generator_a2b"]["outputs"][0]["shape"] == ["N", 1, "H", "W"]
    assert m["graphs"]["generator_b2a"]["inputs"][0]["shape"] == ["N", 1, "H", "W"]
    source = m["source_checkpoint"]
    assert (source["format"], source["config_source"], source["iteration"]) == ("official", "given", None)
    assert source["files"] == [
        {"name": "latest_net_G_A.pth", "path": str(u["G_A"].resolve()), "sha256": sha256(u["G_A"]),
         "generators": ["G_A"]},
        {"name": "latest_net_G_B.pth", "path": str(u["G_B"].resolve()), "sha256": sha256(u["G_B"]),
         "generators": ["G_B"]}]
    assert m["precisions"] == ["fp32"] and not (bundle / "fp16").exists()
    rng = np.random.default_rng(5)
    for graph, key, channels in (("generator_a2b", "G_A", 3), ("generator_b2a", "G_B", 1)):
        image = rng.uniform(-1, 1, (3, channels, 48, 40)).astype(np.float32)
        (got,) = session(bundle, graph).run(None, {"image": image})
        with torch.no_grad():
            want = u["gens"][key](torch.from_numpy(image)).numpy()
        np.testing.assert_allclose(got, want, rtol=0, atol=ATOL)
    check_files_and_hashes(bundle, m)


def test_upstream_cyclegan_single_file_exports_one_direction(upstream_cyclegan, tmp_path):
    u = upstream_cyclegan
    result = run_export(u["G_B"], "--config", u["yaml"], "-o", tmp_path / "b2a.bundle", "--precision", "fp32")
    assert result.exit_code == 0, result.output
    m = read_manifest(tmp_path / "b2a.bundle")
    assert (m["family"], list(m["graphs"]), list(m["directions"])) == ("cyclegan", ["generator_b2a"], ["b2a"])
    assert sorted(m["files"]) == ["fp32/generator_b2a.onnx"]
    assert m["source_checkpoint"]["files"][0]["generators"] == ["G_B"]
    assert m["source_checkpoint"]["sha256"] == sha256(u["G_B"])
    image = np.random.default_rng(6).uniform(-1, 1, (1, 1, 32, 44)).astype(np.float32)
    (got,) = session(tmp_path / "b2a.bundle", "generator_b2a").run(None, {"image": image})
    with torch.no_grad():
        np.testing.assert_allclose(got, u["gens"]["G_B"](torch.from_numpy(image)).numpy(), rtol=0, atol=ATOL)


def test_upstream_stargan_file_with_config_through_the_cli(tmp_path):
    config = family_config(STARGAN)
    gen = stargan_generator(config, seed=4)
    state = {k: v for k, v in gen.state_dict().items() if not k.endswith("num_batches_tracked")}  # PyTorch 0.4.0
    ckpt = tmp_path / "200000-G.ckpt"
    torch.save(state, ckpt)
    yaml_path = write_yaml(tmp_path / "stargan.yaml", STARGAN)
    result = run_export(ckpt, "--config", yaml_path, "--precision", "fp32")
    assert result.exit_code == 0, result.output
    bundle = tmp_path / "200000-G.bundle"
    m = read_manifest(bundle)
    assert (m["family"], m["source_checkpoint"]["format"], m["source_checkpoint"]["iteration"]) == \
        ("stargan", "official", 200000)
    assert m["labels"]["selected_attrs"] == STARGAN["selected_attrs"]
    rng = np.random.default_rng(7)
    image = rng.uniform(-1, 1, (3, 3, 36, 52)).astype(np.float32)
    label = np.array([[1, 0, 0], [0, 1, 1], [1, 1, 1]], np.float32)
    (got,) = session(bundle, "generator").run(None, {"image": image, "label": label})
    with torch.no_grad():
        want = gen(torch.from_numpy(image), torch.from_numpy(label)).numpy()
    np.testing.assert_allclose(got, want, rtol=0, atol=ATOL)


# -- bad inputs: one `Error:` line, exit 2, nothing written ------------------------------------------------
def assert_clean_failure(result, out_parent: Path, expected_entries: set[str], message: str) -> None:
    assert result.exit_code == 2, result.output
    assert message in result.output, result.output
    assert "Traceback" not in result.output
    assert len([line for line in result.output.splitlines() if line.startswith("Error:")]) == 1, result.output
    assert {p.name for p in out_parent.iterdir()} == expected_entries  # no bundle, no staging directory


def upstream_g_a(tmp_path: Path) -> Path:
    config = family_config(CYCLEGAN)
    path = tmp_path / "latest_net_G_A.pth"
    torch.save(cyclegan_generators(config, seed=5)["G_A"].state_dict(), path)
    return path


def test_upstream_cyclegan_file_with_a_wrong_config(tmp_path):
    ckpt = upstream_g_a(tmp_path)
    wrong = write_yaml(tmp_path / "wide.yaml", {**CYCLEGAN, "ngf": 16})
    result = run_export(ckpt, "--config", wrong)
    assert_clean_failure(result, tmp_path, {ckpt.name, wrong.name}, "tensor 'model.1.weight' has shape [8, 3, 7, 7]")
    assert "latest_net_G_A.pth [G_A]" in result.output


def test_upstream_cyclegan_file_without_config_that_is_not_upstream_default(tmp_path):
    ckpt = upstream_g_a(tmp_path)
    assert_clean_failure(run_export(ckpt), tmp_path, {ckpt.name}, "upstream defaults do not fit")


def test_config_of_another_family_for_an_upstream_file(tmp_path):
    ckpt = upstream_g_a(tmp_path)
    yaml_path = write_yaml(tmp_path / "stargan.yaml", STARGAN)
    assert_clean_failure(run_export(ckpt, "--config", yaml_path), tmp_path, {ckpt.name, yaml_path.name},
                         "'stargan' config where a 'cyclegan' one is needed")


def test_pairs_must_be_an_upstream_cyclegan_g_a_and_g_b(tmp_path):
    ckpt = upstream_g_a(tmp_path)
    other = tmp_path / "copy_G_A.pth"
    other.write_bytes(ckpt.read_bytes())
    assert_clean_failure(run_export(ckpt, other), tmp_path, {ckpt.name, other.name}, "both files hold G_A")
    assert_clean_failure(run_export(ckpt, ckpt), tmp_path, {ckpt.name, other.name}, "the same file given twice")
    result = run_export(ckpt, other, ckpt)
    assert result.exit_code == 2 and "got 3 checkpoints" in result.output
    star = tmp_path / "200000-G.ckpt"
    torch.save(stargan_generator(family_config(STARGAN), seed=0).state_dict(), star)
    assert_clean_failure(run_export(star, ckpt), tmp_path, {ckpt.name, other.name, star.name},
                         "only upstream CycleGAN generators come in pairs")


@pytest.mark.parametrize("payload, message", [
    ({"model.1.weight": torch.zeros(2, 2)}, "nor a CycleGAN generator (munit-rt cyclegan_XXXXXXXX.pt, upstream "
                                            "latest_net_G_A.pth / latest_net_G_B.pth), nor a "),
    ({1: torch.zeros(2)}, "nor a CycleGAN generator (munit-rt cyclegan_XXXXXXXX.pt, upstream latest_net_G_A.pth / "
                          "latest_net_G_B.pth), nor a "),
    ({"a": {}, "b": {}, "munit_rt": {"format": 1, "family": "stargan", "config": {}}},
     "munit-rt checkpoint of family 'stargan': stargan checkpoint without the 'G' weights"),
])
def test_files_that_are_no_generator_of_a_known_family(tmp_path, payload, message):
    ckpt = tmp_path / "model.pt"
    torch.save(payload, ckpt)
    assert_clean_failure(run_export(ckpt), tmp_path, {ckpt.name}, message)


def test_failed_parity_check_leaves_nothing_behind(upstream_cyclegan, tmp_path):
    u = upstream_cyclegan
    result = run_export(u["G_A"], "--config", u["yaml"], "-o", tmp_path / "x.bundle", "--atol", "1e-12",
                        "--precision", "fp32")
    assert_clean_failure(result, tmp_path, set(), "over --atol")
