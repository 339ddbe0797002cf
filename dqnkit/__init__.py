"""dqnkit: the DQN family on PyTorch and Gymnasium."""
__version__ = "0.1.0"

import dqnkit.envs  # noqa: E402,F401  (registers GridWorld-v0)
from dqnkit.config import Config  # noqa: E402


def __getattr__(name: str):
    if name == "DQN":
        from dqnkit.api import DQN
        return DQN
    raise AttributeError(name)


__all__ = ["Config", "DQN", "__version__"]
