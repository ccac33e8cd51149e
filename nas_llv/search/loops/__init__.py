"""The search loops, one per strategy kind (``Strategy.kind``), each a ``Searcher`` registered in
``SEARCH_LOOPS``: ``one_shot`` and ``multi_trial``. ``Searcher(recipe)`` picks one by the
recipe's strategy; nothing else names them."""
