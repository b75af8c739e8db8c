"""`site-agent`, the command hospital IT runs: `main` assembles it, one module per group of commands."""
