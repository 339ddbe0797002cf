"""Plots, comparison, policy, video and report through the CLI, on small real runs."""
import base64
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from matplotlib.image import imread

TINY = ["--steps", "1200", "--quiet", "--set", "learning_starts=200", "--set", "eval_freq=400",
        "--set", "eval_episodes=2", "--set", "train_freq=4", "--set", "gradient_steps=1",
        "--set", "policy_kwargs.net_arch=[32,32]"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    from tests.conftest import run_cli
    root = tmp_path_factory.mktemp("viz")
    out = {}
    for name, extra in [("dqn0", ["--seed", "0"]), ("dqn1", ["--seed", "1"]),
                        ("double0", ["--seed", "0", "--set", "double_q=true"]),
                        ("double1", ["--seed", "1", "--set", "double_q=true"])]:
        r = run_cli("train", "--out", root / name, *TINY, *extra)
        assert r.returncode == 0, r.stderr
        out[name] = root / name
    r = run_cli("tabular", "--env", "GridWorld-v0", "--episodes", "400", "--out", root / "tab", "--quiet")
    assert r.returncode == 0, r.stderr
    out["tab"] = root / "tab"
    out["root"] = root
    return out


def test_train_writes_a_report(runs):
    assert (runs["dqn0"] / "report.html").is_file()


def test_plot_writes_decodable_pngs(cli, runs, tmp_path):
    r = cli("plot", runs["dqn0"], runs["dqn1"], "--out", tmp_path / "plots")
    assert r.returncode == 0, r.stderr
    names = {p.name for p in (tmp_path / "plots").glob("*.png")}
    assert {"return.png", "eval_return.png", "loss.png", "mean_q.png", "epsilon.png", "sps.png"} <= names
    img = imread(tmp_path / "plots" / "return.png")
    assert img.shape[:2] == (450, 800) and img.std() > 0.01


def test_compare_groups_double_vs_dqn(cli, runs, tmp_path):
    r = cli("compare", runs["dqn0"], runs["dqn1"], runs["double0"], runs["double1"], "--group-by", "double_q",
            "--out", tmp_path / "cmp")
    assert r.returncode == 0, r.stderr
    table = (tmp_path / "cmp" / "comparison.md").read_text()
    assert "double_q=True" in table and "double_q=False" in table
    assert (tmp_path / "cmp" / "comparison.csv").is_file()
    assert imread(tmp_path / "cmp" / "compare_eval_return.png").std() > 0.01


def test_policy_of_tabular_gridworld_is_optimal(cli, runs):
    r = cli("policy", runs["tab"])
    assert r.returncode == 0, r.stderr
    assert "reaches the goal in 8 steps" in r.stdout
    assert (runs["tab"] / "plots" / "policy.png").is_file()
    # every non-terminal cell's greedy action is optimal: it moves one step closer to the goal
    # along a shortest path that avoids the obstacle (checked by BFS distances)
    from safetensors.numpy import load_file

    import dqnkit.envs  # noqa: F401
    from dqnkit.envs.gridworld import GridWorldEnv
    q = next(iter(load_file(str(runs["tab"] / "qtable.safetensors")).values()))
    env = GridWorldEnv()
    dist = _bfs_distances(env)
    moves = [(-1, 0), (0, 1), (1, 0), (0, -1)]
    for s in range(q.shape[0]):
        pos = env.to_pos(s)
        if env.is_terminal(pos) or dist.get(pos) is None:
            continue
        r_, c_ = pos[0] + moves[int(np.argmax(q[s]))][0], pos[1] + moves[int(np.argmax(q[s]))][1]
        assert dist.get((r_, c_)) == dist[pos] - 1, (pos, int(np.argmax(q[s])))


def _bfs_distances(env):
    goal = tuple(env.goal)
    blocked = {tuple(o) for o in env.obstacles}
    rows, cols = env.grid_shape
    dist, frontier = {goal: 0}, [goal]
    while frontier:
        nxt = []
        for r, c in frontier:
            for dr, dc in [(-1, 0), (0, 1), (1, 0), (0, -1)]:
                p = (r + dr, c + dc)
                if 0 <= p[0] < rows and 0 <= p[1] < cols and p not in blocked and p not in dist:
                    dist[p] = dist[(r, c)] + 1
                    nxt.append(p)
        frontier = nxt
    return dist


def test_policy_rejects_a_non_grid_run(cli, runs):
    r = cli("policy", runs["dqn0"])
    assert r.returncode == 2 and "grid worlds" in r.stderr and "Traceback" not in r.stderr


def test_record_mp4_has_one_frame_per_step(cli, runs):
    import imageio
    r = cli("record", runs["dqn0"], "--episodes", "1")
    assert r.returncode == 0, r.stderr
    mp4 = runs["dqn0"] / "videos" / "agent-episode-0.mp4"
    gif = runs["dqn0"] / "videos" / "agent.gif"
    assert mp4.is_file() and gif.is_file()
    from dqnkit.api import DQN
    model = DQN.load(runs["dqn0"])
    env = model.make_eval_env()
    obs, _ = env.reset(seed=0)
    steps, done = 0, False
    while not done:
        obs, _, term, trunc, _ = env.step(model.predict(obs))
        steps, done = steps + 1, term or trunc
    frames = imageio.get_reader(str(mp4)).count_frames()
    assert frames == steps + 1  # the reset frame plus one per step


def test_report_is_self_contained_with_every_plot(cli, runs):
    r = cli("report", runs["dqn1"])
    assert r.returncode == 0, r.stderr
    html = (runs["dqn1"] / "report.html").read_text()
    pngs = sorted(p.name for p in (runs["dqn1"] / "plots").glob("*.png"))
    assert pngs
    embedded = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', html)
    assert len(embedded) >= len(pngs)
    assert all(base64.b64decode(e)[:8] == b"\x89PNG\r\n\x1a\n" for e in embedded)
    assert not re.search(r'(src|href)\s*=\s*["\']?(https?:)?//', html)


def test_report_renders_in_headless_chromium(cli, runs, tmp_path):
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    assert chromium, "Debian's chromium is needed for this test (.ci/run installs it: apt-get install chromium)"
    r = cli("report", runs["dqn0"])
    assert r.returncode == 0, r.stderr
    shot = tmp_path / "report.png"
    subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                    "--disable-background-networking", "--disable-component-update", "--disable-sync",
                    f"--user-data-dir={tmp_path / 'profile'}", "--hide-scrollbars", "--window-size=1200,1600",
                    f"--screenshot={shot}", (runs["dqn0"] / "report.html").as_uri()],
                   check=True, capture_output=True, timeout=120)
    img = imread(shot)
    assert img.shape[0] >= 1000 and img.shape[1] >= 1000
    # not blank: many distinct colours and real contrast (text, plot lines)
    flat = (img[..., :3] * 255).astype(np.uint8).reshape(-1, 3)
    assert len(np.unique(flat[::37], axis=0)) > 50
    assert img[..., :3].std() > 0.05


def test_compare_writes_beside_the_runs_and_warns_about_few_seeds(cli, runs, tmp_path):
    r = cli("compare", runs["dqn0"], runs["dqn1"], runs["double0"], runs["double1"], "--group-by", "double_q",
            cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert not (tmp_path / "comparison").exists()  # not into the current folder
    out = runs["root"] / "comparison"
    assert (out / "comparison.md").is_file() and (out / "compare_train_return.png").is_file()
    assert f"comparison written to {out}/" in r.stdout
    warnings = [line for line in r.stderr.splitlines() if line.startswith("warning: ")]
    assert len(warnings) == 2 and all("has 2 seeds: below 5 seeds the IQM" in w for w in warnings), r.stderr
    assert "**Warning:** 'double_q=False' has 2 seeds" in (out / "comparison.md").read_text()


def test_policy_pictures_of_two_learners_name_them_and_share_a_scale(cli, runs, tmp_path):
    from dqnkit.analysis.grid_layout import grid_layout, load_qtable
    from dqnkit.analysis.policy import heatmap_values
    from dqnkit.api import DQN
    dqn_run = tmp_path / "dqn_grid"
    shutil.copytree(Path(__file__).resolve().parents[1] / "data" / "v0.1.0" / "dqn_gridworld_v010", dqn_run)
    r = cli("policy", runs["tab"], dqn_run, "--out", tmp_path / "pics")
    assert r.returncode == 0, r.stderr
    assert "## Greedy policy of Tabular Q-learning - GridWorld-v0" in r.stdout
    assert "## Greedy policy of DQN - GridWorld-v0" in r.stdout
    assert (tmp_path / "pics" / "tab" / "policy.png").is_file() and (tmp_path / "pics" / "dqn_grid" / "policy.png").is_file()
    model = DQN.load(dqn_run)
    env = model.make_eval_env()
    values = np.concatenate([heatmap_values(q, grid_layout(env)).ravel()
                             for q in (load_qtable(runs["tab"]), model.q_table())])
    low, high = np.nanmin(values), np.nanmax(values)
    assert f"colour scale: max Q(s, a) from {low:.4g} to {high:.4g}, shared by the 2 pictures" in r.stdout
    r = cli("policy", runs["tab"], dqn_run, "--out", tmp_path / "fixed", "--vmin", "-5", "--vmax", "5")
    assert r.returncode == 0 and "from -5 to 5, shared by the 2 pictures" in r.stdout, r.stderr
    assert "| obstacle |" in r.stdout and "| terminal |" in r.stdout  # GridWorld's key states: obstacle, goal
