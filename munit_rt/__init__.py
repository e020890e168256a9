"""munit-rt runtime: bundle loading, backends and the translate pipeline. Never imports torch.

`munit_rt.Translator(bundle)` gives the bundle family's translator; each family's class is also importable by
its name (`munit_rt.MunitTranslator`, ...), looked up in the family registry (munit_rt.families).
"""
__version__ = "0.1.0"

__all__ = ["Bundle", "Translator", "__version__"]


def __getattr__(name):  # lazy, so `import munit_rt` stays cheap for the CLI
    if name == "Bundle":
        from munit_rt.bundle import Bundle

        return Bundle
    if name == "Translator":
        from munit_rt.translator import Translator

        return Translator
    if name.endswith("Translator"):
        from munit_rt.families import families

        for family in families().values():
            if family.translator.__name__ == name:
                return family.translator
    raise AttributeError(f"module 'munit_rt' has no attribute {name!r}")
