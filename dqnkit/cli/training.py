"""``dqnkit train | resume | eval | presets | tabular``: the commands that train or evaluate an agent."""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from dqnkit.cli import population
from dqnkit.cli.views import write_report_quietly
from dqnkit.errors import CheckpointError, DqnkitError


def verbosity(args) -> str:
    return "quiet" if args.quiet else "auto"


def default_run_dir(env_id: str, seed: int, root: str = "runs") -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    base = Path(root) / f"{env_id.replace('/', '_')}__s{seed}__{stamp}"
    path, k = base, 1
    while path.exists():
        k += 1
        path = base.with_name(f"{base.name}-{k}")
    return path


def build_config(args):
    from dqnkit.presets import load_preset
    from dqnkit.presets.zoo import config_from_zoo, parse_overrides, read_config_file

    values: dict = {}
    if args.preset:
        values.update(load_preset(args.preset))
    elif not args.config and not args.env:
        values.update(load_preset("CartPole-v1"))
    if args.env and not args.preset and not args.config:
        from dqnkit.envs.atari import is_atari
        if is_atari(args.env):  # any ALE game: Nature-DQN preprocessing and hyperparameters
            values.update(load_preset("atari-nature"))
        else:
            try:
                values.update(load_preset(args.env))
            except DqnkitError:
                pass
    if args.config:
        values.update(read_config_file(args.config, args.env))
    if args.env:
        values["env_id"] = args.env
    overrides = parse_overrides(args.set or [])
    if "policy_kwargs" in overrides and isinstance(overrides["policy_kwargs"], dict):
        merged = dict(values.get("policy_kwargs") or {}) if isinstance(values.get("policy_kwargs"), dict) else {}
        merged.update(overrides.pop("policy_kwargs"))
        overrides["policy_kwargs"] = merged
    values.update(overrides)
    for key, attr in (("seed", "seed"), ("total_timesteps", "steps"), ("num_envs", "num_envs"),
                      ("video_every", "video_every")):
        if getattr(args, attr, None) is not None:
            values[key] = getattr(args, attr)
    if args.save_replay:
        values["save_replay"] = True
    for key, attr in (("distributed", "distributed"), ("actors", "actors"), ("ray_address", "ray_address")):
        if getattr(args, attr, None) is not None:
            values[key] = getattr(args, attr)
    if getattr(args, "sync", False):
        values["apex_sync"] = True
    return config_from_zoo(values)


def make_trainer(cfg, run_dir: Path, verbosity_: str):
    """The single-process Trainer, or the Ape-X one for ``distributed: ray`` (Ray checked first, in one line)."""
    if cfg.distributed == "ray":
        from dqnkit.distributed.cluster import require_ray
        from dqnkit.distributed.learner import ApexTrainer
        require_ray()
        return ApexTrainer(cfg, run_dir, verbosity=verbosity_)
    from dqnkit.training.trainer import Trainer
    return Trainer(cfg, run_dir, verbosity=verbosity_)


def stop_callbacks(args) -> list:
    """The built-in callbacks of --stop-at-return, --stop-after-evals-without-improvement and --time-limit."""
    from dqnkit.training.callbacks import builtin_callbacks

    return builtin_callbacks(args.stop_at_return, args.stop_after_evals_without_improvement, args.time_limit)


def cmd_train(args) -> int:
    callbacks = stop_callbacks(args)  # a bad --time-limit fails before anything is built
    cfg = build_config(args)
    if population.is_population_request(args):
        if callbacks:
            raise DqnkitError("--stop-at-return, --stop-after-evals-without-improvement and --time-limit stop one "
                              "run; population mode (--seeds/--grid) does not take them")
        if cfg.distributed != "none":
            raise DqnkitError("--distributed ray trains one run; population mode (--seeds/--grid) runs in one process")
        return population.train(args, cfg, verbosity(args))
    run_dir = Path(args.out) if args.out else default_run_dir(cfg.env_id, cfg.seed)
    if (run_dir / "episodes.csv").exists():
        raise DqnkitError(f"{run_dir} already holds a run; continue it with `dqnkit resume {run_dir}` "
                          "or choose another --out")
    trainer = make_trainer(cfg, run_dir, verbosity(args))
    if not args.quiet:
        print(f"training {cfg.env_id} for {cfg.total_timesteps} env steps -> {run_dir}", flush=True)
    t0 = time.perf_counter()
    try:
        result = trainer.learn(callback=callbacks)
    finally:
        trainer.close()
    if not args.quiet:
        ev = result["last_eval"]
        msg = f"; greedy eval {ev['mean_return']:.1f} +/- {ev['std_return']:.1f}" if ev else ""
        print(f"{result['status']} after {result['env_step']} env steps in {time.perf_counter() - t0:.1f} s{msg}")
    write_report_quietly(run_dir, args.quiet)
    if not args.quiet:
        print(f"run folder: {run_dir}")
    return 130 if result["status"] == "interrupted" else 0


def add_stop_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--stop-at-return", type=float, metavar="R",
                   help="stop (with a checkpoint) when a greedy evaluation's mean return reaches R")
    p.add_argument("--stop-after-evals-without-improvement", type=int, metavar="K",
                   help="stop (with a checkpoint) after K evaluations in a row without a new best")
    p.add_argument("--time-limit", metavar="DURATION", help="stop (with a checkpoint) after this wall-clock time: "
                   "90s, 10m, 1h")


def cmd_resume(args) -> int:
    from dqnkit.training.checkpoint import REPLAY_FILE, find_checkpoint
    from dqnkit.config import Config
    import yaml

    run_dir = Path(args.run)
    callbacks = stop_callbacks(args)
    from dqnkit.population.folder import is_population
    if is_population(run_dir):
        if callbacks:
            raise DqnkitError("--stop-at-return, --stop-after-evals-without-improvement and --time-limit stop one "
                              "run; resuming a population does not take them")
        return population.resume(run_dir, args.steps, verbosity(args), args.quiet)
    if not (run_dir / "config.yaml").is_file():
        raise CheckpointError(f"{run_dir} is not a dqnkit run folder (no config.yaml); pass the folder "
                              "`dqnkit train` created")
    ckpt = find_checkpoint(run_dir, "latest")
    cfg = Config.from_dict(yaml.safe_load((run_dir / "config.yaml").read_text()))
    trainer = make_trainer(cfg, run_dir, verbosity(args))
    trainer.restore(ckpt)
    target = args.steps if args.steps is not None else cfg.total_timesteps
    if not args.quiet:
        print(f"resuming {run_dir} from env step {trainer.env_step} ({ckpt.name}) to {target}", flush=True)
    if not (ckpt / REPLAY_FILE).is_file():
        print(f"note: {ckpt.name} holds no replay buffer (the run was trained without --save-replay): the replay "
              f"buffer starts empty, gradient updates pause until {cfg.batch_size} new transitions are stored, and "
              "the metrics will differ from an uninterrupted run's", file=sys.stderr, flush=True)
    try:
        result = trainer.learn(target, callback=callbacks)
    finally:
        trainer.close()
    if not args.quiet:
        ev = result["last_eval"]
        print(f"{result['status']} at env step {result['env_step']}"
              + (f"; greedy eval {ev['mean_return']:.1f}" if ev else ""))
    write_report_quietly(run_dir, args.quiet)
    return 130 if result["status"] == "interrupted" else 0


def cmd_eval(args) -> int:
    path = Path(args.target)
    folder = path.parent if path.is_file() else path  # RUN/checkpoints/best/model.safetensors means its folder
    if (folder / "tabular.json").is_file():
        from dqnkit.tabular import TabularQ
        if args.epsilon is not None:
            raise DqnkitError("--epsilon applies to DQN runs; a tabular run is evaluated greedily")
        learner = TabularQ.load(folder)
        result = learner.evaluate(args.episodes, seed=args.seed)
        used = folder
    else:
        from dqnkit.api import DQN
        from dqnkit.training.checkpoint import find_checkpoint
        used = find_checkpoint(path, args.which)
        model = DQN.load(used)
        result = model.evaluate(args.episodes, seed=args.seed, epsilon=args.epsilon)
        if args.epsilon is None:  # evaluate() used the run's eval_epsilon: say so below
            args.epsilon = model.config.eval_epsilon
        model.close()
    if args.json:
        print(json.dumps({**{k: result[k] for k in ("mean_return", "std_return", "episodes", "returns", "lengths")
                             if k in result}, "checkpoint": str(used)}))
    else:
        print(f"checkpoint: {used}")
        kind = "greedy" if not (args.epsilon or 0) else f"epsilon-greedy ({args.epsilon:g})"
        print(f"{result['episodes']} {kind} episodes: mean return {result['mean_return']:.2f} "
              f"+/- {result['std_return']:.2f}")
    return 0


def cmd_presets(args) -> int:
    from dqnkit.presets import list_presets, load_preset, preset_text

    if args.action == "show":
        if not args.name:
            raise DqnkitError("usage: dqnkit presets show NAME (see `dqnkit presets` for names)")
        print(preset_text(args.name), end="")
        return 0
    from dqnkit.presets.zoo import config_from_zoo

    for name in list_presets():
        cfg = config_from_zoo(load_preset(name))  # the resolved config: total_timesteps as an int
        print(f"{name:28s} env={cfg.env_id}  steps={cfg.total_timesteps}")
    return 0


def key_values(pairs: list[str] | None, flag: str) -> dict:
    """``KEY=VALUE`` pairs, values read as YAML (numbers, true/false, null, lists)."""
    import yaml

    out = {}
    for pair in pairs or []:
        key, sep, raw = pair.partition("=")
        if not sep or not key:
            raise DqnkitError(f"{flag} expects KEY=VALUE, got {pair!r}")
        out[key] = yaml.safe_load(raw)
    return out


def cmd_tabular(args) -> int:
    from dqnkit.envs.discretize import parse_bins, parse_bounds
    from dqnkit.tabular import train_tabular

    env_kwargs = key_values(args.env_kwarg, "--env-kwarg")
    options = key_values(args.set, "--set")
    if args.bins is not None:
        options["bins"] = parse_bins(args.bins)
    if args.bounds is not None:
        if args.bins is None:
            raise DqnkitError("--bounds gives the range of each dimension that --bins cuts; add --bins N")
        options["bounds"] = parse_bounds(args.bounds)
    out = Path(args.out) if args.out else default_run_dir(f"tabular_{args.env}", args.seed)
    for name in ("learning_rate", "gamma", "seed"):  # --set learning_rate=... means --learning-rate
        if name in options:
            setattr(args, name, options.pop(name))
    learner = train_tabular(args.env, episodes=args.episodes, learning_rate=args.learning_rate, gamma=args.gamma,
                            seed=args.seed, out_dir=out, env_kwargs=env_kwargs or None,
                            eval_episodes=args.eval_episodes, **options)
    result = learner.evaluate(args.eval_episodes)
    learner.close()
    if not args.quiet:
        print(f"tabular Q-learning on {args.env}: {args.episodes} episodes; greedy mean return "
              f"{result['mean_return']:.2f}\nrun folder: {out}")
    return 0


def add_train_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--preset", help="preset name (see `dqnkit presets`); default CartPole-v1")
    p.add_argument("--env", help="Gymnasium env id (Discrete actions)")
    p.add_argument("--config", help="YAML config: dqnkit's config.yaml or an rl-baselines3-zoo dqn.yml")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a config field (repeatable)")
    p.add_argument("--seed", type=int)
    p.add_argument("--steps", type=int, help="total env steps (total_timesteps)")
    p.add_argument("--num-envs", type=int, dest="num_envs")
    p.add_argument("--out", help="run folder (default runs/ENV__sSEED__TIME)")
    p.add_argument("--save-replay", action="store_true", help="include the replay buffer in checkpoints")
    p.add_argument("--video-every", type=int, dest="video_every", metavar="N",
                   help="record a greedy episode every N env steps into run/videos")
    p.add_argument("--quiet", action="store_true")
    add_stop_args(p)
    p.add_argument("--seeds", metavar="SEEDS", help="train a population in one process: seeds like 0-15 or 0,3,7 "
                   "(one member each; writes one run folder per member under --out)")
    p.add_argument("--grid", action="append", metavar="KEY=V1,V2", help="population: the cross product of these "
                   "values times --seeds (repeatable)")
    p.add_argument("--distributed", choices=["none", "ray"], help="ray: Ape-X actors on Ray feed the learner in "
                   "this process (needs pip install 'dqnkit[ray]')")
    p.add_argument("--actors", type=int, help="--distributed ray: number of actors (default 2)")
    p.add_argument("--ray-address", dest="ray_address", metavar="ADDR", help="--distributed ray: an existing "
                   "cluster, 'auto' or HOST:PORT (default: start a local Ray)")
    p.add_argument("--sync", action="store_true", help="--distributed ray: one chunk per actor per round, in "
                   "actor order (deterministic, exactly resumable)")


class ConfigHelp(argparse.Action):
    def __call__(self, parser, namespace, values, option_string=None):
        from dqnkit.config import Config
        defaults = Config().to_dict()
        for name, doc in Config.docs().items():
            print(f"{name:28s} {doc}  [default: {defaults[name]}]")
        parser.exit()


def register(sub: argparse._SubParsersAction) -> None:
    """Add this module's subcommands to the ``dqnkit`` parser."""
    p = sub.add_parser("train", help="train an agent and write a run folder")
    add_train_args(p)
    p.add_argument("--help-config", action=ConfigHelp, nargs=0, help="list every config field with its doc")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("resume", help="continue a run from its latest checkpoint")
    p.add_argument("run")
    p.add_argument("--steps", type=int, help="total env steps to reach (default: the run's total_timesteps)")
    p.add_argument("--quiet", action="store_true")
    add_stop_args(p)
    p.set_defaults(func=cmd_resume)

    p = sub.add_parser("eval", help="greedy evaluation of a run (its latest checkpoint, or --which best), a "
                                   "checkpoint or a saved model",
                       description="Greedy evaluation. A run folder is evaluated with its latest checkpoint "
                                   "(checkpoints/index.json's 'latest'; --which best for the best by greedy "
                                   "evaluation); the checkpoint used is printed first.")
    p.add_argument("target", help="a run folder (its latest checkpoint, or --which best), a checkpoint folder "
                                  "(RUN/checkpoints/step_*), a folder written by model.save, a tabular run, "
                                  "or a file in one of them")
    p.add_argument("--episodes", type=int, default=10)
    p.add_argument("--seed", type=int, default=None, help="reset seed of the first episode (default: the "
                                                          "periodic evaluation's)")
    p.add_argument("--which", choices=["latest", "best"], default="latest",
                   help="which checkpoint of a run folder: the newest (default) or the best by greedy evaluation")
    p.add_argument("--epsilon", type=float, default=None, metavar="E",
                   help="epsilon-greedy evaluation (seeded, reproducible; default: the run's eval_epsilon, 0); "
                        "the Atari protocol uses 0.05 or 0.001")
    p.add_argument("--json", action="store_true", help="print one JSON object (with the checkpoint used)")
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser("presets", help="list presets, or `presets show NAME`")
    p.add_argument("action", nargs="?", choices=["list", "show"], default="list")
    p.add_argument("name", nargs="?")
    p.set_defaults(func=cmd_presets)

    p = sub.add_parser("tabular", help="tabular Q-learning (a Q-table) on a small discrete env, the baseline of the DQN tutorials")
    p.add_argument("--env", default="GridWorld-v0")
    p.add_argument("--env-kwarg", action="append", metavar="KEY=VALUE", help="e.g. is_slippery=false")
    p.add_argument("--episodes", type=int, default=500)
    p.add_argument("--learning-rate", type=float, default=0.1)
    p.add_argument("--gamma", type=float, default=0.99)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--eval-episodes", type=int, default=10, help="greedy episodes of each evaluation and the final one")
    p.add_argument("--bins", metavar="N[,N...]", help="Box observations (MountainCar-v0): equal-width bins per "
                                                      "dimension, one count for all (20) or one each (20,20)")
    p.add_argument("--bounds", metavar="LO:HI,...", help="with --bins: the range of each dimension (needed where the "
                                                         "space is unbounded; an empty entry keeps the space's), "
                                                         "e.g. --bounds=-4.8:4.8,-3:3,-0.42:0.42,-3.5:3.5")
    p.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="another TabularConfig field (repeatable): exploration_initial_eps, exploration_final_eps, "
                        "exploration_schedule, exploration_episode_decay, max_episode_steps, ...")
    p.add_argument("--out")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=cmd_tabular)
