"""Fuzz campaigns over the mutation engine, for CI (small, fixed) and by hand (large).

    QFUSE_FUZZ_EXAMPLES=5000 QFUSE_FUZZ_RUNS=200 pytest tests/fuzz      # a longer campaign
    python tests/fuzz/fuzz_campaign.py --examples 5000 --runs 200 --save /tmp/found

``front_end`` compiles mutants ``0 .. examples-1`` of a campaign seed; ``backends`` runs
accepted mutants (distinct programs only, the unmutated seeds first) on both CPU
backends. Both return the findings and counts; a finding prints with its origin
(``seed name #index``), so ``fuzz_mutate.mutant(seed, index, corpus)`` reproduces it.
"""
from __future__ import annotations

import argparse
import itertools
import os
import sys
import tempfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from fuzz_harness import compile_input, dims_for, fits_a_run, known_issue, run_both  # noqa: E402
from fuzz_mutate import mutant, seeds  # noqa: E402

#: CI budget (2-core machine): about 30 s of compiling, 30 s of interpreter runs.
CI_EXAMPLES = 1500
CI_RUNS = 60


def setting(name: str, default: int) -> int:
    return int(os.environ.get(name, default))


@dataclass
class Report:
    """Counts and findings of one campaign (``known``: findings of KNOWN_ISSUES)."""
    counts: Counter = field(default_factory=Counter)
    findings: list = field(default_factory=list)
    known: list = field(default_factory=list)
    slowest: tuple = (0.0, "")

    def add(self, finding) -> None:
        issue = known_issue(finding)
        (self.known if issue else self.findings).append((finding, issue))

    def summary(self) -> str:
        counts = ", ".join(f"{k} {v}" for k, v in sorted(self.counts.items()))
        known = Counter(issue.name for _, issue in self.known)
        return (f"{counts}; {len(self.findings)} findings, known issues: {dict(known) or 'none'};"
                f" slowest input {self.slowest[0]:.1f} s ({self.slowest[1]})")


def front_end(examples: int, seed: int = 0) -> Report:
    """Compile mutants ``0..examples-1`` of campaign ``seed``."""
    report = Report()
    for _ in _compiled(range(examples), seed, report):
        pass
    return report


def _compiled(indices, seed: int, report: Report):
    """Compile the mutants ``indices``, counting outcomes and findings into ``report``;
    yields ``(origin, seed name, data, pipelines)`` of each input that compiled."""
    corpus = seeds()
    with tempfile.TemporaryDirectory(prefix="qfuse-fuzz-") as tmp:
        for i in indices:
            name, data = mutant(seed, i, corpus)
            origin = f"{name} #{i} (seed {seed})"
            out = compile_input(data, Path(tmp) / "fuzz.qp", origin)
            if out.seconds > report.slowest[0]:
                report.slowest = (out.seconds, origin)
            if out.finding is not None:
                report.counts["crashed"] += 1
                report.add(out.finding)
            elif out.error is not None:
                report.counts["rejected"] += 1
            else:
                report.counts["compiled"] += 1
                yield origin, name, data, out.pipelines


def backends(runs: int, seed: int = 0) -> Report:
    """Run ``runs`` distinct accepted programs on both CPU backends: a spread of the
    seeds themselves, then mutants of campaign ``seed`` as they compile (at most
    ``50 * runs`` of them)."""
    from qfuse.runtime.compiler import canonical_ir
    report, seen = Report(), set()
    inputs = itertools.chain(_unmutated(), _compiled(range(50 * runs), seed, report))
    for origin, name, data, pipes in inputs:
        for tp in pipes.values():
            key = canonical_ir(tp)
            if key in seen:
                continue
            seen.add(key)
            dims = dims_for(name, tp)
            if not fits_a_run(tp, dims):
                report.counts["too large to run"] += 1
                continue
            report.counts["ran"] += 1
            finding = run_both(tp, dims, f"{origin} :: {tp.name}", data)
            if finding is not None:
                report.add(finding)
            if report.counts["ran"] >= runs:
                return report
    return report


def _unmutated() -> list:
    """Every seventh seed pipeline, unmutated, as an accepted input: a spread of stages
    before the mutants (the demo runs all of them)."""
    from qfuse.dsl import load_source
    plain = [s for s in seeds() if not s.name.endswith(".qp")][::7]
    return [(f"{s.name} (unmutated)", s.name, s.text.encode(), load_source(s.text, f"{s.name}.qp"))
            for s in plain]


def save(report: Report, where: Path, prefix: str) -> None:
    """Write each finding's input as ``<prefix><n>.qp`` and its description as ``.txt``."""
    where.mkdir(parents=True, exist_ok=True)
    for n, (finding, issue) in enumerate(report.findings + report.known):
        (where / f"{prefix}{n}.qp").write_bytes(finding.source)
        note = f"known issue: {issue.name} ({issue.owner})\n" if issue else ""
        (where / f"{prefix}{n}.txt").write_text(note + finding.render())


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--examples", type=int, default=setting("QFUSE_FUZZ_EXAMPLES", CI_EXAMPLES))
    ap.add_argument("--runs", type=int, default=setting("QFUSE_FUZZ_RUNS", CI_RUNS))
    ap.add_argument("--seed", type=int, default=setting("QFUSE_FUZZ_SEED", 0))
    ap.add_argument("--save", type=Path, help="write every finding's input here")
    args = ap.parse_args(argv)
    fe = front_end(args.examples, args.seed)
    print("front end:", fe.summary())
    be = backends(args.runs, args.seed + 1) if args.runs else Report()
    print("backends: ", be.summary())
    for prefix, report in (("compile-", fe), ("run-", be)):
        for finding, issue in report.findings + report.known:
            print((f"[known: {issue.name}] " if issue else "") + finding.render())
        if args.save:
            save(report, args.save, prefix)
    return 1 if fe.findings or be.findings else 0


if __name__ == "__main__":
    sys.exit(main())
