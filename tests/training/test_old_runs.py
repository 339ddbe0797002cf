"""Run folders written by dqnkit 0.1.0 as it landed (commit b9753a3) still load, plot, report and resume.

tests/data/v0.1.0/ was written by that version:
- dqn_cartpole_v010: CartPole-v1 with PER and n=3, stopped at env step 1500 of 3000 with its replay saved;
- reference_full: the CSV files of the same run trained to 3000 env steps without a break (written on an AMD
  EPYC; on other CPUs the float columns agree to about 1e-7 relative, so those are compared with a tolerance);
- dqn_gridworld_v010, tabular_gridworld_v010: a DQN and a tabular GridWorld-v0 run (for the policy view).
"""
import csv
import shutil
from pathlib import Path

import numpy as np
import pytest

from dqnkit.api import DQN

DATA = Path(__file__).resolve().parents[1] / "data" / "v0.1.0"


def _rows(path, drop=("sps",)):
    with open(path, newline="") as fh:
        return [{k: v for k, v in row.items() if k not in drop} for row in csv.DictReader(fh)]


@pytest.fixture
def old_run(tmp_path):
    def copy(name):
        dst = tmp_path / name
        shutil.copytree(DATA / name, dst)
        return dst
    return copy


def test_old_run_resumes_to_the_uninterrupted_runs_metrics(old_run, cli):
    run = old_run("dqn_cartpole_v010")
    res = cli("resume", run, "--quiet")
    assert res.returncode == 0, res.stderr
    assert "buffer starts empty" not in res.stderr  # its checkpoint holds the replay
    for name in ("episodes.csv", "eval.csv", "updates.csv"):
        resumed, reference = _rows(run / name), _rows(DATA / "reference_full" / name)
        assert len(resumed) == len(reference), name
        for got, want in zip(resumed, reference):
            assert got.keys() == want.keys(), name
            for key in want:
                if "." in want[key] or "e" in want[key]:  # a float: the last digits may differ across CPUs
                    assert float(got[key]) == pytest.approx(float(want[key]), rel=1e-5, abs=1e-7), (name, key, got)
                else:  # counters (update, env_step, episode, length) and integral returns must match exactly
                    assert got[key] == want[key], (name, key, got)


def test_old_run_loads_evaluates_plots_and_reports(old_run, cli):
    run = old_run("dqn_cartpole_v010")
    model = DQN.load(run)
    assert model.num_timesteps == 1500
    q = model.q_values(np.zeros(4, dtype=np.float32))
    assert q.shape == (2,) and np.isfinite(q).all()
    model.close()
    res = cli("eval", run, "--episodes", "2", "--json")
    assert res.returncode == 0 and '"mean_return"' in res.stdout, res.stderr
    res = cli("plot", run)
    assert res.returncode == 0 and (run / "plots" / "return.png").is_file(), res.stderr
    res = cli("report", run)
    assert res.returncode == 0 and (run / "report.html").is_file(), res.stderr


@pytest.mark.parametrize("name", ["dqn_gridworld_v010", "tabular_gridworld_v010"])
def test_old_grid_runs_show_their_policy(old_run, cli, name):
    run = old_run(name)
    res = cli("policy", run)
    assert res.returncode == 0, res.stderr
    assert list((run / "plots").glob("policy*.png"))
