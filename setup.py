"""Package layout: the repository keeps training/ and export/ beside munit_rt/ (the layout the project asked
for), but the wheel installs one top-level import package: they become munit_rt.training and munit_rt.export.
Everything else lives in pyproject.toml; this file only computes the package list and the directory mapping,
which pyproject's static tables cannot express for nested packages found at install time."""
from setuptools import find_packages, setup

MAPPED = ("training", "export")  # repository folder -> munit_rt.<folder>

packages = find_packages(include=["munit_rt", "munit_rt.*"])
for folder in MAPPED:
    packages += [f"munit_rt.{name}" for name in find_packages(include=[folder, f"{folder}.*"])]

setup(packages=packages, package_dir={f"munit_rt.{folder}": folder for folder in MAPPED})
