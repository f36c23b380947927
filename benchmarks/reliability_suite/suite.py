"""Run the whole suite -- scenarios, kill trials, fuzz -- and judge it against its goals.

The scenario workers (one per core), the kill trials and the fuzz each run in their own
process at the same time; each part has its own server.
"""

from __future__ import annotations

import dataclasses
import multiprocessing
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor

from .fuzz import CLASSES, SLOW, FuzzReport, run_fuzz
from .kills import KillReport, run_kills
from .scenarios import ScenarioReport, run_scenarios

__all__ = ["Options", "SuiteResult", "run_suite"]

TIME_GOAL = 15 * 60


@dataclasses.dataclass(frozen=True)
class Options:
    """What to run (the defaults meet the suite's goals)."""

    seed: int
    scenarios: int = 10_000
    kills: int = 200
    fuzz: int = 5_000
    workers: int = 2
    concurrency: int = 16
    restart_every: int = 50
    fuzz_classes: tuple[str, ...] = CLASSES


@dataclasses.dataclass
class SuiteResult:
    """Everything measured in one run."""

    options: Options
    scenarios: ScenarioReport
    kills: KillReport
    fuzz: FuzzReport
    seconds: float

    def missed(self) -> list[str]:
        """The goals this run missed (empty: all met)."""
        checks = {
            f"at least {self.options.scenarios} scenarios": self.scenarios.scenarios
            >= self.options.scenarios,
            "no scenario lost an acknowledged write": self.scenarios.lost == 0,
            "no scenario duplicated a write": self.scenarios.duplicated == 0,
            "every scenario finished": self.scenarios.stuck == 0,
            f"at least {self.options.kills} SIGKILL trials": self.kills.trials
            >= self.options.kills,
            "no SIGKILL trial lost an acknowledged write": self.kills.lost == 0,
            f"{self.options.fuzz} fuzz inputs": self.fuzz.total >= self.options.fuzz,
            "no fuzz input made the server fail": self.fuzz.server_errors == 0,
            "under 15 minutes": self.seconds < TIME_GOAL,
        }
        return [goal for goal, met in checks.items() if not met]

    def table(self) -> str:
        """The result table, the counts of what was exercised, and examples of failures."""
        s, k, f = self.scenarios, self.kills, self.fuzz
        rows = [
            ("multi-device scenarios run (real server, faults)", s.scenarios, ">= 10,000"),
            ("  ended with a lost acknowledged write", s.lost, "0"),
            ("  ended with a duplicated write", s.duplicated, "0"),
            ("  could not finish (stuck)", s.stuck, "0"),
            ("client SIGKILL trials", k.trials, ">= 200"),
            ("  lost an acknowledged write", k.lost, "0"),
            ("fuzzed HTTP / WebSocket / identity-API inputs", f.total, ""),
            ("  server errors (5xx, logged error, 1011/1006)", f.server_errors, "0"),
            ("wall time (s)", f"{self.seconds:.0f}", f"< {TIME_GOAL}"),
        ]
        lines = [f"cogsync reliability suite, seed {self.options.seed}", ""]
        lines.append(f"| {'what':<50} | {'count':>8} | {'goal':>10} |")
        lines.append(f"| {'-' * 50} | {'-' * 8}:| {'-' * 10}:|")
        lines += [f"| {what:<50} | {count!s:>8} | {goal:>10} |" for what, count, goal in rows]
        faults = ", ".join(f"{n} {kind}" for kind, n in sorted(s.faults.items()))
        phases = ", ".join(f"{n} {phase}" for phase, n in sorted(k.phases.items()))
        lines += [
            "",
            "What the run exercised (counts from this run):",
            f"  scenarios: {s.writes} acknowledged writes, {s.syncs} syncs ({s.failed_syncs} "
            f"failed on a fault), {s.conflicts} conflicts resolved",
            f"  faults: {s.requests} requests relayed, {faults}; {s.server_restarts} server "
            f"restarts (longest {s.longest_restart:.1f} s), {s.device_restarts} app restarts "
            "mid-scenario",
            f"  SIGKILLs: {phases}; {k.acknowledged} acknowledged writes checked; the write in "
            f"flight landed whole {k.in_flight_landed} times",
            "  fuzz, per class (inputs / server errors / answers slower than "
            f"{SLOW:.0f} s / 4xx logged at ERROR / mean ms):",
        ]
        for name in CLASSES:
            if f.inputs[name]:
                mean = 1000 * f.seconds[name] / f.inputs[name]
                lines.append(
                    f"    {name:<22} {f.inputs[name]:>6} {f.errors[name]:>6} "
                    f"{f.slow[name]:>6} {f.noisy[name]:>6} {mean:>8.1f}"
                )
        examples = s.examples + k.examples + s.stuck_examples[:3]
        examples += [f"fuzz {c}: {e}" for c, e in f.examples.items()]
        examples += [f"fuzz {c} (4xx, logged): {e}" for c, e in f.noise_examples.items()]
        if examples:
            examples = [e if len(e) < 600 else e[:600] + "..." for e in examples[:30]]
            lines += ["", "Failures and log noise (first of each kind):"]
            lines += [f"  {e}" for e in examples]
        if s.traces:
            lines += ["", "Traces of the first failing scenarios:", *s.traces]
        missed = self.missed()
        lines += ["", "goals missed: " + ("; ".join(missed) if missed else "none")]
        return "\n".join(lines)


def _chunks(total: int, parts: int) -> Sequence[range]:
    size = -(-total // max(1, parts))
    return [range(i, min(total, i + size)) for i in range(0, total, size)] if total else []


def run_suite(options: Options) -> SuiteResult:
    """Run every part at once in worker processes and collect the result."""
    started = time.perf_counter()
    context = multiprocessing.get_context("spawn")
    scenarios, kills, fuzz = ScenarioReport(), KillReport(), FuzzReport()
    chunks = _chunks(options.scenarios, options.workers)
    with ProcessPoolExecutor(len(chunks) + 2, mp_context=context) as pool:
        scenario_jobs = [
            pool.submit(
                run_scenarios,
                options.seed,
                chunk,
                concurrency=options.concurrency,
                restart_every=options.restart_every,
            )
            for chunk in chunks
        ]
        kill_job = pool.submit(run_kills, options.seed, options.kills) if options.kills else None
        fuzz_job = (
            pool.submit(run_fuzz, options.seed, options.fuzz, classes=options.fuzz_classes)
            if options.fuzz
            else None
        )
        for job in scenario_jobs:
            scenarios.merge(job.result())
        if kill_job is not None:
            kills = kill_job.result()
        if fuzz_job is not None:
            fuzz = fuzz_job.result()
    return SuiteResult(options, scenarios, kills, fuzz, time.perf_counter() - started)
