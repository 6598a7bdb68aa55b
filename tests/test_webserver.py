"""The Dagster UI: the real dagster-webserver loads workspace.yaml and its GraphQL API shows the
lineage from every source to the discrepancy register, the layers as groups, kinds, descriptions,
freshness policies, the daily job and its schedule, without touching the warehouse."""
from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

REPO = Path(__file__).resolve().parent.parent
WEBSERVER = str(Path(sys.executable).parent / "dagster-webserver")
LOAD_TIMEOUT_S = 90
SOURCES = [
    "raw/oc_orders", "raw/oc_order_lines", "raw/oc_products", "raw/oc_returns", "raw/oc_return_history",
    "raw/wms_returns", "raw/wms_return_line_items", "raw/wms_stock_adjustments", "raw/wms_stock_adjustment_lines",
    "raw/wms_stocks", "raw/refund_lines", "raw/wms_probed_returns",
]
GROUP_OF_LAYER = {"raw": "sources", "core": "canonical", "recon": "reconciliation", "exports": "exports"}

WORKSPACE_QUERY = """{
  workspaceOrError {
    __typename
    ... on Workspace { locationEntries { name loadStatus locationOrLoadError {
      __typename
      ... on PythonError { message }
      ... on RepositoryLocation { repositories {
        name
        jobs { name description }
        schedules { name cronSchedule executionTimezone scheduleState { status } pipelineName }
      } }
    } } }
  }
}"""
ASSETS_QUERY = """{
  assetNodes {
    assetKey { path }
    dependencyKeys { path }
    groupName
    kinds
    description
    jobNames
    internalFreshnessPolicy { __typename ... on TimeWindowFreshnessPolicy { failWindowSeconds } }
    assetChecksOrError { __typename ... on AssetChecks { checks { name } } }
  }
}"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _graphql(url: str, query: str) -> dict:
    resp = requests.post(url, json={"query": query}, timeout=30)
    resp.raise_for_status()
    body = resp.json()
    assert "errors" not in body, body["errors"]
    return body["data"]


@contextlib.contextmanager
def running_webserver(env: dict[str, str], log_path: Path):
    """``dagster-webserver -w workspace.yaml`` on a free port with ``env``, until its code location
    has loaded: yields (GraphQL URL, the workspace answer). Stopped (process group) on exit."""
    port = _free_port()
    log = log_path.open("w")
    proc = subprocess.Popen([WEBSERVER, "-w", "workspace.yaml", "-h", "127.0.0.1", "-p", str(port)],
                            cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}/graphql"
    try:
        deadline = time.monotonic() + LOAD_TIMEOUT_S
        workspace = None
        while time.monotonic() < deadline:
            assert proc.poll() is None, log_path.read_text()[-3000:]
            try:
                workspace = _graphql(url, WORKSPACE_QUERY)["workspaceOrError"]
            except (requests.RequestException, ValueError):
                workspace = None
            if workspace and workspace["__typename"] == "Workspace" and workspace["locationEntries"] and all(
                    e["loadStatus"] == "LOADED" for e in workspace["locationEntries"]):
                break
            time.sleep(0.5)
        else:
            pytest.fail(f"the UI did not load the code location within {LOAD_TIMEOUT_S}s: {workspace}\n"
                        + log_path.read_text()[-3000:])
        yield url, workspace
    finally:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=15)
        except ProcessLookupError:
            pass
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
        log.close()


@pytest.fixture
def webserver(tmp_path):
    """The UI over the repository's workspace.yaml, with a fresh DAGSTER_HOME and RECON_HOME."""
    recon_home = tmp_path / "recon_home"
    dagster_home = tmp_path / "dagster_home"
    dagster_home.mkdir()
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("RECON_", "OPLOG_", "STOREFRONT_", "REFUND_", "PAYMENTS_", "RMA_PLATFORM_", "OMS_", "DAGSTER_"))}
    env.update({"RECON_HOME": str(recon_home), "DAGSTER_HOME": str(dagster_home)})
    with running_webserver(env, tmp_path / "webserver.log") as (url, workspace):
        yield {"url": url, "workspace": workspace, "recon_home": recon_home}


def test_the_ui_shows_the_lineage_groups_job_and_schedule_without_opening_the_warehouse(webserver):
    (entry,) = webserver["workspace"]["locationEntries"]
    location = entry["locationOrLoadError"]
    assert location["__typename"] == "RepositoryLocation", location
    (repo,) = location["repositories"]
    job = next(j for j in repo["jobs"] if j["name"] == "daily_reconciliation_job")
    assert job["description"]
    (schedule,) = [s for s in repo["schedules"] if s["name"] == "daily_reconciliation_schedule"]
    assert schedule["pipelineName"] == "daily_reconciliation_job"
    assert (schedule["cronSchedule"], schedule["executionTimezone"]) == ("0 6 * * *", "UTC")
    assert schedule["scheduleState"]["status"] == "RUNNING"

    nodes = {"/".join(n["assetKey"]["path"]): n for n in _graphql(webserver["url"], ASSETS_QUERY)["assetNodes"]}
    assert set(SOURCES) <= set(nodes) and "recon/discrepancies" in nodes

    # Lineage: walking dependencies upstream from the register reaches every source.
    upstream, todo = set(), ["recon/discrepancies"]
    while todo:
        for dep in nodes[todo.pop()]["dependencyKeys"]:
            key = "/".join(dep["path"])
            if key not in upstream:
                upstream.add(key)
                todo.append(key)
    missing = [s for s in SOURCES if s not in upstream]
    assert not missing, f"no lineage from {missing} to recon/discrepancies"
    assert "exports/finance_export" in nodes
    assert "recon/discrepancies" in {"/".join(d["path"]) for d in nodes["exports/finance_export"]["dependencyKeys"]}

    for key, node in nodes.items():
        assert node["groupName"] == GROUP_OF_LAYER[key.split("/")[0]], key
        assert node["kinds"], f"{key} has no kinds"
        assert node["description"] and node["description"].strip(), f"{key} has no description"
        assert "daily_reconciliation_job" in node["jobNames"], key
    assert {n["groupName"] for n in nodes.values()} == set(GROUP_OF_LAYER.values())
    assert all("duckdb" in nodes[s]["kinds"] for s in SOURCES)
    assert "api" in nodes["raw/wms_returns"]["kinds"] and "csv" in nodes["exports/finance_export"]["kinds"]

    # Sources show a freshness policy of one day; the checks are there too.
    for key, node in nodes.items():
        policy = node["internalFreshnessPolicy"]
        if key.startswith("raw/"):
            assert policy and policy["failWindowSeconds"] <= 86400, key
    checks = [c for n in nodes.values() if n["assetChecksOrError"]["__typename"] == "AssetChecks"
              for c in n["assetChecksOrError"]["checks"]]
    assert checks

    # Loading definitions never opens (let alone creates) the warehouse file.
    home = webserver["recon_home"]
    assert not (home / "warehouse.duckdb").exists()
    assert not (home / "warehouse.duckdb.wal").exists()
