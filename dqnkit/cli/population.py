"""``dqnkit train --seeds 0-15 [--grid key=v1,v2 ...]``: a population, and resuming or comparing one."""
from __future__ import annotations

import time
from pathlib import Path

from dqnkit.errors import DqnkitError


def is_population_request(args) -> bool:
    return bool(getattr(args, "seeds", None) or getattr(args, "grid", None))


def train(args, cfg, verbosity: str) -> int:
    """Train the members of ``--seeds`` x ``--grid`` on top of ``cfg`` into one population folder."""
    from dqnkit.cli.views import write_report_quietly
    from dqnkit.population.members import parse_grid, parse_seeds
    from dqnkit.population.run import train_population

    seeds = parse_seeds(args.seeds) if args.seeds else [cfg.seed]
    grid = parse_grid(args.grid)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    root = Path(args.out) if args.out else Path("runs") / f"{cfg.env_id.replace('/', '_')}__pop{len(seeds)}__{stamp}"
    if root.exists() and any(root.iterdir()):
        raise DqnkitError(f"{root} already exists and is not empty; continue it with `dqnkit resume {root}` "
                          "or choose another --out")
    say = (lambda text: None) if args.quiet else print
    say(f"training a population of {cfg.env_id} for {cfg.total_timesteps} env steps per member -> {root}")
    t0 = time.perf_counter()
    results = train_population(cfg.to_dict(), seeds, grid, root, verbosity=verbosity, say=say)
    say(f"done in {time.perf_counter() - t0:.1f} s")
    _summary(results, say)
    for r in results:
        write_report_quietly(Path(r["run_dir"]), True)
    say(f"population folder: {root} (compare them with: dqnkit compare {root})")
    return 130 if any(r["last_eval"] is None for r in results) else 0


def resume(run_dir: Path, steps: int | None, verbosity: str, quiet: bool) -> int:
    from dqnkit.cli.views import write_report_quietly
    from dqnkit.population.run import resume_population

    say = (lambda text: None) if quiet else print
    say(f"resuming the population {run_dir}")
    results = resume_population(run_dir, steps, verbosity=verbosity)
    _summary(results, say)
    for r in results:
        write_report_quietly(Path(r["run_dir"]), True)
    return 0


def _summary(results: list[dict], say) -> None:
    for r in results:
        ev = r["last_eval"]
        say(f"  {r['name']:40s} greedy eval {ev['mean_return']:.1f} +/- {ev['std_return']:.1f}" if ev
            else f"  {r['name']:40s} no evaluation")
