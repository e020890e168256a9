"""Ship a trained UTKFace MUNIT checkpoint as the package's default model (issue 7): bundle + model card.

    python scripts/ship_default_model.py runs/utkface64/checkpoints/gen_XXXXXXXX.pt [--force]

Exports FP32 and FP16 graphs, writes MODEL_CARD.md into the bundle and lists it with its sha256 in the
manifest's `files` (docs/bundle-format.md: every file but manifest.json), so `munit_rt.Bundle` verifies the
card like a graph. All of it is built beside --out and renamed into place; over 30 MB (the wheel carries the
folder) nothing is replaced and the exit code is 2.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

MAX_MB = 30.0
CARD_NAME = "MODEL_CARD.md"
CITATION = ('Zhang, Song and Qi, "Age Progression/Regression by Conditional Adversarial Autoencoder", '
            "CVPR 2017 (susanqq.github.io/UTKFace)")


def model_card(manifest: dict) -> str:
    """The card's Markdown, from what the manifest records (config, iteration, checkpoint)."""
    import yaml

    src = manifest["source_checkpoint"]
    config = yaml.safe_dump(manifest["config"], sort_keys=False).rstrip()
    return f"""# munit-rt default model: MUNIT, male <-> female faces (UTKFace, 64x64)

Trained with munit-rt (`munit-rt train --config training/configs/munit_utkface64.yaml`) on UTKFace:
{CITATION}.

**Non-commercial research use only.** The UTKFace authors release the dataset for non-commercial research
purposes only, so this model, trained on it, carries the same restriction.

- Domain `a`: adult male faces; domain `b`: adult female faces (UTKFace aligned crops, ages 18-70, lists
  from `scripts/utkface_lists.py`). `--direction a2b` turns male into female, `b2a` the reverse.
- Iterations: {src.get("iteration")} (checkpoint `{src.get("name")}`, sha256 `{src.get("sha256")}`).
- Exported by munit-rt {manifest.get("munit_rt_version")} on {manifest.get("created")}
  ({", ".join(manifest["precisions"])}); each graph's parity check is in manifest.json.
- A small model for demos and tests (dim 16, 64x64 inputs, trained on 2 CPU cores), not a faithful
  gender-translation system; outputs can be blurry and inherit the dataset's biases.

## Training config

```yaml
{config}
```
"""


def add_card(bundle_dir: Path) -> None:
    """Write the card and record its sha256 in the manifest's `files` map."""
    manifest_path = bundle_dir / "manifest.json"
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    data = model_card(manifest).encode("utf-8")
    (bundle_dir / CARD_NAME).write_bytes(data)
    manifest["files"] = dict(sorted({**manifest["files"], CARD_NAME: hashlib.sha256(data).hexdigest()}.items()))
    # the export records the checkpoint's absolute path; a packaged model must not carry this machine's paths
    source = Path(manifest["source_checkpoint"]["path"])
    manifest["source_checkpoint"]["path"] = (str(source.relative_to(REPO)) if source.is_relative_to(REPO)
                                             else source.name)
    manifest_path.write_text(json.dumps(manifest, indent=2, allow_nan=False) + "\n", encoding="utf-8")


def folder_mb(folder: Path) -> float:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) / 1e6


def ship(ckpt: Path, out: Path, force: bool) -> float:
    """Export, add the card, check the size, then publish; returns the size in MB."""
    from munit_rt.export import ExportError, export_bundle
    from munit_rt.export.writer import check_destination, publish

    check_destination(out, force)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".ship", dir=out.parent))
    try:
        bundle = export_bundle(ckpt, staging / "bundle", precision="both", progress=print)
        add_card(bundle)
        size = folder_mb(bundle)
        if size > MAX_MB:
            raise ExportError(f"{out}: the bundle is {size:.1f} MB, over the {MAX_MB:.0f} MB limit for a "
                              "packaged model; nothing was replaced")
        publish(bundle, out, force)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint", type=Path, help="munit-rt gen_XXXXXXXX.pt (config stored inside)")
    parser.add_argument("--out", type=Path, default=REPO / "munit_rt" / "models" / "default",
                        help="bundle folder [default: munit_rt/models/default]")
    parser.add_argument("--force", action="store_true", help="replace an existing bundle at --out")
    args = parser.parse_args()

    from munit_rt.export import ExportError
    from munit_rt.bundle import Bundle
    from munit_rt.errors import BundleError
    from munit_rt.training.errors import TrainingError

    try:
        size = ship(args.checkpoint, args.out, args.force)
        Bundle(args.out)  # re-read as the runtime will: every hash, the card's included
    except (ExportError, TrainingError, BundleError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
    print(f"shipped {args.out} ({size:.1f} MB)")


if __name__ == "__main__":
    main()
