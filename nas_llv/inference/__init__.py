"""Inference: how a model file runs on images for ``enhance`` and ``eval``. An engine
(``engine.py``, one module each in ``engines/``, registered in ``ENGINES``) turns a model file,
or an ONNX file, into the module that runs; it reads export's files and folds the network with
``space.fold``."""
