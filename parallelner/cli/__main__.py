"""`python -m parallelner.cli` = the `parallelner` command."""

from parallelner.cli import main

main()
