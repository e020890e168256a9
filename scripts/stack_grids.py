"""Stack the per-input contact sheets of a `munit-rt translate --grid` run into one image (one row per input).

    python scripts/stack_grids.py demo-out/translated-a2b -o docs/images/default-model-a2b.png

Rows keep the order of the input names; every sheet of one run has the same size (the model's size).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from PIL import Image


def stack(run_dir: Path) -> Image.Image:
    sheets = sorted(run_dir.rglob("grid.png"))
    if not sheets:
        raise SystemExit(f"error: no grid.png under {run_dir}; run munit-rt translate with --grid first")
    images = [Image.open(path).convert("RGB") for path in sheets]
    width = max(image.width for image in images)
    out = Image.new("RGB", (width, sum(image.height for image in images)), "white")
    top = 0
    for image in images:
        out.paste(image, (0, top))
        top += image.height
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path, help="the -o folder of a translate --grid run")
    parser.add_argument("-o", "--output", type=Path, required=True, help="PNG to write")
    args = parser.parse_args()
    args.output.parent.mkdir(parents=True, exist_ok=True)
    stack(args.run_dir).save(args.output)
    print(f"wrote {args.output}", file=sys.stderr)


if __name__ == "__main__":
    main()
