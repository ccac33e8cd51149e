"""Deriving a search's architecture: each edge's margin and when α settled (``margins``), and the
genotype derived again from the final α under P-DARTS' cap on skip ops (``rederive``)."""
