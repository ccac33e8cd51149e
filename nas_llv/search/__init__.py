"""Step 2, search: the loop (``loop``), bilevel levels (``level``), the registered strategies
(``strategies``) and hypergradient methods (``hypergrad``)."""
