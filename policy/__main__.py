"""CrossGuard entry point: `pulumi preview --policy-pack policy` runs this file (wiring only)."""

import sys
from pathlib import Path

# The pack imports the rule catalogue from the repository (scripts/, infra/), like infra/
# does for the program; Pulumi runs this file with policy/ as the working directory.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pulumi_policy import PolicyPack

from policy.adapter import PACK_NAME, policies

PolicyPack(name=PACK_NAME, policies=policies())
