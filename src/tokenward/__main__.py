"""``python -m tokenward``."""

from tokenward.server.cli import main

main()
