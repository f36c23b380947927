"""Reliability suite (run: ``python benchmarks/reliability.py``; about 10 minutes on 2 cores).

Prints, from one run:

* how many generated multi-device scenarios ran against a real server with injected faults
  (reset connections, lost and truncated answers, server restarts, apps killed mid-sync)
  and how many ended with a lost or a duplicated acknowledged write (goal: 10,000, 0, 0);
* how many client SIGKILL trials (mid-write and mid-sync) ran and how many lost an
  acknowledged write (goal: 200, 0);
* how many fuzzed HTTP / WebSocket / identity-API inputs were sent and how many made the
  server fail (goal: 0);

with the seed, the wall time and the counts of what was exercised. The exit status is 1
when any goal is missed. How each part works and what counts as lost or duplicated:
``benchmarks/reliability_suite/`` (the oracle: ``oracle.py``).

A scenario's steps and faults derive from ``"<seed>:<index>"`` alone, so a failure printed
as ``scenario 907 (seed 60488827)`` is replayed with
``python benchmarks/reliability.py --seed 60488827 --only 907`` (repeatable; with
``--repeat N`` each runs N times): only those scenarios run, on a server of their own that
is not restarted (timing-dependent interleavings may need a few repeats). A failing
scenario's trace (its writes, syncs, pulls and pushes, faults and restarts, in order) is
printed with it, so a failure that does not come back alone can still be read.
"""

from __future__ import annotations

import argparse
import random
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from reliability_suite.fuzz import CLASSES
from reliability_suite.scenarios import run_scenarios
from reliability_suite.suite import Options, run_suite


def main(argv: list[str] | None = None) -> int:
    """Parse the flags, run the suite, print the table; 0 if every goal was met."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenarios", type=int, default=10_000, help="scenarios to run")
    parser.add_argument("--kills", type=int, default=200, help="SIGKILL trials")
    parser.add_argument("--fuzz", type=int, default=5_000, help="fuzzed inputs")
    parser.add_argument("--seed", type=int, default=None, help="seed (default: random)")
    parser.add_argument("--workers", type=int, default=2, help="scenario processes")
    parser.add_argument(
        "--skip-fuzz-class",
        action="append",
        default=[],
        choices=CLASSES,
        help="leave a fuzz input class out (repeatable)",
    )
    parser.add_argument(
        "--only", type=int, action="append", default=[], help="replay this scenario (repeatable)"
    )
    parser.add_argument("--repeat", type=int, default=1, help="with --only: runs of each")
    args = parser.parse_args(argv)
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(10**9)
    print(f"seed {seed}", flush=True)
    if args.only:
        return replay(seed, args.only, args.repeat)
    options = Options(
        seed=seed,
        scenarios=args.scenarios,
        kills=args.kills,
        fuzz=args.fuzz,
        workers=args.workers,
        fuzz_classes=tuple(c for c in CLASSES if c not in args.skip_fuzz_class),
    )
    result = run_suite(options)
    print(result.table())
    return 1 if result.missed() else 0


def replay(seed: int, indices: list[int], repeat: int) -> int:
    """Run scenarios ``indices`` of run ``seed`` alone, ``repeat`` times; 1 if any failed."""
    failed = 0
    for run in range(1, repeat + 1):
        for index in indices:
            report = run_scenarios(seed, [index], concurrency=1, restart_every=0)
            problems = report.examples + report.stuck_examples
            failed += bool(problems)
            print(f"run {run}, scenario {index}: " + ("; ".join(problems) or "ok"), flush=True)
            for trace in report.traces:
                print(trace, flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
