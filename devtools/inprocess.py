"""Run a command module's `main(argv)` inside this process, as `python -m <module> ARGS` would run
in a child: its own environment, stdin a non-terminal, output captured, the exit code returned.

A child costs an interpreter start-up and the imports (about a second for a command that loads
pulumi or boto3); in-process the imports are already there. The test suite and `make demo
--in-process` use this; a test about the process itself (signals, the interpreter's exit, what a
command imports) still starts a real child.
"""

from __future__ import annotations

import importlib
import io
import os
import sys
from collections.abc import Mapping, Sequence
from contextlib import redirect_stderr, redirect_stdout


def run_main(
    module: str,
    args: Sequence[str],
    *,
    env: Mapping[str, str],
    stdin: str = "",
    merge_output: bool = False,
    cwd: str | os.PathLike[str] | None = None,
) -> tuple[int, str, str]:
    """`python -m <module> ARGS` with `env` in this process: (exit code, stdout, stderr).

    os.environ is `env` for the call and restored after it, so the command builds its AWS
    session from that environment as a child would. argparse's SystemExit is the exit code.
    `merge_output=True` writes stderr into stdout, in order (a child's `2>&1`); stderr is then "".
    `cwd` is the working directory for the call (a child's `cwd=`), restored after it.
    """
    main = importlib.import_module(module).main
    out = io.StringIO()
    err = out if merge_output else io.StringIO()
    saved_env, saved_stdin, saved_cwd = dict(os.environ), sys.stdin, os.getcwd()
    if cwd is not None:
        os.chdir(cwd)
    os.environ.clear()
    os.environ.update(env)
    sys.stdin = io.StringIO(stdin)
    try:
        with redirect_stdout(out), redirect_stderr(err):
            try:
                code = main(list(args))
            except SystemExit as exc:  # argparse answers bad usage with SystemExit(2)
                code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    finally:
        os.environ.clear()
        os.environ.update(saved_env)
        sys.stdin = saved_stdin
        os.chdir(saved_cwd)
    return int(code), out.getvalue(), "" if merge_output else err.getvalue()
