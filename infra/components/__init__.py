"""One ComponentResource per logical unit of the data tier."""
