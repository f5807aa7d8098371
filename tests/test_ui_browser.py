"""The Dagster UI in a real headless Chromium: the asset lineage and one asset's page render with the
pipeline's assets, and screenshots of both land in test-artifacts/.

One partition (2026-03-01 x tickets) is materialized first with `python -m funreason_pipeline.cli demo`
into the same DAGSTER_HOME, so the pages have runs and metadata to show. `dagster dev -w
workspace.yaml` serves the UI on a free loopback port. Then:
- GraphQL (independent of the browser): every asset node, its group and description, and that
  trajectories' latest materialization is the demo's partition;
- Chromium `--dump-dom --screenshot` with a virtual time budget (the DOM after the React app has
  fetched and rendered) of
  /asset-groups?expanded=<every group>  (global asset lineage, all groups opened)
  /assets/trajectories                  (asset overview: status, description, metadata, definition)
  must contain every asset name / the asset's description, group and materialized partition.

Chromium is Debian's (/usr/bin/chromium, scripts/install_chromium.sh). Without it the test skips,
unless FUNREASON_REQUIRE_BROWSER is set (CI), where it fails.
"""

import html
import importlib.util
import os
import re
import shutil
import struct
import subprocess
import sys
import tempfile
import urllib.parse
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
_spec = importlib.util.spec_from_file_location("dagster_e2e", ROOT / "scripts" / "dagster_e2e.py")
e2e = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(e2e)

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = ROOT / "test-artifacts"
DAY, TOOLSET = "2026-03-01", "tickets"
PARTITION = f"{DAY}|{TOOLSET}"
EXPECTED_ASSETS = {"tool_catalog", "api_graph", "trajectories", "queries", "cot_traces", "dialogues", "sft_samples"}
CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-dev-shm-usage", "--hide-scrollbars",
    # tall and wide: the lineage view draws only the nodes inside the window (24 assets with rejections and exports)
    "--window-size=2400,4000",
]

ASSET_NODES = """{ assetNodes { assetKey { path } groupName description kinds
  assetMaterializations(limit: 1) { partition runId } } }"""


def _require_chromium() -> None:
    if CHROMIUM.exists():
        return
    if os.environ.get("FUNREASON_REQUIRE_BROWSER"):
        pytest.fail(f"{CHROMIUM} is missing but FUNREASON_REQUIRE_BROWSER is set: run scripts/install_chromium.sh")
    pytest.skip(f"{CHROMIUM} not installed (scripts/install_chromium.sh); set FUNREASON_REQUIRE_BROWSER to fail instead")


def _visible_text(dom: str) -> str:
    body = re.sub(r"<(script|style)\b.*?</\1>", " ", dom, flags=re.DOTALL | re.IGNORECASE)
    return html.unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", body)))


def _png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    return struct.unpack(">II", data[16:24])


def _render(url: str, png: Path, budget_ms: int, tmp: Path) -> str:
    """One Chromium run: screenshot to `png`, return the DOM after the page's scripts ran."""
    profile = tempfile.mkdtemp(prefix="chromium-profile-", dir=tmp)
    cmd = [str(CHROMIUM), *CHROMIUM_FLAGS, f"--user-data-dir={profile}", f"--virtual-time-budget={budget_ms}",
           f"--screenshot={png}", "--dump-dom", url]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
                            start_new_session=True)
    try:
        out, err = proc.communicate(timeout=90)
    except subprocess.TimeoutExpired:
        e2e.kill_group(proc, grace_s=0)
        raise AssertionError(f"chromium timed out on {url}") from None
    finally:
        shutil.rmtree(profile, ignore_errors=True)
    assert proc.returncode == 0, f"chromium exited {proc.returncode} on {url}: {err.decode(errors='replace')[-2000:]}"
    return out.decode(errors="replace")


def _shown(name: str, text: str) -> bool:
    """`name` in the page's text, whole or as the lineage view shortens a long node label: a head and
    a tail of the name around an ellipsis ("dialogues_rejections" -> "dialog…_rejections")."""
    if name in text:
        return True
    for token in text.split():
        head, sep, tail = token.partition("\u2026")
        if sep and len(head) >= 3 and len(tail) >= 3 and name.startswith(head) and name.endswith(tail) \
                and len(head) + len(tail) < len(name):
            return True
    return False


def _render_until(url: str, png: Path, wanted: list[str], tmp: Path) -> str:
    """Render until every `wanted` string is in the visible text (slow CI: larger budgets)."""
    missing: list[str] = []
    for budget in (15000, 30000, 60000):
        dom = _render(url, png, budget, tmp)
        text = _visible_text(dom)
        missing = [w for w in wanted if not _shown(w, text)]
        if not missing:
            png.with_suffix(".html").write_text(dom)
            return text
    png.with_suffix(".html").write_text(dom)
    raise AssertionError(f"{url}: rendered page lacks {missing}; DOM saved to {png.with_suffix('.html')}")


@pytest.mark.heavy  # a demo, the Dagster webserver and headless Chromium
def test_dagster_ui_renders_asset_graph_and_asset_page(tmp_path):
    _require_chromium()
    ARTIFACTS.mkdir(exist_ok=True)
    env = e2e.isolated_env(tmp_path)
    demo_log = tmp_path / "demo.log"
    # something to show: one partition, recorded in the instance dagster dev will serve
    demo = e2e.spawn([sys.executable, "-m", "funreason_pipeline.cli", "demo", "--toolsets", TOOLSET,
                      "--day", DAY], env, demo_log)
    try:
        with e2e.DagsterDev(env, tmp_path / "dagster_dev.log") as dev:
            try:
                assert demo.wait(timeout=180) == 0, f"demo failed:\n{e2e.tail(demo_log)}"
            except subprocess.TimeoutExpired:
                raise AssertionError(f"demo still running after 180s:\n{e2e.tail(demo_log)}") from None
            dev.wait_ready()

            # GraphQL: the second, browser-independent view of the same facts
            nodes = {"/".join(n["assetKey"]["path"]): n for n in dev.gql(ASSET_NODES)["assetNodes"]}
            assert EXPECTED_ASSETS <= set(nodes), sorted(nodes)
            for name in EXPECTED_ASSETS:
                assert nodes[name]["description"], f"{name} has no description"
                assert nodes[name]["groupName"] and nodes[name]["groupName"] != "default", name
                assert nodes[name]["kinds"], f"{name} has no kinds"
            latest = nodes["trajectories"]["assetMaterializations"]
            assert latest and latest[0]["partition"] == PARTITION, latest
            assert nodes["tool_catalog"]["assetMaterializations"][0]["partition"] == TOOLSET
            groups = sorted({n["groupName"] for n in nodes.values()})

            # the one-time "join the community" dialog would cover the screenshots: dismiss it, as a
            # first-time user would (it is stored in DAGSTER_HOME, like clicking "Skip")
            assert dev.gql("mutation { setNuxSeen }")["setNuxSeen"] is True

            expanded = ",".join(f"global@global:{g}" for g in groups)
            graph_url = f"{dev.url}/asset-groups?expanded={urllib.parse.quote(expanded)}"
            graph_png = ARTIFACTS / "ui_asset_graph.png"
            text = _render_until(graph_url, graph_png, ["Global asset lineage", *sorted(nodes), *groups], tmp_path)
            assert "Error" not in text.split("Global asset lineage", 1)[0], text[:500]

            asset_png = ARTIFACTS / "ui_asset_trajectories.png"
            description_start = nodes["trajectories"]["description"][:60]
            text = _render_until(f"{dev.url}/assets/trajectories", asset_png,
                                 ["trajectories", PARTITION, nodes["trajectories"]["groupName"],
                                  description_start, "Latest materialization", "row_count"], tmp_path)
            for name in ("tool_catalog", "api_graph", "queries"):  # the lineage panel: up- and downstream
                assert name in text, f"asset page does not list neighbour {name}"
        assert not e2e.live_group_members(dev.proc.pid), "dagster dev left processes behind"
    finally:
        if demo.poll() is None:
            e2e.kill_group(demo, grace_s=2)

    for png in (graph_png, asset_png):
        assert _png_size(png) == (2400, 4000), png
        assert png.stat().st_size > 30_000, f"{png} looks blank ({png.stat().st_size} bytes)"



def test_a_shortened_label_counts_only_for_its_own_name():
    assert _shown("dialogues_rejections", "x dialog\u2026_rejections y")
    assert not _shown("queries_rejections", "x dialog\u2026_rejections y")
    assert not _shown("api_graph", "x dialog\u2026_rejections y")
