"""The site's privacy budget: the ledger of every run and release, and the cap it enforces."""
