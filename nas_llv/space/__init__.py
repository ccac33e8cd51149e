"""Step 1, declare: search spaces as YAML DAGs (``spec``), the one op table (``ops``), the
supernet's mixed edges and cells (``supernet``), the networks built from spaces (``models``),
genotypes (a point of a space, as plain data), NNI's labels (``nni_bridge``) and drawings."""
