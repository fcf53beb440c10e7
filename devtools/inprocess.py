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
    session from that environment as a child would; sys.argv is `[module, *args]`. argparse's
    SystemExit is the exit code; a SystemExit with a message prints it and is 1, as in a child.
    Everything is restored however the call ends, also when the environment refuses a value
    (a NUL byte). There is no timeout: a command that hangs
    hangs the caller (a child can be killed; `make demo` runs children).
    `merge_output=True` writes stderr into stdout, in order (a child's `2>&1`); stderr is then "".
    `cwd` is the working directory for the call (a child's `cwd=`), restored after it.
    """
    main = importlib.import_module(module).main
    environment = dict(env)  # a snapshot: the caller's mapping may change during the call
    out = io.StringIO()
    err = out if merge_output else io.StringIO()
    saved_env, saved_stdin = dict(os.environ), sys.stdin
    saved_argv, saved_cwd = list(sys.argv), os.getcwd()
    try:
        if cwd is not None:
            os.chdir(cwd)
        os.environ.clear()
        os.environ.update(environment)
        sys.stdin = io.StringIO(stdin)
        sys.argv = [module, *args]
        with redirect_stdout(out), redirect_stderr(err):
            try:
                code = main(list(args))
            except SystemExit as exc:  # argparse answers bad usage with SystemExit(2)
                if isinstance(exc.code, int) or exc.code is None:
                    code = exc.code or 0
                else:  # SystemExit("message"): the interpreter prints it and exits 1
                    print(exc.code, file=sys.stderr)
                    code = 1
    finally:
        os.environ.clear()
        os.environ.update(saved_env)
        sys.stdin, sys.argv = saved_stdin, saved_argv
        os.chdir(saved_cwd)
    return int(code), out.getvalue(), "" if merge_output else err.getvalue()
