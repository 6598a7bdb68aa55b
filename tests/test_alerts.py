"""Alerts (pipelines/alerts.py): a local HTTP receiver gets one POST per run with the new HIGH
discrepancies and their amounts; a failed run posts its reason; with the receiver down the run
still succeeds. The webhook URL (a secret, like a Slack one) never reaches the log."""
from __future__ import annotations

import json
import logging
import socket
import threading
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from conftest import WORLD_END, query, run_date

HOOK_SECRET = "T000/B000/hook-secret-4e1d"


class Receiver:
    def __init__(self, status: int = 200):
        self.posts: list[dict] = []
        received = self.posts

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                received.append({"path": self.path, "body": json.loads(body),
                                 "type": self.headers.get("Content-Type")})
                self.send_response(status)
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/services/{HOOK_SECRET}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.close()


def _settings(monkeypatch, url: str):
    from pipelines.settings import load_settings
    monkeypatch.setenv("RECON_ALERT_WEBHOOK", url)
    return load_settings()


def test_one_post_per_run_with_the_new_high_items(recon_env, receiver, monkeypatch, caplog):
    settings = _settings(monkeypatch, receiver.url)
    caplog.set_level(logging.DEBUG)
    d0, d = WORLD_END - timedelta(days=1), WORLD_END
    assert run_date(settings, d0).success
    assert len(receiver.posts) == 1
    first = receiver.posts[0]
    assert first["path"] == f"/services/{HOOK_SECRET}" and first["type"] == "application/json"
    text = first["body"]["text"]
    new_high = query(settings, "SELECT discrepancy_id, amount_at_risk, currency FROM recon.discrepancies "
                               "WHERE severity = 'HIGH' AND first_detected_on = $d ORDER BY amount_at_risk DESC",
                     {"d": d0})
    assert new_high, "the first date finds HIGH items"
    assert text.startswith(f"Returns reconciliation {d0}: ")
    assert f"New HIGH ({len(new_high)}):" in text
    expected = {i: f"{amount} {currency or ''}".rstrip() for i, amount, currency in new_high}
    listed = [line[2:].split(" ") for line in text.splitlines() if line.startswith("- D-")]
    assert len(listed) == min(10, len(new_high))
    for discrepancy_id, rule, amount, *rest in listed:
        currency = rest[0].rstrip(":") if rest and not amount.endswith(":") else ""
        assert f"{amount.rstrip(':')} {currency}".rstrip() == expected[discrepancy_id], (discrepancy_id, expected)
    if len(new_high) > 10:
        assert f"and {len(new_high) - 10} more" in text
    assert str(settings.export_dir / d0.isoformat() / "discrepancies.xlsx") in text
    open_n = query(settings, "SELECT count(*) FROM recon.discrepancies WHERE status = 'OPEN'")[0][0]
    assert f": {open_n} open discrepancies" in text

    assert run_date(settings, d).success
    assert len(receiver.posts) == 2
    new_on_d = query(settings, "SELECT discrepancy_id FROM recon.discrepancies WHERE severity = 'HIGH' "
                               "AND first_detected_on = $d", {"d": d})
    second = receiver.posts[1]["body"]["text"]
    assert (f"New HIGH ({len(new_on_d)}):" in second) if new_on_d else "No new HIGH discrepancies." in second
    assert HOOK_SECRET not in caplog.text


def test_a_failed_run_posts_its_reason(recon_env, receiver, monkeypatch):
    monkeypatch.setenv("OPLOG_TOKEN", "wrong-token")
    settings = _settings(monkeypatch, receiver.url)
    outcome = run_date(settings, WORLD_END)
    assert not outcome.success
    assert [p["body"]["text"] for p in receiver.posts] == [f"Returns reconciliation {WORLD_END} FAILED: {outcome.reason}"]


def test_a_webhook_that_is_down_never_fails_the_run(recon_env, monkeypatch, caplog):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    settings = _settings(monkeypatch, f"http://127.0.0.1:{port}/services/{HOOK_SECRET}")
    caplog.set_level(logging.WARNING, logger="recon.alerts")
    assert run_date(settings, WORLD_END).success
    assert f"alert webhook at 127.0.0.1 not delivered after 4 attempt(s)" in caplog.text
    assert HOOK_SECRET not in caplog.text


def test_a_receiver_that_refuses_is_not_retried(recon_env, monkeypatch, caplog):
    from pipelines import alerts
    refusing = Receiver(status=403)
    try:
        caplog.set_level(logging.WARNING, logger="recon.alerts")
        assert alerts.send(refusing.url, "hello") is False
        assert len(refusing.posts) == 1 and "HTTP 403" in caplog.text
    finally:
        refusing.close()


def test_a_secret_in_the_webhooks_query_string_never_reaches_the_log(caplog):
    from pipelines import alerts
    r = Receiver()
    try:
        caplog.set_level(logging.DEBUG)
        assert alerts.send(r.url + "?token=q-secret-91ab", "hello") is True
        assert r.posts[0]["path"].endswith("?token=q-secret-91ab")
        assert "q-secret-91ab" not in caplog.text and HOOK_SECRET not in caplog.text
        assert "POST <webhook redacted>" in caplog.text  # urllib3's request line, redacted
    finally:
        r.close()


def test_a_configuration_error_posts_its_reason(recon_env, receiver, monkeypatch, tmp_path, capsys):
    from pipelines.cli import main
    bad = tmp_path / "bad.yaml"
    bad.write_text("thresholds: [not, a, map]\n")
    monkeypatch.setenv("RECON_CONFIG", str(bad))
    monkeypatch.setenv("RECON_ALERT_WEBHOOK", receiver.url)
    assert main(["run", "--date", WORLD_END.isoformat()]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("recon: configuration: ")
    assert [p["body"]["text"] for p in receiver.posts] == [
        f"Returns reconciliation {WORLD_END} FAILED: {err.removeprefix('recon: ')}"]
