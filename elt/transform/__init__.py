"""Running the models of ``aggregations/``: ``task`` (``elt transform`` and ``elt test`` over the selected graph),
``materialize`` (one model into its collection: view, table or incremental), ``intervals`` (which partitions
changed), ``checks`` (data tests, on changed partitions or in full) and ``artifacts`` (manifest and run results)."""
