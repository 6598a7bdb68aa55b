"""Secrets are nowhere a run writes: a `recon run` with a distinctive WMS token (from
OPLOG_TOKEN), a distinctive payment provider key (PAYMENTS_API_KEY) and DAGSTER_HOME on disk, then every byte it left searched for the token (raw and
URL-encoded): stdout/stderr, every file under DAGSTER_HOME (run/event storage, logs, compute
logs), the warehouse (every VARCHAR/JSON column of every table, and the file's bytes), the
exports. Then the real dagster webserver on the same DAGSTER_HOME: the resources' config
(configFields/configuredValues), the env vars it reports as used and the stored runs' config
and tags show the variable names only, for a token and a storefront password from the
environment and for a token that does not come from the environment (the demo default).

The demo storefront is SQLite (a URL without password), so the password is checked on the
webserver's resource config with a MySQL URL (rendering config opens no connection);
tests/test_mariadb.py covers a real password-protected connection."""
from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import zipfile
from pathlib import Path
from urllib.parse import quote

import duckdb
import pytest
import requests

from conftest import WORLD_END, make_env
from test_webserver import _graphql, running_webserver

RECON = str(Path(sys.executable).parent / "recon")
TOKEN = "tok-distinct-XYZ/91c+e7=Q"
PAY_KEY = "sk_test_Distinct-7e2/Q+9z"
PLAT_TOKEN = "plat-Distinct-31/x+Tk"
PASSWORD = "pw-Distinct#5b/e1@x"
MYSQL_URL = f"mysql+pymysql://reader:{quote(PASSWORD, safe='')}@127.0.0.1:3306/shop"


def forms(secret: str) -> list[bytes]:
    return sorted({f.encode() for f in (secret, quote(secret, safe=""), quote(secret), quote(secret).replace("/", "%2f"),
                                       quote(secret, safe="").lower())})


def hits_in_bytes(data: bytes, secrets: list[str]) -> list[str]:
    return [f.decode() for s in secrets for f in forms(s) if f in data]


def _clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("RECON_", "OPLOG_", "STOREFRONT_", "REFUND_", "DAGSTER_", "PAYMENTS_", "RMA_PLATFORM_", "OMS_"))}
    env.update(extra)
    return env


def files_hits(root: Path, secrets: list[str]) -> tuple[int, dict[str, list[str]]]:
    found, n = {}, 0
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        n += 1
        data = path.read_bytes()
        if zipfile.is_zipfile(path):  # the workbook (.xlsx) is compressed XML: scan what it holds
            with zipfile.ZipFile(path) as archive:
                data += b"".join(archive.read(name) for name in archive.namelist())
        h = hits_in_bytes(data, secrets)
        if h:
            found[str(path.relative_to(root))] = h
    return n, found


def warehouse_hits(path: Path, secrets: list[str]) -> tuple[int, dict[str, int]]:
    con = duckdb.connect(str(path), read_only=True)
    try:
        cols = con.execute("SELECT table_schema, table_name, column_name FROM information_schema.columns "
                           "WHERE data_type IN ('VARCHAR', 'JSON') OR data_type LIKE '%[]' "
                           "OR data_type LIKE 'STRUCT%' OR data_type LIKE 'MAP%'").fetchall()
        patterns = [f.decode() for s in secrets for f in forms(s)]
        found = {}
        for schema, table, column in cols:
            cond = " OR ".join("contains(CAST(\"{c}\" AS VARCHAR), ?)".format(c=column) for _ in patterns)
            n = con.execute(f'SELECT count(*) FROM "{schema}"."{table}" WHERE {cond}', patterns).fetchone()[0]
            if n:
                found[f"{schema}.{table}.{column}"] = n
        return len(cols), found
    finally:
        con.close()


@contextlib.contextmanager
def webserver(tmp_path: Path, env: dict[str, str], name: str):
    log_path = tmp_path / f"webserver-{name}.log"
    with running_webserver(env, log_path) as (url, ws):
        (entry,) = ws["locationEntries"]
        (repo,) = entry["locationOrLoadError"]["repositories"]
        yield url, {"repositoryLocationName": entry["name"], "repositoryName": repo["name"]}, log_path


RESOURCES_QUERY = """query($sel: RepositorySelector!) {
  allTopLevelResourceDetailsOrError(repositorySelector: $sel) {
    __typename
    ... on ResourceDetailsList { results {
      name
      configFields { name description defaultValueAsJson configType { key } }
      configuredValues { key value type }
    } }
    ... on PythonError { message }
  }
  utilizedEnvVarsOrError(repositorySelector: $sel) {
    __typename
    ... on EnvVarWithConsumersList { results { envVarName } }
  }
}"""
RUNS_QUERY = """{ runsOrError { __typename ... on Runs { results { runId status runConfigYaml tags { key value } } } } }"""


def ui_resources(url: str, selector: dict) -> tuple[str, dict[str, dict[str, tuple[str, str]]], list[str]]:
    resp = requests.post(url, json={"query": RESOURCES_QUERY, "variables": {"sel": selector}}, timeout=60)
    resp.raise_for_status()
    body = resp.json()
    assert "errors" not in body, body["errors"]
    details = body["data"]["allTopLevelResourceDetailsOrError"]
    assert details["__typename"] == "ResourceDetailsList", details
    values = {r["name"]: {v["key"]: (v["value"], v["type"]) for v in r["configuredValues"]} for r in details["results"]}
    env_vars = [e["envVarName"] for e in body["data"]["utilizedEnvVarsOrError"].get("results", [])]
    return resp.text, values, env_vars


def test_no_secret_anywhere_a_run_and_the_ui_write(tmp_path, demo_world, manifest):
    from pipelines.demo.emulator import WmsEmulator, WmsWorld
    from pipelines.settings import DEMO_PAYMENTS_KEY, DEMO_PLATFORM_TOKEN, DEMO_TOKEN

    rows: list[tuple[str, str, int, int]] = []  # place, what, searched, hits
    problems: list[str] = []

    def record(place: str, what: str, searched: int, found) -> None:
        rows.append((place, what, searched, len(found)))
        if found:
            problems.append(f"{place}: {found}")

    home, dagster_home = tmp_path / "home", tmp_path / "dagster_home"
    dagster_home.mkdir()
    emu = WmsEmulator(WmsWorld.load(demo_world), tenant_id=manifest["tenant_id"], token=TOKEN, payments_key=PAY_KEY)
    emu.start()
    try:
        env = _clean_env(**make_env(home, demo_world, manifest, emu.base_url, OPLOG_TOKEN=TOKEN,
                                    PAYMENTS_API_KEY=PAY_KEY, DAGSTER_HOME=str(dagster_home)))
        run = subprocess.run([RECON, "run", "--date", WORLD_END.isoformat()], env=env, capture_output=True,
                             text=True, timeout=400)
    finally:
        emu.stop()
    assert run.returncode == 0, run.stderr[-3000:]
    assert "Discrepancies open on" in run.stdout  # the run used the token: the emulator accepts nothing else
    assert emu.payments.requests > 0  # ... and the payment key (a refused key fails the run)
    secrets = [TOKEN, PAY_KEY]
    record("recon run stdout", "token", len(run.stdout), hits_in_bytes(run.stdout.encode(), secrets))
    record("recon run stderr", "token", len(run.stderr), hits_in_bytes(run.stderr.encode(), secrets))
    n, found = files_hits(dagster_home, secrets)
    assert n >= 3 and list(dagster_home.rglob("*.db")), "run and event storage were written to DAGSTER_HOME"
    record("DAGSTER_HOME files (run/event storage, logs, compute logs)", "token", n, found)
    n_cols, found = warehouse_hits(home / "warehouse.duckdb", secrets)
    record("warehouse VARCHAR/JSON columns", "token", n_cols, found)
    wh_files = [p for p in home.glob("warehouse.duckdb*") if p.is_file()]
    record("warehouse file bytes (+ .wal)", "token", len(wh_files),
           [h for p in wh_files for h in hits_in_bytes(p.read_bytes(), secrets)])
    n, found = files_hits(home / "exports", secrets)
    assert n >= 3
    record("exports dir files", "token", n, found)

    # The UI on the same DAGSTER_HOME: token and storefront password from the environment ...
    ui_env = _clean_env(RECON_HOME=str(home), DAGSTER_HOME=str(dagster_home), OPLOG_BASE_URL=emu.base_url,
                        OPLOG_TENANT_ID=manifest["tenant_id"], OPLOG_TOKEN=TOKEN, STOREFRONT_DB_URL=MYSQL_URL,
                        REFUND_LEDGER_PATH=str(demo_world / "ledger"), PAYMENTS_API_BASE=emu.base_url,
                        PAYMENTS_API_KEY=PAY_KEY, RMA_PLATFORM_URL=emu.base_url, RMA_PLATFORM_TOKEN=PLAT_TOKEN)
    both = [TOKEN, PASSWORD, PAY_KEY, PLAT_TOKEN]
    with webserver(tmp_path, ui_env, "env") as (url, selector, log_path):
        text, values, env_vars = ui_resources(url, selector)
        record("UI resource config (env secrets)", "token+password", len(text), hits_in_bytes(text.encode(), both))
        assert values["wms"]["token"] == ("OPLOG_TOKEN", "ENV_VAR"), values["wms"]
        assert values["storefront"]["db_url"] == ("STOREFRONT_DB_URL", "ENV_VAR"), values["storefront"]
        assert values["payments"]["api_key"] == ("PAYMENTS_API_KEY", "ENV_VAR"), values["payments"]
        assert values["rma_platform"]["token"] == ("RMA_PLATFORM_TOKEN", "ENV_VAR"), values["rma_platform"]
        assert {"OPLOG_TOKEN", "STOREFRONT_DB_URL", "PAYMENTS_API_KEY"} <= set(env_vars)
        runs = requests.post(url, json={"query": RUNS_QUERY}, timeout=60)
        runs.raise_for_status()
        assert runs.json()["data"]["runsOrError"]["results"], "the UI shows the stored run"
        record("UI stored runs (config, tags)", "token+password", len(runs.text), hits_in_bytes(runs.content, both))
    record("webserver log (env secrets)", "token+password", 1, hits_in_bytes(log_path.read_bytes(), both))

    # ... and a token that does not come from the environment (the demo default the code holds).
    demo_env = _clean_env(RECON_HOME=str(home), DAGSTER_HOME=str(dagster_home))
    with webserver(tmp_path, demo_env, "default") as (url, selector, log_path):
        text, values, _ = ui_resources(url, selector)
        record("UI resource config (token not from env)", "demo token+key", len(text),
               hits_in_bytes(text.encode(), [DEMO_TOKEN, DEMO_PAYMENTS_KEY, DEMO_PLATFORM_TOKEN]))
        token_value, token_type = values["wms"]["token"]
        assert "OPLOG_TOKEN" in token_value and DEMO_TOKEN not in token_value, values["wms"]
        key_value, _ = values["payments"]["api_key"]
        assert "PAYMENTS_API_KEY" in key_value and DEMO_PAYMENTS_KEY not in key_value, values["payments"]
    record("webserver log (token not from env)", "demo token+key", 1,
           hits_in_bytes(log_path.read_bytes(), [DEMO_TOKEN, DEMO_PAYMENTS_KEY, DEMO_PLATFORM_TOKEN]))
    n, found = files_hits(dagster_home, [*both, DEMO_TOKEN, DEMO_PAYMENTS_KEY, DEMO_PLATFORM_TOKEN])
    record("DAGSTER_HOME files after both UIs", "all three", n, found)

    print("\n" + f"{'place':<58} {'secret':<15} {'searched':>9} {'hits':>5}")
    for place, what, searched, hits in rows:
        print(f"{place:<58} {what:<15} {searched:>9} {hits:>5}")
    assert not problems, "\n".join(problems)
