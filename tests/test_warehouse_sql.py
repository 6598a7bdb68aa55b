"""SQL files are split into statements by DuckDB's own parser, not by a regex on ';'."""
from __future__ import annotations

import duckdb

from pipelines.resources.warehouse import run_sql


def test_semicolons_inside_literals_and_comments_do_not_split_a_statement():
    con = duckdb.connect()
    run_sql(con, """
        -- a comment; with a semicolon
        CREATE TABLE t (note VARCHAR);
        INSERT INTO t VALUES ('a;b'), ($x);  /* another; one */
        INSERT INTO t SELECT 'c;' || $x;
    """, {"x": "d"})
    assert con.execute("SELECT note FROM t ORDER BY note").fetchall() == [("a;b",), ("c;d",), ("d",)]
