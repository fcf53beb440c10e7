"""`python -m dbplatform` is the `dbplatform` command."""

from dbplatform.cli import run

run()
