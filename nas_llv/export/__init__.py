"""Step 3, export: model files that rebuild from themselves alone (``modelfile``) and the import
of the RUAS authors' published weights into one (``ruas_import``)."""
