"""The one step a DR rebuild hands to Pulumi: `pulumi up` of the DR stack, through the Automation
API when the Pulumi CLI is installed, or the exact commands to run when it is not.

The database is restored before this step and without Pulumi, so a Pulumi backend lost with the
failed region delays the rest of the environment, never the data.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

CLI_MISSING = "Pulumi CLI not installed"


def cli_path() -> str | None:
    """The `pulumi` binary on PATH, or None."""
    return shutil.which("pulumi")


def remaining_commands(
    *, root: Path, stack: str, source_region: str, target_region: str, adopt: str
) -> list[str]:
    """What an operator runs to finish a rebuild when this machine has no Pulumi CLI."""
    return [
        f"cd {root}",
        f"pulumi login <a backend reachable from {target_region}>   "
        f"# only if the usual backend is in {source_region}",
        f"pulumi stack init {stack}",
        f"pulumi preview --stack {stack}   # expect: import database-primary ({adopt})",
        f"pulumi up --stack {stack}",
    ]


def up(root: Path, stack: str, on_output: Callable[[str], Any]) -> dict[str, Any]:
    """`pulumi up` of `stack` from the project in `root` (its `Pulumi.<stack>.yaml`); outputs."""
    from pulumi import automation as auto

    s = auto.create_or_select_stack(stack_name=stack, work_dir=str(root))
    result = s.up(on_output=on_output, color="never")
    return {k: v.value for k, v in result.outputs.items() if not v.secret}


def destroy(root: Path, stack: str, on_output: Callable[[str], Any]) -> None:
    """`pulumi destroy` of `stack`, then remove the stack (a drill's throwaway stack).

    The program protects stateful resources of a production-tier stack; a drill's stack is
    throwaway by definition, so its protection is lifted first.
    """
    from pulumi import automation as auto

    cli = cli_path() or "pulumi"
    subprocess.run(
        [cli, "state", "unprotect", "--all", "--yes", "--stack", stack],
        cwd=root,
        check=True,
        capture_output=True,
        text=True,
    )
    s = auto.select_stack(stack_name=stack, work_dir=str(root))
    s.destroy(on_output=on_output, color="never")
    s.workspace.remove_stack(stack)
