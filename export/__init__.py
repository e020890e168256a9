"""ONNX export of any registered family's checkpoints into self-describing bundles (docs/bundle-format.md).

    from munit_rt.export import export_bundle
    bundle_dir = export_bundle("run/checkpoints/gen_00010000.pt", "model.bundle")
    export_bundle(["latest_net_G_A.pth", "latest_net_G_B.pth"], config="cyclegan.yaml")  # an upstream pair
    export_bundle("200000-G.ckpt")  # upstream StarGAN with upstream defaults (no config in the file)

    api.py            export_bundle: checkpoint -> graphs -> parity -> bundle, atomically
    trace.py          one GraphSpec -> ONNX (dynamic N/H/W), folded and checked
    parity.py         ONNX Runtime vs PyTorch (FP32: max abs error; FP16: PSNR)
    fp16.py           FP16 copies with normalisation statistics kept in FP32
    operators.py      the TensorRT operator allow-list
    writer.py         the manifest, files, hashes, staging and publish
    flops.py          exact FLOP counts of ONNX graphs (no torch)
    random_bundle.py  random weights -> checkpoint -> bundle, for tests and benchmarks
    quantize/         int8 graphs calibrated on real images, written into a bundle (`munit-rt quantize`; no torch)
"""
from munit_rt.export.api import DEFAULT_PRECISION, PRECISIONS, export_bundle
from munit_rt.export.errors import ExportError

__all__ = ["ExportError", "export_bundle", "PRECISIONS", "DEFAULT_PRECISION"]
