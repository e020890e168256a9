"""Models shipped inside the package, by name: each folder beside this file holding a bundle (manifest.json)
is an installed model, named by its folder (`default`). Names resolve wherever a bundle is accepted."""
from __future__ import annotations

import os
from pathlib import Path

from munit_rt.errors import InputError

MODELS_DIR = Path(__file__).resolve().parent
DEFAULT_NAME = "default"
MODEL_ENV_VAR = "MUNIT_RT_MODEL"


def installed_models() -> dict[str, Path]:
    if not MODELS_DIR.is_dir():
        return {}
    return {path.name: path for path in sorted(MODELS_DIR.iterdir())
            if path.is_dir() and (path / "manifest.json").is_file()}


def default_model_path(name: str = DEFAULT_NAME) -> Path | None:
    return installed_models().get(name)


def resolve_model(model: Path | str | None) -> Path:
    """A bundle path: `model` when it exists, else the installed model of that name; None: $MUNIT_RT_MODEL,
    else the installed default model."""
    model = model or os.environ.get(MODEL_ENV_VAR)
    if model:
        named = None if Path(model).exists() else default_model_path(str(model))
        return named or Path(model)
    named = default_model_path()
    if named is None:
        raise InputError("no model given and no default model is installed; export one with `munit-rt export "
                         "CKPT` and pass --model X.bundle")
    return named
