"""Developer and test tooling (local AWS emulator, demo data); never used against real AWS."""
