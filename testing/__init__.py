"""Test support shared by tests/, bench/ and scripts/; not part of the runtime package.

    testing.llm_server   a lean OpenAI-compatible HTTP server (in-process or as a subprocess)

Importable from the repository root: pytest adds it (`pythonpath` in pyproject.toml), and the bench
and script entry points put the root on `sys.path`.
"""
