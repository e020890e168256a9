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
