"""Typed errors of the training side; each message is one line naming the file or key and what to do."""


class TrainingError(Exception):
    """Base for user-facing errors raised by `training` (the CLI prints them without a traceback)."""


class ConfigError(TrainingError):
    pass


class CheckpointError(TrainingError):
    pass


class DataError(TrainingError):
    pass
