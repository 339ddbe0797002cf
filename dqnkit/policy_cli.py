"""``dqnkit policy RUN``: the greedy policy of a grid-world agent, tabular or DQN (seed 003).

Draws arrows over a Q-value heatmap (``policy.png``), prints the Q-values of key states with
the best action marked, and the greedy path from the start with whether it reaches the goal.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from dqnkit.errors import DqnkitError


def q_table_of_run(run: Path) -> tuple[np.ndarray, object]:
    """(Q-table (n_states, n_actions), env) for a tabular run or a DQN run on a Discrete-observation env."""
    from dqnkit.policy_view import load_qtable, make_tabular_env

    if (run / "tabular.json").is_file():
        return load_qtable(run), make_tabular_env(run)
    from dqnkit.api import DQN

    model = DQN.load(run)
    env = model.trainer.make_eval_env()
    raw_space = env.unwrapped.observation_space
    if not hasattr(raw_space, "n"):
        model.close()
        raise DqnkitError(f"{run} was trained on {model.config.env_id}, whose observations are not a small set of "
                          "discrete states; `dqnkit policy` draws grid worlds (GridWorld-v0, FrozenLake, Taxi)")
    q_table = model.q_values(np.arange(int(raw_space.n)) + int(raw_space.start))
    model.close()
    return q_table, env


def show_policy(run: Path, out_dir: Path | None = None) -> int:
    from dqnkit.policy_view import policy_report

    q_table, env = q_table_of_run(run)
    png, markdown = policy_report(q_table, env, out_dir or run / "plots")
    print(markdown)
    print(f"policy plot: {png}")
    return 0
