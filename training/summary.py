"""Pieces of `munit-rt info` on checkpoints that families share: aligned label/value rows, and the description
of whole-generator checkpoints (CycleGAN, StarGAN), whose upstream files may come without a config."""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Callable, Iterable

from munit_rt.training.errors import CheckpointError
from munit_rt.training.family import Checkpoint
from munit_rt.training.registry import load_generators

# buffers, not parameters (AdaIN placeholders, instance-norm statistics)
BUFFER_LEAVES = ("running_mean", "running_var", "num_batches_tracked")


def format_rows(rows: Iterable[tuple[str, str]]) -> list[str]:
    """`label   value` lines, the values aligned; control characters in a value (a file name, a stored config's
    text) escaped, so each row stays one line."""
    rows = list(rows)
    width = max(len(label) for label, _ in rows) + 2
    return [f"{label:<{width}}{_CONTROL.sub(_escape, str(value))}".rstrip() for label, value in rows]


_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")  # as munit_rt.text


def _escape(match: re.Match) -> str:
    return match.group().encode("unicode_escape").decode("ascii")


def describe_generators(ckpt: Checkpoint, config_path: str | Path | None, *, summary_keys: tuple[str, ...],
                        infer: Callable[[dict], dict[str, Any]], extra_rows: Iterable[tuple[str, str]] = ()) -> str:
    """Family, source, iteration, config (stored, given, inferred, or upstream defaults vs. the inferred shapes), the
    config's `summary_keys`, and parameters per generator. Upstream files without --config never fail on a
    shape mismatch: they say whether the defaults fit."""
    lines = [("file", ", ".join(ckpt.meta.get("files", {}).values()) or str(ckpt.path)), ("family", ckpt.family),
             ("source format", ckpt.source_format),
             ("iteration", str(ckpt.iteration) if ckpt.iteration is not None else "unknown")]
    configured = ckpt.source_format == "munit-rt" or config_path is not None
    if configured:
        load_generators(ckpt)  # strict: a config that does not fit the weights fails here, naming the key
        lines.append(("config", "stored in the checkpoint" if ckpt.source_format == "munit-rt"
                      else f"from --config {config_path}"))
    else:
        inferred = infer(next(iter(ckpt.state_dicts.values())))
        if ckpt.meta.get("config_source") == "inferred":  # the shapes fix the architecture: the config is theirs
            load_generators(ckpt)
            verdict = "the architecture is inferred from the tensor shapes, other keys are upstream defaults"
        else:
            try:
                load_generators(ckpt)
                verdict = "upstream defaults, which fit the weights"
            except CheckpointError:
                verdict = "upstream defaults do NOT fit the weights; pass --config"
        lines.append(("config", f"not stored; {verdict} (inferred from tensor shapes: "
                                + " ".join(f"{k}={v}" for k, v in inferred.items()) + ")"))
    summary = " ".join(f"{key}={_show(getattr(ckpt.config, key))}" for key in summary_keys
                       if getattr(ckpt.config, key) != ())
    inferred_config = ckpt.meta.get("config_source") == "inferred"
    lines.append(("  model" if configured or inferred_config else "  defaults", summary))
    lines += list(extra_rows)
    counts = {key: sum(t.numel() for k, t in state.items() if k.rsplit(".", 1)[-1] not in BUFFER_LEAVES)
              for key, state in ckpt.state_dicts.items()}
    rows = [("parameters", ""), *((f"  {key}", str(n)) for key, n in counts.items()),
            ("  total", str(sum(counts.values())))]
    return "\n".join(format_rows(lines) + [""] + format_rows(rows))


def _show(value: Any) -> str:
    return ",".join(value) if isinstance(value, tuple) else str(value)
