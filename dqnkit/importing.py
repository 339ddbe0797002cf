"""Objects named by import path in a config: env wrappers (``env_wrapper``) and custom networks (``q_network``).

A config stores the path (``'package.module:Name'`` or ``'package.module.Name'``), never a pickle; the object
is imported by name when the run is built or loaded. Imports no torch.
"""
from __future__ import annotations

import importlib
from typing import Any

from dqnkit.errors import ConfigError, DqnkitError, EnvError


def is_import_path(path: Any) -> bool:
    """Whether ``path`` has the shape of ``'package.module:Name'`` or ``'package.module.Name'``."""
    if not isinstance(path, str):
        return False
    module_name, sep, name = path.partition(":")
    if not sep:
        module_name, _, name = path.rpartition(".")
    return bool(module_name) and bool(name)


def import_object(path: str, what: str = "wrapper", error: type[DqnkitError] = EnvError) -> Any:
    """The object named by ``'package.module.Name'`` or ``'package.module:Name'``; ``error`` (one line naming
    the fix) if it cannot be imported."""
    if not is_import_path(path):
        raise ConfigError(f"{what} {path!r} is not an import path; write it as 'package.module:Name'")
    module_name, sep, name = path.partition(":")
    if not sep:
        module_name, _, name = path.rpartition(".")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise error(f"cannot import module {module_name!r} for {what} {path!r} ({reason}); install the package "
                    "that provides it (or put it on PYTHONPATH), or fix the path.") from exc
    try:
        return getattr(module, name)
    except AttributeError:
        raise error(f"module {module_name!r} has no {name!r} (from {what} {path!r}); fix the name.") from None
