"""How a manifest spells values it cannot know offline: outputs of resources not yet created, and
secrets (their plaintext never reaches a manifest). Its own module so that what only needs the
markers (the operations' redaction of arguments and logs) does not load the manifest model."""

KNOWN_AFTER_DEPLOY = "(known after deploy)"
SECRET = "[secret]"
