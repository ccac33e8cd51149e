"""Evaluating a fixed network on paired images (``scoring``: the rules, per-image metrics, cost and
the summary files) and comparing evaluations side by side (``compare``)."""
