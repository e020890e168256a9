"""Checkpoint files: official NVlabs layout, self-describing, never unpickling code.

A munit-rt generator file is an official one with one extra key, so the official `test.py` still reads it:

    gen_%08d.pt   {"a": state_dict, "b": state_dict, "munit_rt": {"format": 1, "family": "munit",
                                                                  "config": {...}, "iteration": N}}
    dis_%08d.pt   {"a": state_dict, "b": state_dict}
    optimizer.pt  {"gen": ..., "dis": ..., plus munit-rt's scheduler and RNG state}

Official files carry no config: the caller passes the official YAML.
"""
from __future__ import annotations

import hashlib
import pickle
import re
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from training.config import MunitConfig, config_from_dict, load_config
from training.errors import CheckpointError

FORMAT_VERSION = 1
META_KEY = "munit_rt"
_ITER_RE = re.compile(r"(?:gen|dis)_(\d{8})\.pt$")


@dataclass
class Checkpoint:
    path: Path
    family: str
    config: MunitConfig | None
    state_dicts: dict[str, dict[str, Any]]
    iteration: int | None
    source_format: str  # "munit-rt" or "official"
    sha256: str = ""
    meta: dict[str, Any] = field(default_factory=dict)


def file_sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def torch_load(path: str | Path, trust: bool = False) -> Any:
    """`torch.load` that never runs pickled code unless the user explicitly trusts the file."""
    import torch

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    try:
        return torch.load(path, map_location="cpu", weights_only=not trust)
    except pickle.UnpicklingError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else "unsafe pickle"
        if "Weights only load failed" in first or "weights_only" in str(exc):
            raise CheckpointError(
                f"{path}: refused, the file contains pickled objects that could run code when loaded; "
                "re-save it as plain tensors, or pass --trust-checkpoint if you trust its author"
            ) from None
        raise CheckpointError(f"{path}: not a PyTorch checkpoint ({first})") from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, ValueError, OSError, AttributeError) as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(f"{path}: not a readable PyTorch checkpoint, truncated or corrupt ({reason[:120]})") from None


def _detect_family(obj: Any) -> str | None:
    if isinstance(obj, dict) and isinstance(obj.get(META_KEY), dict):
        return obj[META_KEY].get("family")
    if isinstance(obj, dict) and {"a", "b"} <= set(obj) and isinstance(obj["a"], dict):
        if any(str(k).startswith(("enc_style.", "enc_content.")) for k in obj["a"]):
            return "munit"
    return None


def read_checkpoint(path: str | Path, config: str | Path | MunitConfig | None = None,
                    trust: bool = False) -> Checkpoint:
    """Open a MUNIT generator checkpoint (munit-rt or official) and resolve its config."""
    path = Path(path)
    obj = torch_load(path, trust=trust)
    family = _detect_family(obj)
    if family is None:
        raise CheckpointError(f"{path}: not a MUNIT generator checkpoint (expected keys 'a' and 'b' with "
                              "enc_style/enc_content weights, as in gen_XXXXXXXX.pt)")
    if family != "munit":
        raise CheckpointError(f"{path}: checkpoint of family '{family}', this command expects 'munit'")
    meta = obj.get(META_KEY) or {}
    given = load_config(config) if isinstance(config, (str, Path)) else config
    if meta:
        stored = config_from_dict(meta.get("config", {}), source=f"{path} (stored config)")
        if given is not None and _model_part(given) != _model_part(stored):
            raise CheckpointError(f"{path}: --config disagrees with the config stored in the checkpoint; "
                                  "leave --config out for munit-rt checkpoints")
        resolved, source_format = stored, "munit-rt"
        iteration = meta.get("iteration")
    else:
        resolved, source_format = given, "official"
        match = _ITER_RE.search(path.name)
        iteration = int(match.group(1)) if match else None
    return Checkpoint(path=path, family=family, config=resolved,
                      state_dicts={"a": obj["a"], "b": obj["b"]}, iteration=iteration,
                      source_format=source_format, sha256=file_sha256(path), meta=meta)


def _model_part(config: MunitConfig) -> tuple:
    return (config.gen, config.input_dim_a, config.input_dim_b)


def load_generators(ckpt: Checkpoint) -> dict[str, Any]:
    """Build both AdaINGen modules from the checkpoint's config and load the weights strictly."""
    from training.munit import AdaINGen
    from training.official import load_state_dict_strict, remap_munit

    if ckpt.config is None:
        raise CheckpointError(f"{ckpt.path}: official checkpoint without a config; pass the YAML it was "
                              "trained with (--config CFG.yaml)")
    gens = {}
    for domain in ("a", "b"):
        gen = AdaINGen(ckpt.config.input_dim(domain), ckpt.config.gen)
        state = remap_munit(ckpt.state_dicts[domain], gen)
        load_state_dict_strict(gen, state, f"{ckpt.path} [domain {domain}]")
        gens[domain] = gen.eval()
    return gens


def save_generators(path: str | Path, gens: dict[str, Any], config: MunitConfig, iteration: int) -> None:
    """Write gen_XXXXXXXX.pt atomically (temporary name, then rename)."""
    payload = {
        "a": gens["a"].state_dict(),
        "b": gens["b"].state_dict(),
        META_KEY: {"format": FORMAT_VERSION, "family": "munit", "config": config.to_dict(),
                   "iteration": int(iteration)},
    }
    atomic_torch_save(payload, path)


def atomic_torch_save(obj: Any, path: str | Path) -> None:
    import os

    import torch

    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        torch.save(obj, tmp)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
