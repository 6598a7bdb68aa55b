"""Differential test: the pipeline (our real assets and SQL) against the reference evaluation of the
contract (tests/differential/reference.py) on many small randomized worlds.

Seeds: ``DIFFERENTIAL_SEEDS`` (default 200) worlds, seeds ``DIFFERENTIAL_FIRST_SEED`` (default 0)
onwards, ``DIFFERENTIAL_WORKERS`` processes (default: up to 2). Every world's disagreements are
written to ``<tmp_path>/differential.json``; failing worlds stay on disk for inspection
(``python -m tests.differential.run --seeds 1 --first <seed> --keep`` rebuilds one).
"""
from __future__ import annotations

import json
import os
from collections import Counter

from differential.reference import RULES
from differential.run import rule_counts, run_seeds, summary


def test_pipeline_agrees_with_reference_on_random_worlds(tmp_path, record_property):
    n = int(os.environ.get("DIFFERENTIAL_SEEDS", "200"))
    first = int(os.environ.get("DIFFERENTIAL_FIRST_SEED", "0"))
    workers = int(os.environ.get("DIFFERENTIAL_WORKERS", str(min(2, os.cpu_count() or 1))))
    results = run_seeds(list(range(first, first + n)), str(tmp_path), workers)
    worlds, compared, disagreeing, line = summary(results)
    print(line)
    record_property("differential", line)
    disagreements = [d for r in results for d in r["disagreements"]]
    report = tmp_path / "differential.json"
    report.write_text(json.dumps(disagreements, indent=1, default=str))
    by_kind = Counter((d["kind"], d["rule"]) for d in disagreements)
    overview = "\n".join(
        f"  {c:4d} x {kind} {rule} (seeds {sorted({d['seed'] for d in disagreements if (d['kind'], d['rule']) == (kind, rule)})[:6]})"
        for (kind, rule), c in by_kind.most_common())
    examples = "\n".join("  " + json.dumps(d, default=str)[:400] for d in disagreements[:15])
    assert compared > 0, line
    if worlds >= 100:  # the generator must keep exercising every rule
        fired = rule_counts(results)
        assert not [r for r in RULES if not fired[r]], f"rules that never fired in {worlds} worlds: " \
            f"{[r for r in RULES if not fired[r]]} ({dict(fired)})"
    assert not disagreements, f"{line}\n{overview}\nfirst ones:\n{examples}\nall: {report}"
