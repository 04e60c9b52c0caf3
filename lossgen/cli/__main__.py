"""`python -m lossgen.cli`: the same as the `lossgen` command."""

from lossgen.cli.app import main

main()
