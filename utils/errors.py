"""Errors caused by what the user gave us: main.py prints them as one line."""


class UserError(Exception):
    """Bad input: the message names the problem and the fix."""


class ConfigError(UserError):
    pass


class DataError(UserError):
    pass


class CheckpointError(UserError):
    pass


class ImageError(UserError):
    pass


class ExportError(UserError):
    """A missing or unreadable exported inference model (--mode infer)."""


class TrainingDiverged(UserError):
    pass
