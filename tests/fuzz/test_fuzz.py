"""Fuzzing the compiler with mutated example pipelines (``fuzz_mutate``), on a fixed
budget and a fixed seed, so CI runs the same inputs every time.

* Every mutant compiles (parse, check, passes, Triton source) or gets a QfuseError
  located in its file; nothing else escapes.
* Every accepted program that runs is run on both CPU backends (reference and the
  Triton interpreter) with the same random inputs, and they agree.

A longer campaign: ``QFUSE_FUZZ_EXAMPLES=5000 QFUSE_FUZZ_RUNS=200 pytest tests/fuzz``
(``QFUSE_FUZZ_SEED`` picks other mutants), or ``python tests/fuzz/fuzz_campaign.py``.
"""
from __future__ import annotations

import random

import pytest

from fuzz_campaign import CI_EXAMPLES, CI_RUNS, backends, front_end, setting
from fuzz_harness import KNOWN_ISSUES, compile_input
from fuzz_mutate import Mutator, mutant, seeds

SEED = setting("QFUSE_FUZZ_SEED", 0)


def _failures(report) -> str:
    return "\n".join(f.render() for f, _ in report.findings[:5]) + "\n" + report.summary()


def test_mutants_compile_or_get_a_located_error():
    report = front_end(setting("QFUSE_FUZZ_EXAMPLES", CI_EXAMPLES), SEED)
    assert not report.findings, _failures(report)
    # the budget reaches both outcomes, or it tests nothing
    assert report.counts["compiled"] > 0 and report.counts["rejected"] > 0, report.summary()


def test_accepted_programs_run_the_same_on_both_cpu_backends():
    report = backends(setting("QFUSE_FUZZ_RUNS", CI_RUNS), SEED + 1)
    assert not report.findings, _failures(report)
    assert report.counts["ran"] == setting("QFUSE_FUZZ_RUNS", CI_RUNS), report.summary()


def test_mutants_are_reproducible_and_reach_every_mutation():
    corpus = seeds()
    assert mutant(SEED, 17, corpus) == mutant(SEED, 17, corpus)
    rendered = Mutator("def f(x: bf16[M, N]):\n    return silu(x)\n", random.Random(1))
    for name in set(Mutator.MUTATIONS):
        getattr(rendered, name)()                  # each mutation runs on a small program
    assert isinstance(rendered.render(), bytes)


def test_the_harness_reports_a_crash_and_an_unlocated_error(tmp_path, monkeypatch):
    """The contract check itself: a non-QfuseError is a finding, so is an error whose
    location is not in the file."""
    import qfuse.dsl
    from qfuse.errors import QfuseError
    monkeypatch.setattr(qfuse.dsl, "load_file", lambda path: {}["boom"])
    out = compile_input(b"def f(x: bf16[M, N]):\n    return x\n", tmp_path / "a.qp", "t")
    assert out.finding is not None and out.finding.what.startswith("KeyError")

    def unlocated(path):
        raise QfuseError("no position")
    monkeypatch.setattr(qfuse.dsl, "load_file", unlocated)
    out = compile_input(b"", tmp_path / "b.qp", "t")
    assert out.finding is not None and "without a location" in out.finding.what


@pytest.mark.parametrize("issue", KNOWN_ISSUES, ids=lambda k: k.name)
def test_known_issues_name_an_owner(issue):
    assert issue.owner and issue.reason
