"""dqnkit.analysis.compare and compare_runs: the curve agrees with the table, and few seeds get a warning."""
import numpy as np
import pytest

from dqnkit.analysis.compare import MIN_SEEDS
from dqnkit.analysis.plots import compare_runs
from dqnkit.analysis.runs import load_run
from tests.analysis.test_runs_plots_report import make_run


def test_training_return_curve_ends_at_the_tables_training_return(tmp_path):
    folders = [make_run(tmp_path / f"s{seed}", seed=seed) for seed in range(3)]
    ends = [load_run(f).column("episodes", "env_step")[-1] for f in folders]
    assert len(set(ends)) == 3  # the seeds' last episodes end at different env steps
    result = compare_runs(folders, out_dir=tmp_path / "cmp")
    x, y = result["curves"]["compare_train_return.png"]["DQN"]
    assert x[-1] == max(ends)
    # the table: mean over seeds of each seed's last-100-episode mean; the curve's last point is the same number
    table = result["groups"]["DQN"]["final_train_return"]
    by_hand = np.mean([np.mean(load_run(f).column("episodes", "return")[-100:]) for f in folders])
    assert table == pytest.approx(by_hand)
    assert y[-1] == pytest.approx(table, rel=1e-12)


def test_a_seed_that_stopped_early_is_not_stretched_to_the_end(tmp_path):
    long = [make_run(tmp_path / f"s{seed}", seed=seed) for seed in range(2)]
    short = make_run(tmp_path / "short", seed=2, n_episodes=60)
    result = compare_runs([*long, short], out_dir=tmp_path / "cmp")
    x, y = result["curves"]["compare_train_return.png"]["DQN"]
    assert load_run(short).column("episodes", "env_step")[-1] < x[-1] / 2
    # the short seed ended many episodes earlier and takes no part at the end: the last point is the long seeds'
    last = [np.mean(load_run(f).column("episodes", "return")[-100:]) for f in long]
    assert y[-1] == pytest.approx(np.mean(last), rel=1e-12)


def test_fewer_than_five_seeds_warns_that_iqm_and_ci_mean_little(tmp_path):
    two = [make_run(tmp_path / f"dqn{s}", seed=s, evals=[1.0, 10.0 + s]) for s in range(2)]
    five = [make_run(tmp_path / f"ddqn{s}", seed=s, double_q=True, evals=[1.0, 20.0 + s]) for s in range(MIN_SEEDS)]
    result = compare_runs([*two, *five], group_by="double_q", out_dir=tmp_path / "cmp")
    assert len(result["warnings"]) == 1
    warning = result["warnings"][0]
    assert warning.startswith("'double_q=False' has 2 seeds: below 5 seeds the IQM and the 95% CI are not meaningful")
    md = (tmp_path / "cmp" / "comparison.md").read_text()
    assert f"**Warning:** {warning}." in md
    assert "double_q=True' has" not in md
