"""Ray, imported lazily: the extra to install when it is missing, connecting to a cluster within a time limit,
and the actors' exploration rates of Ape-X."""
from __future__ import annotations

import socket
import threading
from typing import Any

from dqnkit.errors import ConfigError, DqnkitError

CONNECT_TIMEOUT_S = 30.0


def require_ray() -> Any:
    """The ``ray`` module, or a one-line error naming the extra to install."""
    try:
        import ray
    except ImportError:
        raise DqnkitError("--distributed ray needs Ray: pip install 'dqnkit[ray]'") from None
    return ray


def actor_epsilons(n_actors: int, base: float = 0.4, alpha: float = 7.0) -> list[float]:
    """Ape-X's fixed per-actor epsilons (Horgan et al. 2018, Sec. 4.1): eps_i = base ** (1 + alpha * i / (N - 1));
    one actor explores with ``base``."""
    if n_actors < 1:
        raise ConfigError(f"actors must be >= 1, got {n_actors}")
    if n_actors == 1:
        return [float(base)]
    return [float(base ** (1.0 + alpha * i / (n_actors - 1))) for i in range(n_actors)]


def split_address(address: str) -> tuple[str, int] | None:
    """(host, port) of a ``HOST:PORT`` address (``ray://`` prefix allowed); None for 'auto' and local names."""
    addr = address.removeprefix("ray://")
    host, sep, port = addr.rpartition(":")
    if not sep or not port.isdigit() or not host:
        return None
    return host.strip("[]"), int(port)


def connect(address: str | None, *, num_cpus: int | None = None, timeout_s: float = CONNECT_TIMEOUT_S) -> Any:
    """Start a local Ray (``address`` None) or connect to a cluster (``'auto'``, ``HOST:PORT``); an address that does
    not answer fails within ``timeout_s`` with one line. Reuses a Ray already initialised in this process."""
    ray = require_ray()
    if address is not None:
        where = split_address(address)
        if where is not None:  # a TCP check first: ray.init would retry an unreachable GCS for minutes
            try:
                socket.create_connection(where, timeout=min(timeout_s, 10.0)).close()
            except OSError as exc:
                raise DqnkitError(f"cannot reach a Ray cluster at {address} ({exc}); start one with "
                                  "`ray start --head` there or check --ray-address") from None
    if ray.is_initialized():
        return ray
    kwargs: dict = {"include_dashboard": False, "log_to_driver": False, "configure_logging": False}
    if address is None:
        kwargs["num_cpus"] = num_cpus
    if address is None:  # a local start does not hang; ray.init stays in the main thread (its signal handlers)
        ray.init(**kwargs)
        return ray
    outcome: dict = {}

    def init() -> None:
        try:
            ray.init(address=address, **kwargs)
        except Exception as exc:  # noqa: BLE001 - reported below as one line
            outcome["error"] = exc

    worker = threading.Thread(target=init, daemon=True)
    worker.start()
    worker.join(timeout_s)
    if worker.is_alive():
        raise DqnkitError(f"no answer from the Ray cluster at {address or 'local'} within {timeout_s:.0f} s; "
                          "check --ray-address (or leave it out to start a local Ray)")
    if "error" in outcome:
        exc = outcome["error"]
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DqnkitError(f"cannot connect to Ray at {address or 'local'}: {first}; check --ray-address "
                          "(or leave it out to start a local Ray)") from None
    return ray
