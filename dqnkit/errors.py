"""User-facing errors: each message names the problem and what to do about it."""


class DqnkitError(Exception):
    """An error caused by user input; the CLI prints it as one line and exits non-zero."""


class ConfigError(DqnkitError, ValueError):
    """A bad config key or value."""


class EnvError(DqnkitError):
    """An environment dqnkit cannot train on (unknown id, continuous actions, ...)."""


class CheckpointError(DqnkitError):
    """A missing, corrupt or incompatible checkpoint or run folder."""


class TrainingDiverged(DqnkitError):
    """The loss became NaN or infinite."""
