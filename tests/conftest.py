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


@pytest.fixture
def one_torch_thread():
    """Small nets on a shared 2-core machine: one intra-op thread is many times faster (as torch_threads=1)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
