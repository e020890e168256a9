"""Typed error of the export side; the CLI prints it as one `Error: ...` line with exit code 2."""


class ExportError(Exception):
    """A bundle could not be exported (bad graph, failed parity, unwritable or existing output)."""
