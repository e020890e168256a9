"""The CPU Winograd rewrite (munit_rt/winograd.py): the transforms against direct correlation, rewritten graphs
against a float64 numpy convolution, which convs qualify, and the ONNX Runtime backend against PyTorch."""
from __future__ import annotations

import numpy as np
import onnx
import onnxruntime
import pytest
from onnx import TensorProto, helper, numpy_helper
from test_bundle import build_tiny_bundle

from munit_rt import Translator, winograd
from munit_rt.backends.onnxruntime import OnnxRuntimeBackend
from munit_rt.bundle import Bundle
from munit_rt.errors import MunitRtError

RTOL = 1e-5  # float32 Winograd F(4x4, 3x3) vs float64 direct: max error relative to the output's largest value


def correlate(x: np.ndarray, w: np.ndarray, bias, pads) -> np.ndarray:
    """Direct 2-D cross-correlation in float64 (what ONNX Conv computes), zero padding [top, left, bottom, right]."""
    top, left, bottom, right = pads
    x = np.pad(x.astype(np.float64), ((0, 0), (0, 0), (top, bottom), (left, right)))
    kh, kw = w.shape[2:]
    out_h, out_w = x.shape[2] - kh + 1, x.shape[3] - kw + 1
    y = np.zeros((x.shape[0], w.shape[0], out_h, out_w))
    for i in range(kh):
        for j in range(kw):
            y += np.einsum("nchw,kc->nkhw", x[:, :, i:i + out_h, j:j + out_w], w[:, :, i, j].astype(np.float64))
    return y if bias is None else y + bias.astype(np.float64)[None, :, None, None]


def conv_model(weight, bias=None, weight_as_input=False, dtype=np.float32, opset=17, **attrs) -> onnx.ModelProto:
    """One Conv node, input x [N, C, H, W] with symbolic N, H, W."""
    elem = helper.np_dtype_to_tensor_dtype(np.dtype(dtype))
    inputs = [helper.make_tensor_value_info("x", elem, ["N", weight.shape[1] * attrs.get("group", 1), "H", "W"])]
    initializers, names = [], ["x", "w"]
    if weight_as_input:
        inputs.append(helper.make_tensor_value_info("w", elem, list(weight.shape)))
    else:
        initializers.append(numpy_helper.from_array(weight.astype(dtype), "w"))
    if bias is not None:
        initializers.append(numpy_helper.from_array(bias.astype(dtype), "b"))
        names.append("b")
    graph = helper.make_graph([helper.make_node("Conv", names, ["y"], name="conv", **attrs)], "g", inputs,
                              [helper.make_tensor_value_info("y", elem, None)], initializers)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def run(model: onnx.ModelProto | bytes, x: np.ndarray) -> np.ndarray:
    data = model if isinstance(model, bytes) else model.SerializeToString()
    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3
    session = onnxruntime.InferenceSession(data, options, providers=["CPUExecutionProvider"])
    return session.run(None, {"x": x})[0]


def random_conv(channels_in, channels_out, seed=0, kernel=3):
    rng = np.random.default_rng(seed)
    weight = (rng.standard_normal((channels_out, channels_in, kernel, kernel)) / np.sqrt(9 * channels_in))
    return weight.astype(np.float32), rng.standard_normal(channels_out).astype(np.float32)


def test_transforms_are_a_3x3_correlation_of_a_6x6_tile():
    """Y = A^T [(G g G^T) . (B^T d B)] A is the 4x4 valid correlation of the tile, exactly (float64)."""
    rng = np.random.default_rng(0)
    tile, g = rng.standard_normal((6, 6)), rng.standard_normal((3, 3))
    direct = correlate(tile[None, None], g[None, None], None, (0, 0, 0, 0))[0, 0]
    winograd_y = winograd.A_T @ ((winograd.G @ g @ winograd.G.T) * (winograd.B_T @ tile @ winograd.B_T.T)) @ winograd.A_T.T
    np.testing.assert_allclose(winograd_y, direct, atol=1e-12, rtol=0)


def test_graph_constants_hold_the_transforms():
    """The arrays the rewritten graph uses, against the textbook matrices by index."""
    rng = np.random.default_rng(1)
    g = rng.standard_normal((3, 3))
    to_taps = winograd.filter_transform()
    assert to_taps.shape == (9, 36) and to_taps.dtype == np.float32
    np.testing.assert_allclose((g.reshape(9) @ to_taps).reshape(6, 6), winograd.G @ g @ winograd.G.T,
                               rtol=1e-6, atol=1e-7)
    kernel = winograd.input_transform_kernel(3)
    assert kernel.shape == (108, 1, 6, 6)
    np.testing.assert_array_equal(kernel[2 * 36 + 1 * 6 + 4, 0], np.outer(winograd.B_T[1], winograd.B_T[4]))
    out = winograd.output_transform()
    np.testing.assert_array_equal(out[3 * 4 + 2].reshape(6, 6), np.outer(winograd.A_T[3], winograd.A_T[2]))


@pytest.mark.parametrize("shape,pads,bias", [
    ((1, 3, 8, 8), (1, 1, 1, 1), True),     # output a multiple of the 4x4 tile
    ((2, 5, 9, 7), (1, 1, 1, 1), True),     # ragged: the last tiles are cut
    ((3, 4, 10, 6), (0, 0, 0, 0), False),   # input padded beforehand (the MUNIT graphs: reflect Pad -> Conv)
    ((1, 6, 7, 11), (0, 1, 2, 1), True),    # asymmetric pads
    ((2, 4, 1, 1), (1, 1, 1, 1), True),     # a single pixel
    ((1, 4, 3, 3), (0, 0, 0, 0), False),    # a single output pixel
])
def test_rewritten_conv_equals_direct_convolution(shape, pads, bias):
    weight, b = random_conv(shape[1], 6, seed=sum(shape))
    b = b if bias else None
    model = conv_model(weight, b, pads=list(pads))
    x = np.random.default_rng(2).standard_normal(shape).astype(np.float32)
    expected = correlate(x, weight, b, pads)
    assert winograd.rewrite_model(model, min_harmonic_mean=0) == 1
    assert "Conv" in {n.op_type for n in model.graph.node} and "MatMul" in {n.op_type for n in model.graph.node}
    read = {name for node in model.graph.node for name in node.input}
    assert {t.name for t in model.graph.initializer} <= read  # no weight or bias left behind unread
    got = run(model, x)
    assert got.shape == expected.shape
    assert np.abs(got - expected).max() <= RTOL * np.abs(expected).max()


def test_rewrite_keeps_the_graph_running_at_every_size():
    """One rewritten model, fed several batch sizes and spatial sizes (the shapes are computed in the graph)."""
    weight, b = random_conv(4, 4, seed=3)
    model = conv_model(weight, b, pads=[1, 1, 1, 1])
    winograd.rewrite_model(model, min_harmonic_mean=0)
    data = model.SerializeToString()
    for n, h, w in ((1, 4, 4), (3, 13, 5), (2, 16, 20)):
        x = np.random.default_rng(h * w).standard_normal((n, 4, h, w)).astype(np.float32)
        expected = correlate(x, weight, b, (1, 1, 1, 1))
        assert np.abs(run(data, x) - expected).max() <= RTOL * np.abs(expected).max()


@pytest.mark.parametrize("change", ["stride 2", "dilation 2", "groups 2", "5x5 kernel", "weight is an input",
                                    "float16", "auto_pad SAME_UPPER", "opset 11"])
def test_convs_it_cannot_rewrite_are_left_alone(change):
    weight, b = random_conv(4, 4, seed=4, kernel=5 if change == "5x5 kernel" else 3)
    attrs = {"stride 2": {"strides": [2, 2]}, "dilation 2": {"dilations": [2, 2]}, "groups 2": {"group": 2},
             "auto_pad SAME_UPPER": {"auto_pad": "SAME_UPPER"}}.get(change, {})
    if change == "groups 2":
        weight = weight[:, :2]
    model = conv_model(weight, b, weight_as_input=change == "weight is an input",
                       dtype=np.float16 if change == "float16" else np.float32,
                       opset=11 if change == "opset 11" else 17, **attrs)
    data = model.SerializeToString()
    assert winograd.rewrite_bytes(data, "on") == (data, 0)


@pytest.mark.parametrize("mode,channels,rewritten", [
    ("auto", (128, 128), 0), ("auto", (128, 256), 0), ("auto", (256, 256), 1), ("auto", (512, 256), 1),
    ("on", (8, 8), 1), ("off", (256, 256), 0)])
def test_modes_pick_the_convs_worth_rewriting(mode, channels, rewritten):
    """auto: where the harmonic mean of in and out channels is >= 200 (bench/winograd_convs.py: 1.8-2.1x there,
    1.2x at 128 -> 256, slower at 128 -> 128)."""
    weight, b = random_conv(*channels, seed=5)
    data = conv_model(weight, b, pads=[1, 1, 1, 1]).SerializeToString()
    new, count = winograd.rewrite_bytes(data, mode)
    assert count == rewritten and (new == data) == (rewritten == 0)
    if rewritten:
        x = np.random.default_rng(6).standard_normal((1, channels[0], 6, 6)).astype(np.float32)
        expected = correlate(x, weight, b, (1, 1, 1, 1))
        assert np.abs(run(new, x) - expected).max() <= RTOL * np.abs(expected).max()


def test_unknown_mode_is_refused():
    with pytest.raises(ValueError, match="auto, on, off"):
        winograd.rewrite_bytes(b"", "fast")


def test_a_bias_other_nodes_read_stays_theirs():
    weight, bias = random_conv(4, 4, seed=7)
    model = conv_model(weight, bias, pads=[1, 1, 1, 1])
    model.graph.node.append(helper.make_node("Identity", ["b"], ["b_copy"]))
    model.graph.output.append(helper.make_tensor_value_info("b_copy", TensorProto.FLOAT, None))
    assert winograd.rewrite_model(model, min_harmonic_mean=0) == 1
    assert "b" in {t.name for t in model.graph.initializer}
    x = np.random.default_rng(8).standard_normal((1, 4, 5, 5)).astype(np.float32)
    expected = correlate(x, weight, bias, (1, 1, 1, 1))
    assert np.abs(run(model, x) - expected).max() <= RTOL * np.abs(expected).max()


# -- through the backend, on a real exported MUNIT bundle ---------------------------------------------------

@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return build_tiny_bundle(tmp_path_factory)


def test_backend_with_winograd_matches_pytorch(tiny):
    """Every 3x3 conv of the tiny model rewritten ("on"), outputs still equal the training modules' (<= 1e-4)."""
    import torch
    from conftest import tiny_config_dict

    from munit_rt.training.checkpoint import read_checkpoint
    from munit_rt.training.registry import load_generators

    gens = load_generators(read_checkpoint(tiny[0]))
    images = np.random.default_rng(8).uniform(-1, 1, (2, 3, 32, 40)).astype(np.float32)
    codes = np.random.default_rng(9).standard_normal((3, 4)).astype(np.float32)
    with Translator(tiny[1], backend="onnxruntime", winograd="on") as translator:
        got = translator.translate(images, codes, direction="a2b", batch_size=4)
        counts = translator.backend.rewritten_convs
        assert "Winograd 3x3 convs: on" in translator.backend.device
    with torch.inference_mode():
        content = gens["a"].enc_content(torch.from_numpy(images))
        expected = torch.stack([torch.stack([gens["b"].decode(content[i:i + 1], torch.from_numpy(s)[None])[0]
                                             for s in codes]) for i in range(len(images))]).numpy()
    np.testing.assert_allclose(got, expected, atol=1e-4, rtol=0)
    # the 3x3 stride-1 convs: two per residual block in the content encoder; in the decoder those plus one
    # phase conv per upsampling stage (MUNIT's subpixel.py turns each 5x5 upsample conv into a 3x3 one)
    gen = tiny_config_dict()["gen"]
    assert counts["content_encoder_a"] == 2 * gen["n_res"]
    assert counts["decoder_b"] == 2 * gen["n_res"] + gen["n_downsample"]
    assert counts["style_mlp_b"] == 0


def test_backend_modes_and_environment(tiny, monkeypatch):
    images = np.zeros((1, 3, 32, 32), np.float32)
    with OnnxRuntimeBackend(Bundle(tiny[1])) as backend:  # auto: the tiny model's 32-channel convs don't pay
        backend.run("content_encoder_a", {"image": images})
        assert backend.winograd == "auto" and backend.rewritten_convs == {"content_encoder_a": 0}
    monkeypatch.setenv("MUNIT_RT_WINOGRAD", "on")
    with OnnxRuntimeBackend(Bundle(tiny[1])) as backend:
        backend.run("content_encoder_a", {"image": images})
        assert backend.rewritten_convs["content_encoder_a"] > 0
    monkeypatch.setenv("MUNIT_RT_WINOGRAD", "off")
    assert "Winograd" not in OnnxRuntimeBackend(Bundle(tiny[1])).device
    monkeypatch.setenv("MUNIT_RT_WINOGRAD", "fast")
    with pytest.raises(MunitRtError, match="MUNIT_RT_WINOGRAD must be one of auto, on, off"):
        OnnxRuntimeBackend(Bundle(tiny[1]))


def test_cli_reports_a_bad_winograd_setting_in_one_line(tiny, tmp_path, monkeypatch):
    from conftest import translate, write_image

    write_image(tmp_path / "in" / "a.png", seed=1)
    monkeypatch.setenv("MUNIT_RT_WINOGRAD", "fast")
    code, output = translate(tiny[1], str(tmp_path / "in"), "-o", str(tmp_path / "out"), "--styles", "1")
    assert code == 2
    assert "MUNIT_RT_WINOGRAD must be one of auto, on, off (got 'fast')" in output
    assert "Traceback" not in output and not (tmp_path / "out").exists()


def test_cuda_sessions_get_the_graph_as_exported(tiny):
    """The rewrite targets ONNX Runtime's CPU kernels only: with the CUDA provider the bundle's bytes go through."""
    handed = {}

    def fake_session(model, options, providers):
        handed["model"], handed["providers"] = model, providers
        raise RuntimeError("stop here")  # building a real session would need a GPU

    bundle = Bundle(tiny[1])
    backend = OnnxRuntimeBackend(bundle, providers=["CUDAExecutionProvider", "CPUExecutionProvider"],
                                 winograd="on", session_factory=fake_session)
    assert backend.device == "cuda"
    with pytest.raises(RuntimeError, match="stop here"):
        backend.run("content_encoder_a", {"image": np.zeros((1, 3, 32, 32), np.float32)})
    assert handed["model"] == bundle.graph_bytes("content_encoder_a", "fp32")
    assert backend.rewritten_convs == {}


def test_without_onnx_the_graphs_run_as_exported(tiny, monkeypatch):
    """An installation missing `onnx` still translates (as exported), and the device line says why."""
    monkeypatch.setattr(winograd, "unavailable_reason", lambda: "onnx is not installed (pip install onnx)")
    with OnnxRuntimeBackend(Bundle(tiny[1]), winograd="on") as backend:
        backend.run("content_encoder_a", {"image": np.zeros((1, 3, 32, 32), np.float32)})
        assert backend.rewritten_convs == {"content_encoder_a": 0}
        assert backend.device.endswith("Winograd 3x3 convs: off, onnx is not installed (pip install onnx)")
