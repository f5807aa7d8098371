"""R1: a fault mix -> the run completes, every item is a response or a recorded failure."""

from collections import Counter

from llm_helpers import make_client, reqs
from pydantic import BaseModel

from funreason_pipeline.llm import LLMFailure, LLMResponse, run_structured
from funreason_pipeline.llm.testserver import TestServer


class Echo(BaseModel):
    echo: str


def test_fault_mix_every_item_accounted_for(tmp_path):
    n = 200
    faults = {
        "rate_500": 0.20,
        "rate_429": 0.10,
        "rate_timeout": 0.05,
        "rate_malformed": 0.05,
        "rate_truncated": 0.05,
    }
    with TestServer(latency=0.01, retry_after=0.05, hang_s=3, seed=11, **faults) as srv:
        # few attempts, so that some items really end as failures
        client = make_client(
            srv.url, tmp_path / "f.duckdb", concurrency=16, timeout_s=0.4, max_attempts=2, breaker_failures=40
        )
        batch = client.run(reqs(n))
        st = srv.stats()
        structured = run_structured(
            make_client(
                srv.url,
                tmp_path / "f.duckdb",
                concurrency=16,
                timeout_s=0.4,
                max_attempts=2,
                breaker_failures=40,
            ),
            reqs(n),
            {"querying": Echo},
        )
    outcomes = st["by_outcome"]
    for o in ("ok", "error_500", "rate_limited", "timeout", "malformed", "truncated"):
        assert outcomes.get(o, 0) > 0, outcomes

    # transport level: every item is a response or a failure with a kind
    assert len(batch.results) == n
    assert [r.item_id for r in batch.results] == [f"q-{i}" for i in range(n)]
    kinds = Counter(r.kind.value for r in batch.results if isinstance(r, LLMFailure))
    ok = sum(isinstance(r, LLMResponse) for r in batch.results)
    assert (
        ok + sum(kinds.values()) == n and batch.stats.ok == ok and batch.stats.failed == sum(kinds.values())
    )
    assert kinds and set(kinds) <= {"http_5xx", "timeout", "bad_response", "rate_limited"}
    assert dict(kinds) == batch.stats.failures_by_kind
    assert any(r.finish_reason == "length" for r in batch.results if r.ok)  # truncated kept, not dropped

    # parse level: items in = accepted + rejected, every rejection with a reason
    acc = [r for r in structured.results if r.ok]
    rej = [r for r in structured.results if not r.ok]
    assert len(acc) + len(rej) == n and acc and rej
    assert all(r.reason and r.error for r in rej)
    assert sum(structured.rejected_by_reason.values()) == len(rej)
