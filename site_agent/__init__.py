"""The hospital side of fedsynth: ingest CT, train a private generator, export only synthetic data."""
