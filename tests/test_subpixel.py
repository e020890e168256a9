"""The exported decoder's sub-pixel rewrite (MUNIT's subpixel.py) against the training decoder it replaces.

Checked in float64, where the only difference left is summation order, so any wrong tap, phase or border
line shows up many orders of magnitude above the tolerance.
"""
from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="the rewrite is a torch module built at export time")
onnx = pytest.importorskip("onnx", reason="export needs onnx")
ort = pytest.importorskip("onnxruntime", reason="the exported graphs run in ONNX Runtime")

from munit_rt.export.flops import graph_flops  # noqa: E402
from munit_rt.training.families.munit.layers import Conv2dBlock  # noqa: E402
from munit_rt.training.families.munit.model import Decoder  # noqa: E402
from munit_rt.training.families.munit.subpixel import (PhaseOutputStage, SubpixelDecoder,  # noqa: E402
                                                       SubpixelUpsampleConv, output_weights)


def random_decoder(n_upsample: int, pad_type: str, dim: int = 16, seed: int = 0) -> Decoder:
    torch.manual_seed(seed)
    decoder = Decoder(n_upsample, 1, dim, 3, pad_type=pad_type).double().eval()
    with torch.no_grad():
        for p in decoder.parameters():  # LayerNorm gamma/beta too, so the affine is not the identity
            p.normal_(0.0, 0.2)
    return decoder


@pytest.mark.parametrize("pad_type", ["reflect", "replicate", "zero"])
@pytest.mark.parametrize("n_upsample", [1, 2, 3])
def test_rewritten_decoder_equals_the_training_decoder(pad_type, n_upsample):
    decoder = random_decoder(n_upsample, pad_type)
    rewritten = SubpixelDecoder(decoder).eval()
    kinds = [type(m) for m in rewritten.rest]
    assert kinds == [SubpixelUpsampleConv] * (n_upsample - 1) + [PhaseOutputStage]
    generator = torch.Generator().manual_seed(1)
    for h, w in [(2, 2), (3, 5), (7, 4)]:  # 2x2: the smallest map reflect padding allows
        content = torch.randn(2, 16, h, w, generator=generator, dtype=torch.float64)
        adain = torch.randn(2, decoder.num_adain_params, generator=generator, dtype=torch.float64)
        with torch.no_grad():
            want, got = decoder(content, adain), rewritten(content, adain)
        assert got.shape == want.shape == (2, 3, h * 2**n_upsample, w * 2**n_upsample)
        assert (got - want).abs().max().item() < 1e-12, (pad_type, n_upsample, h, w)


@pytest.mark.parametrize("pad_type", ["reflect", "zero"])
def test_one_upsample_stage_equals_upsample_then_conv(pad_type):
    torch.manual_seed(2)
    block = Conv2dBlock(6, 4, 5, 1, 2, norm="ln", activation="relu", pad_type=pad_type).double().eval()
    x = torch.randn(3, 6, 5, 6, dtype=torch.float64)
    with torch.no_grad():
        want = block(torch.nn.functional.interpolate(x, scale_factor=2, mode="nearest"))
        got = SubpixelUpsampleConv(block)(x)
    assert (got - want).abs().max().item() < 1e-12


def test_output_weights_use_every_full_resolution_tap_exactly_once():
    # with an all-ones 7x7 kernel, each output phase's kernel must add up to C * 49 (every tap once per input
    # channel), spread over the 4 input phases as the parity of the tap offsets dictates
    c = 5
    kernels = output_weights(torch.ones(2, c, 7, 7, dtype=torch.float64))
    assert kernels.shape == (8, 4 * c, 5, 5)
    assert torch.all(kernels.sum(dim=(1, 2, 3)) == c * 49)
    per_phase = kernels.reshape(8, c, 4, 5, 5).sum(dim=(1, 3, 4))  # [output phase, input phase]
    # along one axis, offsets -3..3 from an output of parity q: 3 of one input parity, 4 of the other
    counts = {(q, p): 4 if (p - q) % 2 == 1 else 3 for q in (0, 1) for p in (0, 1)}
    for out in range(8):
        qy, qx = divmod(out % 4, 2)
        for phase in range(4):
            py, px = divmod(phase, 2)
            assert per_phase[out, phase] == c * counts[qy, py] * counts[qx, px]


def _export(tmp_path, checkpoint, name, *args) -> dict:
    from click.testing import CliRunner

    from munit_rt.cli import cli

    out = tmp_path / name
    result = CliRunner().invoke(cli, ["export", str(checkpoint), "-o", str(out), "--precision", "fp32", *args])
    assert result.exit_code == 0, result.output
    return {"dir": out, "manifest": json.loads((out / "manifest.json").read_text())}


def test_export_writes_the_rewrite_by_default_and_the_plain_graph_on_request(tmp_path, tiny_checkpoint):
    subpixel = _export(tmp_path, tiny_checkpoint, "sub.bundle")
    nearest = _export(tmp_path, tiny_checkpoint, "near.bundle", "--upsample", "nearest")
    rng = np.random.default_rng(0)
    feeds = {"content": rng.standard_normal((2, 32, 6, 5)).astype(np.float32),
             "adain_params": rng.standard_normal((2, 128)).astype(np.float32)}
    outputs, flops = {}, {}
    for name, bundle in (("subpixel", subpixel), ("nearest", nearest)):
        entry = bundle["manifest"]["graphs"]["decoder_b"]
        assert entry["upsample"] == name
        assert entry["parity"]["fp32"]["max_abs_err"] <= 1e-4  # both checked against the training decoder
        path = bundle["dir"] / "fp32" / "decoder_b.onnx"
        ops = {node.op_type for node in onnx.load(str(path)).graph.node}
        assert ("DepthToSpace" in ops) == (name == "subpixel"), sorted(ops)
        flops[name] = graph_flops(path, {k: v.shape for k, v in feeds.items()}).total
        outputs[name] = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, feeds)[0]
    np.testing.assert_allclose(outputs["subpixel"], outputs["nearest"], rtol=0, atol=1e-5)
    # upsample convs: 36/100 of the multiply-adds plus border lines; the 7x7 output conv on the phase stack
    # does 12*4*25 / (3*49*4) = 2.04x its full-resolution work (dominant in this 1-res-block model)
    assert flops["subpixel"] < flops["nearest"], flops
