"""Internals of `python -m scripts.bluegreen`: the AWS view, the state record and each phase."""
