"""The blue/green checks that only the database itself can answer, in SQL.

Each check returns problem lines (empty = passed), so a refusal lists everything at once.
Sources (AWS RDS User Guide): "Limitations and considerations for Amazon RDS blue/green
deployments" (PostgreSQL logical replication limitations: tables need a primary key or replica
identity for UPDATE/DELETE to replicate, unlogged tables and large objects are not replicated,
the blue instance cannot be a self-managed publisher or subscriber, DDL is not replicated);
"Creating a blue/green deployment" (max_replication_slots, max_wal_senders,
max_logical_replication_workers and max_worker_processes sized for one replication worker per
database; long-running transactions delay the creation of the replication slots);
"Monitoring replica lag prior to switchover" (the `pg_replication_slots` LSN distance);
"Switching a blue/green deployment" / "After switchover" (the old blue stays read-only until
`default_transaction_read_only` is off and the instance rebooted).
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import psycopg  # the checks run on a connection the caller opened: psycopg is loaded then

Connect = Callable[[str], AbstractContextManager["psycopg.Connection[Any]"]]
"""A connection factory: database name -> connection (as a context manager)."""

LONG_TRANSACTION_SECONDS = 300
IDLE_IN_TRANSACTION_SECONDS = 60
SHOWN = 10  # names listed per problem; the count says how many more
WRITE_CHECK_TABLE = "dbplatform_write_check"


@dataclass(frozen=True)
class Limits:
    """Thresholds of the session checks (seconds)."""

    long_transaction: int = LONG_TRANSACTION_SECONDS
    idle_in_transaction: int = IDLE_IN_TRANSACTION_SECONDS


def _names(rows: list[Any]) -> str:
    shown = ", ".join(str(r[0]) for r in rows[:SHOWN])
    return shown + (f" and {len(rows) - SHOWN} more" if len(rows) > SHOWN else "")


def databases(conn: psycopg.Connection[Any]) -> list[str]:
    """The databases logical replication covers (not templates, not rdsadmin)."""
    rows = conn.execute(
        "SELECT datname FROM pg_database WHERE datallowconn AND NOT datistemplate "
        "AND datname <> 'rdsadmin' ORDER BY datname"
    ).fetchall()
    return [str(r[0]) for r in rows]


def _setting(conn: psycopg.Connection[Any], name: str) -> int:
    row = conn.execute("SELECT setting FROM pg_settings WHERE name = %s", (name,)).fetchone()
    return int(row[0]) if row and str(row[0]).isdigit() else 0


def server_problems(
    conn: psycopg.Connection[Any], *, logical: bool, limits: Limits = Limits()
) -> list[str]:
    """Instance-wide problems: slots, subscriptions, sessions, the max_* settings."""
    problems: list[str] = []
    dbs = databases(conn)
    seeing = conn.execute(
        "SELECT pg_has_role(current_user, 'pg_read_all_stats', 'member')"
        " OR (SELECT rolsuper FROM pg_roles WHERE rolname = current_user)"
    ).fetchone()
    if not (seeing and seeing[0]):
        # pg_stat_activity hides other users' state and xact_start from a role without
        # pg_read_all_stats (PostgreSQL "The Cumulative Statistics System"): the session checks
        # below would pass without having seen anything.
        problems.append(
            "session checks impossible: the connecting user is not a member of "
            "pg_read_all_stats, so other users' transactions are invisible to it; connect as the "
            "master user (rds_superuser includes pg_monitor) or GRANT pg_monitor to this user"
        )
    slots = conn.execute(
        "SELECT slot_name, slot_type, database, active FROM pg_replication_slots ORDER BY 1"
    ).fetchall()
    logical_slots = [s for s in slots if s[1] == "logical"]
    if logical and logical_slots:
        problems.append(
            f"{len(logical_slots)} logical replication slot(s) on blue ({_names(logical_slots)}): "
            "blue cannot be a logical replication source of its own during a logical blue/green "
            "deployment, and a slot holds WAL; drop them (SELECT pg_drop_replication_slot(name)) "
            "or move that consumer first"
        )
    subs = conn.execute("SELECT subname FROM pg_subscription ORDER BY 1").fetchall()
    if logical and subs:
        problems.append(
            f"{len(subs)} subscription(s) on blue ({_names(subs)}): blue cannot be a logical "
            "replication subscriber during a logical blue/green deployment; drop them first"
        )
    long_tx = conn.execute(
        "SELECT pid || ' (' || coalesce(usename, '?') || ', ' || state || ', '"
        " || extract(epoch FROM now() - xact_start)::bigint || 's)'"
        " FROM pg_stat_activity WHERE xact_start IS NOT NULL AND pid <> pg_backend_pid()"
        " AND backend_type = 'client backend' AND state NOT LIKE 'idle in transaction%%'"
        " AND now() - xact_start >= make_interval(secs => %s) ORDER BY xact_start",
        (limits.long_transaction,),
    ).fetchall()
    if long_tx:
        problems.append(
            f"{len(long_tx)} transaction(s) running for {limits.long_transaction}s or more "
            f"({_names(long_tx)}): the replication slots green needs wait for them; let them "
            "finish or end them (pg_cancel_backend)"
        )
    idle = conn.execute(
        "SELECT pid || ' (' || coalesce(usename, '?') || ', idle '"
        " || extract(epoch FROM now() - state_change)::bigint || 's)'"
        " FROM pg_stat_activity WHERE state LIKE 'idle in transaction%%'"
        " AND pid <> pg_backend_pid()"
        " AND now() - state_change >= make_interval(secs => %s) ORDER BY state_change",
        (limits.idle_in_transaction,),
    ).fetchall()
    if idle:
        problems.append(
            f"{len(idle)} session(s) idle in a transaction for {limits.idle_in_transaction}s or "
            f"more ({_names(idle)}): they block the creation of the replication slots; fix the "
            "client or end them (pg_terminate_backend)"
        )
    if logical:
        need = len(dbs) + len(slots)
        for name, wanted in (("max_replication_slots", need), ("max_wal_senders", need)):
            have = _setting(conn, name)
            if have < wanted:
                problems.append(
                    f"{name} is {have}; a logical blue/green deployment of {len(dbs)} "
                    f"database(s) with {len(slots)} existing slot(s) needs at least {wanted}: "
                    "raise it in the parameter group (static: reboot) before start"
                )
        problems += worker_problems(
            "blue",
            _setting(conn, "max_worker_processes"),
            _setting(conn, "max_logical_replication_workers"),
            len(dbs),
        )
    return problems


def worker_problems(where: str, workers: int, logical_workers: int, dbs: int) -> list[str]:
    """The replication worker limits of one side (one apply worker per database on the
    subscriber, green; AWS "Creating a blue/green deployment" sizes them on both sides)."""
    problems: list[str] = []
    if logical_workers < dbs:
        problems.append(
            f"max_logical_replication_workers is {logical_workers} on {where}; a logical "
            f"blue/green deployment of {dbs} database(s) needs at least {dbs}: raise it in the "
            "parameter group (static: reboot) before start"
        )
    if workers <= max(logical_workers, dbs):
        problems.append(
            f"max_worker_processes is {workers} on {where}, not above "
            f"max_logical_replication_workers ({logical_workers}) and the {dbs} database(s): the "
            "replication workers come out of that pool; raise it in the parameter group "
            "(static: reboot)"
        )
    return problems


def database_problems(conn: psycopg.Connection[Any], dbname: str, *, logical: bool) -> list[str]:
    """Problems inside one database: tables logical replication cannot carry, extensions."""
    problems: list[str] = []
    if logical:
        no_key = conn.execute(
            "SELECT quote_ident(n.nspname) || '.' || quote_ident(c.relname) FROM pg_class c"
            " JOIN pg_namespace n ON n.oid = c.relnamespace"
            " WHERE c.relkind = 'r' AND n.nspname <> 'information_schema'"
            " AND n.nspname !~ '^pg_' AND ("
            "  c.relreplident = 'n' OR (c.relreplident = 'd' AND NOT EXISTS ("
            "   SELECT 1 FROM pg_index i WHERE i.indrelid = c.oid AND i.indisprimary))"
            "  OR (c.relreplident = 'i' AND NOT EXISTS ("
            "   SELECT 1 FROM pg_index i WHERE i.indrelid = c.oid AND i.indisreplident)))"
            " ORDER BY 1"
        ).fetchall()
        if no_key:
            problems.append(
                f"{dbname}: {len(no_key)} table(s) without a primary key or replica identity "
                f"({_names(no_key)}): their UPDATEs and DELETEs cannot replicate to green; add "
                "a primary key, or ALTER TABLE ... REPLICA IDENTITY FULL"
            )
        unlogged = conn.execute(
            "SELECT quote_ident(n.nspname) || '.' || quote_ident(c.relname) FROM pg_class c"
            " JOIN pg_namespace n ON n.oid = c.relnamespace"
            " WHERE c.relkind IN ('r', 'p') AND n.nspname <> 'information_schema'"
            " AND n.nspname !~ '^pg_' AND c.relpersistence = 'u' ORDER BY 1"
        ).fetchall()
        if unlogged:
            problems.append(
                f"{dbname}: {len(unlogged)} unlogged table(s) ({_names(unlogged)}) are not "
                "replicated: green starts with them empty; ALTER TABLE ... SET LOGGED, or accept "
                "losing their content and drop them"
            )
        row = conn.execute("SELECT count(*) FROM pg_largeobject_metadata").fetchone()
        count = int(row[0]) if row else 0
        if count:
            problems.append(
                f"{dbname}: {count} large object(s) (pg_largeobject) are not replicated: move "
                "them into bytea columns or an object store first"
            )
    stale = conn.execute(
        "SELECT e.extname || ' ' || e.extversion || ' -> ' || a.default_version"
        " FROM pg_extension e JOIN pg_available_extensions a ON a.name = e.extname"
        " WHERE a.default_version IS NOT NULL AND a.default_version <> e.extversion ORDER BY 1"
    ).fetchall()
    if stale:
        problems.append(
            f"{dbname}: extension(s) behind their installed package ({_names(stale)}): run "
            "ALTER EXTENSION name UPDATE on blue first; the upgrade path of an extension starts "
            "from its current version"
        )
    return problems


def preflight(connect: Connect, *, logical: bool, limits: Limits = Limits()) -> list[str]:
    """Every SQL problem of a blue/green deployment, all at once; empty when it may start.

    `connect(dbname)` opens a connection to one database of blue; `logical` is True for a
    major-version deployment (logical replication), False for a physical one.
    """
    with connect("postgres") as conn:
        problems = server_problems(conn, logical=logical, limits=limits)
        names = databases(conn)
    for name in names:
        with connect(name) as conn:
            problems += database_problems(conn, name, logical=logical)
    return problems


@dataclass(frozen=True)
class SlotLag:
    """How far one logical slot's consumer is behind blue's current WAL position."""

    slot: str
    database: str | None
    active: bool
    lag_bytes: int


def slot_lags(conn: psycopg.Connection[Any]) -> list[SlotLag]:
    """Each logical slot's distance (bytes) from the current WAL position: the LSN-distance
    query of AWS "Monitoring replica lag prior to switchover" (confirmed_flush_lsn)."""
    rows = conn.execute(
        "SELECT slot_name, database, active,"
        " coalesce(pg_wal_lsn_diff(pg_current_wal_lsn(), confirmed_flush_lsn), 0)::bigint"
        " FROM pg_replication_slots WHERE slot_type = 'logical' ORDER BY slot_name"
    ).fetchall()
    return [SlotLag(str(r[0]), r[1], bool(r[2]), int(r[3])) for r in rows]


WRITABLE = "writable"
READ_ONLY = "read-only"
UNKNOWN = "unknown"


@dataclass(frozen=True)
class Writability:
    """What a write to a scratch table proved."""

    state: str
    """writable | read-only | unknown."""
    default_read_only: bool | None
    in_recovery: bool | None
    detail: str


def prove_writable(conn: psycopg.Connection[Any]) -> Writability:
    """Create a scratch table and write a row in a transaction that is then rolled back: the
    write is proven and nothing is left behind. Never says "writable" without that write."""
    import psycopg
    from psycopg import sql

    try:
        row = conn.execute(
            "SELECT current_setting('default_transaction_read_only') = 'on', pg_is_in_recovery()"
        ).fetchone()
    except psycopg.Error as exc:
        return Writability(UNKNOWN, None, None, f"could not read the settings: {exc}")
    read_only, recovery = (bool(row[0]), bool(row[1])) if row else (None, None)
    try:
        with conn.transaction(force_rollback=True):
            table = sql.Identifier(WRITE_CHECK_TABLE)
            conn.execute(
                sql.SQL("CREATE TABLE {} (id int PRIMARY KEY, at timestamptz)").format(table)
            )
            conn.execute(sql.SQL("INSERT INTO {} VALUES (1, now())").format(table))
    except psycopg.errors.ReadOnlySqlTransaction as exc:
        return Writability(READ_ONLY, read_only, recovery, str(exc).strip())
    except psycopg.Error as exc:
        return Writability(UNKNOWN, read_only, recovery, f"the test write failed: {exc}")
    return Writability(WRITABLE, read_only, recovery, "a test write succeeded (rolled back)")


def fence_bypasses(conn: psycopg.Connection[Any]) -> list[str]:
    """Role-level default_transaction_read_only settings: a role's setting (alone or per
    database) beats the database's (PostgreSQL ALTER ROLE: role-specific settings override
    database-specific ones), so the fence would not reach that role's sessions."""
    rows = conn.execute(
        "SELECT coalesce(r.rolname, '?') || coalesce(' in ' || d.datname, '') || ': ' || c"
        " FROM pg_db_role_setting s CROSS JOIN unnest(s.setconfig) c"
        " LEFT JOIN pg_roles r ON r.oid = s.setrole"
        " LEFT JOIN pg_database d ON d.oid = s.setdatabase"
        " WHERE s.setrole <> 0 AND c LIKE 'default\\_transaction\\_read\\_only=%'"
        " AND lower(split_part(c, '=', 2)) NOT IN ('on', 'true', 'yes', '1') ORDER BY 1"
    ).fetchall()
    return [str(r[0]) for r in rows]


def other_sessions(conn: psycopg.Connection[Any]) -> list[str]:
    """Client sessions of other roles than the connecting one (rdsadmin aside)."""
    rows = conn.execute(
        "SELECT pid || ' (' || coalesce(usename, '?') || ' on ' || datname || ')'"
        " FROM pg_stat_activity WHERE pid <> pg_backend_pid() AND backend_type = 'client backend'"
        " AND usename IS DISTINCT FROM 'rdsadmin' AND usename IS DISTINCT FROM current_user"
        " AND datname IS NOT NULL ORDER BY pid"
    ).fetchall()
    return [str(r[0]) for r in rows]


def fence_writes(conn: psycopg.Connection[Any]) -> list[int]:
    """Stop writes on this server before a snapshot that must hold all of them: every database
    defaults to read-only (`ALTER DATABASE ... SET default_transaction_read_only = on`) and the
    other client sessions are ended, so every new transaction of a default session is read-only.
    Returns the ended sessions' pids. Not stopped: a role-level setting (check
    `fence_bypasses` first) and a client that asks for it (`BEGIN READ WRITE`, `SET
    default_transaction_read_only = off`): this fences default sessions, so the application
    must be stopped too."""
    from psycopg import sql

    for name in databases(conn):
        conn.execute(
            sql.SQL("ALTER DATABASE {} SET default_transaction_read_only = on").format(
                sql.Identifier(name)
            )
        )
    # OFFSET 0 keeps the filter below the terminate call: WHERE order is not evaluation order.
    rows = conn.execute(
        "SELECT pid FROM (SELECT pid FROM pg_stat_activity WHERE pid <> pg_backend_pid()"
        " AND backend_type = 'client backend' AND usename IS DISTINCT FROM 'rdsadmin'"
        " AND datname IS NOT NULL OFFSET 0) s WHERE pg_terminate_backend(pid)"
    ).fetchall()
    return [int(r[0]) for r in rows]


def prove_writable_everywhere(connect: Connect) -> dict[str, Writability]:
    """`prove_writable` in every database (a database-level setting differs per database)."""
    with connect("postgres") as conn:
        names = databases(conn)
    seen: dict[str, Writability] = {}
    for name in names:
        with connect(name) as conn:
            seen[name] = prove_writable(conn)
    return seen


def weakest(seen: dict[str, Writability]) -> tuple[str, Writability]:
    """The database that is furthest from writable (read-only before unknown before writable)."""
    order = {READ_ONLY: 0, UNKNOWN: 1, WRITABLE: 2}
    name = min(seen, key=lambda n: (order.get(seen[n].state, 1), n))
    return name, seen[name]
