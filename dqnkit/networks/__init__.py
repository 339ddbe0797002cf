from dqnkit.networks.noisy import NoisyLinear
from dqnkit.networks.qnet import QNetwork
from dqnkit.networks.torsos import MLPTorso, NatureCNN



def pick_torso(choice: str, obs_shape: tuple) -> str:
    """auto: the Nature CNN for image-shaped observations (C, H, W) with H, W >= 36, else an MLP."""
    if choice != "auto":
        return choice
    return "nature_cnn" if len(obs_shape) == 3 and min(obs_shape[1:]) >= 36 else "mlp"


__all__ = ["NoisyLinear", "QNetwork", "MLPTorso", "NatureCNN", "pick_torso"]
