"""Pulumi entry point: wiring only (see infra/program.py)."""

import sys
from pathlib import Path

# Pulumi runs this file from infra/; the program imports `infra.*` like scripts/ do, so the
# repository root must be importable.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from infra.program import run

run()
