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

from munit_rt.training.config import MunitConfig, config_from_dict, load_config
from munit_rt.training.errors import CheckpointError

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
        # Only a pickled class/function is "unsafe"; random bytes also end up as a weights-only failure.
        if "Unsupported global" in str(exc):
            raise CheckpointError(
                f"{path}: refused, the file contains pickled objects that could run code when loaded; "
                "re-save it as plain tensors, or pass --trust-checkpoint if you trust its author"
            ) from None
        raise CheckpointError(f"{path}: not a PyTorch checkpoint (unreadable pickle data)") from None
    # KeyError/IndexError/TypeError: what the legacy (non-zip) reader raises on text or random bytes
    except (RuntimeError, EOFError, zipfile.BadZipFile, ValueError, OSError, AttributeError, KeyError,
            IndexError, TypeError) as exc:
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
    from munit_rt.training.munit import AdaINGen
    from munit_rt.training.official import load_state_dict_strict, remap_munit

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


# ----------------------------------------------------------------------------------- every family
# munit-rt files of CycleGAN and StarGAN follow the MUNIT layout: generator state dicts under their
# upstream names plus the "munit_rt" block.
#
#     cyclegan_%08d.pt  {"G_A": sd, "G_B": sd, "munit_rt": {"format", "family": "cyclegan", "config", "iteration"}}
#     stargan_%08d.pt   {"G": sd, "munit_rt": {..., "family": "stargan", ...}}
#
# Upstream files are one plain generator state dict each: junyanz `latest_net_G_A.pth` (G_A: A -> B) and
# `latest_net_G_B.pth` (G_B: B -> A), given alone or as a pair; yunjey `200000-G.ckpt`. They store no
# config: the caller's config is used, else the upstream defaults (CycleGAN ngf 64, 9 blocks, instance
# norm; StarGAN conv_dim 64, c_dim 5, repeat_num 6).
_UPSTREAM_ITER_RE = re.compile(r"(\d+)-G\.ckpt$")  # yunjey names files by iteration


def read_any_checkpoint(path: str | Path | tuple | list, config: Any = None, trust: bool = False) -> Checkpoint:
    """Open a generator checkpoint of any family, munit-rt or upstream, and resolve its config.

    `path` may be a pair of upstream CycleGAN files (G_A and G_B). `config` is a YAML path or a config
    object; for munit-rt files it must agree with the stored one. MUNIT files go through `read_checkpoint`.
    """
    paths = [Path(p) for p in path] if isinstance(path, (list, tuple)) else [Path(path)]
    if not 1 <= len(paths) <= 2:
        raise CheckpointError(f"expected one checkpoint file or a G_A/G_B pair, got {len(paths)} files")
    loaded = [(p, torch_load(p, trust=trust)) for p in paths]
    families = [_detect_any_family(p, obj) for p, obj in loaded]
    if len(paths) == 2 and families != ["cyclegan-official", "cyclegan-official"]:
        raise CheckpointError(f"{paths[0]}, {paths[1]}: only upstream CycleGAN generators come in pairs "
                              "(latest_net_G_A.pth with latest_net_G_B.pth)")
    family = families[0]
    if family == "munit":
        return read_checkpoint(paths[0], config=config, trust=trust)  # loads the file again; MUNIT rules apply
    if family.endswith("-official"):
        return _upstream_checkpoint(loaded, family.removesuffix("-official"), config)
    try:
        return _munit_rt_checkpoint(paths[0], loaded[0][1], family, config)
    except CheckpointError as exc:  # say which family the file claims before what is wrong with it
        reason = str(exc).removeprefix(f"{paths[0]}: ")
        raise CheckpointError(f"{paths[0]}: cannot read this munit-rt checkpoint of family '{family}': {reason}") from None


def _detect_any_family(path: Path, obj: Any) -> str:
    """'munit', '<family>' for munit-rt files, '<family>-official' for upstream ones; else a CheckpointError."""
    from munit_rt.training.official import detect_upstream_family

    family = _detect_family(obj)
    if family is not None:
        return family
    if isinstance(obj, dict) and {"a", "b"} <= set(obj):
        return "munit"  # read_checkpoint says what is wrong with it
    upstream = detect_upstream_family(obj) if isinstance(obj, dict) else None
    if upstream in ("cyclegan", "stargan"):
        return f"{upstream}-official"
    if upstream is not None:
        raise CheckpointError(f"{path}: an upstream {upstream.split('-')[0]} discriminator; pass the generator "
                              "file (latest_net_G_A.pth / NNNNNN-G.ckpt)")
    raise CheckpointError(f"{path}: not a MUNIT generator checkpoint (gen_XXXXXXXX.pt), nor a CycleGAN or StarGAN "
                          "generator (munit-rt cyclegan_/stargan_XXXXXXXX.pt, upstream latest_net_G_A.pth / "
                          "latest_net_G_B.pth, NNNNNN-G.ckpt)")


def _resolve_config(config: Any, family: str, source: str):
    from munit_rt.training.config import FAMILY_CONFIGS, load_any_config

    if config is None or isinstance(config, FAMILY_CONFIGS[family]):
        return config
    if isinstance(config, (str, Path)):
        return load_any_config(config, family=family)
    raise CheckpointError(f"{source}: a {family} checkpoint, but the config is a {type(config).__name__}")


def _munit_rt_checkpoint(path: Path, obj: dict, family: str, config: Any) -> Checkpoint:
    from munit_rt.training.config import FAMILY_CONFIGS, family_config_from_dict
    from munit_rt.training.registry import FAMILIES

    if family not in FAMILY_CONFIGS:
        raise CheckpointError(f"{path}: checkpoint of unknown family '{family}' (written by a newer munit-rt?)")
    meta = obj[META_KEY]
    if meta.get("format") != FORMAT_VERSION:
        raise CheckpointError(f"{path}: munit-rt checkpoint format {meta.get('format')!r}, this version reads "
                              f"format {FORMAT_VERSION}")
    stored = family_config_from_dict(meta.get("config", {}), source=f"{path} (stored config)", family=family)
    given = _resolve_config(config, family, str(path))
    spec = FAMILIES[family]
    if given is not None and spec.model_part(given) != spec.model_part(stored):
        raise CheckpointError(f"{path}: --config disagrees with the config stored in the checkpoint; "
                              "leave --config out for munit-rt checkpoints")
    missing = [key for key in spec.weight_keys if key not in obj]
    if missing:
        raise CheckpointError(f"{path}: {family} checkpoint without the '{missing[0]}' weights")
    return Checkpoint(path=path, family=family, config=stored,
                      state_dicts={key: obj[key] for key in spec.weight_keys},
                      iteration=meta.get("iteration"), source_format="munit-rt", sha256=file_sha256(path),
                      meta=meta)


def _upstream_checkpoint(loaded: list[tuple[Path, dict]], family: str, config: Any) -> Checkpoint:
    from munit_rt.training.config import FAMILY_CONFIGS
    from munit_rt.training.official import clean_state_dict

    first = loaded[0][0]
    given = _resolve_config(config, family, str(first))
    state_dicts, files = {}, {}
    for path, obj in loaded:
        key = ("G_B" if "G_B" in path.name else "G_A") if family == "cyclegan" else "G"
        if key in state_dicts:
            raise CheckpointError(f"{files[key]}, {path}: both files hold {key}; name them *_G_A.pth and *_G_B.pth")
        state_dicts[key], files[key] = clean_state_dict(dict(obj)), str(path)
    match = _UPSTREAM_ITER_RE.search(first.name) if family == "stargan" else None
    digest = hashlib.sha256("".join(file_sha256(p) for p, _ in loaded).encode()).hexdigest() \
        if len(loaded) > 1 else file_sha256(first)
    return Checkpoint(path=first, family=family, config=given if given is not None else FAMILY_CONFIGS[family](),
                      state_dicts=dict(sorted(state_dicts.items())), iteration=int(match.group(1)) if match else None,
                      source_format="official", sha256=digest,
                      meta={"files": files, "config_source": "given" if given is not None else "defaults"})


def save_family_checkpoint(path: str | Path, family: str, generators: dict[str, Any], config: Any,
                           iteration: int) -> None:
    """Write `<family>_XXXXXXXX.pt` atomically: generator state dicts under their upstream names + config."""
    from munit_rt.training.registry import FAMILIES

    keys = FAMILIES[family].weight_keys
    if set(generators) != set(keys):
        raise ValueError(f"a {family} checkpoint holds {', '.join(keys)}; got {', '.join(generators)}")
    payload = {key: (gen.state_dict() if hasattr(gen, "state_dict") else gen) for key, gen in generators.items()}
    payload[META_KEY] = {"format": FORMAT_VERSION, "family": family, "config": config.to_dict(),
                         "iteration": int(iteration)}
    atomic_torch_save(payload, path)
