"""Issue 11: one concurrent LLM flow per run, tail latency bounded, prompts never cut.

Real parts: Dagster runs over a DuckDB file, the test server over HTTP, the openai client."""

import json
import shutil
import sys
from pathlib import Path

import dagster as dg
import duckdb
import pytest
from flow_helpers import run_llm
from llm_helpers import run_batch

from funreason_pipeline.agents.budget import PromptTooLong, fit_tool_list
from funreason_pipeline.agents.dialogue import build_dialogue
from funreason_pipeline.agents.flow import FEEDBACK
from funreason_pipeline.llm import ClientOptions, LLMClient, LLMRequest, LLMSettings
from testing.llm_server import ServerConfig, TestServer

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.scripted_agents import ChainAgents

DAY = "2026-08-01"
TOOLSETS = ["tickets", "trading"]  # neighbours in the partition order: one range, one run
TRAJ = 3
RANGE = {"dagster/asset_partition_range_start": f"{DAY}|{TOOLSETS[0]}",
         "dagster/asset_partition_range_end": f"{DAY}|{TOOLSETS[-1]}"}
TABLES = {"queries": "trajectory_id, turn_index", "cot_traces": "trajectory_id, turn_index",
          "rejections": "stage, item_id, reason"}


def _defs():
    from funreason_pipeline.definitions import defs

    return defs()


def _phase1(db: Path, inst) -> None:
    from funreason_pipeline.defs.resources import build_resources

    d = _defs()
    res = build_resources(str(db))
    for ts in TOOLSETS:
        assert dg.materialize(list(d.assets), selection=["tool_catalog", "api_graph"], partition_key=ts,
                              resources=res, instance=inst).success
        key = str(dg.MultiPartitionKey({"day": DAY, "toolset": ts}))
        assert dg.materialize(list(d.assets), partition_key=key, resources=res, instance=inst,
                              selection=dg.AssetSelection.assets("trajectories").required_multi_asset_neighbors(),
                              run_config={"ops": {"trajectories": {"config": {"trajectories_per_partition": TRAJ}}}}
                              ).success


def _llm_run(db: Path, inst, llm=None, **kw) -> dg.ExecuteInProcessResult:
    from funreason_pipeline.defs.resources import build_resources

    d = _defs()
    r = dg.materialize(list(d.assets), resources=build_resources(str(db), llm), instance=inst,
                       selection=dg.AssetSelection.assets("queries", "cot_traces").required_multi_asset_neighbors(), **kw)
    assert r.success
    return r


def _rows(db: Path) -> dict[str, list]:
    with duckdb.connect(str(db), read_only=True) as con:
        out = {}
        for t, order in TABLES.items():
            cols = "* EXCLUDE (detail)" if t == "rejections" else "*"
            where = "WHERE stage IN ('queries', 'cot_traces')" if t == "rejections" else ""
            out[t] = con.execute(f"SELECT {cols} FROM {t} {where} ORDER BY toolset, {order}").fetchall()
        return out


@pytest.fixture(scope="module")
def phase1_db(tmp_path_factory):
    db = tmp_path_factory.mktemp("flow") / "phase1.duckdb"
    with dg.instance_for_test() as inst:
        _phase1(db, inst)
    return db


def test_one_run_materializes_several_partitions_like_per_partition_runs_offline(phase1_db, tmp_path):
    one, per = tmp_path / "one.duckdb", tmp_path / "per.duckdb"
    shutil.copy(phase1_db, one)
    shutil.copy(phase1_db, per)
    with dg.instance_for_test() as inst:
        r = _llm_run(one, inst, tags=RANGE)
        mats = [m for m in r.get_asset_materialization_events() if m.asset_key.to_user_string() == "queries"]
        assert sorted(m.partition for m in mats) == sorted(f"{DAY}|{ts}" for ts in TOOLSETS)
        assert len({e.step_key for e in r.all_events if e.step_key}) == 1  # one step: one flow
        for ts in TOOLSETS:
            _llm_run(per, inst, partition_key=str(dg.MultiPartitionKey({"day": DAY, "toolset": ts})))
    a, b = _rows(one), _rows(per)
    assert a["queries"] and a["cot_traces"]
    assert {row[1] for row in a["queries"]} == set(TOOLSETS)  # both partitions have rows
    assert a == b


def test_one_flow_interleaves_partitions_on_one_client(phase1_db, tmp_path):
    """With every trajectory a task, requests of both partitions are in flight at once: more than one
    partition's trajectories could make (each trajectory has one request in flight at a time)."""
    db = tmp_path / "online.duckdb"
    shutil.copy(phase1_db, db)
    with TestServer(ServerConfig(responder=ChainAgents(), latency=0.2)) as srv:
        from funreason_pipeline.defs.resources import LLMResource

        with dg.instance_for_test() as inst:  # the endpoint as an injected resource, not the environment
            r = _llm_run(db, inst, LLMResource(base_url=srv.url, model="test-model"), tags=RANGE)
        st = srv.stats()
    assert st["max_in_flight"] > TRAJ, st
    md = {m.asset_key.to_user_string(): m.materialization.metadata
          for m in r.get_asset_materialization_events()}
    per_partition = md["cot_traces"]["per_partition"].value
    assert set(per_partition) == {f"{DAY}|{ts}" for ts in TOOLSETS}
    assert all(p["passed"] == p["rows"] > 0 for p in per_partition.values()), per_partition
    # one session for the run: its request count is the server's whole count
    assert md["cot_traces"]["sent"].value == st["total"]
    with duckdb.connect(str(db), read_only=True) as con:
        models = {json.loads(m)["reasoning"] for (m,) in con.execute("SELECT role_models FROM cot_traces").fetchall()}
    assert models == {"test-model"}


def test_a_stalled_request_is_hedged_instead_of_waiting_out_its_timeout():
    # 5% of requests hang far past the 20 s timeout; with one attempt per request, a request that waited
    # its timeout out would fail. Hedging after max(0.3 s, 3 x p95) gets the answer from a second copy.
    cfg = ServerConfig(latency=0.02, rate_timeout=0.05, hang_s=600, seed=7)
    with TestServer(cfg) as srv:
        settings = LLMSettings.for_endpoint(srv.url, concurrency=16, timeout_s=20.0, hedge_min_s=0.3, hedge_max=3)
        client = LLMClient(settings, cache=False, options=ClientOptions(max_attempts=1))
        reqs = [LLMRequest(role="querying", item_id=f"q{i}", messages=[{"role": "user", "content": f"q {i}"}])
                for i in range(120)]
        res = run_batch(client, reqs)
        st = srv.stats()
    assert st["by_outcome"].get("timeout", 0) >= 1  # some requests really hung
    assert res.stats.ok == 120 and res.stats.failed == 0, res.stats.failures_by_kind
    assert res.stats.hedges >= st["by_outcome"]["timeout"]


def test_hedging_off_leaves_a_stalled_request_to_its_timeout():
    """The same server with hedging off: the hung requests fail with a timeout (the gate can fail)."""
    cfg = ServerConfig(latency=0.02, rate_timeout=0.2, hang_s=600, seed=7)
    with TestServer(cfg) as srv:
        settings = LLMSettings.for_endpoint(srv.url, concurrency=16, timeout_s=1.0, hedge_factor=0.0)
        client = LLMClient(settings, cache=False, options=ClientOptions(max_attempts=1, breaker_failures=1000))
        res = run_batch(client, [LLMRequest(role="querying", item_id=f"q{i}",
                                            messages=[{"role": "user", "content": f"q {i}"}]) for i in range(30)])
    assert res.stats.hedges == 0
    assert res.stats.failures_by_kind.get("timeout", 0) >= 1


def _toolset():
    from funreason_pipeline.environments.toolsets import generate_scenario, toolset_by_name, toolset_tools
    from funreason_pipeline.graph.build import build_edges
    from funreason_pipeline.sampling.phase1 import sample_partition
    from funreason_pipeline.seeds import stable_seed

    ts = toolset_by_name("tickets")
    tools = toolset_tools(ts)
    edges = build_edges(ts, tools, [generate_scenario(ts, stable_seed("probe", "tickets", i)) for i in range(4)],
                        seed=1)
    return ts, tools, sample_partition(ts, tools, edges, DAY, 2, max_extra=0).trajectories


def test_the_reasoner_sees_the_dialogue_that_is_exported():
    ts, tools, trajs = _toolset()
    seen: list[dict] = []
    agents = ChainAgents()

    def responder(role, body):
        seen.append({"role": role, "messages": body["messages"]})
        return agents(role, body)

    with TestServer(ServerConfig(responder=responder)) as srv:
        client = LLMClient(LLMSettings.for_endpoint(srv.url), cache=False)
        out = run_llm(ts, tools, trajs, client)
        qmap = {(r.trajectory_id, r.turn_index): {"query": r.query, "advanced_tool": r.advanced_tool}
                for r in out.queries.rows}
        p3 = out.traces
    t = next(t for t in trajs if len(t.turns) >= 2)
    traces = {r.turn_index: {"passed": r.passed, "reasoning": r.reasoning, "calls": r.calls, "reply": r.reply,
                             "step_reasoning": r.step_reasoning}
              for r in p3.rows if r.trajectory_id == t.trajectory_id}
    assert traces[0]["passed"] and traces[1]["passed"]
    dialogue, _ = build_dialogue(t, tools, {k: qmap[(t.trajectory_id, k)]["query"] for k in traces}, traces)
    turn1_query = qmap[(t.trajectory_id, 1)]["query"]
    req = next(s["messages"] for s in seen if s["role"] == "reasoning" and s["messages"][-1]["content"] == turn1_query)
    shown = dialogue["messages"]
    n0 = next(i for i, m in enumerate(shown) if m["role"] == "user" and m["content"] == turn1_query)
    assert req[:n0] == shown[:n0]  # system, then turn 0 exactly as exported
    assert not any(FEEDBACK in (m.get("content") or "") for m in req)


def test_a_prompt_over_budget_is_rejected_with_a_reason_never_cut():
    _ts, tools, trajs = _toolset()
    with TestServer() as srv:
        client = LLMClient(LLMSettings.for_endpoint(srv.url, context_tokens=2100, max_tokens=2048), cache=False)
        p2 = run_llm(_ts, tools, trajs, client).queries
        sent = srv.stats()["total"]
    assert not p2.rows and sent == 0
    reasons = {r.reason for r in p2.rejections}
    assert reasons <= {"prompt_too_long", "after_rejected_turn"} and "prompt_too_long" in reasons
    first = next(r for r in p2.rejections if r.reason == "prompt_too_long")
    assert "prompt budget is 156" in first.detail
    assert len(p2.rejections) == sum(len(t.turns) for t in trajs)  # every turn accounted for


def test_tool_list_fits_by_compacting_then_by_class_or_says_why():
    fns = [{"name": f"c{i % 2}_tool{i}", "description": "x" * 300,
            "parameters": {"type": "object", "properties": {"a": {"type": "string", "description": "y" * 200}}}}
           for i in range(20)]
    full, how = fit_tool_list(fns, 10**6)
    assert how == "full" and json.loads(full) == fns
    compact, how = fit_tool_list(fns, len(json.dumps(fns)) // 2)
    assert how == "compact" and all("description" not in f["parameters"]["properties"]["a"] for f in json.loads(compact))
    keep = {f["name"] for f in fns if f["name"].startswith("c0")}
    mine, how = fit_tool_list(fns, len(compact) * 2 // 3, keep)
    assert how == "classes" and {f["name"] for f in json.loads(mine)} == keep
    with pytest.raises(PromptTooLong, match="prompt budget is 100"):
        fit_tool_list(fns, 100, keep)


def test_an_unexpected_error_in_one_trajectory_is_a_recorded_rejection_not_a_crash():
    _ts, tools, trajs = _toolset()
    # no toolset: Phase III cannot build the turn's start state (a caller's mistake, deep in a turn)
    out = run_llm(None, tools, trajs)
    assert len(out.queries.rows) == len(trajs)  # each trajectory's first query was written
    reasons = {r.reason for r in out.traces.rejections}
    assert reasons == {"flow_error"}
    assert len(out.traces.rejections) == sum(len(t.turns) for t in trajs)  # every turn accounted for
    assert "AttributeError" in out.traces.rejections[0].detail


def test_a_changed_model_sends_its_requests_again_and_is_recorded_at_run_time(phase1_db, tmp_path):
    """The LLM assets' code versions hash the prompts only; the model is recorded when the run happens
    (rows, `llm_fingerprints`), and the cache key holds the model, so a new model is asked again."""
    from funreason_pipeline.defs.resources import LLMResource

    db = tmp_path / "models.duckdb"
    shutil.copy(phase1_db, db)
    key = str(dg.MultiPartitionKey({"day": DAY, "toolset": TOOLSETS[0]}))
    with TestServer(ServerConfig(responder=ChainAgents())) as srv, dg.instance_for_test() as inst:
        def run(model: str) -> tuple[int, dict]:
            before = srv.stats()["total"]
            r = _llm_run(db, inst, LLMResource(base_url=srv.url, model=model), partition_key=key)
            md = {m.asset_key.to_user_string(): m.materialization.metadata
                  for m in r.get_asset_materialization_events()
                  if m.asset_key.to_user_string() in ("queries", "cot_traces")}  # not their rejections
            return srv.stats()["total"] - before, {k: v["llm_fingerprints"].value for k, v in md.items()}

        sent_a, fp_a = run("model-a")
        again, fp_again = run("model-a")
        sent_b, fp_b = run("model-b")
        with duckdb.connect(str(db), read_only=True) as con:
            models = {m for (m,) in con.execute("SELECT DISTINCT model FROM cot_traces").fetchall()}
            cached = dict(con.execute("SELECT model, count(*) FROM llm_calls GROUP BY model").fetchall())
    assert sent_a > 0 and again == 0 and fp_again == fp_a  # same model: every answer from the cache
    assert sent_b == sent_a  # a new model misses the cache for every request
    assert models == {"model-b"} and cached == {"model-a": sent_a, "model-b": sent_b}
    assert set(fp_a) == {"queries", "cot_traces"}
    for stage, roles in (("queries", {"tooling", "querying"}), ("cot_traces", {"reasoning", "critic"})):
        assert set(fp_a[stage]) == roles and all(fp_a[stage][r] != fp_b[stage][r] for r in roles)
        assert "offline" not in fp_a[stage].values()
