"""The blue/green cycle as a state machine: which command is legal in which phase of the state
record, where it leads, and which step loses writes. docs/bluegreen.md draws it (`make docs`).

The phases are the record's (`dbplatform/bluegreen/model.py`); the transitions restate the
checks at the top of `start.run`, `promote.run`, `rollback.run` and `finalize.run`.
tests/test_pictures.py fails when a phase of the model is missing here.
"""

from __future__ import annotations

from dataclasses import dataclass

from dbplatform.bluegreen.model import (
    CANCELLED,
    FINALIZED,
    PROMOTED,
    ROLLED_BACK,
    ROLLING_BACK,
    STARTED,
    SWITCHED_OVER,
    SWITCHING,
)

NO_CYCLE = "[*]"
"""No record yet, in Mermaid's notation for the start state."""

PHASES: tuple[str, ...] = (
    STARTED,
    SWITCHING,
    SWITCHED_OVER,
    PROMOTED,
    CANCELLED,
    ROLLING_BACK,
    ROLLED_BACK,
    FINALIZED,
)


@dataclass(frozen=True)
class Transition:
    """`dbplatform bluegreen <command>` moves the record from `source` to `target`."""

    source: str
    command: str
    target: str
    loses_writes: bool = False
    """The step throws away what was written to green since the switchover (the data window)."""


TRANSITIONS: tuple[Transition, ...] = (
    Transition(NO_CYCLE, "start", STARTED),
    Transition(FINALIZED, "start", STARTED),
    Transition(CANCELLED, "start", STARTED),
    Transition(STARTED, "promote: gates, snapshot of blue", SWITCHING),
    Transition(SWITCHING, "promote: switchover completes", SWITCHED_OVER),
    Transition(SWITCHED_OVER, "promote: post-checks pass", PROMOTED),
    Transition(STARTED, "rollback (before switchover)", CANCELLED),
    # RDS rolled a failed switchover back (green AVAILABLE again), or the deployment was deleted
    # before it switched: rollback deletes green with the deployment, or closes the record
    Transition(SWITCHING, "rollback (switchover failed or never done)", CANCELLED),
    # a promote cut short after RDS switched over: the reverse path, as after switched-over
    Transition(SWITCHING, "rollback --accept-data-window (switched)", ROLLING_BACK, True),
    Transition(SWITCHED_OVER, "rollback --accept-data-window", ROLLING_BACK, loses_writes=True),
    Transition(PROMOTED, "rollback --accept-data-window", ROLLING_BACK, loses_writes=True),
    Transition(ROLLING_BACK, "rollback: old blue serves again", ROLLED_BACK),
    Transition(PROMOTED, "finalize (after the soak)", FINALIZED),
    Transition(ROLLED_BACK, "finalize (after the soak)", FINALIZED),
)


def legal_commands(phase: str) -> list[str]:
    """The commands that move a cycle on from `phase` (status is legal everywhere)."""
    return sorted({t.command.split()[0].rstrip(":") for t in TRANSITIONS if t.source == phase})


def _id(phase: str) -> str:
    return phase if phase == NO_CYCLE else phase.replace("-", "_")


def state_diagram() -> str:
    """A Mermaid `stateDiagram-v2` of the cycle; the steps that lose writes are marked."""
    lines = ["stateDiagram-v2"]
    for phase in PHASES:
        lines.append(f'  state "{phase}" as {_id(phase)}')
    for t in TRANSITIONS:
        label = t.command + (" ⚠ loses writes since switchover" if t.loses_writes else "")
        lines.append(f"  {_id(t.source)} --> {_id(t.target)} : {label}")
    lines.append(f"  {_id(FINALIZED)} --> [*]")
    lines += [
        f"  note right of {_id(SWITCHED_OVER)}",
        "    writes go to green from here:",
        "    a rollback keeps blue's data only",
        "  end note",
    ]
    lines.append("  classDef lossy fill:#fde2e1,stroke:#c0392b")
    lines.append(f"  class {_id(ROLLING_BACK)},{_id(ROLLED_BACK)} lossy")
    return "\n".join(lines) + "\n"
