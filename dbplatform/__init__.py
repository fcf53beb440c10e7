"""dbplatform: the data tier as code (the Pulumi program in infra/) and the operational commands
that run beside it, one `dbplatform` command (dbplatform.cli). Libraries by what they are:
`ops` (the operations runner), `bluegreen`, `dr`, `secrets`, `manifest` (offline reports over a
synthesised manifest) and `preview` (the pull-request comment). docs/architecture.md has the map.
"""

__version__ = "0.5.0"
