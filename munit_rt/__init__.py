"""munit-rt runtime: bundle loading, backends and the translate pipeline. Never imports torch."""
__version__ = "0.1.0"

__all__ = ["Bundle", "Translator", "__version__"]


def __getattr__(name):  # lazy, so `import munit_rt` stays cheap for the CLI
    if name == "Bundle":
        from munit_rt.bundle import Bundle

        return Bundle
    if name == "Translator":
        from munit_rt.translator import Translator

        return Translator
    raise AttributeError(f"module 'munit_rt' has no attribute {name!r}")
