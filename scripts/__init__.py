"""The command modules of dbplatform: `dbplatform <command>`, or `python -m scripts.<module>` for
CI and muscle memory. Each module is the command line only (flags, exit codes) over a package of
`dbplatform` named for what it does.

A Python without the project's dependencies (a bare `python` instead of the venv's) is answered
here with exit 2 and what to run, not with an ImportError traceback and exit 1, which would read
as "a check failed".
"""

import importlib.util
import sys

_NEEDED = ("yaml", "boto3", "pulumi", "pulumi_aws", "rich", "psycopg")
_missing = [name for name in _NEEDED if importlib.util.find_spec(name) is None]
if _missing:
    sys.stderr.write(
        f"error: this Python ({sys.executable}) lacks dbplatform's dependencies "
        f"({', '.join(_missing)}): run `make setup` in the checkout, then use "
        "`.venv/bin/dbplatform COMMAND` (or `.venv/bin/python -m scripts.<module>`)\n"
    )
    raise SystemExit(2)
if sys.argv[:1] == ["-m"]:
    # `python -m scripts.<module>` (Python sets argv[0] to "-m" while it imports the package):
    # this process exists for that one command. Its imports are not collected; the module's
    # entry then sets the collector for the command's kind (dbplatform/entry.py collector_for).
    import gc

    gc.disable()
