"""Typed errors of the runtime; each message is one line naming the file or option and what to do."""


class MunitRtError(Exception):
    """Base for user-facing runtime errors (the CLI prints them without a traceback)."""


class BundleError(MunitRtError):
    pass


class BackendUnavailable(MunitRtError):
    def __init__(self, backend: str, reason: str, hint: str = ""):
        self.backend = backend
        super().__init__(f"backend '{backend}' is not available: {reason}" + (f"; {hint}" if hint else ""))


class InputError(MunitRtError):
    pass


def one_line_reason(exc: BaseException) -> str:
    """An exception as the one-line reason of a failed input: our own errors as they read, others with their
    type (a library's message alone can be cryptic)."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    if isinstance(exc, MunitRtError) and text:
        return text
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
