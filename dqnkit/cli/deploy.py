"""``dqnkit export | play``: a trained agent outside training (dqnkit/deploy/)."""
from __future__ import annotations

import argparse
from pathlib import Path


def cmd_export(args) -> int:
    from dqnkit.deploy.export import export_model

    path = export_model(Path(args.run), args.out, format=args.format, which=args.which)
    print(f"{args.format} model: {path}\ninput/output description: {path.with_suffix('.json')}")
    return 0


def cmd_play(args) -> int:
    from dqnkit.api import DQN
    from dqnkit.deploy.play import play, require_display

    require_display()  # before loading the model: the one line comes at once
    model = DQN.load(Path(args.run), which=args.which)
    try:
        play(model, args.episodes, epsilon=args.epsilon, seed=args.seed, say=lambda text: print(text, flush=True))
    finally:
        model.close()
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add this module's subcommands to the ``dqnkit`` parser."""
    p = sub.add_parser("export", help="write the greedy Q-network as ONNX or TorchScript, preprocessing included",
                       description="Write the greedy Q-network (observations in, Q-values out, with dqnkit's "
                                   "uint8 scaling and one-hot encoding inside) as one file that runs without "
                                   "dqnkit; ONNX needs pip install 'dqnkit[export]'.")
    p.add_argument("run", help="a run folder, a checkpoint folder or a folder written by model.save")
    p.add_argument("--format", choices=["onnx", "torchscript"], default="onnx")
    p.add_argument("--which", choices=["latest", "best"], default="latest",
                   help="which checkpoint of a run folder (default latest)")
    p.add_argument("--out", help="output file (default RUN/export/q_network.onnx or .pt)")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("play", help="watch the greedy agent live in a window, printing each episode's return",
                       description="Render the (epsilon-)greedy agent with render_mode='human'. Needs a display; "
                                   "without one, `dqnkit record` writes videos.")
    p.add_argument("run", help="a run folder, a checkpoint folder or a folder written by model.save")
    p.add_argument("--episodes", type=int, default=1)
    p.add_argument("--epsilon", type=float, default=0.0, help="probability of a random action (default 0: greedy)")
    p.add_argument("--which", choices=["latest", "best"], default="latest",
                   help="which checkpoint of a run folder (default latest)")
    p.add_argument("--seed", type=int, default=None, help="reset seed of the first episode")
    p.set_defaults(func=cmd_play)
