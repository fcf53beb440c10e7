"""A stack's offline manifest and what is built on it: rendering, guardrails, diff, timing."""
