"""The shared diagnostic model: its networks, its files, and the metrics both sides report."""
