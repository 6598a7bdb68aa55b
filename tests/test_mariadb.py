"""The OpenCart reader against a real MariaDB server (sources.md section 2).

The test starts its own throw-away ``mariadbd`` (temporary data directory, a free port on
127.0.0.1, a private socket), loads the demo world's OpenCart tables into a database
``opencart`` with OpenCart's own MySQL column types (``int(11)``, ``decimal(15,4)``,
``decimal(15,8)``, ``datetime``, ``date``, ``tinyint(1)``, ``varchar``/``text``) plus
OpenCart 3-style ``0000-00-00`` zero dates, and ingests it through a read-only user with a
password (``mysql+pymysql://``). The same data, as a SQLite copy, is ingested into a second
warehouse: both must give the same raw.oc_* rows and the same core.order_lines and
core.rma_lines, and the password must appear nowhere (logs, Dagster events, metadata, warehouse).

No server binary: skipped, unless ``CI`` is set (``.ci/run`` installs MariaDB), then it fails.
"""
from __future__ import annotations

import logging
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import tempfile
import time
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from urllib.parse import quote, quote_plus

import dagster as dg
import duckdb
import pytest
import sqlalchemy as sa

from assets.sources.storefront import storefront_snapshot
from pipelines.config import load_config
from pipelines.reconcile import rebuild
from pipelines.resources.config import ReconConfigResource
from pipelines.resources.storefront import RAW_TABLES, StorefrontResource
from pipelines.resources.warehouse import WarehouseResource
from pipelines.settings import DEFAULT_CONFIG_PATH
from tests.conftest import WORLD_END

pymysql = pytest.importorskip("pymysql")

pytestmark = pytest.mark.mariadb

DATABASE = "opencart"
USER = "recon"
# Unique per session, with characters that must be URL-encoded: any form of it is searchable by TOKEN.
TOKEN = os.urandom(12).hex()
PASSWORD = f"Rc@{TOKEN}/%:#"
PASSWORD_FORMS = (PASSWORD, quote_plus(PASSWORD), quote(PASSWORD, safe=""), TOKEN)
START_TIMEOUT_S = 30.0
SBIN_DIRS = ("/usr/sbin", "/usr/local/sbin", "/usr/libexec", "/usr/local/mysql/bin", "/usr/local/mysql/scripts")

# OpenCart 3.0/4.0 install DDL (opencart.sql / db_schema.php), restricted to the columns the demo world has.
TABLE_OPTIONS = "ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_general_ci"
OPENCART_DDL = {
    "oc_order": """
        `order_id` int(11) NOT NULL AUTO_INCREMENT,
        `store_id` int(11) NOT NULL DEFAULT '0',
        `customer_id` int(11) NOT NULL DEFAULT '0',
        `email` varchar(96) NOT NULL,
        `total` decimal(15,4) NOT NULL DEFAULT '0.0000',
        `order_status_id` int(11) NOT NULL DEFAULT '0',
        `currency_code` varchar(3) NOT NULL,
        `currency_value` decimal(15,8) NOT NULL DEFAULT '1.00000000',
        `date_added` datetime NOT NULL,
        `date_modified` datetime NOT NULL,
        PRIMARY KEY (`order_id`)""",
    "oc_order_product": """
        `order_product_id` int(11) NOT NULL AUTO_INCREMENT,
        `order_id` int(11) NOT NULL,
        `product_id` int(11) NOT NULL,
        `name` varchar(255) NOT NULL,
        `model` varchar(64) NOT NULL,
        `quantity` int(4) NOT NULL,
        `price` decimal(15,4) NOT NULL DEFAULT '0.0000',
        `total` decimal(15,4) NOT NULL DEFAULT '0.0000',
        `tax` decimal(15,4) NOT NULL DEFAULT '0.0000',
        PRIMARY KEY (`order_product_id`),
        KEY `order_id` (`order_id`)""",
    "oc_order_status": """
        `order_status_id` int(11) NOT NULL AUTO_INCREMENT,
        `language_id` int(11) NOT NULL,
        `name` varchar(32) NOT NULL,
        PRIMARY KEY (`order_status_id`, `language_id`)""",
    "oc_product": """
        `product_id` int(11) NOT NULL AUTO_INCREMENT,
        `model` varchar(64) NOT NULL,
        `quantity` int(4) NOT NULL DEFAULT '0',
        `price` decimal(15,4) NOT NULL DEFAULT '0.0000',
        `subtract` tinyint(1) NOT NULL DEFAULT '1',
        `status` tinyint(1) NOT NULL DEFAULT '0',
        `date_modified` datetime NOT NULL,
        PRIMARY KEY (`product_id`)""",
    "oc_return": """
        `return_id` int(11) NOT NULL AUTO_INCREMENT,
        `order_id` int(11) NOT NULL,
        `product_id` int(11) NOT NULL,
        `customer_id` int(11) NOT NULL,
        `firstname` varchar(32) NOT NULL,
        `lastname` varchar(32) NOT NULL,
        `email` varchar(96) NOT NULL,
        `telephone` varchar(32) NOT NULL,
        `product` varchar(255) NOT NULL,
        `model` varchar(64) NOT NULL,
        `quantity` int(4) NOT NULL,
        `opened` tinyint(1) NOT NULL,
        `return_reason_id` int(11) NOT NULL,
        `return_action_id` int(11) NOT NULL,
        `return_status_id` int(11) NOT NULL,
        `comment` text,
        `date_ordered` date NOT NULL DEFAULT '0000-00-00',
        `date_added` datetime NOT NULL,
        `date_modified` datetime NOT NULL,
        PRIMARY KEY (`return_id`)""",
    "oc_return_history": """
        `return_history_id` int(11) NOT NULL AUTO_INCREMENT,
        `return_id` int(11) NOT NULL,
        `return_status_id` int(11) NOT NULL,
        `notify` tinyint(1) NOT NULL,
        `comment` text NOT NULL,
        `date_added` datetime NOT NULL,
        PRIMARY KEY (`return_history_id`)""",
    "oc_return_status": """
        `return_status_id` int(11) NOT NULL AUTO_INCREMENT,
        `language_id` int(11) NOT NULL DEFAULT '0',
        `name` varchar(32) NOT NULL,
        PRIMARY KEY (`return_status_id`, `language_id`)""",
    "oc_return_reason": """
        `return_reason_id` int(11) NOT NULL AUTO_INCREMENT,
        `language_id` int(11) NOT NULL DEFAULT '0',
        `name` varchar(128) NOT NULL,
        PRIMARY KEY (`return_reason_id`, `language_id`)""",
    "oc_return_action": """
        `return_action_id` int(11) NOT NULL AUTO_INCREMENT,
        `language_id` int(11) NOT NULL DEFAULT '0',
        `name` varchar(64) NOT NULL,
        PRIMARY KEY (`return_action_id`, `language_id`)""",
}


# --------------------------------------------------------------------------- the server

def _find(*names: str) -> str | None:
    """A program on PATH or in the usual sbin/libexec directories (often not on a user's PATH)."""
    for name in names:
        found = shutil.which(name) or shutil.which(name, path=os.pathsep.join(SBIN_DIRS))
        if found:
            return found
    return None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _tail(path: Path, lines: int = 25) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _stop(proc: subprocess.Popen) -> None:
    """Stop the server's process group: TERM, then KILL if it has not gone within 15 s."""
    if proc.poll() is not None:
        return
    for sig, wait_s in ((signal.SIGTERM, 15), (signal.SIGKILL, 10)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=wait_s)
            return
        except subprocess.TimeoutExpired:
            continue


@dataclass
class Server:
    port: int
    socket_path: str

    def root(self, database: str | None = None):
        return pymysql.connect(unix_socket=self.socket_path, user="root", password="", database=database,
                               charset="utf8mb4", autocommit=True)

    def recon(self, password: str = PASSWORD):
        return pymysql.connect(host="127.0.0.1", port=self.port, user=USER, password=password,
                               database=DATABASE, charset="utf8mb4", connect_timeout=5)

    @property
    def url(self) -> str:
        return sa.URL.create("mysql+pymysql", username=USER, password=PASSWORD, host="127.0.0.1",
                             port=self.port, database=DATABASE).render_as_string(hide_password=False)


@pytest.fixture(scope="module")
def mariadb(tmp_path_factory):
    """A private MariaDB server, with database ``opencart`` and the read-only user ``recon``."""
    server_bin = _find("mariadbd", "mysqld")
    install_db = _find("mariadb-install-db", "mysql_install_db")
    if not server_bin or not install_db:
        missing = "mariadbd/mysqld" if not server_bin else "mariadb-install-db/mysql_install_db"
        reason = f"no MariaDB server installed ({missing} not found; .ci/run installs it)"
        if os.environ.get("CI"):
            pytest.fail(f"{reason}, and CI is set: the MariaDB test must run in CI")
        pytest.skip(reason)

    base = tmp_path_factory.mktemp("mariadb")
    datadir, logdir = base / "data", base / "log"
    logdir.mkdir()
    run_dir = tempfile.mkdtemp(prefix="mdb-")  # a short path: a socket path is limited to ~107 bytes
    socket_path = os.path.join(run_dir, "mysqld.sock")
    as_root = ["--user=root"] if os.geteuid() == 0 else []

    install = subprocess.run(
        [install_db, "--no-defaults", f"--datadir={datadir}", "--auth-root-authentication-method=normal",
         "--skip-test-db", "--skip-name-resolve", *as_root],
        capture_output=True, text=True, timeout=120)
    if install.returncode != 0:
        shutil.rmtree(run_dir, ignore_errors=True)
        pytest.fail(f"mariadb-install-db failed ({install.returncode}):\n{install.stdout[-2000:]}\n"
                    f"{install.stderr[-2000:]}")

    proc: subprocess.Popen | None = None
    try:
        for attempt in range(3):  # another process may take the free port before the server binds it
            port = _free_port()
            error_log = logdir / f"error-{attempt}.log"
            proc = subprocess.Popen(
                [server_bin, "--no-defaults", f"--datadir={datadir}", f"--socket={socket_path}",
                 f"--port={port}", "--bind-address=127.0.0.1", f"--pid-file={run_dir}/mysqld.pid",
                 f"--log-error={error_log}", f"--tmpdir={run_dir}", "--skip-name-resolve",
                 "--character-set-server=utf8mb4", "--collation-server=utf8mb4_general_ci",
                 "--innodb-buffer-pool-size=32M", "--innodb-log-file-size=16M",
                 "--innodb-flush-log-at-trx-commit=0", "--innodb-use-native-aio=0",
                 "--skip-log-bin", "--performance-schema=0", *as_root],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
                start_new_session=True)  # its own process group, so it can always be stopped
            deadline = time.monotonic() + START_TIMEOUT_S
            ready = False
            while time.monotonic() < deadline and proc.poll() is None:
                try:
                    pymysql.connect(unix_socket=socket_path, user="root", password="", connect_timeout=2).close()
                    ready = True
                    break
                except pymysql.err.MySQLError:
                    time.sleep(0.1)
            if ready:
                break
            _stop(proc)
            if "Address already in use" in _tail(error_log, 200) and attempt < 2:
                continue
            pytest.fail(f"MariaDB did not accept connections within {START_TIMEOUT_S:.0f} s "
                        f"(exit code {proc.returncode}); {error_log}:\n{_tail(error_log)}")

        server = Server(port=port, socket_path=socket_path)
        con = server.root()
        try:
            with con.cursor() as cur:
                cur.execute(f"CREATE DATABASE {DATABASE} CHARACTER SET utf8mb4 COLLATE utf8mb4_general_ci")
                cur.execute(f"CREATE USER '{USER}'@'127.0.0.1' IDENTIFIED BY %s", (PASSWORD,))
                cur.execute(f"GRANT SELECT ON {DATABASE}.* TO '{USER}'@'127.0.0.1'")
        finally:
            con.close()
        yield server
    finally:
        if proc is not None:
            _stop(proc)
        shutil.rmtree(run_dir, ignore_errors=True)


# --------------------------------------------------------------------------- the data

@dataclass
class ZeroDates:
    return_id: int     # oc_return.date_ordered = '0000-00-00'
    order_id: int      # oc_order.date_modified = '0000-00-00 00:00:00'
    product_id: int    # oc_product.date_modified = '0000-00-00 00:00:00'


def make_sqlite_copy(world: Path, dest: Path) -> tuple[Path, ZeroDates]:
    """The world's storefront database with OpenCart 3-style zero dates in three rows."""
    shutil.copyfile(world / "storefront.sqlite", dest)
    con = sqlite3.connect(dest)
    try:
        zero = ZeroDates(
            return_id=con.execute("SELECT min(return_id) FROM oc_return").fetchone()[0],
            order_id=con.execute("SELECT max(order_id) FROM oc_order").fetchone()[0],
            product_id=con.execute("SELECT min(product_id) FROM oc_product").fetchone()[0],
        )
        con.execute("UPDATE oc_return SET date_ordered = '0000-00-00' WHERE return_id = ?", (zero.return_id,))
        con.execute("UPDATE oc_order SET date_modified = '0000-00-00 00:00:00' WHERE order_id = ?",
                    (zero.order_id,))
        con.execute("UPDATE oc_product SET date_modified = '0000-00-00 00:00:00' WHERE product_id = ?",
                    (zero.product_id,))
        con.commit()
    finally:
        con.close()
    return dest, zero


def _mysql_value(value):
    # SQLite keeps DECIMAL columns as REAL; pass the shortest repr as an exact decimal (a Python
    # float would reach MySQL as a double literal).
    return Decimal(repr(value)) if isinstance(value, float) else value


def load_mariadb(server: Server, sqlite_path: Path) -> dict[str, int]:
    """Create the OpenCart tables and copy every row of the SQLite copy; returns row counts."""
    src = sqlite3.connect(sqlite_path)
    con = server.root(DATABASE)
    counts = {}
    try:
        with con.cursor() as cur:
            cur.execute("SET SESSION sql_mode = ''")  # OpenCart 3 zero dates
            for table, ddl in OPENCART_DDL.items():
                cur.execute(f"CREATE TABLE `{table}` ({ddl}\n) {TABLE_OPTIONS}")
                columns = [r[1] for r in src.execute(f"PRAGMA table_info({table})")]
                rows = [tuple(_mysql_value(v) for v in row)
                        for row in src.execute(f"SELECT {', '.join(columns)} FROM {table}")]
                cur.executemany(
                    f"INSERT INTO `{table}` ({', '.join(f'`{c}`' for c in columns)}) "
                    f"VALUES ({', '.join(['%s'] * len(columns))})", rows)
                cur.execute(f"SELECT count(*) FROM `{table}`")
                counts[table] = cur.fetchone()[0]
                assert counts[table] == len(rows) > 0, table
                cur.execute("SHOW WARNINGS")
                assert cur.fetchall() == (), f"warnings loading {table}"
    finally:
        con.close()
        src.close()
    return counts


# --------------------------------------------------------------------------- ingestion

@dataclass
class Ingested:
    warehouse: Path
    instance: dg.DagsterInstance
    run_id: str
    events: list
    core_counts: dict[str, int]


def ingest(db_url: str, warehouse: Path) -> Ingested:
    """storefront_snapshot for the world's end date, then core.order_lines and core.rma_lines."""
    instance = dg.DagsterInstance.ephemeral()
    wh = WarehouseResource(path=str(warehouse))
    result = dg.materialize(
        [storefront_snapshot], partition_key=WORLD_END.isoformat(), instance=instance,
        resources={
            "storefront": StorefrontResource(db_url=db_url),
            "warehouse": wh,
            "recon_config": ReconConfigResource(config_path=str(DEFAULT_CONFIG_PATH)),
        })
    assert result.success
    cfg = load_config(DEFAULT_CONFIG_PATH)
    with wh.transaction() as con:
        core_counts = {t: rebuild(con, "core", t, WORLD_END, cfg) for t in ("order_lines", "rma_lines")}
    return Ingested(warehouse, instance, result.run_id, list(result.all_events), core_counts)


def table_rows(warehouse: Path, table: str) -> tuple[list[tuple[str, str]], list[tuple]]:
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        schema, name = table.split(".")
        types = con.execute("SELECT column_name, data_type FROM information_schema.columns "
                            "WHERE table_schema = ? AND table_name = ? ORDER BY ordinal_position",
                            [schema, name]).fetchall()
        rows = con.execute(f"SELECT * FROM {table} ORDER BY ALL").fetchall()
        return types, rows
    finally:
        con.close()


def storefront_rejects(warehouse: Path) -> list[tuple]:
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        return con.execute("SELECT business_date, record_key, reason FROM recon.rejects "
                           "WHERE source = 'storefront' ORDER BY ALL").fetchall()
    finally:
        con.close()


def password_hits_in_warehouse(warehouse: Path) -> list[str]:
    """Every text-castable column of every warehouse table scanned for the password, plus the file bytes."""
    hits = []
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        columns = con.execute("SELECT table_schema, table_name, column_name FROM information_schema.columns "
                              "WHERE table_catalog = current_database() "
                              "AND table_schema NOT IN ('information_schema', 'pg_catalog')").fetchall()
        assert columns
        for schema, table, column in columns:
            n = con.execute(f'SELECT count(*) FROM {schema}.{table} WHERE CAST("{column}" AS VARCHAR) LIKE ?',
                            [f"%{TOKEN}%"]).fetchone()[0]
            if n:
                hits.append(f"{schema}.{table}.{column}: {n} row(s)")
    finally:
        con.close()
    if TOKEN.encode() in warehouse.read_bytes():
        hits.append(f"{warehouse.name}: raw bytes")
    return hits


def dagster_records(ing: Ingested) -> str:
    """Everything Dagster recorded about the run: event log entries (messages, metadata) and the run."""
    from dagster._serdes import serialize_value

    parts = [serialize_value(entry) for entry in ing.instance.all_logs(ing.run_id)]
    parts += [str(event.message) for event in ing.events]
    parts.append(serialize_value(ing.instance.get_run_by_id(ing.run_id)))
    return "\n".join(parts)


# --------------------------------------------------------------------------- the test

def test_mariadb_and_sqlite_ingest_the_same(mariadb: Server, demo_world: Path, tmp_path: Path, caplog, capfd):
    caplog.set_level(logging.DEBUG)
    sqlite_path, zero = make_sqlite_copy(demo_world, tmp_path / "storefront.sqlite")
    source_counts = load_mariadb(mariadb, sqlite_path)

    # The server really holds OpenCart's MySQL types, and `recon` can log in only with its password
    # and only read.
    con = mariadb.recon()
    try:
        with con.cursor() as cur:
            cur.execute("SELECT table_name, column_name, column_type FROM information_schema.columns "
                        "WHERE table_schema = %s", (DATABASE,))
            column_types = {(t, c): ty for t, c, ty in cur.fetchall()}
            with pytest.raises(pymysql.err.MySQLError) as denied:
                cur.execute("UPDATE oc_product SET quantity = quantity + 1")
            assert denied.value.args[0] == 1142  # ER_TABLEACCESS_DENIED_ERROR
            cur.execute("SELECT date_ordered FROM oc_return WHERE return_id = %s", (zero.return_id,))
            assert cur.fetchone()[0] in ("0000-00-00", None)  # pymysql: invalid date -> str
            cur.execute("SELECT count(*) FROM oc_return WHERE CAST(date_ordered AS CHAR) = '0000-00-00'")
            assert cur.fetchone()[0] == 1
    finally:
        con.close()
    assert column_types[("oc_order", "total")] == "decimal(15,4)"
    assert column_types[("oc_order", "currency_value")] == "decimal(15,8)"
    assert column_types[("oc_order_product", "price")] == "decimal(15,4)"
    assert column_types[("oc_order", "date_added")] == "datetime"
    assert column_types[("oc_return_history", "date_added")] == "datetime"
    assert column_types[("oc_return", "date_ordered")] == "date"
    assert column_types[("oc_order", "order_id")] == "int(11)"
    assert column_types[("oc_product", "subtract")] == "tinyint(1)"
    assert column_types[("oc_return", "opened")] == "tinyint(1)"
    with pytest.raises(pymysql.err.OperationalError) as refused:
        mariadb.recon(password="not-the-password").close()
    assert refused.value.args[0] == 1045  # access denied

    mysql = ingest(mariadb.url, tmp_path / "mysql.duckdb")
    lite = ingest(f"sqlite:///{sqlite_path}", tmp_path / "sqlite.duckdb")

    # Same raw tables, row for row (decimals compare as Decimal, timestamps as datetime).
    for table in RAW_TABLES:
        m_types, m_rows = table_rows(mysql.warehouse, table)
        s_types, s_rows = table_rows(lite.warehouse, table)
        assert m_types == s_types
        assert m_rows, f"{table} is empty"
        assert len(m_rows) == len(s_rows), table
        for m_row, s_row in zip(m_rows, s_rows):
            assert m_row == s_row, f"{table}: {m_row} != {s_row}"
        for (column, dtype), values in zip(m_types, zip(*m_rows)):
            if dtype.startswith("DECIMAL"):
                assert all(v is None or isinstance(v, Decimal) for v in values), (table, column)
            if dtype == "TIMESTAMP":
                assert all(v is None or isinstance(v, datetime) for v in values), (table, column)
    # Every source row arrived (the demo world's storefront rows are all valid).
    for table, source in (("raw.oc_orders", "oc_order"), ("raw.oc_order_lines", "oc_order_product"),
                          ("raw.oc_products", "oc_product"), ("raw.oc_returns", "oc_return"),
                          ("raw.oc_return_history", "oc_return_history")):
        assert len(table_rows(mysql.warehouse, table)[1]) == source_counts[source], table
    # Rejects (if any): same records for the same reasons.
    assert storefront_rejects(mysql.warehouse) == storefront_rejects(lite.warehouse)

    # Same canonical tables.
    assert mysql.core_counts == lite.core_counts and min(mysql.core_counts.values()) > 0
    for table in ("core.order_lines", "core.rma_lines"):
        m_types, m_rows = table_rows(mysql.warehouse, table)
        s_types, s_rows = table_rows(lite.warehouse, table)
        assert m_types == s_types
        assert m_rows == s_rows, table
        assert len(m_rows) == mysql.core_counts[table.split(".")[1]]

    # Zero dates read as null, on both sides (and the rows are not rejected for them).
    for ing in (mysql, lite):
        con = duckdb.connect(str(ing.warehouse), read_only=True)
        try:
            q = lambda sql, key: con.execute(sql, [key]).fetchall()  # noqa: E731
            assert q("SELECT date_ordered, date_added IS NOT NULL FROM raw.oc_returns WHERE return_id = ?",
                     zero.return_id) == [(None, True)]
            assert q("SELECT date_modified, date_added IS NOT NULL FROM raw.oc_orders WHERE order_id = ?",
                     zero.order_id) == [(None, True)]
            assert q("SELECT date_modified FROM raw.oc_products WHERE product_id = ?", zero.product_id) == [(None,)]
            assert con.execute("SELECT count(*) FROM raw.oc_returns WHERE date_ordered IS NULL").fetchone()[0] == 1
            assert con.execute("SELECT count(*) FROM raw.oc_orders WHERE date_modified IS NULL").fetchone()[0] == 1
        finally:
            con.close()

    # The password appears nowhere: logs, Dagster events and metadata, the run record, the warehouse.
    out, err = capfd.readouterr()
    logs = "\n".join([caplog.text, out, err])
    records = dagster_records(mysql)
    assert "127.0.0.1" in records  # the (masked) URL was logged: the search below looks at the right text
    for form in PASSWORD_FORMS:
        assert form not in logs, "password in captured logs"
        assert form not in records, "password in Dagster's event log / run record"
    assert password_hits_in_warehouse(mysql.warehouse) == []

