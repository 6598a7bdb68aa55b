"""Secrets are secrets whatever their origin: a token or database password that does not come
from the process environment (a demo default, settings built from another mapping) is never a
Dagster config value (shown in the UI, kept in run storage) nor in a repr; the run still uses it."""
from __future__ import annotations

import dagster as dg

from pipelines.resources import build_resources
from pipelines.settings import load_settings

TOKEN = "tok-not-from-env-5d2e91"
PASSWORD = "pw-not-from-env-88c1"


def _resources(monkeypatch):
    monkeypatch.delenv("OPLOG_TOKEN", raising=False)
    monkeypatch.delenv("STOREFRONT_DB_URL", raising=False)
    settings = load_settings({"OPLOG_TOKEN": TOKEN,
                              "STOREFRONT_DB_URL": f"mysql+pymysql://reader:{PASSWORD}@127.0.0.1:3306/shop"})
    return build_resources(settings, env={})


def test_secret_not_from_the_environment_is_not_a_config_value(monkeypatch):
    resources = _resources(monkeypatch)
    for key in ("wms", "storefront"):
        shown = repr(resources[key]) + repr(resources[key].model_dump())
        assert TOKEN not in shown and PASSWORD not in shown, key
    assert "OPLOG_TOKEN" in resources["wms"].token and "STOREFRONT_DB_URL" in resources["storefront"].db_url
    # ... but the run uses the real values
    with resources["wms"].client() as client:
        assert client._session.headers["Authorization"] == f"Bearer {TOKEN}"
    assert resources["storefront"].safe_url == "mysql+pymysql://reader:***@127.0.0.1:3306/shop"


def test_secret_from_the_environment_is_an_env_var_reference(monkeypatch):
    monkeypatch.setenv("OPLOG_TOKEN", TOKEN)
    resources = build_resources(load_settings())
    defs = dg.Definitions(resources={"wms": resources["wms"]})
    assert defs.resources["wms"].token == dg.EnvVar("OPLOG_TOKEN")
