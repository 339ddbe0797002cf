"""``dqnkit`` command line: train | resume | eval | presets | tabular (cli/training.py) and
plot | compare | policy | record | report (cli/views.py), export | play (cli/deploy.py).

User errors (bad config, unknown env, bad checkpoint, ...) print one line ``error: ...`` and exit 2;
``--debug`` (before or after the subcommand) shows the traceback instead.
"""
from __future__ import annotations

import argparse
import sys

from dqnkit.cli import deploy, training, views
from dqnkit.errors import DqnkitError


DEBUG_HELP = "show the traceback of an error instead of its one-line message"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dqnkit", description="DQN-family training, evaluation and analysis.")
    parser.add_argument("--debug", action="store_true", help=DEBUG_HELP)
    sub = parser.add_subparsers(dest="command")
    training.register(sub)
    views.register(sub)
    deploy.register(sub)
    for command in sub.choices.values():  # `dqnkit train --debug` as well as `dqnkit --debug train`
        # SUPPRESS: a subcommand without --debug leaves the value the main parser set
        command.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help=DEBUG_HELP)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    if not any(a in parser._subparsers._group_actions[0].choices for a in argv if not a.startswith("-")) \
            and not any(a in ("-h", "--help") for a in argv):
        argv = [*[a for a in argv if a == "--debug"], "train", *[a for a in argv if a != "--debug"]]
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except DqnkitError as exc:
        if args.debug:
            raise
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
