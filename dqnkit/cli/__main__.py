"""``python -m dqnkit.cli ...`` is the ``dqnkit`` command."""
import sys

from dqnkit.cli import main

if __name__ == "__main__":
    sys.exit(main())
