"""The `lossgen` command line (typer): parse options, call the library, print. The top layer:
nothing outside this folder imports it."""

from lossgen.cli.app import app, main

__all__ = ["app", "main"]
