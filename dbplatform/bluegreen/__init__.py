"""Internals of `dbplatform bluegreen`: the AWS view, the state record and each phase."""
