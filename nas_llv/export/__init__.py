"""Step 3, export: model files that rebuild from themselves alone (``modelfile``), the import of
the RUAS authors' published weights into one (``ruas_import``), and ONNX files for use outside
the platform (``onnx``)."""
