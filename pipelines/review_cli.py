"""``recon review list | set | import`` (interface.md): the review queue from the command line.

Each command that writes is one transaction: it applies in full or, with a one-line error naming
the id or the row, not at all (an import applies its valid rows and reports the others).
"""
from __future__ import annotations

import argparse
import sys
from contextlib import contextmanager
from pathlib import Path

REVIEW_LOCK_TIMEOUT_S = 30.0  # a person waits this long for a run that holds the warehouse


def _fail(message: str, code: int = 1) -> int:
    print(f"recon: {message.splitlines()[0] if message else 'failed'}", file=sys.stderr)
    return code


@contextmanager
def _warehouse(read_only: bool = False):
    import duckdb

    from pipelines.resources.warehouse import connect
    from pipelines.settings import load_settings

    settings = load_settings()
    if not settings.warehouse.exists():
        raise FileNotFoundError(f"no warehouse at {settings.warehouse}: run `recon run` first")
    try:
        con = connect(settings.warehouse, read_only=read_only, lock_timeout_s=REVIEW_LOCK_TIMEOUT_S)
    except duckdb.IOException as exc:
        if "lock" in str(exc).lower():
            raise RuntimeError("the warehouse is busy (a run is writing it): try again in a minute") from None
        raise
    try:
        if not read_only:
            con.execute("BEGIN TRANSACTION")
        yield con
        if not read_only:
            con.execute("COMMIT")
    except BaseException:
        if not read_only:
            con.execute("ROLLBACK")
        raise
    finally:
        con.close()


def _money(value) -> str:
    return "" if value is None else f"{value:,.2f}"


def cmd_list(args: argparse.Namespace) -> int:
    from pipelines.review import decided_counts, normalise_state, queue

    state = normalise_state(args.state) if args.state else None
    with _warehouse(read_only=True) as con:
        frame = queue(con, rule=args.rule.upper() if args.rule else None, state=state, assignee=args.assignee)
        hidden = decided_counts(con) if state is None else {}
    header = f"{'discrepancy':<18} {'rule':<26} {'sev':<6} {'age':>4} {'amount':>12} {'cur':<4} " \
             f"{'review state':<14} {'assignee':<12} note"
    print(header)
    for r in frame.iter_rows(named=True):
        note = (r["last_note"] or "").replace("\n", " ")
        print(f"{r['discrepancy_id']:<18} {r['rule']:<26} {r['severity']:<6} {r['age_days']:>4} "
              f"{_money(r['amount_at_risk']):>12} {r['currency'] or '':<4} {r['review_state']:<14} "
              f"{r['assignee'] or '':<12} {note[:60]}")
    print(f"{frame.height} open discrepanc{'y' if frame.height == 1 else 'ies'}"
          + (" to review" if state is None else f" in state {state}"))
    if hidden:
        print("Out of the to-do list: " + ", ".join(f"{n} {s}" for s, n in hidden.items())
              + " (recon review list --state S shows them)")
    return 0


def cmd_set(args: argparse.Namespace) -> int:
    from pipelines.review import UNSET, Change, apply_changes, default_actor, normalise_state

    state = normalise_state(args.state)
    assignee = UNSET if args.assignee is None else (args.assignee.strip() or None)
    changes = [Change(i.strip(), review_state=state, assignee=assignee,
                      note=UNSET if args.note is None else args.note) for i in dict.fromkeys(args.ids)]
    with _warehouse() as con:
        written = apply_changes(con, changes, actor=args.actor or default_actor(), source="cli")
    for discrepancy_id, field, old, new in written:
        print(f"{discrepancy_id}: {field} {old if old is not None else '-'} -> {new if new is not None else '-'}")
    print(f"{len(written)} change{'' if len(written) == 1 else 's'} recorded" if written else "nothing changed")
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    from pipelines.review import default_actor
    from pipelines.review_import import import_workbook

    with _warehouse() as con:
        report = import_workbook(con, Path(args.file), actor=args.actor or default_actor())
    for discrepancy_id, field, old, new in report.applied:
        print(f"{discrepancy_id}: {field} {old if old is not None else '-'} -> {new if new is not None else '-'}")
    for line in report.rejected:
        print(f"rejected: {line}", file=sys.stderr)
    for line in report.ignored:
        print(f"ignored: {line}", file=sys.stderr)
    print(f"{len(report.applied)} change(s) applied from {report.source}; {len(report.rejected)} row(s) "
          f"rejected; {len(report.ignored)} protected change(s) ignored")
    return 1 if report.rejected else 0


def add_parser(sub) -> None:
    review = sub.add_parser("review", help="the review queue: list, set and import review decisions")
    rsub = review.add_subparsers(dest="review_command", required=True)
    lst = rsub.add_parser("list", help="open discrepancies to review, with state, age and amount")
    lst.add_argument("--rule")
    lst.add_argument("--state", help="only this review state (default: NEW and INVESTIGATING)")
    lst.add_argument("--assignee")
    lst.set_defaults(func=guarded(cmd_list))
    st = rsub.add_parser("set", help="record a review decision on one or more discrepancies")
    st.add_argument("ids", nargs="+", metavar="ID")
    st.add_argument("--state", required=True)
    st.add_argument("--assignee", help="assign to this person ('' unassigns)")
    st.add_argument("--note")
    st.add_argument("--actor", help="who decided (default: the OS user)")
    st.set_defaults(func=guarded(cmd_set))
    imp = rsub.add_parser("import", help="apply the review columns of an exported workbook")
    imp.add_argument("file", metavar="FILE.xlsx")
    imp.add_argument("--actor", help="who decided (default: the OS user)")
    imp.set_defaults(func=guarded(cmd_import))


def guarded(command):
    """Expected failures as one line: exit 2 for bad input, 1 for the rest (cli.main handles others)."""
    def run(args: argparse.Namespace) -> int:
        from pipelines.review import ReviewError
        try:
            return command(args)
        except ReviewError as exc:
            return _fail(str(exc), 2)
        except (FileNotFoundError, RuntimeError) as exc:
            return _fail(str(exc), 1)
    return run
