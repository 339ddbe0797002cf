"""Run folders -> Run, plots, comparison table and report.html, on small synthetic folders."""
from __future__ import annotations

import base64
import csv
import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import matplotlib.image as mpimg
import numpy as np
import pytest
import yaml

from dqnkit.errors import CheckpointError
from dqnkit.analysis.plots import DPI, FIGSIZE_IN, compare_runs, plot_runs
from dqnkit.analysis.report import write_report
from dqnkit.analysis.groups import group_runs
from dqnkit.analysis.runs import load_run
from dqnkit.analysis.stats import bootstrap_ci, iqm

REPO = Path(__file__).resolve().parents[2]
PNG_SHAPE = (int(FIGSIZE_IN[1] * DPI), int(FIGSIZE_IN[0] * DPI))  # (rows, cols) = (450, 800)

EPISODES_HEADER = ["env_step", "episode", "return", "length", "epsilon"]
UPDATES_HEADER = ["update", "env_step", "loss", "mean_q", "td_abs_mean", "grad_norm", "learning_rate", "sps"]
EVAL_HEADER = ["env_step", "mean_return", "std_return"]


def write_csv(path: Path, header, rows) -> None:
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(header)
        writer.writerows(rows)


def make_run(
    folder: Path,
    *,
    seed: int = 0,
    double_q: bool = False,
    evals: list[float] | None = (10.0, 20.0, 30.0),
    n_episodes: int = 150,
    updates: bool = True,
    algo: str | None = None,
) -> Path:
    """A run folder in the trainer's format: returns grow with the episode number."""
    folder.mkdir(parents=True)
    config = {"env_id": "CartPole-v1", "seed": seed, "learning_rate": 1e-3, "double_q": double_q,
              "dueling": False, "prioritized_replay": False, "n_step": 1, "noisy": False,
              "distributional": False, "device": "cpu", "policy_kwargs": {"net_arch": [64, 64]}}
    if algo:
        config = {"algo": algo, "env_id": "FrozenLake-v1", "seed": seed, "learning_rate": 0.1}
    (folder / "config.yaml").write_text(yaml.safe_dump(config))
    rng = np.random.default_rng(seed)
    rows, step = [], 0
    for episode in range(n_episodes):
        length = 10 + episode // 3 + int(rng.integers(0, 5))
        step += length
        rows.append([step, episode, float(length), length, max(0.05, 1.0 - step / 5000)])
    write_csv(folder / "episodes.csv", EPISODES_HEADER, rows)
    if updates:
        write_csv(folder / "updates.csv", UPDATES_HEADER,
                  [[u, 100 + 4 * u, 1.0 / (1 + u), 0.01 * u, 0.5, 2.0, 1e-3, 900.0 + u] for u in range(0, step // 4, 50)])
    if evals is not None:
        write_csv(folder / "eval.csv", EVAL_HEADER,
                  [[step * (i + 1) // len(evals), v, 1.5] for i, v in enumerate(evals)])
    return folder


# --------------------------------------------------------------------------- load_run


def test_load_run_reads_columns_config_and_meta(tmp_path):
    folder = make_run(tmp_path / "r")
    (folder / "run.json").write_text(json.dumps({"status": "finished", "dqnkit": "0.1.0"}))
    run = load_run(folder)
    assert run.path == folder and run.name == "r"
    assert run.config["env_id"] == "CartPole-v1" and not run.is_tabular
    assert set(run.episodes) == set(EPISODES_HEADER) and run.episodes["return"].size == 150
    assert run.updates["loss"].dtype == np.float64
    np.testing.assert_allclose(run.eval["mean_return"], [10.0, 20.0, 30.0])
    assert run.meta["status"] == "finished"
    assert run.notes == []


def test_load_run_not_a_run_folder(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(CheckpointError) as err:
        load_run(tmp_path / "empty")
    message = str(err.value)
    assert "empty is not a dqnkit run folder (no config.yaml or episodes.csv)" in message
    assert "dqnkit train" in message and "\n" not in message
    with pytest.raises(CheckpointError, match="does not exist"):
        load_run(tmp_path / "missing")


def test_not_a_run_names_the_runs_inside_a_parent_folder(tmp_path):
    make_run(tmp_path / "runs" / "cartpole_s0")
    with pytest.raises(CheckpointError, match=r"it contains run folders: cartpole_s0; pass one of them"):
        load_run(tmp_path / "runs")


def test_run_without_finished_episodes(tmp_path):
    folder = tmp_path / "young"
    folder.mkdir()
    (folder / "config.yaml").write_text("env_id: CartPole-v1\nseed: 0\n")
    expected = "has no finished episodes yet"
    with pytest.raises(CheckpointError, match=expected):  # no episodes.csv yet
        load_run(folder)
    write_csv(folder / "episodes.csv", EPISODES_HEADER, [])
    with pytest.raises(CheckpointError, match="train longer or wait for the first episode to end"):
        load_run(folder)
    with pytest.raises(CheckpointError, match=expected):
        plot_runs([folder], tmp_path / "plots")
    with pytest.raises(CheckpointError, match=expected):
        write_report(folder)
    assert load_run(folder, require_episodes=False).episodes["return"].size == 0


def test_old_run_missing_files_and_columns_gives_notes(tmp_path):
    folder = tmp_path / "old"
    folder.mkdir()
    # an older version: no config.yaml, no updates/eval, no epsilon or env_step column,
    # and a half-written last line
    (folder / "episodes.csv").write_text("episode,return,length\n0,10,10\n1,12,12\n2,9,9\n3,1")
    run = load_run(folder)
    np.testing.assert_allclose(run.episodes["env_step"], [10, 22, 31])  # cumulative length
    text = " | ".join(run.notes)
    for fragment in ("no config.yaml", "no updates.csv", "no eval.csv", "'epsilon'", "wrong number of fields",
                     "cumulative episode length"):
        assert fragment in text
    paths = plot_runs([folder], tmp_path / "plots")
    names = {p.name for p in paths}
    assert "return.png" in names and "loss.png" not in names and "epsilon.png" not in names
    assert any("'epsilon'" in n for n in paths.notes)


def test_updates_logged_in_bursts_and_nan_columns(tmp_path):
    folder = make_run(tmp_path / "r")
    # two updates per env step (a burst), and a loss column that is NaN everywhere
    write_csv(folder / "updates.csv", UPDATES_HEADER,
              [[u, 100 * (u // 2), "nan", float(u), 0.5, 2.0, 1e-3, 900.0] for u in range(10)])
    run = load_run(folder)
    x, y = run.curve("updates", "mean_q")
    np.testing.assert_allclose(x, [0, 100, 200, 300, 400])
    np.testing.assert_allclose(y, [0.5, 2.5, 4.5, 6.5, 8.5])  # mean of each burst
    paths = plot_runs([folder], tmp_path / "plots")
    assert "loss.png" not in {p.name for p in paths} and "mean_q.png" in {p.name for p in paths}
    assert any("loss.png not written: 'loss' in updates.csv has no finite value" in n for n in paths.notes)


# --------------------------------------------------------------------------- grouping


def test_group_runs_default_and_by_key(tmp_path):
    runs = [load_run(make_run(tmp_path / f"dqn{s}", seed=s)) for s in range(2)]
    runs += [load_run(make_run(tmp_path / f"ddqn{s}", seed=s, double_q=True)) for s in range(3)]
    groups = group_runs(runs)
    assert list(groups) == ["DQN", "Double DQN"]
    assert [len(v) for v in groups.values()] == [2, 3]
    by_key = group_runs(runs, group_by="double_q")
    assert list(by_key) == ["double_q=False", "double_q=True"]
    # same variant, different learning rate: the label says what differs
    other = tmp_path / "lr"
    make_run(other, seed=9)
    cfg = yaml.safe_load((other / "config.yaml").read_text())
    cfg["learning_rate"] = 5e-4
    (other / "config.yaml").write_text(yaml.safe_dump(cfg))
    labels = list(group_runs(runs[:2] + [load_run(other)]))
    assert labels == ["DQN (learning_rate=0.001)", "DQN (learning_rate=0.0005)"]
    assert list(group_runs(runs, group_by="dueling")) == ["dueling=False"]
    assert list(group_runs(runs, group_by="nonexistent")) == ["nonexistent=n/a"]


# --------------------------------------------------------------------------- plots


def test_plot_runs_single_run_writes_decodable_pngs(tmp_path):
    paths = plot_runs(make_run(tmp_path / "r"), tmp_path / "plots")
    names = {p.name for p in paths}
    assert {"return.png", "eval_return.png", "loss.png", "mean_q.png", "epsilon.png", "sps.png"} <= names
    assert "learning_rate.png" not in names  # constant learning rate: nothing to see
    for path in paths:
        assert path.is_file() and path.parent == tmp_path / "plots"
        image = mpimg.imread(path)
        assert image.shape[:2] == PNG_SHAPE
    assert paths.notes == []


def test_plot_runs_missing_updates_is_a_note_not_a_crash(tmp_path):
    folder = make_run(tmp_path / "r", updates=False)
    paths = plot_runs([folder], tmp_path / "plots")
    names = {p.name for p in paths}
    assert {"return.png", "eval_return.png", "epsilon.png"} <= names
    assert not names & {"loss.png", "mean_q.png", "sps.png"}
    assert any("no updates.csv" in n for n in paths.notes)


def test_plot_runs_several_seeds_and_configs(tmp_path):
    folders = [make_run(tmp_path / f"a{s}", seed=s) for s in range(3)]
    folders += [make_run(tmp_path / f"b{s}", seed=s, double_q=True) for s in range(2)]
    paths = plot_runs(folders, tmp_path / "plots")
    assert len(paths) >= 6
    for path in paths:
        assert mpimg.imread(path).shape[:2] == PNG_SHAPE


# --------------------------------------------------------------------------- compare


def test_compare_runs_table_values(tmp_path):
    dqn_finals = [100.0, 110.0, 120.0, 200.0]
    ddqn_finals = [50.0, 60.0, 70.0]
    folders = [make_run(tmp_path / f"dqn{i}", seed=i, evals=[1.0, f]) for i, f in enumerate(dqn_finals)]
    folders += [make_run(tmp_path / f"ddqn{i}", seed=i, double_q=True, evals=[2.0, f])
                for i, f in enumerate(ddqn_finals)]
    result = compare_runs(folders, group_by="double_q", out_dir=tmp_path / "cmp")

    dqn = result["groups"]["double_q=False"]
    assert dqn["n_seeds"] == 4 and dqn["final_returns"] == dqn_finals
    assert dqn["mean"] == pytest.approx(132.5)
    assert dqn["iqm"] == pytest.approx(115.0)  # mean(110, 120)
    assert (dqn["ci_low"], dqn["ci_high"]) == bootstrap_ci(dqn_finals)
    assert dqn["ci_low"] <= dqn["mean"] <= dqn["ci_high"]
    ddqn = result["groups"]["double_q=True"]
    assert ddqn["mean"] == pytest.approx(60.0) and ddqn["iqm"] == pytest.approx(60.0) and ddqn["n_seeds"] == 3

    for path in result["plots"]:
        assert mpimg.imread(path).shape[:2] == PNG_SHAPE
    assert {p.name for p in result["plots"]} == {"compare_eval_return.png", "compare_train_return.png"}

    md = (tmp_path / "cmp" / "comparison.md").read_text()
    assert md == result["markdown"]
    row = next(line for line in md.splitlines() if line.startswith("| double_q=False"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[1:4] == ["4", "132.50", "115.00"]
    assert cells[4] == f"[{dqn['ci_low']:.2f}, {dqn['ci_high']:.2f}]"

    with (tmp_path / "cmp" / "comparison.csv").open(newline="") as fh:
        table = {row["group"]: row for row in csv.DictReader(fh)}
    assert float(table["double_q=True"]["final_return_mean"]) == pytest.approx(60.0)
    assert float(table["double_q=False"]["final_return_iqm"]) == pytest.approx(iqm(dqn_finals))
    assert int(table["double_q=False"]["n_seeds"]) == 4


def test_compare_runs_with_tabular_run_and_run_without_eval(tmp_path):
    dqn = make_run(tmp_path / "dqn", evals=[5.0, 9.0])
    tab = make_run(tmp_path / "tab", algo="tabular", updates=False, evals=[0.5, 1.0])
    no_eval = make_run(tmp_path / "dqn_noeval", seed=1, evals=None)
    result = compare_runs([dqn, tab, no_eval], out_dir=tmp_path / "cmp")
    groups = result["groups"]
    assert set(groups) == {"DQN", "Tabular Q-learning"}
    assert groups["Tabular Q-learning"]["final_returns"] == [1.0]
    assert groups["DQN"]["final_returns"] == [9.0] and groups["DQN"]["n_seeds"] == 1
    assert np.isfinite(groups["DQN"]["final_train_return"])
    assert any("dqn_noeval: no eval row" in n for n in result["notes"])
    assert any("tabular run" in n for n in result["notes"])


# --------------------------------------------------------------------------- report


def _srcs_and_hrefs(page: str) -> list[str]:
    return re.findall(r"""(?:src|href)\s*=\s*["']([^"']*)["']""", page, flags=re.I)


def test_report_is_self_contained(tmp_path):
    folder = make_run(tmp_path / "r")
    (folder / "run.json").write_text(json.dumps({"status": "finished", "dqnkit": "0.1.0"}))
    videos = folder / "videos"
    videos.mkdir()
    (videos / "old.gif").write_bytes(b"GIF89a old")
    (videos / "new.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42 fake mp4")
    old_time = (videos / "new.mp4").stat().st_mtime - 100
    os.utime(videos / "old.gif", (old_time, old_time))

    notes: list[str] = []
    out = write_report(folder, notes=notes)
    assert out == folder / "report.html"
    page = out.read_text(encoding="utf-8")
    plots = sorted((folder / "plots").glob("*.png"))
    assert len(plots) >= 6
    for png in plots:  # every plot is embedded byte for byte
        assert f"data:image/png;base64,{base64.b64encode(png.read_bytes()).decode()}" in page
    refs = _srcs_and_hrefs(page)
    assert refs and all(r.startswith("data:") for r in refs)
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*https?://""", page, flags=re.I)
    assert "http://" not in page and "https://" not in page
    assert "<link" not in page and "<script" not in page and "@import" not in page and "url(" not in page
    # the latest video (mp4, newer than the gif) is embedded as a <video>
    assert f'data:video/mp4;base64,{base64.b64encode((videos / "new.mp4").read_bytes()).decode()}' in page
    assert "data:image/gif" not in page
    # config and metrics are there
    assert "learning_rate" in page and "final greedy return" in page and "finished" in page


def test_report_for_tabular_frozenlake_run_has_policy_and_notes(tmp_path):
    from safetensors.numpy import save_file

    folder = make_run(tmp_path / "tab", algo="tabular", updates=False, evals=[0.2, 1.0])
    q = np.zeros((16, 4), dtype=np.float32)
    q[:, 2] = 1.0  # always right
    save_file({"q_table": q}, str(folder / "qtable.safetensors"))
    (folder / "tabular.json").write_text(json.dumps({"env_id": "FrozenLake-v1", "env_kwargs": {"is_slippery": False}}))
    notes: list[str] = []
    page = write_report(folder, notes=notes).read_text()
    assert "Greedy policy" in page and (folder / "plots" / "policy.png").is_file()
    assert "Greedy policy of Tabular Q-learning - FrozenLake-v1" in page  # which learner made the picture
    policy_b64 = base64.b64encode((folder / "plots" / "policy.png").read_bytes()).decode()
    assert f"data:image/png;base64,{policy_b64}" in page
    assert "loops" in page  # "always right" walks into the wall at (0, 3)
    assert any("no updates.csv" in n for n in notes)
    assert all(r.startswith("data:") for r in _srcs_and_hrefs(page))


# --------------------------------------------------------------------------- no torch


def test_viz_modules_work_without_torch(tmp_path):
    folder = make_run(tmp_path / "r")
    code = textwrap.dedent(
        f"""
        import sys
        class BlockTorch:
            def find_spec(self, name, path=None, target=None):
                if name == "torch" or name.startswith("torch.") or name == "scipy" or name.startswith("scipy."):
                    raise ImportError("blocked for this test: " + name)
        sys.meta_path.insert(0, BlockTorch())
        from dqnkit.analysis import grid_layout, plots, policy, report, runs, stats
        from dqnkit import runfolder, tabular
        paths = plots.plot_runs([{str(folder)!r}], {str(tmp_path / 'p')!r})
        assert paths, "no plots"
        print(report.write_report({str(folder)!r}))
        assert "torch" not in sys.modules and "scipy" not in sys.modules
        """
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip().endswith("report.html")


def test_report_embeds_a_policy_given_by_the_caller_and_extra_pngs(tmp_path):
    import gymnasium as gym

    from dqnkit.analysis.policy import policy_report

    folder = make_run(tmp_path / "dqn")
    q = np.tile(np.array([0.0, 1.0, 0.5, 0.2]), (16, 1))  # e.g. a DQN's Q-values on every state
    png, markdown = policy_report(q, gym.make("FrozenLake-v1", is_slippery=False), tmp_path / "pol")
    (folder / "plots").mkdir()
    custom = folder / "plots" / "my_extra.png"
    custom.write_bytes(png.read_bytes())
    page = write_report(folder, policy=(png, markdown)).read_text()
    assert "Greedy policy" in page and "<table><tr><th>state</th>" in page
    assert page.count(f"data:image/png;base64,{base64.b64encode(png.read_bytes()).decode()}") == 2


def _metrics(folder: Path) -> dict[str, str]:
    from dqnkit.analysis.report import summary_metrics
    return dict(summary_metrics(load_run(folder)))


def test_report_takes_each_figure_from_one_source(tmp_path):
    folder = make_run(tmp_path / "r")
    last_episode = int(load_run(folder).column("episodes", "env_step")[-1])
    last_update_row = int(load_run(folder).column("updates", "update")[-1])
    info = {"status": "finished", "env_step": last_episode + 37, "episodes": 150, "updates": last_update_row + 12,
            "env_steps_per_s": 1234.5, "dqnkit": "0.1.0", "device": "cpu",
            "last_eval": {"mean_return": 30.0, "std_return": 1.5, "env_step": last_episode + 37}}
    (folder / "run.json").write_text(json.dumps(info))
    metrics = _metrics(folder)
    # the run's counters (run.json), not the last CSV rows, which lag behind them
    assert metrics["env steps"] == f"{last_episode + 37:,}"
    assert metrics["gradient updates"] == f"{last_update_row + 12:,}"
    assert metrics["episodes"] == "150" and metrics["env steps / s"] == "1,234.5"
    page = write_report(folder).read_text()
    run_info = page.split("Run info (run.json)</h2>", 1)[1].split("</table>", 1)[0]
    assert "<th>device</th>" in run_info and "<th>dqnkit</th>" in run_info
    for shown_in_final_metrics in ("env_step", "episodes", "updates", "env_steps_per_s", "last_eval"):
        assert f"<th>{shown_in_final_metrics}" not in run_info, shown_in_final_metrics
    # no run.json, or a run still running: the CSV files, saying which row the figure comes from
    info["status"] = "running"
    (folder / "run.json").write_text(json.dumps(info))
    for metrics in (_metrics(folder), _metrics(make_run(tmp_path / "no_info"))):
        assert metrics["env steps (at the last finished episode)"] == f"{last_episode:,}"
        assert metrics["gradient updates (at the last updates.csv row)"] == f"{last_update_row:,}"
        assert "env steps" not in metrics and "gradient updates" not in metrics


def test_report_shows_the_whole_config_without_a_scroll_box(tmp_path):
    folder = make_run(tmp_path / "r")
    page = write_report(folder).read_text()
    style = page.split("<style>", 1)[1].split("</style>", 1)[0]
    assert "overflow" not in style and "max-height" not in style
    config = page.split("<h2>Config</h2>", 1)[1].split("</table>", 1)[0]
    for key in yaml.safe_load((folder / "config.yaml").read_text()):
        assert f"<th>{key}" in config, key
