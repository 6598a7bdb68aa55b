"""Run the differential comparison on many seeds (several worlds at once, one process each).

    .venv/bin/python -m tests.differential.run --seeds 200 [--first 0] [--workers 2] [--out report.json]

``check_seed(seed, base)`` generates world ``seed`` under ``base/<seed>/world``, runs the pipeline on it
(RECON_HOME ``base/<seed>/home``) and the reference, and compares them.
"""
from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import shutil
import sys
import tempfile
import time
import traceback
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from .generator import BUSINESS_DATE


def check_seed(seed: int, base: str, keep: bool = False) -> dict:
    from .compare import compare
    from .generator import generate
    from .harness import run_world
    from .reference import evaluate

    root = Path(base) / str(seed)
    world, home = root / "world", root / "home"
    started = time.monotonic()
    generate(world, seed)
    findings = evaluate(world, BUSINESS_DATE)
    rules = dict(Counter(f.rule for f in findings))
    try:
        rows = run_world(world, home, BUSINESS_DATE)
    except Exception as exc:  # noqa: BLE001 - a failed run is one disagreement for the whole world
        line = next((ln for ln in reversed(traceback.format_exception(exc)) if ln.strip()), repr(exc))
        return {"seed": seed, "compared": len(findings), "findings": len(findings), "rules": rules,
                "seconds": time.monotonic() - started,
                "disagreements": [{"kind": "pipeline_run_failed", "rule": None, "key": [], "seed": seed,
                                   "pipeline": f"{type(exc).__name__}: {str(exc)[:500]}", "where": line.strip()[:300]}]}
    compared, problems = compare(rows, findings)
    if not keep and not problems:
        shutil.rmtree(root, ignore_errors=True)
    return {"seed": seed, "compared": compared, "findings": len(findings), "rules": rules,
            "seconds": time.monotonic() - started, "disagreements": [{**p, "seed": seed} for p in problems]}


def run_seeds(seeds: list[int], base: str, workers: int, keep: bool = False) -> list[dict]:
    if workers <= 1:
        return [check_seed(s, base, keep) for s in seeds]
    # spawn, not fork: after earlier tests of the same session the parent holds threads (and their
    # locks); a forked worker can inherit a held lock and wait on it forever
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as pool:
        return list(pool.map(check_seed, seeds, [base] * len(seeds), [keep] * len(seeds)))


def rule_counts(results: list[dict]) -> Counter:
    """How often each rule fired in the reference, over all worlds (the generator's coverage)."""
    total: Counter = Counter()
    for r in results:
        total.update(r.get("rules", {}))
    return total


def summary(results: list[dict]) -> tuple[int, int, int, str]:
    n = len(results)
    m = sum(r["compared"] for r in results)
    dis = [d for r in results for d in r["disagreements"]]
    line = f"differential: {n} worlds, {m} discrepancies compared, {len(dis)} disagreements"
    return n, m, len(dis), line


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, default=200)
    ap.add_argument("--first", type=int, default=0)
    ap.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1))
    ap.add_argument("--out", type=Path)
    ap.add_argument("--keep", action="store_true", help="keep every world (failing ones are always kept)")
    ap.add_argument("--base", type=Path)
    args = ap.parse_args(argv)
    base = str(args.base or tempfile.mkdtemp(prefix="differential-"))
    t0 = time.monotonic()
    results = run_seeds(list(range(args.first, args.first + args.seeds)), base, args.workers, args.keep)
    _, _, _, line = summary(results)
    print(line, f"in {time.monotonic() - t0:.0f}s; worlds under {base}")
    print("  reference findings per rule:", dict(sorted(rule_counts(results).items())))
    dis = [d for r in results for d in r["disagreements"]]
    for (kind, rule), c in sorted(Counter((d["kind"], d["rule"]) for d in dis).items(), key=lambda x: -x[1]):
        seeds = sorted({d["seed"] for d in dis if d["kind"] == kind and d["rule"] == rule})
        print(f"  {c:5d} {kind:24s} {rule}  seeds {seeds[:8]}")
    if args.out:
        args.out.write_text(json.dumps(dis, indent=1, default=str))
    return 0 if not dis else 1


if __name__ == "__main__":
    sys.exit(main())
