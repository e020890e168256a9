"""Plot a MUNIT run's losses from RUN/logs/stats.jsonl: raw values faint, a moving average on top.

    python scripts/loss_curves.py runs/utkface64 -o docs/images/default-model-losses.png [--window 25]

Three panels against iteration: generator total, discriminator total, reconstruction terms (image, cycle,
style and content codes, per domain). stats.jsonl holds one JSON object per logged iteration; after a resume
the later record of an iteration wins.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

PANELS = (
    ("generator total", ("loss_gen_total",)),
    ("discriminator total", ("loss_dis_total",)),
    ("reconstruction", ("loss_gen_recon_x_a", "loss_gen_recon_x_b", "loss_gen_cycrecon_x_a",
                        "loss_gen_cycrecon_x_b", "loss_gen_recon_s_a", "loss_gen_recon_s_b",
                        "loss_gen_recon_c_a", "loss_gen_recon_c_b")),
)


def read_stats(path: Path) -> list[dict]:
    """Records sorted by iteration, one per iteration (the last one written)."""
    by_iteration = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            record = json.loads(line)
            by_iteration[int(record["iteration"])] = record
    return [by_iteration[i] for i in sorted(by_iteration)]


def moving_average(values: np.ndarray, window: int) -> np.ndarray:
    """Trailing mean over up to `window` points; the first points average what exists so far."""
    cumsum = np.cumsum(np.insert(np.asarray(values, np.float64), 0, 0.0))
    idx = np.arange(1, len(values) + 1)
    start = np.maximum(idx - window, 0)
    return (cumsum[idx] - cumsum[start]) / (idx - start)


def plot(records: list[dict], out: Path, window: int, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    iterations = np.array([r["iteration"] for r in records])
    fig, axes = plt.subplots(1, len(PANELS), figsize=(15, 4.2), constrained_layout=True)
    for ax, (name, keys) in zip(axes, PANELS):
        for key in [k for k in keys if k in records[0]]:
            values = np.array([r.get(key, np.nan) for r in records], np.float64)
            raw, = ax.plot(iterations, values, alpha=0.2, linewidth=0.8)
            ax.plot(iterations, moving_average(values, window), color=raw.get_color(), linewidth=1.6,
                    label=key.removeprefix("loss_gen_").removeprefix("loss_"))
        ax.set_title(name)
        ax.set_xlabel("iteration")
        ax.grid(alpha=0.3)
        if len(keys) > 1:
            ax.set_yscale("log")  # the terms differ by 10x and more
            ax.legend(fontsize=7, ncol=2)
    fig.suptitle(f"{title} (moving average over {window} log points, raw values faint)")
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path, help="run folder (with logs/stats.jsonl)")
    parser.add_argument("-o", "--out", type=Path, required=True, help="PNG to write")
    parser.add_argument("--window", type=int, default=25, help="moving-average length in log points")
    args = parser.parse_args()
    stats = args.run / "logs" / "stats.jsonl"
    records = read_stats(stats) if stats.is_file() else []
    if not records:
        print(f"error: {stats}: no loss records (written by `munit-rt train` every log_iter)", file=sys.stderr)
        sys.exit(2)
    plot(records, args.out, max(1, args.window), args.run.name)
    print(f"wrote {args.out} ({len(records)} points, iterations {records[0]['iteration']}-"
          f"{records[-1]['iteration']})")


if __name__ == "__main__":
    main()
