"""``dqnkit plot | compare | policy | record | report``: looking at what a run learned."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from dqnkit.errors import DqnkitError


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
    from dqnkit.analysis.report import write_report

    policy = None
    if not (run_dir / "tabular.json").is_file():
        try:
            from dqnkit.analysis.policy import policy_report
            q_table, env = q_table_of_run(run_dir)
            policy = policy_report(q_table, env, run_dir / "plots")
        except DqnkitError:
            policy = None  # not a grid world: no policy section
    return write_report(run_dir, policy=policy)


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


def cmd_compare(args) -> int:
    from dqnkit.analysis.plots import compare_runs

    out = Path(args.out) if args.out else Path("comparison")
    from dqnkit.population.folder import expand_runs

    result = compare_runs(expand_runs([Path(r) for r in args.runs]), group_by=args.group_by, out_dir=out)
    table = out / "comparison.md"
    if table.is_file():
        print(table.read_text())
    print(f"written to {out}")
    return 0 if result is not None else 1


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


def cmd_policy(args) -> int:
    """The greedy policy of a grid-world agent, tabular or DQN: arrows over a Q-value heatmap (policy.png),
    the Q-values of key states with the best action marked, and the greedy path from the start."""
    from dqnkit.analysis.policy import policy_report

    run = Path(args.run)
    q_table, env = q_table_of_run(run)
    png, markdown = policy_report(q_table, env, Path(args.out) if args.out else run / "plots")
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
    p.add_argument("runs", nargs="+")
    p.add_argument("--group-by")
    p.add_argument("--out")
    p.set_defaults(func=cmd_compare)

    p = sub.add_parser("policy", help="greedy policy arrows and key-state Q-values (grid envs)")
    p.add_argument("run")
    p.add_argument("--out")
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
