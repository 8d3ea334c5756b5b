"""Verdict accuracy of `svcgen check` over the fixture corpus (tests/fixtures/check).

Each case is a small repository with the verdicts a reader finds by opening its files; this
prints, per case, the verdicts right and wrong, then accuracy, false PASS (the costly mistake:
a check passed that should not) and the time per case. Prints figures, asserts nothing (the
tests hold every case to its expected verdicts). Run: `.venv/bin/python bench/check_accuracy.py`.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

from harness import Row, print_rows

from tests.check_corpus import cases, run


def main() -> int:
    rows, right, expected, false_pass, wrong = [], 0, 0, 0, 0
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="svcgen-check-accuracy-") as tmp:
        corpus = cases()
        for case in corpus:
            outcome = run(case, Path(tmp))
            right += outcome.right
            expected += outcome.expected
            false_pass += len(outcome.false_pass)
            wrong += len(outcome.wrong)
            figure = f"{outcome.right}/{outcome.expected}"
            rows.append(Row("check", case.name, figure, "all", not outcome.wrong))
            for problem in outcome.wrong:
                print(f"  {case.name}: {problem}", file=sys.stderr)
    elapsed = time.perf_counter() - started
    rows += [
        Row("check", "verdict accuracy", f"{right}/{expected} ({right / max(expected, 1):.1%})",
            "100%", right == expected),
        Row("check", "false PASS", str(false_pass), "0", false_pass == 0),
        Row("check", "cases with any mistake", f"{sum(not r.ok for r in rows)}/{len(corpus)}",
            "0", wrong == 0),
        Row("check", "time per case", f"{elapsed / max(len(corpus), 1) * 1000:.0f} ms"),
    ]  # fmt: skip
    print_rows(rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
