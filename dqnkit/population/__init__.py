"""Population training: many seeds and hyperparameter variants of one architecture in one process.

``members.py`` turns seeds and a grid into member configs (split into groups where a setting changes tensor
shapes), ``agent.py`` is the batched learner, ``optim.py`` the per-member optimizers and clipping,
``trainer.py`` the loop that writes one ordinary run folder per member.
"""
