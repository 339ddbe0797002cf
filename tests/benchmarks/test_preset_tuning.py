"""benchmarks/preset_tuning.py: a grid trained as one population, its members grouped into cells by config."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import preset_tuning as tuning  # noqa: E402


def test_grid_cells_are_named_by_their_settings_and_judged_against_the_target(tmp_path):
    small = dict(total_timesteps=400, learning_starts=100, eval_freq=200, eval_episodes=1, checkpoint_freq=0,
                 train_freq=4, gradient_steps=1, policy_kwargs={"net_arch": [16]})
    assert tuning.parse_grid(["n_step=1,3", "learning_rate=1e-3", "double_q=true,false",
                              "learning_rate_schedule=linear"]) == {
        "n_step": [1, 3], "learning_rate": [1e-3], "double_q": [True, False], "learning_rate_schedule": ["linear"]}
    tuning.train("CartPole-v1", [0, 1], {"double_q": [False, True]}, small, tmp_path / "pop", threads=1)
    records = tuning.evaluate_folder("CartPole-v1", tmp_path / "pop", episodes=2)
    assert sorted((("double_q=True" in r["cell"]), r["seed"]) for r in records) == [
        (False, 0), (False, 1), (True, 0), (True, 1)]
    plain = {r["cell"] for r in records if "double_q=True" not in r["cell"]}
    assert len(plain) == 1 and "total_timesteps=400" in plain.pop()  # the overrides name the cell too
    rows, md = tuning.summarize("CartPole-v1", records, small)
    assert len(rows) == 2 and all(row["seeds"] == [0, 1] for row in rows)
    for row in rows:
        assert row["final_at_target"] == sum(f >= 500.0 for f in row["finals"])
        assert row["best_at_target"] == sum(b >= 500.0 for b in row["bests"])
    assert "rl-zoo target 500 at 50,000 env steps" in md and md.count("\n| ") == 3  # the header and two cells
