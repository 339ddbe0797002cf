"""Helpers shared by the benchmark scripts: self-invoked workers, parallel runs, tables, paths.

Not a benchmark itself. Every script runs its measured work in a fresh ``python <script> --worker ...``
subprocess that prints exactly one JSON line on stdout; the parent collects those lines.
"""
from __future__ import annotations

import json
import math
import os
import platform
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable, Sequence

BENCH_DIR = Path(__file__).resolve().parent
REPO_DIR = BENCH_DIR.parent
RESULTS_DIR = BENCH_DIR / "results"
RUNS_DIR = BENCH_DIR / "runs"


def results_dir(smoke: bool) -> Path:
    """Smoke results go to results/smoke/ (git-ignored) so they never overwrite real ones."""
    path = RESULTS_DIR / "smoke" if smoke else RESULTS_DIR
    path.mkdir(parents=True, exist_ok=True)
    return path


def child_env(threads: int) -> dict[str, str]:
    """Environment for a worker: BLAS/OpenMP pools sized like torch's intra-op pool."""
    env = dict(os.environ)
    env["OMP_NUM_THREADS"] = str(threads)
    env["MKL_NUM_THREADS"] = str(threads)
    env["PYTHONUNBUFFERED"] = "1"
    return env


def run_worker(script: str | Path, args: Sequence[str], threads: int = 1) -> dict[str, Any]:
    """Run ``python script args...`` and return the last JSON line it printed (or an error record)."""
    cmd = [sys.executable, str(script), *map(str, args)]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO_DIR, env=child_env(threads))
    wall = time.perf_counter() - t0
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-15:]
        return {"error": f"exit code {proc.returncode}", "stderr_tail": tail, "cmd": cmd, "process_wall_s": wall}
    out = json.loads(lines[-1])
    out["process_wall_s"] = round(wall, 3)
    return out


def run_many(script: str | Path, arg_lists: list[list[str]], jobs: int = 1, threads: int = 1,
             on_result: Callable[[dict], None] | None = None) -> list[dict]:
    """Run workers, at most ``jobs`` at a time, printing one progress line per finished worker;
    ``on_result`` gets each worker's record as soon as it finishes (e.g. to save it)."""
    total = len(arg_lists)
    done = [0]
    lock = threading.Lock()

    def one(args: list[str]) -> dict:
        res = run_worker(script, args, threads)
        if on_result is not None:
            with lock:
                on_result(res)
        done[0] += 1
        status = res.get("error", "ok")
        print(f"[{done[0]}/{total}] {' '.join(args)} -> {status} ({res.get('process_wall_s', 0):.1f} s)",
              file=sys.stderr, flush=True)
        if "error" in res:
            print("\n".join("    " + ln for ln in res["stderr_tail"]), file=sys.stderr, flush=True)
        return res

    if jobs <= 1:
        return [one(a) for a in arg_lists]
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        return list(pool.map(one, arg_lists))


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (ddof=1; 0 for a single value)."""
    vals = [float(v) for v in values]
    if not vals:
        return math.nan, math.nan
    m = sum(vals) / len(vals)
    if len(vals) == 1:
        return m, 0.0
    return m, math.sqrt(sum((v - m) ** 2 for v in vals) / (len(vals) - 1))


def iqm_ci(values: Sequence[float]) -> dict[str, Any]:
    """n, mean, IQM and the 95% percentile-bootstrap CI of the mean (dqnkit.analysis.stats) of ``values``."""
    from dqnkit.analysis.stats import bootstrap_ci, iqm
    vals = [float(v) for v in values]
    if not vals:
        return {"n": 0, "mean": math.nan, "iqm": math.nan, "ci": [math.nan, math.nan]}
    lo, hi = bootstrap_ci(vals)
    return {"n": len(vals), "mean": sum(vals) / len(vals), "iqm": iqm(vals), "ci": [lo, hi]}


def fmt_iqm_ci(stats: dict[str, Any], digits: int = 1) -> str:
    """``IQM [ci low, ci high]`` as the tables print it."""
    if not stats["n"]:
        return "-"
    lo, hi = stats["ci"]
    return f"{stats['iqm']:.{digits}f} [{lo:.{digits}f}, {hi:.{digits}f}]"


# Settings that benchmarks/preset_tuning.py tuned into some presets on top of their rl-baselines3-zoo entry,
# set back to dqnkit's defaults: with these overrides a preset is rl-zoo's config as published, for the
# benchmarks that compare with Stable-Baselines3 at the same hyperparameters or ablate from rl-zoo's DQN.
# tests/benchmarks/test_zoo_as_published.py checks it against parity.py's copies of the zoo entries.
ZOO_AS_PUBLISHED: dict[str, Any] = {"n_step": 1, "learning_rate_schedule": "constant"}
# zoo keys whose value a preset changed: the zoo's own value, per preset
ZOO_VALUES_RETUNED: dict[str, dict[str, Any]] = {"MountainCar-v0": {"exploration_final_eps": 0.07}}


def zoo_overrides(preset: str) -> dict[str, Any]:
    """The overrides that turn ``preset`` back into rl-zoo's entry as published: :data:`ZOO_AS_PUBLISHED` plus the
    preset's :data:`ZOO_VALUES_RETUNED`. Benchmarks that compare with SB3 or ablate from rl-zoo's DQN pass these."""
    return {**ZOO_AS_PUBLISHED, **ZOO_VALUES_RETUNED.get(preset, {})}


def merge_runs(path: Path, new_runs: list[dict], key: str, rerun: Sequence[str]) -> list[dict]:
    """``--update``: the runs in the results file ``path`` whose ``key`` (``"preset"``, ``"variant"``) is not one
    of ``rerun``, plus ``new_runs``, so a rerun of some rows replaces exactly those rows."""
    if not path.is_file():
        raise SystemExit(f"--update: no earlier results at {path}; run without --update first")
    old = [r for r in json.loads(path.read_text())["runs"] if "error" not in r and r.get(key) not in rerun]
    return old + new_runs


def preset_values(preset: str, *, as_published: bool = False) -> dict[str, Any]:
    """A preset's zoo entry with the zoo's names mapped to dqnkit's (``n_timesteps`` -> ``total_timesteps``, as
    :data:`dqnkit.presets.zoo.ZOO_RENAMES` maps them), so a benchmark can read its budget by dqnkit's name.
    ``as_published``: with :func:`zoo_overrides` on top (rl-zoo's entry without dqnkit's tuning)."""
    from dqnkit.presets import load_preset
    from dqnkit.presets.zoo import ZOO_RENAMES
    values = {ZOO_RENAMES.get(k, k): v for k, v in load_preset(preset).items()}
    if "total_timesteps" in values:
        values["total_timesteps"] = int(values["total_timesteps"])  # yaml's !!float 5e4
    return {**values, **zoo_overrides(preset)} if as_published else values


def population_of_preset(preset: str, seeds: Sequence[int], root: Path, overrides: dict[str, Any], *,
                         episodes: int, eval_seed: int) -> tuple[list[dict], float]:
    """Train ``seeds`` of ``preset`` (plus ``overrides``) as one population with member folders under ``root``,
    then load each member's final ("latest") and best models and evaluate them greedily (``episodes`` episodes,
    reset seeds from ``eval_seed``). Returns one record per member and the population's training wall time."""
    import shutil

    from dqnkit import DQN
    if root.exists():
        shutil.rmtree(root)  # a fresh run each time (our own benchmark folder)
    values = {**preset_values(preset), **overrides, "torch_threads": 1}
    env = values.pop("env_id")
    t0 = time.perf_counter()
    members = DQN.population(env, seeds=list(seeds), run_dir=root, **values).learn()
    train_wall = time.perf_counter() - t0
    records = evaluate_members([(m["seed"], Path(m["run_dir"])) for m in members], int(values["total_timesteps"]),
                               train_wall, episodes=episodes, eval_seed=eval_seed)
    return records, train_wall


def evaluate_population_folder(root: Path, *, episodes: int, eval_seed: int) -> tuple[list[dict], float]:
    """As :func:`population_of_preset`'s evaluation, for a population folder trained before (say, by a benchmark
    that died before writing its results): members and budget from each member's run.json and config.yaml, the
    population's training wall from its aggregate env steps/s."""
    import yaml
    members, budget, wall = [], 0, 0.0
    for folder in sorted((d for d in root.iterdir() if (d / "run.json").is_file()), key=lambda d: d.name):
        info = json.loads((folder / "run.json").read_text())
        if info.get("status") != "finished":
            raise SystemExit(f"{folder}: status {info.get('status')!r}, not a finished member; train it again")
        cfg = yaml.safe_load((folder / "config.yaml").read_text())
        members.append((int(cfg["seed"]), folder))
        budget = int(cfg["total_timesteps"])
        sps = (info.get("population") or {}).get("aggregate_env_steps_per_s")
        wall = max(wall, info["env_step"] * info["population"]["members"] / sps) if sps else wall
    if not members:
        raise SystemExit(f"{root}: no member folders (s0/, s1/, ... with run.json)")
    return evaluate_members(members, budget, wall, episodes=episodes, eval_seed=eval_seed), wall


def evaluate_members(members: Sequence[tuple[int, Path]], budget: int, train_wall: float, *, episodes: int,
                     eval_seed: int) -> list[dict]:
    """One record per ``(seed, run folder)``: its final ("latest") and best models evaluated greedily."""
    from dqnkit import DQN
    records = []
    for seed, run_dir in members:
        rec = {"seed": seed, "budget": budget, "population": len(members),
               "train_wall_s": round(train_wall, 2), "wall_s": round(train_wall / len(members), 2),
               "run_dir": str(Path(run_dir).resolve().relative_to(REPO_DIR))}
        for which, key in (("latest", "final"), ("best", "best")):
            model = DQN.load(run_dir, which=which)
            ev = model.evaluate(episodes, seed=eval_seed)
            if which == "latest":
                rec.update(env_steps=model.num_timesteps, final_std=ev["std_return"], returns=ev["returns"])
            rec[f"{key}_mean"] = ev["mean_return"]
            model.close()
        records.append(rec)
    return records


def fmt(x: Any, digits: int = 1) -> str:
    if x is None:
        return "-"
    if isinstance(x, float):
        return "nan" if math.isnan(x) else f"{x:.{digits}f}"
    return str(x)


def markdown_table(header: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(fmt(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def timed_ms(fn: Callable[[], Any], n: int, warmup: int = 5) -> float:
    """Milliseconds per call of ``fn`` over ``n`` calls, after ``warmup`` calls that are not timed."""
    for _ in range(warmup):
        fn()
    t0 = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - t0) / n * 1e3


def cpu_name() -> str:
    """The CPU's model name: timings from different machines are not comparable, so results say which."""
    from dqnkit.networks.mlp_fastpath import cpuinfo_field
    return cpuinfo_field("model name") or platform.processor() or "unknown"


def machine_info() -> dict[str, Any]:
    import gymnasium
    import torch

    import dqnkit
    info = {"python": platform.python_version(), "platform": platform.platform(), "cpu": cpu_name(),
            "cpu_count": os.cpu_count(),
            "torch": torch.__version__, "gymnasium": gymnasium.__version__, "dqnkit": dqnkit.__version__,
            "time": time.strftime("%Y-%m-%d %H:%M:%S")}
    try:
        rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=REPO_DIR)
        info["git_rev"] = rev.stdout.strip() or None
    except OSError:
        info["git_rev"] = None
    return info


def write_json(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2) + "\n")
    shown = path.resolve().relative_to(REPO_DIR) if path.resolve().is_relative_to(REPO_DIR) else path
    print(f"wrote {shown}", file=sys.stderr)


def exit_with_failures(runs: list[dict]) -> None:
    """Print one ``FAILED:`` line per worker that returned an error record, then exit: 1 if any failed, else 0."""
    failed = [r for r in runs if "error" in r]
    for r in failed:
        print(f"FAILED: {' '.join(r['cmd'][2:])}: {r['error']}", file=sys.stderr)
    sys.exit(1 if failed else 0)
