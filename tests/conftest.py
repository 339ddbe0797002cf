import os
import subprocess
import sys

import pytest

os.environ.setdefault("MPLBACKEND", "Agg")


def run_cli(*args, cwd=None, timeout=600):
    """Run ``python -m dqnkit.cli ARGS`` in a subprocess; returns CompletedProcess (text)."""
    return subprocess.run([sys.executable, "-m", "dqnkit.cli", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, timeout=timeout)


@pytest.fixture
def cli():
    return run_cli
