"""`coordinator foundation`: the public foundation model, trained centrally on public CT without DP."""
