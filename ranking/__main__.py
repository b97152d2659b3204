"""``python -m ranking``: see :mod:`ranking._cli`."""

from __future__ import annotations

import sys

from ranking._cli import main

if __name__ == "__main__":
    sys.exit(main())
