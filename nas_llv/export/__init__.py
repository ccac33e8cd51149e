"""Export: the files a network leaves the platform in or comes into it from: model files that
rebuild from themselves alone (``modelfile``), ONNX files for use outside the platform (``onnx``),
and the import of the RUAS authors' published weights into a model file (``ruas_import``). How a
model file runs on images is ``nas_llv.inference``; the folding both use is ``space.fold``."""
