"""Stack lookup: a stack name -> its validated config and physical names, without Pulumi.

The config comes from `Pulumi.<stack>.yaml` through `infra.config.load_stack`; names come from
`infra.naming.Names`. `DBPLATFORM_PROJECT_DIR` points at another folder of stack files (CI jobs,
tests); else they are the checkout's this code lives in, whatever the working directory
(`infra.config.project_dir`: from inside another checkout the command refuses instead).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from infra.config import (
    PROJECT_DIR_ENV,
    ConfigError,
    StackConfig,
    load_stack,
    missing_stack_file,
    project_dir,
)
from infra.naming import STACK_NAME, Names

__all__ = ["PROJECT_DIR_ENV", "StackRef", "project_root", "resolve_stack"]


def project_root() -> Path:
    """The directory holding Pulumi.yaml and the stack files (`infra.config.project_dir`)."""
    return project_dir()


@dataclass(frozen=True)
class StackRef:
    """One stack as the commands see it."""

    name: str
    config: StackConfig
    names: Names
    root: Path

    @property
    def config_path(self) -> Path:
        """`Pulumi.<stack>.yaml`, the file `--update-config` edits."""
        return self.root / f"Pulumi.{self.name}.yaml"

    @property
    def region(self) -> str:
        return self.config.region


def resolve_stack(
    name: str, root: Path | None = None, *, warnings: list[str] | None = None
) -> StackRef:
    """Load and validate stack `name`; raises `ConfigError` naming every problem (exit 2).

    With `warnings` (read-only commands and rollback): a file that breaks a validation rule but
    still yields region and names is accepted and the problems are appended there, so a rule
    tightened in a newer checkout never locks on-call out of `status` or `rollback`.
    """
    root = root or project_root()
    if not STACK_NAME.match(name):
        raise ConfigError(
            name,
            [f"'{name}' is not a stack name (1-24 characters of a-z, 0-9, '-', a letter first)"],
        )
    if not (root / f"Pulumi.{name}.yaml").is_file():
        raise missing_stack_file(name, root)
    return StackRef(
        name=name, config=load_stack(name, root, warnings=warnings), names=Names(name), root=root
    )
