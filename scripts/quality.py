"""Two quality numbers for a MUNIT bundle on the test split (issue 7), next to an untrained model of its config.

  style diversity     mean L1 (pixels in [0, 1]) between the S outputs of one input, over all S(S-1)/2 pairs,
                      averaged over inputs. 0 = the style code is ignored. No LPIPS (not available offline),
                      so this is pixel distance, not perceptual distance.
  reconstruction L1   image -> content and style codes (source encoders) -> the source decoder with that own
                      style; mean L1 against the input in [0, 1]. Low = content and style survive encoding.

The untrained baseline has the same config, the trainer's init (config.init) and a fixed seed, exported to a
temporary bundle, so the table shows what training changed. Random styles are the CLI's
(munit_rt.families.munit_styles.random_styles: seed + file name); inputs are a seeded sample of each list.

    .venv/bin/python scripts/quality.py [--model BUNDLE] [--limit 64] [--styles 8] [--seed 0] [--json out.json]
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
from itertools import combinations
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]


# -- the two numbers (pure) ------------------------------------------------------------------------------
def pairwise_l1(outputs: np.ndarray) -> float:
    """Mean absolute difference over all unordered pairs of `outputs` [S, ...] (S >= 2)."""
    if len(outputs) < 2:
        raise ValueError("diversity needs at least 2 outputs per input")
    x = np.asarray(outputs, np.float64)
    return float(np.mean([np.abs(x[i] - x[j]).mean() for i, j in combinations(range(len(x)), 2)]))


def style_diversity(outputs: np.ndarray) -> float:
    """[N, S, C, H, W] in [0, 1] -> mean over the N inputs of each input's pairwise L1."""
    return float(np.mean([pairwise_l1(per_input) for per_input in outputs]))


def reconstruction_l1(images: np.ndarray, reconstructions: np.ndarray) -> float:
    """Mean absolute difference, both in [0, 1] and of the same shape."""
    images, reconstructions = np.asarray(images, np.float64), np.asarray(reconstructions, np.float64)
    if images.shape != reconstructions.shape:
        raise ValueError(f"shapes differ: {images.shape} vs {reconstructions.shape}")
    return float(np.abs(images - reconstructions).mean())


def to_unit(model_output: np.ndarray) -> np.ndarray:
    """Model range [-1, 1] -> [0, 1], clipped as munit_rt.preprocess.to_pixels does (without rounding)."""
    return np.clip((np.asarray(model_output, np.float32) + 1.0) / 2.0, 0.0, 1.0)


# -- inputs -------------------------------------------------------------------------------------------------
def test_images(data: Path, list_file: Path, domain: str, limit: int, seed: int) -> list[Path]:
    """A seeded sample of `limit` files of the list (paths relative to `data`), else of data/test{A,B}."""
    if list_file.is_file():
        names = [line.strip() for line in list_file.read_text(encoding="utf-8").splitlines() if line.strip()]
        paths = [data / name for name in names]
    else:
        print(f"note: {list_file} not found; using every image in {data / f'test{domain.upper()}'} (all ages)",
              file=sys.stderr)
        paths = sorted(p for p in (data / f"test{domain.upper()}").iterdir() if p.is_file())
    if not paths:
        raise SystemExit(f"error: no test images for domain {domain} ({list_file}, {data})")
    # the lists are sorted by age (file names start with it): sample, don't take the first `limit`
    picked = np.random.default_rng(seed).choice(len(paths), min(limit, len(paths)), replace=False)
    return [paths[i] for i in sorted(picked)]


# -- running a bundle -------------------------------------------------------------------------------------
def evaluate(bundle_dir: Path, images: dict[str, list[Path]], styles: int, seed: int) -> dict[str, dict]:
    """{direction: {diversity, recon_l1, inputs}} through the runtime API (ONNX Runtime, fp32)."""
    from munit_rt import Translator
    from munit_rt.families.munit_styles import random_styles
    from munit_rt.io.images import read_image
    from munit_rt.preprocess import normalize
    from munit_rt.translator import DIRECTIONS

    results = {}
    with Translator(bundle_dir, backend="onnxruntime") as tr:
        bundle = tr.bundle
        for direction, (source, target) in DIRECTIONS.items():
            prep, channels = bundle.preprocess, bundle.model.domains[source]
            diversity, recon = [], []
            for path in images[source]:
                x = normalize(read_image(path, prep, channels), prep)[None]
                codes = random_styles(styles, tr.style_dim, seed, path.name)
                diversity.append(pairwise_l1(to_unit(tr.translate(x, codes, direction)[0])))
                content, style = tr.encode_content(x, source), tr.encode_style(x, source)
                rec = tr.decode(content, tr.style_to_adain(style, source), source)
                recon.append(reconstruction_l1(to_unit(x), to_unit(rec)))
            results[direction] = {"diversity": float(np.mean(diversity)), "recon_l1": float(np.mean(recon)),
                                  "inputs": len(diversity)}
    return results


def untrained_bundle(config_dict: dict, seed: int, out_dir: Path) -> Path:
    """The same architecture with the trainer's initial weights (seeded), exported as an fp32 bundle."""
    import torch

    from munit_rt.export import export_bundle
    from munit_rt.training.checkpoint import save_checkpoint
    from munit_rt.training.config import config_from_dict
    from munit_rt.training.families.munit.init import weights_init
    from munit_rt.training.families.munit.model import AdaINGen

    config = config_from_dict(dict(config_dict), source="bundle manifest", family="munit")
    torch.manual_seed(seed)
    gens = {d: AdaINGen(config.input_dim(d), config.gen).apply(weights_init(config.init)).eval() for d in "ab"}
    ckpt = out_dir / "gen_00000000.pt"
    save_checkpoint(ckpt, "munit", gens, config, iteration=0)
    return export_bundle(ckpt, out_dir / "untrained.bundle", precision="fp32")


# -- report ------------------------------------------------------------------------------------------------
def markdown_table(rows: dict[str, dict[str, dict]]) -> str:
    lines = ["| model | direction | style diversity (L1) | reconstruction L1 |", "|---|---|---:|---:|"]
    for model, by_direction in rows.items():
        for direction, r in by_direction.items():
            lines.append(f"| {model} | {direction} | {r['diversity']:.4f} | {r['recon_l1']:.4f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, help="MUNIT bundle [default: the packaged default model]")
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data" / "utkface")
    parser.add_argument("--list-a", type=Path, default=REPO / "runs" / "utkface-lists" / "test_a.txt")
    parser.add_argument("--list-b", type=Path, default=REPO / "runs" / "utkface-lists" / "test_b.txt")
    parser.add_argument("--limit", type=int, default=64, help="images per domain")
    parser.add_argument("--styles", type=int, default=8, help="random styles per input (>= 2)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, help="also write the numbers here")
    args = parser.parse_args()
    if args.styles < 2 or args.limit < 1:
        raise SystemExit("error: --styles must be >= 2 and --limit >= 1")

    from munit_rt import Bundle
    from munit_rt.models import default_model_path

    model = args.model or default_model_path()
    if model is None:
        raise SystemExit("error: no default model is installed in munit_rt/models/default; pass --model BUNDLE")
    bundle = Bundle(model)
    if bundle.family != "munit":
        raise SystemExit(f"error: {model} is a {bundle.family} bundle; these numbers are MUNIT's")
    images = {"a": test_images(args.data, args.list_a, "a", args.limit, args.seed),
              "b": test_images(args.data, args.list_b, "b", args.limit, args.seed)}
    iteration = bundle.manifest.source.iteration
    rows = {f"trained ({iteration} it)": evaluate(bundle.path, images, args.styles, args.seed)}
    with tempfile.TemporaryDirectory() as tmp:
        rows[f"untrained (seed {args.seed})"] = evaluate(untrained_bundle(bundle.manifest.config, args.seed,
                                                                          Path(tmp)), images, args.styles, args.seed)
    print(markdown_table(rows))
    if args.json:
        model_path = Path(bundle.path).resolve()  # relative to the repo when inside it: no machine paths in results
        shown = model_path.relative_to(REPO) if model_path.is_relative_to(REPO) else model_path
        args.json.write_text(json.dumps({"model": str(shown), "styles": args.styles, "seed": args.seed,
                                         "results": rows}, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
