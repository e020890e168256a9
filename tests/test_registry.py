"""The training-side family registry: discovery of the family packages, one family per name, the default family of
configs without a `family` key, and the layer rule that listing families needs no torch."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import tiny_config_dict  # noqa: E402
from munit_rt.training import registry
from munit_rt.training.config import config_from_dict
from munit_rt.training.errors import ConfigError

REPO = Path(__file__).resolve().parents[1]


def test_discovery_finds_exactly_the_family_packages_without_torch():
    """In a fresh interpreter: the first lookup imports every package under training/families/, nothing else
    registers, and no family imports torch just to be listed."""
    script = "; ".join(["import json, sys", "from munit_rt.training.registry import families", "found = families()",
                        "titles = sorted(f.title for f in found.values())",
                        "print(json.dumps([sorted(found), titles, 'torch' in sys.modules]))"])
    result = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    names, titles, torch_imported = json.loads(result.stdout)
    report = {"names": names, "titles": titles, "torch": torch_imported}
    assert report == {"names": ["cyclegan", "munit", "pix2pix", "stargan"],
                      "titles": ["CycleGAN", "MUNIT", "StarGAN", "pix2pix"], "torch": False}


def test_a_second_family_of_a_name_is_refused(monkeypatch):
    monkeypatch.setattr(registry, "_families", dict(registry.families()))  # this test's registrations stay here
    munit = registry.get_family("munit")
    with pytest.raises(ValueError, match="'munit' is registered already"):
        registry.register(type(munit)())
    assert registry.get_family("munit") is munit

    class Toy(type(munit)):  # a fourth family, registered from a test module alone
        name = "toy"
        default_for_configs = False

    toy = registry.register(Toy())
    assert registry.get_family("toy") is toy and registry.families()["toy"] is toy
    with pytest.raises(ValueError, match="'toy' is registered already"):
        registry.register(Toy())


def test_a_family_whose_config_lacks_what_the_driver_reads_is_refused(monkeypatch):
    import dataclasses

    monkeypatch.setattr(registry, "_families", dict(registry.families()))
    munit = registry.get_family("munit")

    @dataclasses.dataclass(frozen=True)
    class Bare:  # no seed, schedule or logging keys, no to_dict
        dim: int = 8

    class Broken(type(munit)):
        name = "broken"
        default_for_configs = False
        config_class = Bare

    with pytest.raises(ValueError, match=r"'broken': its config class Bare lacks seed, max_iter, batch_size, "
                                         r"log_iter, image_save_iter, snapshot_save_iter, to_dict\(\)"):
        registry.register(Broken())
    assert "broken" not in registry.families()


def test_configs_without_a_family_key_are_the_default_family():
    defaults = [family for family in registry.families().values() if family.default_for_configs]
    assert [family.name for family in defaults] == ["munit"]  # official MUNIT YAMLs carry no `family` key
    config = config_from_dict(tiny_config_dict())
    assert registry.family_of(config) is registry.get_family("munit")
    assert registry.family_for({"family": "stargan"}) is registry.get_family("stargan")
    with pytest.raises(ConfigError, match=r"cfg.yaml: key 'family' is 'nosuchgan'; expected one of cyclegan, munit, "):
        config_from_dict({"family": "nosuchgan"}, source="cfg.yaml")
    with pytest.raises(ConfigError, match="unknown model family 'nosuchgan'"):
        registry.get_family("nosuchgan")


@pytest.mark.parametrize("name", sorted(registry.families()))
def test_a_family_is_named_only_in_its_own_modules(name):
    """The quoted name of a family appears, in the library (munit_rt/, training/, export/), only in that family's
    own modules: its runtime module(s) munit_rt/families/<name>*.py and its package training/families/<name>/."""
    import re

    quoted = re.compile(rf"[\"']{re.escape(name)}[\"']")
    own = (f"munit_rt/families/{name}", f"training/families/{name}/")
    offenders = [path.relative_to(REPO).as_posix() for folder in ("munit_rt", "training", "export")
                 for path in sorted((REPO / folder).rglob("*.py"))
                 if not path.relative_to(REPO).as_posix().startswith(own) and quoted.search(path.read_text())]
    assert not offenders, f"'{name}' named outside its own modules: {', '.join(offenders)}"


def test_a_family_package_supplies_the_methods_the_family_does_not_define(monkeypatch):
    """training.family.CONVENTIONS: a method the family leaves out is the function of that name in its package's
    module, imported on the first call; a module without it leaves the base's default (an abstract method: an
    error naming the module); a method the family defines wins, and its module is never imported."""
    import sys
    import types
    from pathlib import Path

    from munit_rt.training.family import TrainingFamily

    package = "conventional_family"
    modules = {"model": {"build_generator": lambda config, key: ("built", config, key)},
               "upstream": {"detect": lambda obj, path: None}, "graphs": {}}
    for name, functions in modules.items():
        module = types.ModuleType(f"{package}.{name}")
        module.__dict__.update(functions)
        monkeypatch.setitem(sys.modules, module.__name__, module)

    class Conventional(TrainingFamily):
        name, title, package = "conventional", "Conventional", "conventional_family"

        def preprocess(self, config):  # its own: conventional_family.data is never imported
            return "own"

        def model_part(self, config) -> tuple:
            return ()

    family = Conventional()
    assert family.build_generator("cfg", "G") == ("built", "cfg", "G")
    assert family.detect({}, Path("x.pt")) is None and family.upstream_iteration(Path("x.pt")) is None
    assert family.preprocess(None) == "own" and f"{package}.data" not in sys.modules
    with pytest.raises(NotImplementedError, match=rf"{package}\.graphs has no describe_graphs\(\)"):
        family.graphs({}, None)
