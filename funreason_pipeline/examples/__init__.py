"""Example user environments: stateful Python classes run through the pipeline with no BFCL code.

See docs/user_environments.md for how to write your own.
"""
