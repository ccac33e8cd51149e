"""The inference engines, one module each (``nas_llv.export.engine``); the registry ``ENGINES``
imports every module here on its first lookup."""
