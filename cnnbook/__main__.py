"""``python -m cnnbook``: see :mod:`cnnbook.cli`."""

import sys

from cnnbook.cli import main

if __name__ == "__main__":
    sys.exit(main())
