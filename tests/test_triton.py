"""`munit-rt export-triton`: every config.pbtxt parses as Triton's ModelConfig and matches its graph; the MUNIT
ensembles, run step by step in ONNX Runtime through their own input_map/output_map, equal Translator.translate;
TensorRT plans come from the engine cache; the repository is written atomically. Tiny models, CPU only."""
from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

model_config_pb2 = pytest.importorskip(
    "tritonclient.grpc.model_config_pb2", reason="the config check needs tritonclient[grpc] (munit-rt[triton])")
text_format = pytest.importorskip("google.protobuf.text_format")
ort = pytest.importorskip("onnxruntime")

from test_bundle import build_tiny_bundle  # noqa: E402

from munit_rt import Translator  # noqa: E402
from munit_rt.cli.export_triton import command as export_triton_command  # noqa: E402
from munit_rt.errors import BundleError, InputError  # noqa: E402
from munit_rt.triton import export_triton  # noqa: E402

STYLE_DIM = 4  # tests/conftest.py TINY_CONFIG
CYCLEGAN = {"family": "cyclegan", "ngf": 8, "ndf": 8, "n_blocks": 1, "load_size": 36, "crop_size": 32}
STARGAN = {"family": "stargan", "g_conv_dim": 8, "d_conv_dim": 8, "g_repeat_num": 1, "d_repeat_num": 3,
           "image_size": 32, "crop_size": 40, "selected_attrs": ["Black_Hair", "Male", "Gray_Hair"]}
MUNIT_MODELS = {f"munit_{role}_{d}" for role in ("content_encoder", "style_encoder", "style_mlp", "decoder")
                for d in "ab"}
MUNIT_ENSEMBLES = {"munit_a2b", "munit_a2b_guided", "munit_b2a", "munit_b2a_guided"}
EXPECTED = {"munit": MUNIT_MODELS | MUNIT_ENSEMBLES,
            "cyclegan": {"cyclegan_generator_a2b", "cyclegan_generator_b2a"},
            "stargan": {"stargan_generator"}}


def _family_bundle(root: Path, family: str) -> Path:
    from munit_rt.export.random_bundle import random_bundle

    bundle = root / f"{family}_00000001.bundle"
    if not (bundle / "manifest.json").is_file():
        random_bundle(family, root, CYCLEGAN if family == "cyclegan" else STARGAN, precision="fp32", seed=7,
                      iteration=1)
    return bundle


@pytest.fixture(scope="module")
def bundles(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.getbasetemp() / "triton_bundles"
    root.mkdir(exist_ok=True)
    return {"munit": build_tiny_bundle(tmp_path_factory)[1], "cyclegan": _family_bundle(root, "cyclegan"),
            "stargan": _family_bundle(root, "stargan")}


@pytest.fixture(scope="module")
def repos(bundles, tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("triton_repos")
    return {family: export_triton(bundle, root / family).path for family, bundle in bundles.items()}


@pytest.fixture(scope="module")
def translator(bundles):
    with Translator(bundles["munit"], backend="onnxruntime") as t:
        yield t


# -- reading a repository the way Triton does ----------------------------------------------------------------
def parse_config(model_dir: Path):
    return text_format.Parse((model_dir / "config.pbtxt").read_text(), model_config_pb2.ModelConfig())


DTYPES = {model_config_pb2.TYPE_FP32: np.float32}
KIND = model_config_pb2.ModelInstanceGroup


class EnsembleRunner:
    """Triton's ensemble scheduler in miniature: ensemble tensors start as the request's inputs; each step
    feeds its model the tensors its input_map names and stores the outputs under the names its output_map
    gives; the response is the ensemble's outputs. A wrong mapping fails loudly or gives wrong numbers."""

    def __init__(self, repo: Path):
        self.repo = repo
        self.sessions: dict[str, ort.InferenceSession] = {}

    def session(self, model: str):
        if model not in self.sessions:
            self.sessions[model] = ort.InferenceSession(str(self.repo / model / "1" / "model.onnx"),
                                                        providers=["CPUExecutionProvider"])
        return self.sessions[model]

    def run(self, ensemble: str, request: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        config = parse_config(self.repo / ensemble)
        assert config.platform == "ensemble"
        assert sorted(request) == sorted(t.name for t in config.input)
        tensors = dict(request)
        for step in config.ensemble_scheduling.step:
            model_config = parse_config(self.repo / step.model_name)
            assert model_config.platform == "onnxruntime_onnx" and step.model_version == -1
            assert sorted(step.input_map) == sorted(t.name for t in model_config.input), step.model_name
            assert set(step.output_map) <= {t.name for t in model_config.output}, step.model_name
            feeds = {name: tensors[source] for name, source in step.input_map.items()}
            for t in model_config.input:  # the types and shapes Triton would check
                assert feeds[t.name].dtype == DTYPES[t.data_type]
                assert feeds[t.name].shape[0] <= model_config.max_batch_size
                assert all(d in (-1, n) for d, n in zip(t.dims, feeds[t.name].shape[1:], strict=True))
            names = list(step.output_map)
            for name, value in zip(names, self.session(step.model_name).run(names, feeds), strict=True):
                tensors[step.output_map[name]] = value
        return {t.name: tensors[t.name] for t in config.output}


def images(n, channels=3, h=32, w=40, seed=0):
    return np.random.default_rng(seed).uniform(-1, 1, (n, channels, h, w)).astype(np.float32)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# -- configs -------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("family", ["munit", "cyclegan", "stargan"])
def test_every_config_parses_as_model_config_and_matches_its_graph(repos, bundles, family):
    import json

    repo, manifest = repos[family], json.loads((bundles[family] / "manifest.json").read_text())
    assert {p.name for p in repo.iterdir()} == EXPECTED[family]
    for model_dir in sorted(repo.iterdir()):
        config = parse_config(model_dir)
        assert config.name == model_dir.name and config.max_batch_size == 16
        assert config.WhichOneof("scheduling_choice") == ("ensemble_scheduling" if config.platform == "ensemble"
                                                          else "dynamic_batching")
        if config.platform == "ensemble":
            assert not list((model_dir / "1").iterdir()) and not config.instance_group
            continue
        assert config.platform == "onnxruntime_onnx"
        assert [(g.count, g.kind) for g in config.instance_group] == [(1, KIND.KIND_AUTO)]
        graph = model_dir.name.removeprefix(f"{family}_")
        assert sha256(model_dir / "1" / "model.onnx") == manifest["graphs"][graph]["files"]["fp32"]["sha256"]
        session = ort.InferenceSession(str(model_dir / "1" / "model.onnx"), providers=["CPUExecutionProvider"])
        for declared, actual in ((config.input, session.get_inputs()), (config.output, session.get_outputs())):
            assert [t.name for t in declared] == [t.name for t in actual]
            for t, a in zip(declared, actual):
                assert t.data_type == model_config_pb2.TYPE_FP32 and a.type == "tensor(float)"
                assert isinstance(a.shape[0], str)  # the batch dim, implicit in the config
                assert list(t.dims) == [-1 if isinstance(d, str) else d for d in a.shape[1:]]


def test_ensembles_chain_the_right_graphs(repos):
    steps = {name: [s.model_name for s in parse_config(repos["munit"] / name).ensemble_scheduling.step]
             for name in MUNIT_ENSEMBLES}
    assert steps["munit_a2b"] == ["munit_content_encoder_a", "munit_style_mlp_b", "munit_decoder_b"]
    assert steps["munit_b2a_guided"] == ["munit_content_encoder_b", "munit_style_encoder_a", "munit_style_mlp_a",
                                         "munit_decoder_a"]
    config = parse_config(repos["munit"] / "munit_a2b")
    assert [(t.name, list(t.dims)) for t in config.input] == [("image", [3, -1, -1]), ("style", [STYLE_DIM])]
    assert [(t.name, list(t.dims)) for t in config.output] == [("output", [3, -1, -1])]


# -- ensembles against the Translator -----------------------------------------------------------------------
@pytest.mark.parametrize("direction", ["a2b", "b2a"])
def test_ensemble_equals_translator_for_random_styles(repos, translator, direction):
    x = images(3, seed=1)
    codes = np.random.default_rng(2).standard_normal((3, STYLE_DIM)).astype(np.float32)
    got = EnsembleRunner(repos["munit"]).run(f"munit_{direction}", {"image": x, "style": codes})["output"]
    expected = translator.translate(x, codes[:, None, :], direction=direction)[:, 0]  # image i with style i
    assert got.shape == expected.shape == (3, 3, 32, 40)
    np.testing.assert_allclose(got, expected, atol=1e-5, rtol=0)
    assert np.abs(got[0] - got[1]).max() > 1e-3  # different styles, different images: not a degenerate check


@pytest.mark.parametrize("direction,target", [("a2b", "b"), ("b2a", "a")])
def test_guided_ensemble_equals_translator_with_the_reference_style(repos, translator, direction, target):
    x, references = images(2, seed=3), images(2, h=36, w=32, seed=4)
    got = EnsembleRunner(repos["munit"]).run(f"munit_{direction}_guided", {"image": x, "reference": references})
    codes = translator.encode_style(references, target)
    expected = translator.translate(x, codes[:, None, :], direction=direction)[:, 0]
    np.testing.assert_allclose(got["output"], expected, atol=1e-5, rtol=0)


# -- options and errors --------------------------------------------------------------------------------------
def test_one_direction_cpu_instances_and_prefix(bundles, tmp_path):
    result = export_triton(bundles["munit"], tmp_path / "repo", direction="b2a", instances=3, kind="cpu",
                           max_batch=4, prefix="faces")
    assert set(result.models) == {"faces_content_encoder_b", "faces_style_encoder_a", "faces_style_mlp_a",
                                  "faces_decoder_a"}
    assert result.ensembles == ["faces_b2a", "faces_b2a_guided"]
    config = parse_config(tmp_path / "repo" / "faces_decoder_a")
    assert config.max_batch_size == 4
    assert [(g.count, g.kind) for g in config.instance_group] == [(3, KIND.KIND_CPU)]
    steps = parse_config(tmp_path / "repo" / "faces_b2a").ensemble_scheduling.step
    assert [s.model_name for s in steps] == ["faces_content_encoder_b", "faces_style_mlp_a", "faces_decoder_a"]


def test_family_specific_direction_rules(bundles, tmp_path):
    result = export_triton(bundles["cyclegan"], tmp_path / "cg", direction="b2a")
    assert result.models == ["cyclegan_generator_b2a"] and result.ensembles == []
    with pytest.raises(InputError, match="StarGAN bundle has no directions"):
        export_triton(bundles["stargan"], tmp_path / "sg", direction="a2b")
    export_triton(bundles["stargan"], tmp_path / "sg")
    config = parse_config(tmp_path / "sg" / "stargan_generator")
    assert [(t.name, list(t.dims)) for t in config.input] == [("image", [3, -1, -1]), ("label", [3])]


def test_cli_refuses_an_existing_repository_unless_forced(bundles, tmp_path):
    runner, repo = CliRunner(), tmp_path / "repo"
    args = [str(bundles["cyclegan"]), "-o", str(repo)]
    assert runner.invoke(export_triton_command, args).exit_code == 0
    (repo / "stale_model").mkdir()
    again = runner.invoke(export_triton_command, args)
    assert again.exit_code == 2 and "already exists; pass --force" in again.output
    forced = runner.invoke(export_triton_command, [*args, "--force", "--instances", "2"])
    assert forced.exit_code == 0, forced.output
    assert "cyclegan_generator_a2b" in forced.output and not (repo / "stale_model").exists()
    assert parse_config(repo / "cyclegan_generator_a2b").instance_group[0].count == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["repo"]  # no staging or old folders left


def test_a_corrupt_graph_leaves_nothing_behind(bundles, tmp_path):
    bundle = tmp_path / "copy.bundle"
    shutil.copytree(bundles["stargan"], bundle)
    (bundle / "fp32" / "generator.onnx").write_bytes(b"not the exported graph")
    result = CliRunner().invoke(export_triton_command, [str(bundle), "-o", str(tmp_path / "repo")])
    assert result.exit_code == 2 and "does not match its sha256" in result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["copy.bundle"]


# -- TensorRT plans from the engine cache --------------------------------------------------------------------
def fake_engine(bundle: Path, graph: str, gpu="NVIDIA H100 80GB HBM3", version="10.3.0", max_batch=16,
                graph_sha=None, payload=b"", directory=None) -> bytes:
    import json

    from munit_rt.tensorrt import cache

    manifest = json.loads((bundle / "manifest.json").read_text())
    sha = graph_sha or manifest["graphs"][graph]["files"]["fp32"]["sha256"]
    profile = {spec["name"]: {"min": [1], "opt": [min(8, max_batch)], "max": [max_batch]}
               for spec in manifest["graphs"][graph]["inputs"]}
    key = cache.EngineKey(graph, "fp32", sha, version, gpu, "9.0" if "H100" in gpu else "8.9", profile)
    plan = f"plan {graph} {gpu} {version} {max_batch}".encode() + payload
    cache.write_engine(directory or bundle / "engines", key, plan)
    return plan


def test_tensorrt_repository_uses_cached_plans(bundles, tmp_path, monkeypatch):
    from munit_rt.tensorrt.cache import sha256_file

    bundle = tmp_path / "trt.bundle"
    shutil.copytree(bundles["munit"], bundle)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))  # the cache of read-only bundles is searched too
    user_cache = tmp_path / "xdg" / "munit-rt" / "engines" / sha256_file(bundle / "manifest.json")[:16]
    with pytest.raises(BundleError, match="run `munit-rt build .*` first"):
        export_triton(bundle, tmp_path / "none", platform="tensorrt")
    graphs = ["content_encoder_a", "style_encoder_b", "style_mlp_b", "decoder_b"]
    plans = {g: fake_engine(bundle, g) for g in graphs}
    fake_engine(bundle, "decoder_b", max_batch=32, graph_sha="0" * 64, directory=user_cache)  # other graph bytes
    fake_engine(bundle, "decoder_b", gpu="NVIDIA L4")  # another GPU, incomplete set: ignored

    result = export_triton(bundle, tmp_path / "repo", platform="tensorrt", direction="a2b")
    assert result.max_batch == 16 and "TensorRT 10.3.0 on NVIDIA H100" in result.target
    for graph in graphs:
        model_dir = tmp_path / "repo" / f"munit_{graph}"
        assert (model_dir / "1" / "model.plan").read_bytes() == plans[graph]
        config = parse_config(model_dir)
        assert config.platform == "tensorrt_plan" and config.max_batch_size == 16
        assert config.instance_group[0].kind == KIND.KIND_GPU
    assert parse_config(tmp_path / "repo" / "munit_a2b_guided").platform == "ensemble"

    with pytest.raises(InputError, match="batches up to 16, fewer than --max-batch 32"):
        export_triton(bundle, tmp_path / "big", platform="tensorrt", direction="a2b", max_batch=32)
    with pytest.raises(InputError, match="TensorRT plans run on GPUs only"):
        export_triton(bundle, tmp_path / "cpu", platform="tensorrt", kind="cpu")
    for graph in graphs:  # a complete second target: ambiguous until --gpu picks one
        fake_engine(bundle, graph, gpu="NVIDIA L4", payload=b" L4")
    with pytest.raises(InputError, match="several targets.*--gpu"):
        export_triton(bundle, tmp_path / "two", platform="tensorrt", direction="a2b")
    chosen = export_triton(bundle, tmp_path / "l4", platform="tensorrt", direction="a2b", gpu="L4")
    assert "L4" in chosen.target
    assert (tmp_path / "l4" / "munit_decoder_b" / "1" / "model.plan").read_bytes().endswith(b" L4")
    for graph in ("content_encoder_b", "style_encoder_a", "style_mlp_a"):
        fake_engine(bundle, graph)
    with pytest.raises(BundleError, match="H100 80GB HBM3 \\(sm 9.0\\) lacks decoder_a"):
        export_triton(bundle, tmp_path / "b2a", platform="tensorrt", direction="b2a")
    fake_engine(bundle, "decoder_a", max_batch=8, directory=user_cache)
    assert export_triton(bundle, tmp_path / "b2a", platform="tensorrt", direction="b2a").max_batch == 8
    assert not any(p.name.startswith(".") for p in tmp_path.iterdir())
