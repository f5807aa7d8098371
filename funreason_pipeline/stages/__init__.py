"""The pipeline's stages as pure functions, one per asset (no Dagster here).

Each takes the asset's inputs (frames and plain values: the statistics' upstream rows and the
earlier stages' rejections included) and returns a `StageOutput`: the table frame, the rejections
per partition, the metrics, the check outcomes and the export files as content. A stage reads no
file, database or environment variable and writes nothing (tests/test_thin_defs.py): the assets in
defs/ load the inputs, call the stage and hand its outputs to the IO managers, which store the
table, the rejections (the `rejections` table) and the files (defs/results.py).
"""
