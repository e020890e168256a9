#!/usr/bin/env bash
# The README's main job: translate the example faces with 8 styles each and write contact sheets.
# With a default model installed in the package, it translates straight away; without one it first trains
# a small MUNIT on ../shared/data/utkface for a few minutes and exports it (pipeline demo, not quality).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=demo-out
mkdir -p "$OUT"

if python -c "import munit_rt.models as m, sys; sys.exit(0 if m.default_model_path() else 1)" 2>/dev/null; then
    MODEL_ARGS=()
    echo "Using the default model shipped in the package."
else
    DATA=../shared/data/utkface
    if [ ! -d "$DATA/trainA" ]; then
        echo "No default model installed and no training data at $DATA; see README (Not done yet)." >&2
        exit 2
    fi
    if [ ! -f "$OUT/model.bundle/manifest.json" ]; then
        echo "No default model installed: training a small MUNIT on $DATA (a few minutes on a CPU) ..."
        rm -rf "$OUT/run"
        munit-rt train --config training/configs/munit_demo.yaml --data "$DATA" --out "$OUT/run"
        munit-rt export "$(ls "$OUT"/run/checkpoints/gen_*.pt | tail -1)" -o "$OUT/model.bundle" --precision fp32 --force
    fi
    MODEL_ARGS=(--model "$OUT/model.bundle")
fi

munit-rt translate "${MODEL_ARGS[@]}" --styles 8 --grid --direction a2b examples/a -o "$OUT/translated-a2b"
munit-rt translate "${MODEL_ARGS[@]}" --styles 8 --grid --direction b2a examples/b -o "$OUT/translated-b2a"
echo
echo "Contact sheets (input, then 8 styles): $OUT/translated-a2b/*/grid.png and $OUT/translated-b2a/*/grid.png"
echo "Index pages: $OUT/translated-a2b/index.html, $OUT/translated-b2a/index.html"
