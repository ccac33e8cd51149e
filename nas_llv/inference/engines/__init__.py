"""The inference engines, one module each (``nas_llv.inference.engine``); the registry ``ENGINES``
imports every module here on its first lookup."""
