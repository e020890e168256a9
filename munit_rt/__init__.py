"""munit-rt runtime: bundle loading, backends and the translate pipeline. Never imports torch."""
__version__ = "0.1.0"

__all__ = ["Bundle", "Translator", "MunitTranslator", "CycleGanTranslator", "StarGanTranslator", "__version__"]
_TRANSLATORS = ("Translator", "MunitTranslator", "CycleGanTranslator", "StarGanTranslator")


def __getattr__(name):  # lazy, so `import munit_rt` stays cheap for the CLI
    if name == "Bundle":
        from munit_rt.bundle import Bundle

        return Bundle
    if name in _TRANSLATORS:  # Translator(bundle) returns the family's class
        from munit_rt import translator

        return getattr(translator, name)
    raise AttributeError(f"module 'munit_rt' has no attribute {name!r}")
