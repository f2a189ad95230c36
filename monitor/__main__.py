"""Allow ``python -m monitor``."""

from monitor.cli import main

# Guarded: the parser pool's worker processes import the main module again, and must not run it.
if __name__ == "__main__":
    raise SystemExit(main())
