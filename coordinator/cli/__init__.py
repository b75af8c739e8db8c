"""`coordinator`, the command the operator runs: `main` assembles it, one module per group of commands."""
