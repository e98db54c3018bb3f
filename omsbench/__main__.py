"""``python -m omsbench`` runs the command line."""

from omsbench.cli import main

main()
