"""``dqnkit plot | compare | policy | record | report``: looking at what a run learned."""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np


def write_report_quietly(run_dir: Path, quiet: bool) -> None:
    """Refresh run/report.html; a failure here never fails the training command."""
    try:
        path = build_report(run_dir)
    except Exception as exc:  # noqa: BLE001 - the run itself is safe on disk
        print(f"note: report.html not written ({exc}); try `dqnkit report {run_dir}`", file=sys.stderr)
        return
    if not quiet:
        print(f"report: {path}")


def build_report(run_dir: Path) -> Path:
    """plots/ and report.html of a run folder: tabular runs without torch, DQN runs with their greedy policy."""
    if (run_dir / "tabular.json").is_file():
        from dqnkit.analysis.report import write_report
        return write_report(run_dir)
    from dqnkit.api import write_run_report
    return write_run_report(run_dir)


def cmd_plot(args) -> int:
    from dqnkit.analysis.plots import plot_runs

    out = Path(args.out) if args.out else Path(args.runs[0]) / "plots"
    from dqnkit.population.folder import expand_runs

    paths = plot_runs(expand_runs([Path(r) for r in args.runs]), out)
    for note in getattr(paths, "notes", []):
        print(f"note: {note}", file=sys.stderr)
    for p in paths:
        print(p)
    return 0


def default_compare_dir(runs: list[Path]) -> Path:
    """``comparison/`` in the folder that holds the runs (their common parent), not in the current folder."""
    parents = [str(Path(r).resolve().parent) for r in runs]
    return Path(os.path.commonpath(parents)) / "comparison"


def cmd_compare(args) -> int:
    from dqnkit.analysis.plots import compare_runs

    from dqnkit.population.folder import expand_runs

    runs = expand_runs([Path(r) for r in args.runs])
    out = Path(args.out) if args.out else default_compare_dir(runs)
    result = compare_runs(runs, group_by=args.group_by, out_dir=out)
    print(result["markdown"])
    for warning in result["warnings"]:
        print(f"warning: {warning}", file=sys.stderr)
    print(f"comparison written to {out}/ (comparison.md, comparison.csv, "
          f"{', '.join(p.name for p in result['plots'])})")
    return 0


def cmd_report(args) -> int:
    print(build_report(Path(args.run)))
    return 0


def q_table_of_run(run: Path) -> tuple[np.ndarray, object]:
    """(Q-table (n_states, n_actions), env) for a tabular run or a DQN run on a Discrete-observation env."""
    from dqnkit.analysis.grid_layout import load_qtable, make_tabular_env

    if (run / "tabular.json").is_file():
        return load_qtable(run), make_tabular_env(run)
    from dqnkit.api import DQN

    model = DQN.load(run)
    try:
        return model.q_table(), model.make_eval_env()
    finally:
        model.close()


def learner_name(run: Path) -> str:
    """"Tabular Q-learning", "DQN", "Double DQN", ...: the learner of a run, from its config.yaml."""
    import yaml

    from dqnkit.analysis.groups import variant_name

    config = yaml.safe_load((run / "config.yaml").read_text()) if (run / "config.yaml").is_file() else None
    if isinstance(config, dict):
        return variant_name(config)
    return "Tabular Q-learning" if (run / "tabular.json").is_file() else "DQN"


def cmd_policy(args) -> int:
    """The greedy policy of grid-world agents, tabular or DQN: arrows over a Q-value heatmap (policy.png),
    the Q-values of key states with the best action marked, and the greedy path from the start. Several runs
    share one colour scale, so that their pictures can be compared."""
    from dqnkit.analysis.grid_layout import grid_layout
    from dqnkit.analysis.policy import policy_report, shared_scale
    from dqnkit.analysis.qmap import discretisation

    runs = [Path(r) for r in args.runs]
    if any(discretisation(run) is not None for run in runs):
        return policy_maps(runs, args)
    loaded = []
    for run in runs:
        q_table, env = q_table_of_run(run)
        loaded.append((run, q_table, env, grid_layout(env)))
    vmin, vmax = args.vmin, args.vmax
    if len(runs) > 1 and (vmin is None or vmax is None):
        low, high = shared_scale([(q, layout) for _, q, _, layout in loaded])
        vmin, vmax = (low if vmin is None else vmin), (high if vmax is None else vmax)
    for run, q_table, env, layout in loaded:
        out = Path(args.out) / (run.name if len(runs) > 1 else "") if args.out else run / "plots"
        png, markdown = policy_report(q_table, env, out, layout=layout, learner=learner_name(run), vmin=vmin,
                                      vmax=vmax)
        env.close()
        print(markdown)
        print(f"policy plot: {png}")
    if vmin is not None or vmax is not None:
        shared = f", shared by the {len(runs)} pictures" if len(runs) > 1 else ""
        ends = ["auto" if v is None else f"{v:.4g}" for v in (vmin, vmax)]
        print(f"colour scale: max Q(s, a) from {ends[0]} to {ends[1]}{shared}")
    return 0


def policy_maps(runs: list[Path], args) -> int:
    """Tabular runs on a discretised 2-D state (``dqnkit tabular --bins``): greedy action and max Q over the plane."""
    from dqnkit.analysis.grid_layout import load_qtable
    from dqnkit.analysis.qmap import discretisation, draw_qmap
    from dqnkit.errors import DqnkitError

    for run in runs:
        info = discretisation(run)
        if info is None:
            raise DqnkitError(f"{run} is not a tabular run on discretised states; draw grid-world runs and "
                              "discretised runs with separate `dqnkit policy` commands")
        out = Path(args.out) / (run.name if len(runs) > 1 else "") if args.out else run / "plots"
        png, markdown = draw_qmap(load_qtable(run), info, out / "policy.png", learner=learner_name(run),
                                  vmin=args.vmin, vmax=args.vmax)
        print(markdown)
        print(f"policy plot: {png}")
    return 0


def cmd_record(args) -> int:
    from dqnkit.api import DQN
    from dqnkit.training.video import require_video

    require_video()
    run = Path(args.run)
    model = DQN.load(run)
    try:
        paths = model.record(Path(args.out) if args.out else run / "videos", episodes=args.episodes,
                             epsilon=args.epsilon)
    finally:
        model.close()
    for p in paths:
        print(p)
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add this module's subcommands to the ``dqnkit`` parser."""
    p = sub.add_parser("plot", help="learning-curve PNGs for one or more runs")
    p.add_argument("runs", nargs="+")
    p.add_argument("--out")
    p.set_defaults(func=cmd_plot)

    p = sub.add_parser("compare", help="overlay runs grouped by config, with a table of final returns")
    p.add_argument("runs", nargs="+", help="run folders; the seeds of one setting form a group")
    p.add_argument("--group-by", metavar="KEY",
                   help="one group per value of this config key (e.g. double_q, learning_rate, "
                        "policy_kwargs.net_arch); default: runs whose configs differ only in seed and "
                        "output folder form a group")
    p.add_argument("--out", help="folder for the plots and tables (default: comparison/ beside the runs, in "
                                 "their common parent folder)")
    p.set_defaults(func=cmd_compare)

    p = sub.add_parser("policy", help="greedy policy arrows and key-state Q-values (grid envs); greedy action and "
                                      "max-Q maps for tabular runs on 2-D discretised states (--bins)")
    p.add_argument("runs", nargs="+", metavar="RUN",
                   help="tabular or DQN run folders on a grid env; several share one colour scale")
    p.add_argument("--out", help="folder for policy.png (default RUN/plots; with several runs OUT/RUN_NAME)")
    p.add_argument("--vmin", type=float, help="value at the bottom of the colour scale (default: the smallest "
                                              "max Q(s, a) drawn, over all the runs given)")
    p.add_argument("--vmax", type=float, help="value at the top of the colour scale (default: the largest)")
    p.set_defaults(func=cmd_policy)

    p = sub.add_parser("record", help="record MP4/GIF videos of the greedy agent")
    p.add_argument("run")
    p.add_argument("--episodes", type=int, default=1)
    p.add_argument("--epsilon", type=float, default=0.0)
    p.add_argument("--out")
    p.set_defaults(func=cmd_record)

    p = sub.add_parser("report", help="write a self-contained report.html into the run folder")
    p.add_argument("run")
    p.set_defaults(func=cmd_report)
