"""R6: a planted API key appears nowhere: logs, output, results, stats, the DuckDB file and table."""

import logging
import uuid

import duckdb
import pytest
from llm_helpers import options, reqs, run_batch
from pydantic import BaseModel

from funreason_pipeline.llm import EndpointUnavailableError, LLMClient, LLMSettings, run_structured
from testing.llm_server import TestServer


class Echo(BaseModel):
    echo: str


def test_planted_key_never_leaks(tmp_path, caplog, capfd):
    key = f"sk-test-PLANTED-{uuid.uuid4().hex}"
    db = tmp_path / "secret.duckdb"
    caplog.set_level(logging.DEBUG)  # everything: openai, httpx2, aiohttp, ours
    for name in ("openai", "httpx2", "httpcore2", "aiohttp", "funreason_pipeline"):
        logging.getLogger(name).setLevel(logging.DEBUG)

    # a misbehaving proxy echoes the Authorization header into its 500 bodies
    with TestServer(rate_500=0.4, rate_truncated=0.2, error_body_echo_auth=True, seed=3) as srv:
        env = {"FUNREASON_LLM_BASE_URL": srv.url, "FUNREASON_LLM_API_KEY": key, "FUNREASON_LLM_MODEL": "m"}
        settings = LLMSettings.from_env(env)
        client = LLMClient(settings, db_path=db, options=options(max_attempts=1, breaker_failures=1000))
        out = run_structured(client, reqs(40), {"querying": Echo})
        logging.getLogger("funreason_pipeline.test").info("settings %s %r", settings, settings)
        print(settings, repr(settings.role("querying")), out.stats)

    failed = [r for r in out.results if r.reason == "http_5xx"]
    assert failed, "the test must see 500 bodies that carried the key"
    assert all("Bearer ***" in r.error for r in failed)  # it was there, and it was scrubbed

    texts = [
        caplog.text,
        capfd.readouterr().out,
        capfd.readouterr().err,
        out.model_dump_json(),
        str(out.as_metadata()),
        repr(settings),
        settings.model_dump_json(),
        str(settings.model_dump()),
    ]
    texts += [r.model_dump_json() for r in out.results]
    for t in texts:
        assert key not in t
    for f in tmp_path.rglob("*"):  # the database, its WAL, any journal
        if f.is_file():
            assert key.encode() not in f.read_bytes(), f
    with duckdb.connect(str(db), read_only=True) as con:
        assert key not in str(con.execute("SELECT * FROM llm_calls").fetchall())


def test_key_not_in_circuit_breaker_error(tmp_path):
    key = f"sk-test-PLANTED-{uuid.uuid4().hex}"
    with TestServer(rate_500=1.0, error_body_echo_auth=True) as srv:
        settings = LLMSettings.for_endpoint(srv.url, api_key=key)
        client = LLMClient(settings, cache=False, options=options(breaker_failures=3))
        with pytest.raises(EndpointUnavailableError) as exc:
            run_batch(client, reqs(10))
    assert "auth: Bearer ***" in str(exc.value) and key not in str(exc.value)
    assert key not in exc.value.result.model_dump_json()
