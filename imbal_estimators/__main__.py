"""``python -m imbal_estimators``: the ``imbal-estimators`` command."""

import sys

from .app.cli import main

if __name__ == "__main__":
    sys.exit(main())
