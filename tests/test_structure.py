"""The house's shape: every module imports on its own, and the torch-free parts stay torch-free."""
import importlib
import pkgutil
import subprocess
import sys

import dqnkit


def _dqnkit_modules() -> dict:
    return {k: v for k, v in sys.modules.items() if k == "dqnkit" or k.startswith("dqnkit.")}


def test_every_module_imports_alone():
    names = [m.name for m in pkgutil.walk_packages(dqnkit.__path__, "dqnkit.")]
    assert len(names) > 30
    failures = []
    before = _dqnkit_modules()
    try:
        for name in names:
            for loaded in _dqnkit_modules():
                del sys.modules[loaded]  # a fresh import of this module and whatever it pulls in
            try:
                importlib.import_module(name)
            except Exception as exc:  # noqa: BLE001 - collect them all
                failures.append(f"{name}: {type(exc).__name__}: {exc}")
    finally:
        # Put the modules the other tests imported back, so that their classes (QNetwork, the error types)
        # stay the ones later tests compare against, whatever order the tests run in.
        for loaded in _dqnkit_modules():
            del sys.modules[loaded]
        sys.modules.update(before)
    assert not failures, failures


def test_tabular_analysis_and_runfolder_never_import_torch():
    code = (
        "import sys\n"
        "import dqnkit.runfolder, dqnkit.tabular, dqnkit.analysis.runs, dqnkit.analysis.stats, dqnkit.analysis.plots\n"
        "import dqnkit.analysis.report, dqnkit.analysis.policy, dqnkit.analysis.grid_layout, dqnkit.config\n"
        "import dqnkit.analysis.qmap, dqnkit.envs.discretize, dqnkit.importing\n"
        "import dqnkit.presets, dqnkit.envs\n"
        "assert 'torch' not in sys.modules, sorted(m for m in sys.modules if m.startswith('dqnkit'))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
