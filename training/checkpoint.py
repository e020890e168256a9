"""Generator checkpoint files of every family: self-describing munit-rt files and plain upstream ones, never
unpickling code.

A munit-rt generator file is the upstream layout plus one block, so upstream tools still read it:

    {<generator key>: state_dict, ..., "munit_rt": {"format": 1, "family": NAME, "config": {...}, "iteration": N}}

    gen_%08d.pt        keys a, b    (MUNIT; official NVlabs names)
    cyclegan_%08d.pt   keys G_A, G_B
    stargan_%08d.pt    key G
    pix2pix_%08d.pt    key G

Plain files carry no config and no family: each registered family's `detect` says whether a file is one of its
upstream files (official NVlabs gen_*.pt, junyanz latest_net_G_A.pth / _G_B.pth / latest_net_G.pth, yunjey
NNNNNN-G.ckpt). The caller passes the config they were trained with; without one, the family's
`upstream_config` decides: upstream's defaults, a config inferred from the tensor shapes, or none (an error).
"""
from __future__ import annotations

import hashlib
import os
import pickle
import re
import zipfile
from pathlib import Path
from typing import Any

from munit_rt.training import registry
from munit_rt.training.config import config_from_dict, load_config
from munit_rt.training.errors import CheckpointError, ConfigError
from munit_rt.training.family import Checkpoint, Detection, TrainingFamily
from munit_rt.training.weights import clean_state_dict

FORMAT_VERSION = 1
META_KEY = "munit_rt"


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
        if _names_pickled_code(str(exc)):
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


# How torch's weights-only unpickler words a refused global, class or call, across versions: "Unsupported global:
# GLOBAL x.y was not an allowed global", "Trying to load unsupported GLOBAL posix.system whose module posix is
# blocked" (torch 2.14 for os/sys), "Trying to call reduce for unrecognized function", "Can only create new object
# for nn.Parameter or classes allowlisted". Random bytes give "Unsupported operand NN" instead.
_PICKLED_CODE = re.compile(r"\bglobal\b|unrecognized function|allowlist", re.IGNORECASE)


def _names_pickled_code(message: str) -> bool:
    """Whether a weights-only UnpicklingError refused a pickled class or function (not corrupt data)."""
    return _PICKLED_CODE.search(message) is not None


def atomic_torch_save(obj: Any, path: str | Path) -> None:
    """torch.save under a temporary name, then a rename: readers never see half a file."""
    import torch

    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        torch.save(obj, tmp)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def save_checkpoint(path: str | Path, family: str | TrainingFamily, generators: dict[str, Any], config: Any,
                    iteration: int) -> None:
    """Write a munit-rt generator file atomically: each generator's state dict (modules or state dicts) under its
    key, then the block with the family, the config and the iteration."""
    spec = registry.get_family(family) if isinstance(family, str) else family
    if set(generators) != set(spec.generator_keys):
        raise ValueError(f"a {spec.name} checkpoint holds {', '.join(spec.generator_keys)}; "
                         f"got {', '.join(generators)}")
    payload = {key: (gen.state_dict() if hasattr(gen, "state_dict") else gen) for key, gen in generators.items()}
    payload[META_KEY] = {"format": FORMAT_VERSION, "family": spec.name, "config": config.to_dict(),
                         "iteration": int(iteration)}
    atomic_torch_save(payload, path)


# ----------------------------------------------------------------------------------------------- reading

def read_checkpoint(path: str | Path | tuple | list, config: Any = None, trust: bool = False) -> Checkpoint:
    """Open a generator checkpoint of any family, munit-rt or upstream, and resolve its config.

    `path` may be a pair of upstream files of a family that takes pairs (CycleGAN's G_A and G_B). `config` is a
    YAML path or a config object; for munit-rt files it must agree with the stored one.
    """
    paths = [Path(p) for p in path] if isinstance(path, (list, tuple)) else [Path(path)]
    if not 1 <= len(paths) <= 2:
        raise CheckpointError(f"expected one checkpoint file or an upstream pair, got {len(paths)} files")
    loaded = [(p, torch_load(p, trust=trust)) for p in paths]
    metas = [_munit_rt_block(obj) for _, obj in loaded]
    if len(paths) == 1 and metas[0] is not None:
        try:
            return _munit_rt_checkpoint(paths[0], loaded[0][1], metas[0], config)
        except CheckpointError as exc:  # say which family the file claims before what is wrong with it
            reason = str(exc).removeprefix(f"{paths[0]}: ")
            raise CheckpointError(f"{paths[0]}: cannot read this munit-rt checkpoint of family "
                                  f"'{metas[0]['family']}': {reason}") from None
    detections = [_detect(p, obj) for (p, obj), meta in zip(loaded, metas) if meta is None]
    if len(paths) == 2 and not (len(detections) == 2 and detections[0].family == detections[1].family
                                and registry.get_family(detections[0].family).pair_files):
        pairs = [f for f in registry.families().values() if f.pair_files]
        raise CheckpointError(f"{paths[0]}, {paths[1]}: only upstream {' or '.join(f.title for f in pairs)} "
                              f"generators come in pairs ({'; '.join(f.pair_files for f in pairs)})")
    return _upstream_checkpoint(loaded, detections, config)


def _munit_rt_block(obj: Any) -> dict | None:
    if isinstance(obj, dict) and isinstance(obj.get(META_KEY), dict) and "family" in obj[META_KEY]:
        return obj[META_KEY]
    return None


def _munit_rt_checkpoint(path: Path, obj: dict, meta: dict, config: Any) -> Checkpoint:
    try:
        family = registry.get_family(meta["family"])
    except ConfigError:
        raise CheckpointError(f"{path}: checkpoint of unknown family {meta['family']!r} (written by a newer "
                              "munit-rt?)") from None
    if meta.get("format") != FORMAT_VERSION:
        raise CheckpointError(f"{path}: munit-rt checkpoint format {meta.get('format')!r}, this version reads "
                              f"format {FORMAT_VERSION}")
    stored = config_from_dict(meta.get("config", {}), source=f"{path} (stored config)", family=family.name)
    given = _resolve_config(config, family, str(path))
    if given is not None and family.model_part(given) != family.model_part(stored):
        raise CheckpointError(f"{path}: --config disagrees with the config stored in the checkpoint; "
                              "leave --config out for munit-rt checkpoints")
    # a given config that fits the weights is used: it may set what they do not fix (pix2pix's test mode, say)
    missing = [key for key in family.generator_keys if key not in obj]
    if missing:
        raise CheckpointError(f"{path}: {family.name} checkpoint without the '{missing[0]}' weights")
    return Checkpoint(path=path, family=family.name, config=stored if given is None else given,
                      state_dicts={key: obj[key] for key in family.generator_keys},
                      iteration=meta.get("iteration"), source_format="munit-rt", sha256=file_sha256(path),
                      meta={**meta, "config_source": "stored" if given is None else "given"})


def _detect(path: Path, obj: Any) -> Detection:
    """The first family that recognises a generator in the plain file; a file only refused (by one family or
    several, whose lines are joined) and unknown files are CheckpointErrors."""
    refusals = []
    for family in registry.families().values():
        found = family.detect(obj, path)
        if found is not None and not found.refusal:
            return found
        if found is not None:
            refusals.append(found.refusal)
    if refusals:
        raise CheckpointError(f"{path}: {'; or '.join(refusals)}")
    first = registry.default_family()  # the family most files are: named first
    others = "".join(f", nor a {f.title} generator ({f.checkpoint_names})" for f in registry.families().values()
                     if f is not first)
    raise CheckpointError(f"{path}: not a {first.title} generator checkpoint ({first.checkpoint_names}){others}")


def _resolve_config(config: Any, family: TrainingFamily, source: str):
    if config is None or isinstance(config, family.config_class):
        return config
    if isinstance(config, (str, Path)):
        return load_config(config, family=family.name)
    raise CheckpointError(f"{source}: a {family.name} checkpoint, but the config is a {type(config).__name__}")


def _upstream_checkpoint(loaded: list[tuple[Path, Any]], detections: list[Detection], config: Any) -> Checkpoint:
    family = registry.get_family(detections[0].family)
    first = loaded[0][0]
    given = _resolve_config(config, family, str(first))
    state_dicts: dict[str, Any] = {}
    files: dict[str, str] = {}
    for (path, obj), found in zip(loaded, detections):
        held = {found.key: clean_state_dict(dict(obj))} if found.key is not None else \
            {key: obj[key] for key in family.generator_keys}
        for key, state in held.items():
            if key in state_dicts:
                raise CheckpointError(f"{files[key]}, {path}: both files hold {key}; a pair is "
                                      f"{family.pair_files}")
            state_dicts[key], files[key] = state, str(path)
    if given is None:
        resolved, config_source = family.upstream_config(state_dicts)
    else:
        resolved, config_source = given, "given"
    digest = hashlib.sha256("".join(file_sha256(p) for p, _ in loaded).encode()).hexdigest() \
        if len(loaded) > 1 else file_sha256(first)
    return Checkpoint(path=first, family=family.name, config=resolved,
                      state_dicts=dict(sorted(state_dicts.items())), iteration=family.upstream_iteration(first),
                      source_format="official", sha256=digest, meta={"files": files, "config_source": config_source})


def source_files(ckpt: Checkpoint) -> dict[str, Any]:
    """Where the config came from and every file with its own sha256 and the generators it holds (the
    `source_checkpoint` details of CycleGAN and StarGAN manifests, docs/bundle-format.md)."""
    by_file: dict[str, list[str]] = {}
    for key in ckpt.state_dicts:
        by_file.setdefault(ckpt.meta.get("files", {}).get(key, str(ckpt.path)), []).append(key)
    files = []
    for path_text, keys in by_file.items():
        path = Path(path_text)
        digest = ckpt.sha256 if len(by_file) == 1 else file_sha256(path)
        files.append({"name": path.name, "path": str(path.resolve()), "sha256": digest, "generators": keys})
    config_source = ckpt.meta.get("config_source", "given")
    return {"config_source": config_source, "files": files}
