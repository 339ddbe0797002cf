"""``python -m dqnkit ...`` is the ``dqnkit`` command (for environments where the script is not on PATH)."""
import sys

from dqnkit.cli import main

if __name__ == "__main__":
    sys.exit(main())
