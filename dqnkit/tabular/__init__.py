"""Tabular Q-learning, the baseline of the tutorials: :class:`TabularQ` and a run written to a folder,
:func:`train_tabular`. Torch-free."""
from dqnkit.tabular.learner import EpisodeRecord, TabularConfig, TabularQ
from dqnkit.tabular.run import train_tabular

__all__ = ["TabularQ", "TabularConfig", "EpisodeRecord", "train_tabular"]
