"""Export, for every registered family (tests/contract/conftest.py): the graph split, parity records, FP32 graphs
against the torch modules, FP16 against FP32, ONNX validity and TensorRT operators, I/O names and dynamic dims,
FP16 weights, files and hashes. The checks themselves are tests/contract/checks.py."""
from __future__ import annotations

from contract import checks


def test_manifest_lists_the_family_graph_split(exported):
    checks.check_graph_set(exported)


def test_manifest_records_passed_fp32_parity_and_fp16_psnr_for_every_graph(exported):
    checks.check_parity_records(exported)


def test_fp32_graphs_match_the_torch_modules_on_fresh_feeds(exported):
    checks.check_fp32_matches_torch(exported)


def test_fp16_graphs_stay_within_the_psnr_bound_on_fresh_feeds(exported):
    checks.check_fp16_psnr(exported)


def test_every_graph_is_valid_onnx_with_tensorrt_ops_only(exported):
    checks.check_onnx_and_tensorrt_ops(exported)


def test_io_names_dtypes_and_dynamic_dims(exported):
    checks.check_io_names_and_dims(exported)


def test_fp16_graphs_store_fp16_weights_and_keep_norm_statistics_fp32(exported):
    checks.check_fp16_weights(exported)


def test_every_file_is_listed_with_its_sha256(exported):
    checks.check_files_and_hashes(exported)
