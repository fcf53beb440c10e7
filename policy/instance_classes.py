"""What an RDS instance class means for sizing: memory, burstability, PostgreSQL max_connections.

Alarms are relative to the instance (free memory as a share of the class's memory, connections
as a share of max_connections), so the class string must resolve to numbers. Source: the RDS
instance class table in the Amazon RDS User Guide ("DB instance classes", hardware specs).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_CLASS = re.compile(r"^db\.(?P<family>[a-z][a-z0-9-]*)\.(?P<size>[a-z0-9]+)$")

# memory GiB of the `large` size of each family; other sizes scale from it
_LARGE_MEMORY_GIB: dict[str, float] = {
    "m5": 8, "m5d": 8, "m6g": 8, "m6gd": 8, "m6i": 8, "m6id": 8, "m7g": 8, "m7i": 8, "m8g": 8,
    "r5": 16, "r5b": 16, "r5d": 16, "r6g": 16, "r6gd": 16, "r6i": 16, "r6id": 16, "r7g": 16,
    "r7i": 16, "r8g": 16, "x2g": 32, "x2iedn": 32,
    "t3": 8, "t4g": 8,
}  # fmt: skip
_SIZE_FACTOR: dict[str, float] = {
    "micro": 0.125, "small": 0.25, "medium": 0.5, "large": 1, "xlarge": 2, "2xlarge": 4,
    "4xlarge": 8, "8xlarge": 16, "12xlarge": 24, "16xlarge": 32, "24xlarge": 48,
    "32xlarge": 64, "48xlarge": 96,
}  # fmt: skip
_BURSTABLE = ("t3", "t4g")
_BURSTABLE_SIZES = ("micro", "small", "medium", "large", "xlarge", "2xlarge")


@dataclass(frozen=True)
class InstanceClass:
    """A resolved DB instance class."""

    name: str
    family: str
    size: str
    memory_gib: float
    burstable: bool

    @property
    def memory_bytes(self) -> int:
        return int(self.memory_gib * 1024**3)

    @property
    def db_instance_class_memory(self) -> int:
        """A lower bound of RDS's DBInstanceClassMemory for this class, bytes.

        DBInstanceClassMemory is the class's memory less what the OS and the RDS processes
        reserve (RDS User Guide, "DB parameter formula variables"), so it is below the nominal
        memory; AWS publishes no per-class figure. We assume 10 % and at least 300 MiB are
        reserved: an estimate, not a published number, chosen to err low, so a threshold taken
        as a share of it fires early rather than above the real limit (infra review #7: 95 % of
        the nominal figure sat above the real max_connections and could never fire).
        """
        reserved = max(self.memory_bytes // 10, 300 * 1024**2)
        return self.memory_bytes - reserved

    @property
    def max_connections(self) -> int:
        # RDS for PostgreSQL default max_connections: LEAST({DBInstanceClassMemory/9531392},
        # 5000) (AWS Prescriptive Guidance, "Tuning PostgreSQL parameters: max_connections").
        return min(self.db_instance_class_memory // 9531392, 5000)


def resolve(name: str) -> InstanceClass:
    """Resolve `db.<family>.<size>`; ValueError with the rule when it is not a known class."""
    m = _CLASS.match(name) if isinstance(name, str) else None
    if not m:
        raise ValueError("is not an instance class of the shape 'db.<family>.<size>'")
    family, size = m["family"], m["size"]
    if family not in _LARGE_MEMORY_GIB:
        known = ", ".join(sorted(_LARGE_MEMORY_GIB))
        raise ValueError(f"has an unknown instance family '{family}' (known: {known})")
    burstable = family in _BURSTABLE
    if size not in _SIZE_FACTOR or (burstable and size not in _BURSTABLE_SIZES):
        raise ValueError(f"has an unknown size '{size}' for family '{family}'")
    if not burstable and _SIZE_FACTOR[size] < 1:
        raise ValueError(f"has a size '{size}' that family '{family}' does not offer")
    return InstanceClass(
        name, family, size, _LARGE_MEMORY_GIB[family] * _SIZE_FACTOR[size], burstable
    )
