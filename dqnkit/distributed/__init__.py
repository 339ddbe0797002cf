"""Ape-X on Ray Core (Horgan et al. 2018): actors that step envs, a sharded replay and the learner in the driver.

``cluster.py`` (the lazy ``ray`` import, connecting with a time limit, the actors' epsilons), ``actor.py`` (the
Ray actor: its own vector env and CPU network copy, chunks of transitions), ``shards.py`` (one ``ReplayBuffer``
per actor and the shard picking), ``learner.py`` (``ApexTrainer``: the single-process ``Trainer`` with its
acting replaced by the actors' chunks) and ``fleet.py`` (the actors seen from the learner: chunks in flight, weights, restarts, actors.csv rows). Nothing here
imports ``ray`` at module level: without it, only ``--distributed ray`` fails, with the extra to install.
"""
