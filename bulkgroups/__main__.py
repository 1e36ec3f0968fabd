"""`python -m bulkgroups`: the same command as the `bulkgroups` script."""

from __future__ import annotations

from .cli import main

if __name__ == "__main__":
    main()
