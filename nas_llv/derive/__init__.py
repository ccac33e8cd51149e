"""Step 4, derive: retrain a derived network (``train``), run it (``inference``), evaluate it
(``evaluate``) and compare evaluations (``compare``)."""
