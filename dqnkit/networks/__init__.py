from dqnkit.networks.noisy import NoisyLinear
from dqnkit.networks.qnet import QNetwork
from dqnkit.networks.torsos import MLPTorso, NatureCNN

__all__ = ["NoisyLinear", "QNetwork", "MLPTorso", "NatureCNN"]
