"""``python -m tokenward``."""

from tokenward.cli import main

main()
