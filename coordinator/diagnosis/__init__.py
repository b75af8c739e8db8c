"""Training and evaluating the shared diagnostic model on dataset folders."""
