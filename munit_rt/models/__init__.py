"""Models shipped inside the package, by name (`--model default`, `default-cyclegan`, `default-stargan`).

Each is a bundle folder beside this file; a name resolves only if its manifest is installed.
"""
from __future__ import annotations

from pathlib import Path

MODELS_DIR = Path(__file__).resolve().parent
NAMES = ("default", "default-cyclegan", "default-stargan")


def installed_models() -> dict[str, Path]:
    return {name: MODELS_DIR / name for name in NAMES if (MODELS_DIR / name / "manifest.json").is_file()}


def default_model_path(name: str = "default") -> Path | None:
    return installed_models().get(name)
