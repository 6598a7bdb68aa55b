"""The OpenCart reader against a real MariaDB server (sources.md section 2).

The test starts its own throw-away ``mariadbd`` (temporary data directory, a free port on
127.0.0.1, a private socket), loads the demo world's OpenCart tables into a database
``opencart`` with OpenCart's own MySQL column types (``int(11)``, ``decimal(15,4)``,
``decimal(15,8)``, ``datetime``, ``date``, ``tinyint(1)``, ``varchar``/``text``) plus
OpenCart 3-style ``0000-00-00`` zero dates, and ingests it through a read-only user with a
password (``mysql+pymysql://``). The same data, as a SQLite copy, is ingested into a second
warehouse: both must give the same raw.oc_* rows and the same core.order_lines and
core.rma_lines, and the password must appear nowhere (logs, Dagster events, metadata, warehouse).

The same comparison runs against ``tests/opencart_schema/opencart_3_0_tables.sql`` (our own
DDL mirroring OpenCart 3.0's table definitions: MyISAM, utf8, every other column with its
default), and a concurrent writer inserts orders, lines, returns and history (parent first, as
the shop does) while the connector reads the MyISAM tables: children are read before parents,
so no row may appear without its parent.

No server binary: skipped, unless ``CI`` is set (``.ci/run`` installs MariaDB), then it fails.
"""
from __future__ import annotations

import logging
import os
import re
import shutil
import signal
import socket
import sqlite3
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Callable
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
# Written into the personal columns the world has no value for (3.0's NOT NULL names, addresses...):
# it must not reach the warehouse either.
PII_TOKEN = os.urandom(4).hex()
OPENCART_3_0_SQL = Path(__file__).parent / "opencart_schema" / "opencart_3_0_tables.sql"
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

    def recon(self, password: str = PASSWORD, database: str = DATABASE):
        return pymysql.connect(host="127.0.0.1", port=self.port, user=USER, password=password,
                               database=database, charset="utf8mb4", connect_timeout=5)

    def url_for(self, database: str) -> str:
        return sa.URL.create("mysql+pymysql", username=USER, password=PASSWORD, host="127.0.0.1",
                             port=self.port, database=database).render_as_string(hide_password=False)

    @property
    def url(self) -> str:
        return self.url_for(DATABASE)

    def create_database(self, database: str, charset: str = "utf8") -> None:
        """Another database on the same server, readable (only) by ``recon``."""
        con = self.root()
        try:
            with con.cursor() as cur:
                cur.execute(f"CREATE DATABASE `{database}` CHARACTER SET {charset}")
                cur.execute(f"GRANT SELECT ON `{database}`.* TO '{USER}'@'127.0.0.1'")
        finally:
            con.close()


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


def opencart_3_0_statements() -> list[str]:
    """The CREATE TABLE statements of tests/opencart_schema/opencart_3_0_tables.sql."""
    text = "\n".join(line for line in OPENCART_3_0_SQL.read_text().splitlines()
                     if not line.lstrip().startswith("--"))
    statements = [s.strip() for s in re.split(r";\s*$", text, flags=re.M) if s.strip()]
    assert statements and all(s.startswith("CREATE TABLE") for s in statements)
    return statements


def _filler(cur, table: str, given: list[str]) -> tuple[list[str], Callable[[dict], tuple]]:
    """The NOT NULL columns without a default that the world has no value for (OpenCart 3.0's
    other columns) and a function giving their values for a row: text -> PII_TOKEN (most of them
    are personal: names, addresses), numbers -> 0, datetime -> the row's date_added."""
    cur.execute("SELECT column_name, data_type FROM information_schema.columns "
                "WHERE table_schema = DATABASE() AND table_name = %s AND is_nullable = 'NO' "
                "AND column_default IS NULL AND extra NOT LIKE '%%auto_increment%%' "
                "ORDER BY ordinal_position", (table,))
    missing = [(c, t) for c, t in cur.fetchall() if c not in given]

    def values(row: dict) -> tuple:
        out = []
        for column, dtype in missing:
            if dtype in ("varchar", "char", "text", "mediumtext", "longtext"):
                out.append(PII_TOKEN)
            elif dtype in ("datetime", "date", "timestamp"):
                out.append(row.get("date_added") or "2026-01-01 00:00:00")
            else:
                out.append(0)
        return tuple(out)

    return [c for c, _ in missing], values


def load_mariadb(server: Server, sqlite_path: Path, database: str = DATABASE,
                 statements: list[str] | None = None) -> dict[str, int]:
    """Create the OpenCart tables (our InnoDB DDL, or ``statements``) in ``database`` and copy
    every row of the SQLite copy (other NOT NULL columns filled in); returns row counts."""
    src = sqlite3.connect(sqlite_path)
    src.row_factory = sqlite3.Row
    con = server.root(database)
    counts = {}
    if statements is None:
        statements = [f"CREATE TABLE `{table}` ({ddl}\n) {TABLE_OPTIONS}" for table, ddl in OPENCART_DDL.items()]
    try:
        with con.cursor() as cur:
            cur.execute("SET SESSION sql_mode = ''")  # as OpenCart 3 does on connect: zero dates
            for statement in statements:
                cur.execute(statement)
            for table in OPENCART_DDL:
                columns = [r[1] for r in src.execute(f"PRAGMA table_info({table})")]
                extra, fill = _filler(cur, table, columns)
                columns_in = columns + extra
                rows = [tuple(_mysql_value(v) for v in tuple(row)) + fill(dict(row))
                        for row in src.execute(f"SELECT {', '.join(columns)} FROM {table}")]
                cur.executemany(
                    f"INSERT INTO `{table}` ({', '.join(f'`{c}`' for c in columns_in)}) "
                    f"VALUES ({', '.join(['%s'] * len(columns_in))})", rows)
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
        fetch_instants = ("valid_from", "valid_to")  # when each run read the rows, not what it read
        types = [(c, t) for c, t in con.execute("SELECT column_name, data_type FROM information_schema.columns "
                                                "WHERE table_schema = ? AND table_name = ? ORDER BY ordinal_position",
                                                [schema, name]).fetchall() if c not in fetch_instants]
        rows = con.execute(f"SELECT {', '.join(c for c, _ in types)} FROM {table} ORDER BY ALL").fetchall()
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


def password_hits_in_warehouse(warehouse: Path, token: str = TOKEN) -> list[str]:
    """Every text-castable column of every warehouse table scanned for the password (or another
    ``token``), plus the file bytes."""
    hits = []
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        columns = con.execute("SELECT table_schema, table_name, column_name FROM information_schema.columns "
                              "WHERE table_catalog = current_database() "
                              "AND table_schema NOT IN ('information_schema', 'pg_catalog')").fetchall()
        assert columns
        for schema, table, column in columns:
            n = con.execute(f'SELECT count(*) FROM {schema}.{table} WHERE CAST("{column}" AS VARCHAR) LIKE ?',
                            [f"%{token}%"]).fetchone()[0]
            if n:
                hits.append(f"{schema}.{table}.{column}: {n} row(s)")
    finally:
        con.close()
    if token.encode() in warehouse.read_bytes():
        hits.append(f"{warehouse.name}: raw bytes")
    return hits


def dagster_records(ing: Ingested) -> str:
    """Everything Dagster recorded about the run: event log entries (messages, metadata) and the run."""
    from dagster._serdes import serialize_value

    parts = [serialize_value(entry) for entry in ing.instance.all_logs(ing.run_id)]
    parts += [str(event.message) for event in ing.events]
    parts.append(serialize_value(ing.instance.get_run_by_id(ing.run_id)))
    return "\n".join(parts)


# --------------------------------------------------------------------------- checks

@pytest.fixture(scope="module")
def sqlite_side(demo_world: Path, tmp_path_factory) -> tuple[Path, ZeroDates, Ingested]:
    """The world's SQLite copy with zero dates, ingested once for every comparison."""
    base = tmp_path_factory.mktemp("sqlite-side")
    sqlite_path, zero = make_sqlite_copy(demo_world, base / "storefront.sqlite")
    return sqlite_path, zero, ingest(f"sqlite:///{sqlite_path}", base / "sqlite.duckdb")


def column_types_of(server: Server, database: str) -> dict[tuple[str, str], str]:
    con = server.recon(database=database)
    try:
        with con.cursor() as cur:
            cur.execute("SELECT table_name, column_name, column_type FROM information_schema.columns "
                        "WHERE table_schema = %s", (database,))
            return {(t, c): ty for t, c, ty in cur.fetchall()}
    finally:
        con.close()


def assert_opencart_types(column_types: dict[tuple[str, str], str]) -> None:
    assert column_types[("oc_order", "total")] == "decimal(15,4)"
    assert column_types[("oc_order", "currency_value")] == "decimal(15,8)"
    assert column_types[("oc_order_product", "price")] == "decimal(15,4)"
    assert column_types[("oc_order", "date_added")] == "datetime"
    assert column_types[("oc_return_history", "date_added")] == "datetime"
    assert column_types[("oc_return", "date_ordered")] == "date"
    assert column_types[("oc_order", "order_id")] == "int(11)"
    assert column_types[("oc_product", "subtract")] == "tinyint(1)"
    assert column_types[("oc_return", "opened")] == "tinyint(1)"


def assert_same_ingestion(mysql: Ingested, lite: Ingested, source_counts: dict[str, int], zero: ZeroDates) -> None:
    """The MariaDB and SQLite ingestions gave the same raw and canonical tables."""
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


def assert_password_nowhere(mysql: Ingested, caplog, capfd) -> None:
    """The password appears nowhere: logs, Dagster events and metadata, the run record, the warehouse."""
    out, err = capfd.readouterr()
    logs = "\n".join([caplog.text, out, err])
    records = dagster_records(mysql)
    assert "127.0.0.1" in records  # the (masked) URL was logged: the search below looks at the right text
    for form in PASSWORD_FORMS:
        assert form not in logs, "password in captured logs"
        assert form not in records, "password in Dagster's event log / run record"
    assert password_hits_in_warehouse(mysql.warehouse) == []


# --------------------------------------------------------------------------- the tests

def test_mariadb_and_sqlite_ingest_the_same(mariadb: Server, sqlite_side, tmp_path: Path, caplog, capfd):
    caplog.set_level(logging.DEBUG)
    sqlite_path, zero, lite = sqlite_side
    source_counts = load_mariadb(mariadb, sqlite_path)

    # The server really holds OpenCart's MySQL types, and `recon` can log in only with its password
    # and only read.
    column_types = column_types_of(mariadb, DATABASE)
    con = mariadb.recon()
    try:
        with con.cursor() as cur:
            with pytest.raises(pymysql.err.MySQLError) as denied:
                cur.execute("UPDATE oc_product SET quantity = quantity + 1")
            assert denied.value.args[0] == 1142  # ER_TABLEACCESS_DENIED_ERROR
            cur.execute("SELECT date_ordered FROM oc_return WHERE return_id = %s", (zero.return_id,))
            assert cur.fetchone()[0] in ("0000-00-00", None)  # pymysql: invalid date -> str
            cur.execute("SELECT count(*) FROM oc_return WHERE CAST(date_ordered AS CHAR) = '0000-00-00'")
            assert cur.fetchone()[0] == 1
    finally:
        con.close()
    assert_opencart_types(column_types)
    with pytest.raises(pymysql.err.OperationalError) as refused:
        mariadb.recon(password="not-the-password").close()
    assert refused.value.args[0] == 1045  # access denied

    mysql = ingest(mariadb.url, tmp_path / "mysql.duckdb")
    assert_same_ingestion(mysql, lite, source_counts, zero)
    assert_password_nowhere(mysql, caplog, capfd)


OC30_DATABASE = "opencart30"


def test_opencart_3_0_myisam_tables_ingest_the_same(mariadb: Server, sqlite_side, tmp_path: Path, caplog, capfd):
    """The world in OpenCart 3.0's own table shapes (tests/opencart_schema/opencart_3_0_tables.sql:
    MyISAM, utf8, ~60 columns on oc_order, NOT NULL columns without defaults, zero-date defaults)
    ingests exactly as the SQLite copy does."""
    caplog.set_level(logging.DEBUG)
    sqlite_path, zero, lite = sqlite_side
    mariadb.create_database(OC30_DATABASE, "utf8")
    source_counts = load_mariadb(mariadb, sqlite_path, OC30_DATABASE, opencart_3_0_statements())

    con = mariadb.recon(database=OC30_DATABASE)
    try:
        with con.cursor() as cur:
            cur.execute("SELECT table_name, engine, table_collation FROM information_schema.tables "
                        "WHERE table_schema = %s", (OC30_DATABASE,))
            tables = {t: (engine, collation) for t, engine, collation in cur.fetchall()}
            cur.execute("SELECT count(*) FROM information_schema.columns "
                        "WHERE table_schema = %s AND table_name = 'oc_order'", (OC30_DATABASE,))
            order_columns = cur.fetchone()[0]
            cur.execute("SELECT column_default FROM information_schema.columns WHERE table_schema = %s "
                        "AND table_name = 'oc_product' AND column_name = 'date_available'", (OC30_DATABASE,))
            date_available_default = cur.fetchone()[0]
            # the other columns really hold (personal) values the connector must not copy
            cur.execute(f"SELECT count(*) FROM oc_order WHERE firstname = %s AND payment_address_1 = %s",
                        (PII_TOKEN, PII_TOKEN))
            assert cur.fetchone()[0] == source_counts["oc_order"]
    finally:
        con.close()
    assert set(tables) == set(OPENCART_DDL)
    assert {engine for engine, _ in tables.values()} == {"MyISAM"}, tables
    assert all(collation.startswith(("utf8_", "utf8mb3_")) for _, collation in tables.values()), tables
    assert order_columns >= 60
    assert date_available_default in ("'0000-00-00'", "0000-00-00")
    assert_opencart_types(column_types_of(mariadb, OC30_DATABASE))

    mysql = ingest(mariadb.url_for(OC30_DATABASE), tmp_path / "mysql30.duckdb")
    assert_same_ingestion(mysql, lite, source_counts, zero)
    assert_password_nowhere(mysql, caplog, capfd)
    assert password_hits_in_warehouse(mysql.warehouse, PII_TOKEN) == []  # personal columns not copied


# --------------------------------------------------------------------------- a shop writing during the read

RACE_DATABASE = "opencart30_race"
RACE_PRESEED_GROUPS = 600     # orders (+ lines, return, history) written before the read: a bigger world
RACE_GROUPS_PER_STEP = 5      # complete orders the writer must add before each of the reader's queries
RACE_STEP_TIMEOUT_S = 30.0
RACE_FIRST_ID = 1_000_000     # the writer's ids start here: never confused with the world's
RACE_TABLE_RE = re.compile(r"FROM\s+`?oc_(\w+?)`?\s")


class ShopWriter(threading.Thread):
    """Writes orders as OpenCart does, parent first and one statement at a time (MyISAM: no
    transaction): the order, its two lines, a return of one line, then the return's history rows.
    ``groups`` counts the complete ones (all their rows written)."""

    def __init__(self, server: Server, database: str, world: dict):
        super().__init__(daemon=True, name="shop-writer")
        self.server, self.database, self.world = server, database, world
        self.stop = threading.Event()
        self.progress = threading.Condition()
        self.groups = 0
        self.ids: dict[str, list[int]] = {"order": [], "order_product": [], "return": [], "return_history": []}
        self.error: BaseException | None = None
        self.con = None

    def connect(self) -> None:
        self.con = self.server.root(self.database)
        with self.con.cursor() as cur:
            cur.execute("SET SESSION sql_mode = 'NO_ENGINE_SUBSTITUTION'")  # as OpenCart 3 on connect

    def write_group(self) -> None:
        w, n = self.world, self.groups
        models = w["models"][n % len(w["models"])], w["models"][(n + 7) % len(w["models"])]
        stamp = f"2026-03-{1 + n % 28:02d} {n % 24:02d}:{n % 60:02d}:00"
        with self.con.cursor() as cur:
            cur.execute(
                "INSERT INTO oc_order (store_id, customer_id, firstname, lastname, email, telephone, total, "
                "order_status_id, currency_code, currency_value, date_added, date_modified) "
                "VALUES (0, %s, %s, %s, %s, %s, '59.9000', %s, 'EUR', '1.00000000', %s, %s)",
                (1 + n, PII_TOKEN, PII_TOKEN, f"{PII_TOKEN}@example.com", PII_TOKEN, w["order_status_id"],
                 stamp, stamp))
            order_id = cur.lastrowid
            line_ids = []
            for (product_id, model) in models:
                cur.execute("INSERT INTO oc_order_product (order_id, product_id, name, model, quantity, price, "
                            "total, tax, reward) VALUES (%s, %s, 'Race item', %s, 1, '24.9500', '24.9500', "
                            "'5.0000', 0)", (order_id, product_id, model))
                line_ids.append(cur.lastrowid)
            cur.execute(
                "INSERT INTO oc_return (order_id, product_id, customer_id, firstname, lastname, email, telephone, "
                "product, model, quantity, opened, return_reason_id, return_action_id, return_status_id, "
                "comment, date_ordered, date_added, date_modified) "
                "VALUES (%s, %s, %s, %s, %s, %s, %s, 'Race item', %s, 1, 0, %s, %s, %s, '', %s, %s, %s)",
                (order_id, models[0][0], 1 + n, PII_TOKEN, PII_TOKEN, PII_TOKEN, PII_TOKEN, models[0][1],
                 w["return_reason_id"], w["return_action_id"], w["return_status_id"], stamp[:10], stamp, stamp))
            return_id = cur.lastrowid
            history_ids = []
            for comment in ("", "Tracking number: 1Z999AA10123456784"):
                cur.execute("INSERT INTO oc_return_history (return_id, return_status_id, notify, comment, "
                            "date_added) VALUES (%s, %s, 0, %s, %s)",
                            (return_id, w["return_status_id"], comment, stamp))
                history_ids.append(cur.lastrowid)
        with self.progress:
            self.ids["order"].append(order_id)
            self.ids["order_product"] += line_ids
            self.ids["return"].append(return_id)
            self.ids["return_history"] += history_ids
            self.groups += 1
            self.progress.notify_all()

    def run(self) -> None:
        try:
            while not self.stop.is_set():  # a tight loop for the whole read
                self.write_group()
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            self.error = exc
            with self.progress:
                self.progress.notify_all()

    def wait_for(self, groups: int) -> None:
        deadline = time.monotonic() + RACE_STEP_TIMEOUT_S
        with self.progress:
            while self.groups < groups and self.error is None:
                left = deadline - time.monotonic()
                assert left > 0, f"the writer wrote {self.groups} of {groups} orders in {RACE_STEP_TIMEOUT_S:.0f} s"
                self.progress.wait(left)
        assert self.error is None, f"the writer failed: {self.error!r}"


def _race_world(server: Server, database: str) -> dict:
    con = server.root(database)
    try:
        with con.cursor() as cur:
            cur.execute("SELECT product_id, model FROM oc_product WHERE TRIM(model) <> '' ORDER BY product_id")
            models = list(cur.fetchall())
            cur.execute("SELECT MIN(order_status_id) FROM oc_order WHERE order_status_id > 0")
            order_status_id = cur.fetchone()[0]
            ids = {}
            for table in ("return_reason", "return_action", "return_status"):
                cur.execute(f"SELECT MIN({table}_id) FROM oc_{table} WHERE language_id = 1")
                ids[f"{table}_id"] = cur.fetchone()[0]
            # the writer's rows get ids no world row has
            for table in ("order", "order_product", "return", "return_history"):
                cur.execute(f"ALTER TABLE `oc_{table}` AUTO_INCREMENT = {RACE_FIRST_ID}")
    finally:
        con.close()
    assert models and order_status_id
    return {"models": models, "order_status_id": order_status_id, **ids}


def _count(server: Server, database: str, table: str) -> int:
    con = server.root(database)
    try:
        with con.cursor() as cur:
            cur.execute(f"SELECT count(*) FROM `{table}`")
            return cur.fetchone()[0]
    finally:
        con.close()


def test_shop_writing_during_the_read_never_gives_a_child_without_its_parent(mariadb: Server, demo_world: Path,
                                                                             tmp_path: Path):
    """While ``read_snapshot`` reads the MyISAM tables, a second connection keeps writing orders,
    lines, returns and history, parent first. Before each of the reader's queries the test waits
    until the writer has completed RACE_GROUPS_PER_STEP more orders (the writer runs freely during
    the queries too), so rows are written between every two reads, every time: the race is certain,
    and the property (children read before parents: no child without its parent) is asserted strictly."""
    sqlite_path, _ = make_sqlite_copy(demo_world, tmp_path / "storefront.sqlite")
    mariadb.create_database(RACE_DATABASE, "utf8")
    load_mariadb(mariadb, sqlite_path, RACE_DATABASE, opencart_3_0_statements())
    cfg = load_config(DEFAULT_CONFIG_PATH)
    resource = StorefrontResource(db_url=mariadb.url_for(RACE_DATABASE))

    writer = ShopWriter(mariadb, RACE_DATABASE, _race_world(mariadb, RACE_DATABASE))
    writer.connect()
    for _ in range(RACE_PRESEED_GROUPS):
        writer.write_group()
    baseline = resource.read_snapshot(cfg.tracking_pattern)  # nobody writing: the rejects the data has
    assert baseline.read_counts["raw.oc_orders"] >= RACE_PRESEED_GROUPS
    assert not baseline.rejects.filter(baseline.rejects["reason"].str.contains("does not exist")).height

    main = threading.get_ident()
    queries: list[tuple[str, int]] = []  # (table read, writer's complete orders when its query started)

    def before_query(conn, cursor, statement, parameters, context, executemany):
        found = RACE_TABLE_RE.search(statement)
        if threading.get_ident() != main or not found:
            return
        writer.wait_for((queries[-1][1] if queries else writer.groups) + RACE_GROUPS_PER_STEP)
        queries.append((found.group(1), writer.groups))

    orders_before = _count(mariadb, RACE_DATABASE, "oc_order")
    sa.event.listen(sa.engine.Engine, "before_cursor_execute", before_query)
    writer.start()
    try:
        snapshot = resource.read_snapshot(cfg.tracking_pattern)
        orders_at_end_of_read = writer.groups

        # The same conditions defeat a parents-first read: orders, then (writes), then returns.
        con = mariadb.recon(database=RACE_DATABASE)
        try:
            with con.cursor() as cur:
                cur.execute("SELECT order_id FROM oc_order")
                parent_ids = {r[0] for r in cur.fetchall()}
                writer.wait_for(writer.groups + RACE_GROUPS_PER_STEP)
                cur.execute("SELECT order_id FROM oc_return")
                orphans_if_parents_first = {r[0] for r in cur.fetchall()} - parent_ids
        finally:
            con.close()
    finally:
        sa.event.remove(sa.engine.Engine, "before_cursor_execute", before_query)
        writer.stop.set()
        writer.join(timeout=30)
        writer.con.close()
    assert not writer.is_alive() and writer.error is None, writer.error
    orders_after = _count(mariadb, RACE_DATABASE, "oc_order")

    # The race was real: the reader's five queries, each after more orders were written, and the
    # writer added rows while the snapshot was read (and after it).
    assert [table for table, _ in queries] == ["return_history", "return", "order_product", "order", "product"]
    assert orders_at_end_of_read - RACE_PRESEED_GROUPS >= 5 * RACE_GROUPS_PER_STEP
    assert orders_after - orders_before == writer.groups - RACE_PRESEED_GROUPS >= 5 * RACE_GROUPS_PER_STEP
    assert orphans_if_parents_first, "a parents-first read would have seen returns without their order"

    # No child without its parent: no "does not exist" reject, no reject the data did not already
    # have, and every child loaded has its parent loaded.
    reasons = snapshot.rejects["reason"].to_list()
    assert [r for r in reasons if "does not exist" in r] == []
    assert sorted(snapshot.rejects["record_key"].to_list()) == sorted(baseline.rejects["record_key"].to_list())
    order_ids = set(snapshot.orders["order_id"].to_list())
    return_ids = set(snapshot.returns["return_id"].to_list())
    assert set(snapshot.order_lines["order_id"].to_list()) <= order_ids
    assert set(snapshot.returns["order_id"].to_list()) <= order_ids
    assert set(snapshot.return_history["return_id"].to_list()) <= return_ids

    # ... and rows written during the read were loaded at every level, with parents newer than
    # their children's read: orders whose lines were not read yet, lines whose return was not,
    # returns whose history was not.
    def written(table: str, ids) -> set[int]:
        return {i for i in ids if i >= RACE_FIRST_ID} - set(baseline_ids[table])

    baseline_ids = {"order": baseline.orders["order_id"].to_list(),
                    "order_product": baseline.order_lines["order_product_id"].to_list(),
                    "return": baseline.returns["return_id"].to_list(),
                    "return_history": baseline.return_history["return_history_id"].to_list()}
    new_orders = written("order", order_ids)
    new_lines = written("order_product", snapshot.order_lines["order_product_id"].to_list())
    new_returns = written("return", return_ids)
    new_history = written("return_history", snapshot.return_history["return_history_id"].to_list())
    assert min(len(new_orders), len(new_lines), len(new_returns), len(new_history)) >= RACE_GROUPS_PER_STEP
    lines_of_new = snapshot.order_lines.filter(snapshot.order_lines["order_product_id"].is_in(list(new_lines)))
    assert new_orders - set(lines_of_new["order_id"].to_list()), "no order written after the lines were read"
    returns_of_new = snapshot.returns.filter(snapshot.returns["return_id"].is_in(list(new_returns)))
    assert set(lines_of_new["order_id"].to_list()) - set(returns_of_new["order_id"].to_list())
    history_of_new = snapshot.return_history.filter(
        snapshot.return_history["return_history_id"].is_in(list(new_history)))
    assert new_returns - set(history_of_new["return_id"].to_list())
    # every writer row loaded is complete (its tracking number extracted, its names looked up)
    assert set(history_of_new["tracking_id"].drop_nulls().to_list()) == {"1Z999AA10123456784"}
    assert returns_of_new["return_status_name"].null_count() == 0
