"""The test server itself: subprocess mode, /stats, /v1/models, role scripts, capacity."""

import json
import urllib.request

import openai

from testing.llm_server import ServerConfig, TestServer, fetch_stats, run_subprocess_server


def test_subprocess_server_speaks_openai_and_counts():
    cfg = ServerConfig(scripts={"critic": [{"content": "first"}, {"content": "second {last_user}"}]})
    with run_subprocess_server(cfg) as (url, _proc):
        assert url.startswith("http://127.0.0.1:")
        c = openai.OpenAI(base_url=url, api_key="k", max_retries=0)
        assert [m.id for m in c.models.list()] == ["test-model"]
        msgs = [{"role": "user", "content": "hi"}]
        a = c.chat.completions.create(model="m", messages=msgs, extra_headers={"X-Funreason-Role": "critic"})
        assert a.choices[0].message.content == "first"
        msgs2 = [*msgs, {"role": "assistant", "content": "first"}, {"role": "user", "content": "again"}]
        b = c.chat.completions.create(model="m", messages=msgs2, extra_headers={"X-Funreason-Role": "critic"})
        assert b.choices[0].message.content == "second again"
        d = c.chat.completions.create(model="m", messages=msgs)  # no role header: default echo
        assert json.loads(d.choices[0].message.content) == {"echo": "hi"}
        assert d.usage.prompt_tokens > 0
        st = fetch_stats(url)
        assert st["total"] == 3 and st["by_role"] == {"critic": 2, "m": 1} and st["by_outcome"] == {"ok": 3}
        urllib.request.urlopen(urllib.request.Request(url[:-3] + "/reset", method="POST"), timeout=5)
        assert fetch_stats(url)["total"] == 0


def test_capacity_answers_429_with_retry_after():
    with TestServer(latency=0.2, capacity=1, retry_after=2.5) as srv:
        c = openai.OpenAI(base_url=srv.url, api_key="k", max_retries=0)
        import threading

        t = threading.Thread(target=lambda: c.chat.completions.create(model="m", messages=[]))
        t.start()
        import time

        while srv.stats()["in_flight"] == 0:
            time.sleep(0.005)
        try:
            c.chat.completions.create(model="m", messages=[])
            raise AssertionError("expected 429")
        except openai.RateLimitError as exc:
            assert exc.response.headers["retry-after"] == "3"
            assert exc.response.headers["retry-after-ms"] == "2500"
        t.join()
        assert srv.stats()["by_outcome"] == {"ok": 1, "capacity_429": 1}
