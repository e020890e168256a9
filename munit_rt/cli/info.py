"""`munit-rt info`: what a checkpoint or bundle holds. torch is imported only for checkpoints."""
from __future__ import annotations

import re
from pathlib import Path

import click

from munit_rt.cli.common import UserError, friendly_errors

SUBNETS = ("enc_style", "enc_content", "mlp", "dec")
# buffers, not parameters (AdaIN placeholders, pre-0.4 instance-norm statistics)
_BUFFER_LEAVES = ("running_mean", "running_var", "num_batches_tracked")


@click.command("info")
@click.argument("path", type=click.Path(exists=True))
@click.option("--config", "config_path", type=click.Path(exists=True, dir_okay=False),
              help="YAML for official checkpoints (they store no config); checks the weights against it.")
@click.option("--trust-checkpoint", is_flag=True,
              help="UNSAFE: allow pickled objects in the checkpoint, which run code from the file while it loads; "
                   "only for files you trust. Without it, only tensors and plain data are read (weights_only).")
@friendly_errors
def command(path, config_path, trust_checkpoint):
    """Describe a checkpoint or a bundle folder (with manifest.json).

    Checkpoints: MUNIT gen_XXXXXXXX.pt, munit-rt cyclegan_/stargan_XXXXXXXX.pt, upstream CycleGAN
    latest_net_G_A.pth and StarGAN NNNNNN-G.ckpt.
    """
    path = Path(path)
    if path.is_dir():
        if not (path / "manifest.json").is_file():
            raise UserError(f"{path}: a folder without manifest.json is not a bundle; pass a gen_*.pt file "
                            "or a bundle folder")
        from munit_rt.bundle import Bundle

        click.echo(Bundle(path).describe())
        return
    from munit_rt.cli.common import require

    require("torch", "train")
    click.echo(describe_checkpoint(path, config_path, trust=trust_checkpoint))


def describe_checkpoint(path: Path, config_path: str | Path | None = None, trust: bool = False) -> str:
    from munit_rt.training.checkpoint import load_generators, read_any_checkpoint

    ckpt = read_any_checkpoint(path, config=config_path, trust=trust)
    if ckpt.family != "munit":
        return describe_family_checkpoint(ckpt, config_path)
    if ckpt.config is not None:
        load_generators(ckpt)  # strict: a config that does not fit the weights fails here, naming the key
    lines = [("file", str(path)), ("family", ckpt.family), ("source format", ckpt.source_format),
             ("iteration", str(ckpt.iteration) if ckpt.iteration is not None else "unknown")]
    if ckpt.source_format == "munit-rt":
        lines.append(("config", "stored in the checkpoint"))
    elif config_path is not None:
        lines.append(("config", f"from --config {config_path}"))
    else:
        inferred = infer_architecture(ckpt.state_dicts, path)
        lines.append(("config", "not stored; pass --config (inferred from tensor shapes: "
                                + " ".join(f"{k}={v}" for k, v in inferred.items()) + ")"))
    if ckpt.config is not None:
        gen = ckpt.config.gen
        lines.append(("  gen", " ".join(f"{k}={getattr(gen, k)}" for k in gen.__dataclass_fields__)))
    channels = {d: _first_conv(ckpt.state_dicts[d], path).shape[1] for d in ("a", "b")}
    lines.append(("domains", ", ".join(f"{d}: {c} channel{'s' if c != 1 else ''}" for d, c in channels.items())))
    width = max(len(label) for label, _ in lines) + 2
    text = [f"{label:<{width}}{value}" for label, value in lines]
    return "\n".join(text + [""] + _parameter_table(ckpt.state_dicts))


def count_parameters(state: dict) -> dict[str, int]:
    """Parameter count per sub-network of one domain's state dict (buffers excluded)."""
    counts = dict.fromkeys(SUBNETS, 0)
    for key, tensor in state.items():
        subnet, leaf = key.split(".", 1)[0], key.rsplit(".", 1)[-1]
        if subnet in counts and leaf not in _BUFFER_LEAVES:
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
        raise UserError(f"{path}: no 'enc_content.model.0.conv.weight'; not a MUNIT generator") from None


def infer_architecture(state_dicts: dict, path: Path) -> dict[str, int]:
    """The architecture values that tensor shapes reveal (activation and padding do not show)."""
    state = state_dicts["a"]

    def indices(pattern: str) -> set[int]:
        return {int(m.group(1)) for key in state if (m := re.fullmatch(pattern, key))}

    first = _first_conv(state, path)
    try:
        mlp_in = state["mlp.model.0.fc.weight"]
    except KeyError:
        raise UserError(f"{path}: no 'mlp.model.0.fc.weight'; not a MUNIT generator") from None
    return {
        "dim": first.shape[0],
        "style_dim": mlp_in.shape[1],
        "n_res": len(indices(r"enc_content\.model\.\d+\.model\.(\d+)\.model\.0\.conv\.weight")),
        "n_downsample": len(indices(r"enc_content\.model\.(\d+)\.conv\.weight")) - 1,
        "mlp_dim": mlp_in.shape[0],
        "input_dim_a": first.shape[1],
        "input_dim_b": _first_conv(state_dicts["b"], path).shape[1],
    }


# --------------------------------------------------------------------------------- CycleGAN, StarGAN
_SUMMARY_KEYS = {"cyclegan": ("input_nc", "output_nc", "ngf", "n_blocks", "norm", "use_dropout"),
                 "stargan": ("image_size", "g_conv_dim", "g_repeat_num", "c_dim", "selected_attrs",
                             "selected_attrs_2")}


def describe_family_checkpoint(ckpt, config_path: str | Path | None) -> str:
    """Family, source, iteration, config (stored, given, or upstream defaults vs. the inferred shapes),
    and parameters per generator. Upstream files without --config never fail on a shape mismatch."""
    from munit_rt.training import cyclegan, stargan
    from munit_rt.training.errors import CheckpointError
    from munit_rt.training.registry import load_generators

    lines = [("file", ", ".join(ckpt.meta.get("files", {}).values()) or str(ckpt.path)), ("family", ckpt.family),
             ("source format", ckpt.source_format),
             ("iteration", str(ckpt.iteration) if ckpt.iteration is not None else "unknown")]
    if ckpt.source_format == "munit-rt" or config_path is not None:
        load_generators(ckpt)  # strict: a config that does not fit the weights fails here, naming the key
        lines.append(("config", "stored in the checkpoint" if ckpt.source_format == "munit-rt"
                      else f"from --config {config_path}"))
    else:
        infer = cyclegan.infer_architecture if ckpt.family == "cyclegan" else stargan.infer_architecture
        inferred = infer(next(iter(ckpt.state_dicts.values())))
        try:
            load_generators(ckpt)
            verdict = "upstream defaults, which fit the weights"
        except CheckpointError:
            verdict = "upstream defaults do NOT fit the weights; pass --config"
        lines.append(("config", f"not stored; {verdict} (inferred from tensor shapes: "
                                + " ".join(f"{k}={v}" for k, v in inferred.items()) + ")"))
    summary = " ".join(f"{key}={_show(getattr(ckpt.config, key))}" for key in _SUMMARY_KEYS[ckpt.family]
                       if getattr(ckpt.config, key) != ())
    lines.append(("  model" if ckpt.source_format == "munit-rt" or config_path else "  defaults", summary))
    if ckpt.family == "cyclegan":
        lines.append(("directions", ", ".join({"G_A": "G_A (A -> B)", "G_B": "G_B (B -> A)"}[k]
                                              for k in ckpt.state_dicts)))
    width = max(len(label) for label, _ in lines) + 2
    text = [f"{label:<{width}}{value}" for label, value in lines]
    counts = {key: sum(t.numel() for k, t in state.items() if k.rsplit(".", 1)[-1] not in _BUFFER_LEAVES)
              for key, state in ckpt.state_dicts.items()}
    rows = [("parameters", ""), *((f"  {key}", str(n)) for key, n in counts.items()),
            ("  total", str(sum(counts.values())))]
    row_width = max(len(label) for label, _ in rows) + 2
    return "\n".join(text + [""] + [f"{label:<{row_width}}{value}".rstrip() for label, value in rows])


def _show(value) -> str:
    return ",".join(value) if isinstance(value, tuple) else str(value)
