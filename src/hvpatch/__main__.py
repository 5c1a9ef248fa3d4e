"""``python -m hvpatch`` runs the CLI."""

from hvpatch.cli.main import run

run()
