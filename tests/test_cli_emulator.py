"""`recon emulator` serves the credentials the user configured (OPLOG_TENANT_ID / OPLOG_TOKEN),
so `recon run` with the same environment is let in; unset, the world's own."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import time

import requests


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _serve(world, env_extra: dict[str, str]) -> tuple[subprocess.Popen, str]:
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("OPLOG_TENANT_ID", "OPLOG_TOKEN")}
    env.update(env_extra)
    proc = subprocess.Popen([sys.executable, "-m", "pipelines.cli", "emulator", "--world", str(world),
                             "--port", str(port)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            requests.get(base + "/openapi/v1/Stocks", timeout=1)
            return proc, base
        except requests.ConnectionError:
            time.sleep(0.2)
    proc.kill()
    raise AssertionError(proc.stderr.read().decode())


def _status(base: str, tenant: str, token: str) -> int:
    return requests.get(base + "/openapi/v1/Stocks", params={"count": 1}, timeout=5,
                        headers={"X-Tenant-Id": tenant, "Authorization": f"Bearer {token}"}).status_code


def test_configured_credentials_are_served(demo_world, manifest):
    proc, base = _serve(demo_world, {"OPLOG_TENANT_ID": "shop-7", "OPLOG_TOKEN": "user-token-91ab"})
    try:
        assert _status(base, "shop-7", "user-token-91ab") == 200
        assert _status(base, manifest["tenant_id"], manifest["token"]) == 401
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def test_without_configuration_the_worlds_credentials_are_served(demo_world, manifest):
    proc, base = _serve(demo_world, {})
    try:
        assert _status(base, manifest["tenant_id"], manifest["token"]) == 200
    finally:
        proc.terminate()
        proc.wait(timeout=20)
