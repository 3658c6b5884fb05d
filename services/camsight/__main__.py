"""``python -m camsight`` is the ``camsight`` command."""

from camsight.cli import main

main()
