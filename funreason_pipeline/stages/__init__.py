"""The pipeline's stages as pure functions, one per asset (no Dagster here).

Each takes the asset's inputs (frames, configuration values, the database path where a stage reads
statistics or writes export files) and returns a `StageOutput`: the table frame, the rejections per
partition, the metrics and the check outcomes. The assets in defs/ only load the inputs, call the
stage, write the rejections and wrap the rest in Dagster's types (defs/results.py).
"""
