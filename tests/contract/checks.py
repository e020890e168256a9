"""What every family's bundle must satisfy, as plain functions of one exported bundle (`Exported`): the contract
tests call them per registered family, and tests of a family registered from a test module alone (the toy
family of tests/test_toy_family.py) call them on theirs.

References are independent of the code under test where that is possible: ONNX Runtime sessions built here,
the ONNX checker, hashlib, PSNR written out; the torch modules are the family's own graph split
(TrainingFamily.graphs), built from the checkpoint through the registry.
"""
from __future__ import annotations

import hashlib
import json
import math
import zlib
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

ATOL = 1e-4  # export's default --atol
MIN_PSNR_DB = 40.0  # export's default --min-psnr
PRECISIONS = ("fp32", "fp16")
IMAGES = 3  # inputs of a contract translate run


@dataclass
class Exported:
    """One family's bundle, written by random_bundle (or the CLI) from a munit-rt checkpoint."""

    name: str
    bundle: Path
    checkpoint: Path
    manifest: dict[str, Any]
    root: Path
    _sessions: dict = field(default_factory=dict, repr=False)

    @property
    def training(self):
        from munit_rt.training.registry import get_family

        return get_family(self.name)

    @property
    def runtime(self):
        from munit_rt.families import get_family

        family = get_family(self.name)
        assert family is not None, f"no runtime family registered as {self.name!r} (munit_rt.families)"
        return family

    @cached_property
    def specs(self) -> dict:
        """The family's graph split of the checkpoint's generators: graph name -> training GraphSpec."""
        from munit_rt.training.checkpoint import read_checkpoint
        from munit_rt.training.registry import load_generators

        ckpt = read_checkpoint(self.checkpoint)
        return {spec.name: spec for spec in self.training.graphs(load_generators(ckpt), ckpt.config)}

    def session(self, graph: str, precision: str = "fp32"):
        import onnxruntime as ort

        key = (graph, precision)
        if key not in self._sessions:
            options = ort.SessionOptions()
            options.log_severity_level = 3
            path = self.bundle / self.manifest["graphs"][graph]["files"][precision]["path"]
            self._sessions[key] = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        return self._sessions[key]

    def run(self, graph: str, feeds: dict[str, np.ndarray], precision: str = "fp32") -> dict[str, np.ndarray]:
        session = self.session(graph, precision)
        names = [o.name for o in session.get_outputs()]
        return dict(zip(names, session.run(names, feeds)))


def cases(spec, seed: int) -> list:
    """The graph's parity cases (batches, sizes and non-image inputs as the family makes them) drawn from another
    seed than export's, so the values were never checked at export."""
    return spec.cases(np.random.default_rng([seed, zlib.crc32(spec.name.encode())]))


def torch_outputs(spec, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    import torch

    module = spec.reference_module.eval()
    with torch.no_grad():
        result = module(*[torch.from_numpy(feeds[t.name]) for t in spec.inputs])
    results = result if isinstance(result, tuple) else (result,)
    return {t.name: r.numpy() for t, r in zip(spec.outputs, results)}


def psnr_db(reference: np.ndarray, actual: np.ndarray, peak: float) -> float:
    mse = float(np.mean((reference.astype(np.float64) - actual.astype(np.float64)) ** 2))
    return math.inf if mse == 0 else 10 * math.log10(peak**2 / mse)


# ------------------------------------------------------------------------------------------------ export

def check_graph_set(exported: Exported) -> None:
    """The manifest lists exactly the family's graph split, each with both precisions' files, and holds every graph
    (with the I/O names) the runtime family requires; the runtime family is registered."""
    graphs = exported.manifest["graphs"]
    assert list(graphs) == list(exported.specs), (list(graphs), list(exported.specs))
    assert exported.manifest["family"] == exported.name and exported.manifest["precisions"] == list(PRECISIONS)
    from munit_rt.bundle import Bundle

    required = exported.runtime.graphs(Bundle(exported.bundle).model)
    for name, (inputs, outputs) in required.items():
        entry = graphs[name]
        assert sorted(t["name"] for t in entry["inputs"]) == sorted(inputs), (name, entry["inputs"])
        assert sorted(t["name"] for t in entry["outputs"]) == sorted(outputs), (name, entry["outputs"])
    for name, entry in graphs.items():
        assert sorted(entry["files"]) == sorted(PRECISIONS), name


def check_parity_records(exported: Exported) -> None:
    """Every graph passed FP32 parity against PyTorch (max abs error <= atol) and FP16 against FP32 (min PSNR >=
    the bound), as recorded in the manifest; the summary is the worst case."""
    for name, entry in exported.manifest["graphs"].items():
        fp32, fp16 = entry["parity"]["fp32"], entry["parity"]["fp16"]
        assert fp32["passed"] is True and fp32["atol"] == ATOL, (name, fp32)
        assert 0 <= fp32["max_abs_err"] <= ATOL, (name, fp32["max_abs_err"])
        assert fp32["max_abs_err"] == max(case["max_abs_err"] for case in fp32["cases"]), name
        batches = {case["batch"] for case in fp32["cases"]}
        assert 1 in batches and max(batches) > 1, (name, batches)  # a batch of one and a larger one
        assert fp16["passed"] is True and fp16["psnr_bound_db"] == MIN_PSNR_DB, (name, fp16)
        assert fp16["min_psnr_db"] >= MIN_PSNR_DB, (name, fp16["min_psnr_db"])
        assert fp16["min_psnr_db"] == min(case["psnr_db"] for case in fp16["cases"]), name
        peak = "image_range_2.0" if exported.specs[name].image_output else "reference_max_abs"
        assert fp16["psnr_peak"] == peak, (name, fp16["psnr_peak"])


def check_fp32_matches_torch(exported: Exported) -> None:
    """Each FP32 graph in ONNX Runtime equals the family's torch module (<= atol) on feeds export never drew."""
    for name, spec in exported.specs.items():
        for case in cases(spec, seed=101):
            want, got = torch_outputs(spec, case.feeds), exported.run(name, case.feeds)
            for tensor in spec.outputs:
                assert got[tensor.name].shape == want[tensor.name].shape, (name, case.label())
                np.testing.assert_allclose(got[tensor.name], want[tensor.name], rtol=0, atol=ATOL,
                                           err_msg=f"{name} {tensor.name} ({case.label()})")


def check_fp16_psnr(exported: Exported) -> None:
    """Each FP16 graph against its FP32 graph on fresh feeds: float32 outputs, PSNR >= the bound (peak 2.0 for
    images in [-1, 1], else the reference's max |value|)."""
    for name, spec in exported.specs.items():
        for case in cases(spec, seed=202):
            ref, got = exported.run(name, case.feeds, "fp32"), exported.run(name, case.feeds, "fp16")
            for tensor in spec.outputs:
                assert got[tensor.name].dtype == np.float32, (name, tensor.name)
                peak = 2.0 if spec.image_output else float(np.abs(ref[tensor.name]).max())
                value = psnr_db(ref[tensor.name], got[tensor.name], peak)
                assert value >= MIN_PSNR_DB, (name, tensor.name, case.label(), value)


def graph_files(exported: Exported) -> list[tuple[str, str, Path]]:
    """(graph, precision, path) of every graph file the manifest lists."""
    return [(name, precision, exported.bundle / record["path"])
            for name, entry in exported.manifest["graphs"].items() for precision, record in entry["files"].items()]


def check_onnx_and_tensorrt_ops(exported: Exported) -> None:
    """Valid ONNX (full check, strict shape inference), standard-domain operators from the TensorRT parser's
    list only, no BatchNormalization (no batch statistics), weights and norm parameters as initializers."""
    import onnx

    from munit_rt.export.operators import TENSORRT_ONNX_OPS, initializer_input_problems

    for name, precision, path in graph_files(exported):
        model = onnx.load(str(path))
        onnx.checker.check_model(model, full_check=True)
        onnx.shape_inference.infer_shapes(model, check_type=True, strict_mode=True)
        ops = {node.op_type for node in model.graph.node}
        assert ops <= TENSORRT_ONNX_OPS, (name, precision, ops - TENSORRT_ONNX_OPS)
        assert "BatchNormalization" not in ops, (name, precision)
        assert all(node.domain in ("", "ai.onnx") for node in model.graph.node), (name, precision)
        assert initializer_input_problems(model) == [], (name, precision)


def check_io_names_and_dims(exported: Exported) -> None:
    """Every graph file's inputs and outputs are the family's (names and order of its GraphSpec, which the manifest
    repeats), float32 at both precisions, with the declared fixed and symbolic (dynamic) dims."""
    import onnx

    for name, precision, path in graph_files(exported):
        spec, entry = exported.specs[name], exported.manifest["graphs"][name]
        model = onnx.load(str(path))
        for values, tensors, declared in ((model.graph.input, spec.inputs, entry["inputs"]),
                                          (model.graph.output, spec.outputs, entry["outputs"])):
            assert [v.name for v in values] == [t.name for t in tensors] == [t["name"] for t in declared], \
                (name, precision)
            for value, tensor, record in zip(values, tensors, declared):
                assert value.type.tensor_type.elem_type == onnx.TensorProto.FLOAT, (name, precision, value.name)
                dims = [d.dim_param or d.dim_value for d in value.type.tensor_type.shape.dim]
                assert dims == list(tensor.shape) == record["shape"], (name, precision, value.name, dims)
                assert record["dtype"] == "float32"
                # any batch; images and feature maps of any size (multiples): N, H, W symbolic, channels fixed
                symbolic = [0, 2, 3] if len(dims) == 4 else [0]
                assert all(isinstance(dims[i], str) and dims[i] for i in symbolic), (name, value.name, dims)
                assert all(isinstance(d, int) and d > 0 for i, d in enumerate(dims) if i not in symbolic), \
                    (name, value.name, dims)


def check_fp16_weights(exported: Exported) -> None:
    """FP16 graphs store their conv / matrix weights in FP16 and keep instance-norm statistics (input, scale and
    bias) in FP32."""
    import onnx

    for name, entry in exported.manifest["graphs"].items():
        model = onnx.load(str(exported.bundle / entry["files"]["fp16"]["path"]))
        inits = {init.name: init.data_type for init in model.graph.initializer}
        weights = [node.input[1] for node in model.graph.node
                   if node.op_type in ("Conv", "ConvTranspose", "Gemm", "MatMul") and node.input[1] in inits]
        assert weights and all(inits[w] == onnx.TensorProto.FLOAT16 for w in weights), name
        inferred = onnx.shape_inference.infer_shapes(model)
        types = {v.name: v.type.tensor_type.elem_type for v in
                 [*inferred.graph.value_info, *inferred.graph.input, *inferred.graph.output]}
        for node in model.graph.node:
            if node.op_type == "InstanceNormalization":
                assert all(inits[p] == onnx.TensorProto.FLOAT for p in node.input[1:]), (name, node.name)
                assert types.get(node.input[0]) == onnx.TensorProto.FLOAT, (name, node.name)


def check_files_and_hashes(exported: Exported) -> None:
    """Every file on disk is listed with its sha256 and size; graph records agree with the `files` map."""
    from munit_rt.export.writer import verify_bundle

    bundle, manifest = exported.bundle, exported.manifest
    on_disk = {p.relative_to(bundle).as_posix() for p in bundle.rglob("*") if p.is_file()} - {"manifest.json"}
    assert on_disk == set(manifest["files"])
    for rel, digest in manifest["files"].items():
        assert hashlib.sha256((bundle / rel).read_bytes()).hexdigest() == digest, rel
    for entry in manifest["graphs"].values():
        for record in entry["files"].values():
            assert record["sha256"] == manifest["files"][record["path"]]
            assert record["bytes"] == (bundle / record["path"]).stat().st_size
    assert verify_bundle(bundle) == []
    source = manifest["source_checkpoint"]
    assert source["sha256"] == hashlib.sha256(exported.checkpoint.read_bytes()).hexdigest()
    assert source["format"] == "munit-rt"
    from munit_rt.training.config import config_from_dict

    config_from_dict(manifest["config"], source="manifest config", family=exported.name)  # the family's, whole
    json.dumps(manifest, allow_nan=False)  # strict JSON: no NaN or infinity anywhere


EXPORT_CHECKS = (check_graph_set, check_parity_records, check_fp32_matches_torch, check_fp16_psnr,
                 check_onnx_and_tensorrt_ops, check_io_names_and_dims, check_fp16_weights, check_files_and_hashes)


# ----------------------------------------------------------------------------------------------- runtime

def check_bundle_opens(exported: Exported) -> None:
    """`Bundle(path)` opens it as the family's bundle, holding every graph the runtime family requires."""
    from munit_rt.bundle import Bundle
    from munit_rt.families.base import Family

    bundle = Bundle(exported.bundle)
    assert bundle.family == exported.name and bundle.spec is exported.runtime and isinstance(bundle.spec, Family)
    assert set(exported.runtime.graphs(bundle.model)) <= set(bundle.graphs)
    assert bundle.precisions == list(PRECISIONS) and bundle.preprocess.size == exported.manifest["preprocess"]["size"]


def check_info(exported: Exported) -> str:
    """`munit-rt info BUNDLE`: exit 0, the family named, the family's own lines, every graph file's parity ok."""
    from click.testing import CliRunner

    from munit_rt.bundle import Bundle
    from munit_rt.cli import cli

    result = CliRunner().invoke(cli, ["info", str(exported.bundle)])
    assert result.exit_code == 0, result.output
    text = result.output
    assert f"\nfamily      {exported.name} (schema 2" in text, text
    for label, _ in exported.runtime.describe(Bundle(exported.bundle).manifest):
        assert f"\n{label}" in text, (label, text)
    for name in exported.manifest["graphs"]:
        rows = [line for line in text.splitlines() if line.split()[:1] == [name]]
        assert [row.split()[1] for row in rows] == list(PRECISIONS), (name, rows)
        assert all(row.endswith(" ok") for row in rows), rows
    return text


def plan_for(exported: Exported, inputs: Path, **options: Any):
    """The family's plan of a `translate` run on `inputs` with `options` (TranslateOptions fields)."""
    from munit_rt.bundle import Bundle
    from munit_rt.translate.options import TranslateOptions

    bundle = Bundle(exported.bundle)
    chosen = TranslateOptions(inputs=[inputs], **options).for_family(bundle.spec, lambda note: None)
    return exported.runtime.plan(bundle, chosen)


def expected_outputs(plan, relpaths: list[str]) -> set[str]:
    """Output files (relative, nested layout, PNG) the plan writes for `relpaths`: OUT/<input>.png for one output
    per input, else OUT/<input>/<name>.png per plan name."""
    stems = [relpath.rsplit(".", 1)[0] for relpath in relpaths]
    if plan.single:
        assert len(plan.names) == 1
        return {f"{stem}.png" for stem in stems}
    return {f"{stem}/{name}.png" for stem in stems for name in plan.names}


def check_backends_agree(exported: Exported, inputs: Path, atol: float = ATOL) -> None:
    """The family's translate job (its plan for a default run, in each direction when the family reads
    --direction, run through `munit_rt.Translator`) on the PyTorch reference backend equals ONNX Runtime's,
    within `atol`."""
    import munit_rt

    from munit_rt.translator import DIRECTIONS

    multiple = exported.manifest["spatial_multiple"]
    side = max(multiple, exported.manifest["preprocess"]["size"] // multiple * multiple)
    runs = [{"direction": d} for d in DIRECTIONS] if "direction" in exported.runtime.options else [{}]
    with munit_rt.Translator(exported.bundle, backend="onnxruntime") as fast, \
            munit_rt.Translator(exported.bundle, backend="torch") as reference:
        assert (fast.backend.name, reference.backend.name) == ("onnxruntime", "torch")
        for options in runs:
            results = []
            for translator in (fast, reference):
                plan = plan_for(exported, inputs, **options)  # a fresh plan per translator: each prepares its own
                images = np.random.default_rng(9).uniform(-1, 1, (2, plan.channels, side, side + multiple))
                plan.prepare(translator)
                results.append(plan.run(translator, images.astype(np.float32), ["a.png", "sub/b.png"]))
            assert results[0].shape == results[1].shape and results[0].shape[:2] == (2, len(plan.names)), options
            np.testing.assert_allclose(results[0], results[1], rtol=0, atol=atol, err_msg=str(options))
