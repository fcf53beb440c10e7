"""Operational commands of dbplatform, run as `python -m scripts.<name>` from the repo root."""
