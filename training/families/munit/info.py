"""`munit-rt info` on a MUNIT checkpoint: family, source, iteration, config (stored, given, or what the tensor
shapes reveal) and the parameters of each domain's sub-networks."""
from __future__ import annotations

import re
from pathlib import Path

from munit_rt.training.errors import CheckpointError
from munit_rt.training.family import Checkpoint
from munit_rt.training.registry import load_generators
from munit_rt.training.summary import BUFFER_LEAVES, format_rows

SUBNETS = ("enc_style", "enc_content", "mlp", "dec")


def describe_checkpoint(ckpt: Checkpoint, config_path: str | Path | None) -> str:
    if ckpt.config is not None:
        load_generators(ckpt)  # strict: a config that does not fit the weights fails here, naming the key
    lines = [("file", str(ckpt.path)), ("family", ckpt.family), ("source format", ckpt.source_format),
             ("iteration", str(ckpt.iteration) if ckpt.iteration is not None else "unknown")]
    if ckpt.source_format == "munit-rt":
        lines.append(("config", "stored in the checkpoint"))
    elif config_path is not None:
        lines.append(("config", f"from --config {config_path}"))
    else:
        inferred = infer_architecture(ckpt.state_dicts, ckpt.path)
        lines.append(("config", "not stored; pass --config (inferred from tensor shapes: "
                                + " ".join(f"{k}={v}" for k, v in inferred.items()) + ")"))
    if ckpt.config is not None:
        gen = ckpt.config.gen
        lines.append(("  gen", " ".join(f"{k}={getattr(gen, k)}" for k in gen.__dataclass_fields__)))
    channels = {d: _first_conv(ckpt.state_dicts[d], ckpt.path).shape[1] for d in ("a", "b")}
    lines.append(("domains", ", ".join(f"{d}: {c} channel{'s' if c != 1 else ''}" for d, c in channels.items())))
    return "\n".join(format_rows(lines) + [""] + _parameter_table(ckpt.state_dicts))


def count_parameters(state: dict) -> dict[str, int]:
    """Parameter count per sub-network of one domain's state dict (buffers excluded)."""
    counts = dict.fromkeys(SUBNETS, 0)
    for key, tensor in state.items():
        subnet, leaf = key.split(".", 1)[0], key.rsplit(".", 1)[-1]
        if subnet in counts and leaf not in BUFFER_LEAVES:
            counts[subnet] += tensor.numel()
    return counts


def _parameter_table(state_dicts: dict) -> list[str]:
    header = ["parameters", *SUBNETS, "total"]
    rows = []
    for domain in ("a", "b"):
        counts = count_parameters(state_dicts[domain])
        rows.append([f"  domain {domain}", *map(str, counts.values()), str(sum(counts.values()))])
    grand = sum(int(row[-1]) for row in rows)
    rows.append(["  total", *[""] * len(SUBNETS), str(grand)])
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    return ["  ".join(cell.ljust(w) if i == 0 else cell.rjust(w) for i, (cell, w) in enumerate(zip(row, widths)))
            .rstrip() for row in [header, *rows]]


def _first_conv(state: dict, path: Path):
    try:
        return state["enc_content.model.0.conv.weight"]
    except KeyError:
        raise CheckpointError(f"{path}: no 'enc_content.model.0.conv.weight'; not a MUNIT generator") from None


def infer_architecture(state_dicts: dict, path: Path) -> dict[str, int]:
    """The architecture values that tensor shapes reveal (activation and padding do not show)."""
    state = state_dicts["a"]

    def indices(pattern: str) -> set[int]:
        return {int(m.group(1)) for key in state if (m := re.fullmatch(pattern, key))}

    first = _first_conv(state, path)
    try:
        mlp_in = state["mlp.model.0.fc.weight"]
    except KeyError:
        raise CheckpointError(f"{path}: no 'mlp.model.0.fc.weight'; not a MUNIT generator") from None
    return {
        "dim": first.shape[0],
        "style_dim": mlp_in.shape[1],
        "n_res": len(indices(r"enc_content\.model\.\d+\.model\.(\d+)\.model\.0\.conv\.weight")),
        "n_downsample": len(indices(r"enc_content\.model\.(\d+)\.conv\.weight")) - 1,
        "mlp_dim": mlp_in.shape[0],
        "input_dim_a": first.shape[1],
        "input_dim_b": _first_conv(state_dicts["b"], path).shape[1],
    }
