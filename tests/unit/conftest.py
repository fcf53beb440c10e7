"""Fixtures of the unit tests that run commands in a project of their own."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def offline_project(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, files: tuple[str, ...]
) -> Path:
    """A project folder with the checkout's `files`, the commands pointed at it, and an AWS
    environment that reaches nothing: no profile or credentials file of this machine, a closed
    endpoint on 127.0.0.1, one attempt per call."""
    root = tmp_path / "project"
    root.mkdir()
    for name in files:
        shutil.copy(ROOT / name, root / name)
    for key in [k for k in os.environ if k.startswith("AWS_")]:
        monkeypatch.delenv(key)
    monkeypatch.setenv("DBPLATFORM_PROJECT_DIR", str(root))
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")  # closed: no AWS reached
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "example")
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    return root
