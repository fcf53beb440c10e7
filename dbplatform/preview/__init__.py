"""The preview reporter's parts: reading `pulumi preview --json` (digest) and writing the
comment (markdown)."""
