"""`python -m parallelner_cli` = the `parallelner` command."""

from parallelner_cli import main

main()
