"""Retraining a derived network at full size (``trainer``: the ``Trainer`` job and its objective)."""
