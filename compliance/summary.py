"""Summarize Autobahn|Testsuite reports and fail on anything that is not clean.

    python compliance/summary.py                  # every compliance/reports/<impl>/<direction>/
    python compliance/summary.py DIR [DIR ...]    # report directories (or index.json files)

A report directory is where wstest wrote ``index.json``; ``run.py`` names them
``reports/<impl>/<direction>`` (impl: cython or python; direction: server, fastws
tested by ``wstest -m fuzzingclient``, or client, by ``wstest -m fuzzingserver``)
and puts ``expected.json`` beside it: the case ids that the spec selects.

A case passes when its ``behavior`` is OK or INFORMATIONAL *and* its
``behaviorClose`` is OK or INFORMATIONAL. Anything else fails the summary:
NON-STRICT, FAILED, UNIMPLEMENTED, WRONG CODE, UNCLEAN, a case that the spec
selects and the report lacks (a run that died half way), and a report that is
missing or empty. Exit status: 0 when every case of every report passes, 1
otherwise; a per-section table is printed either way, with the failing cases
listed under it.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
PASSING = frozenset({"OK", "INFORMATIONAL"})

SECTIONS = {
    "1": "Framing",
    "2": "Pings/Pongs",
    "3": "Reserved Bits",
    "4": "Opcodes",
    "5": "Fragmentation",
    "6": "UTF-8 Handling",
    "7": "Close Handling",
    "9": "Limits/Performance",
    "10": "Misc",
    "12": "Compression (payloads)",
    "13": "Compression (parameters)",
}


def case_key(case_id: str) -> tuple:
    return tuple(int(part) for part in case_id.split("."))


class Report:
    """One index.json: ``results`` maps case id -> (behavior, behaviorClose)."""

    def __init__(self, path: Path) -> None:
        self.dir = path.parent if path.name == "index.json" else path
        self.index = self.dir / "index.json"
        try:
            label = self.dir.relative_to(HERE / "reports")
        except ValueError:
            label = self.dir
        self.label = str(label).replace("\\", "/")
        self.problems: list = []  # (case id or "-", what)
        self.results: dict = {}
        self.expected = None
        expected_file = self.dir / "expected.json"
        if expected_file.exists():
            self.expected = json.loads(expected_file.read_text())["cases"]
        if not self.index.exists():
            self.problems.append(("-", f"no report: {self.index} is missing"))
            return
        try:
            data = json.loads(self.index.read_text())
        except ValueError as exc:
            self.problems.append(("-", f"unreadable report {self.index}: {exc}"))
            return
        if len(data) != 1:
            self.problems.append(("-", f"expected one agent in {self.index}, found {sorted(data)}"))
        for agent in sorted(data):
            for case_id, result in data[agent].items():
                behavior = result.get("behavior")
                close = result.get("behaviorClose")
                self.results[case_id] = (behavior, close)
                if behavior not in PASSING or close not in PASSING:
                    self.problems.append(
                        (case_id, (f"behavior {behavior}, close {close}"
                                   f" (remote close code {result.get('remoteCloseCode')})"))
                    )
        if not self.results:
            self.problems.append(("-", "the report has no case"))
        if self.expected is not None:
            for case_id in self.expected:
                if case_id not in self.results:
                    self.problems.append((case_id, "selected by the spec but missing from the report"))
        self.problems.sort(key=lambda p: (p[0] != "-", case_key(p[0]) if p[0] != "-" else ()))

    def section_counts(self, section: str) -> tuple:
        """(passing, total) for one section, counting expected-but-missing cases."""
        ids = set(c for c in self.results if c.split(".")[0] == section)
        if self.expected is not None:
            ids.update(c for c in self.expected if c.split(".")[0] == section)
        passing = sum(
            1
            for c in ids
            if c in self.results and self.results[c][0] in PASSING and self.results[c][1] in PASSING
        )
        return passing, len(ids)

    def strict_counts(self, section: str) -> dict:
        counts: dict = {}
        for case_id, (behavior, _) in self.results.items():
            if case_id.split(".")[0] == section:
                counts[behavior] = counts.get(behavior, 0) + 1
        return counts


def find_reports(paths: list) -> list:
    if paths:
        return [Report(Path(p).resolve()) for p in paths]
    root = HERE / "reports"
    dirs = sorted(p.parent for p in root.glob("*/*/index.json"))
    dirs += sorted(p.parent for p in root.glob("*/*/expected.json") if not (p.parent / "index.json").exists())
    return [Report(d) for d in dirs]


def table(reports: list) -> str:
    sections = sorted(
        {c.split(".")[0] for r in reports for c in list(r.results) + list(r.expected or [])},
        key=int,
    )
    head = ["section"] + [r.label for r in reports]
    rows = []
    totals = [[0, 0] for _ in reports]
    for section in sections:
        row = [f"{section} {SECTIONS.get(section, '')}".strip()]
        for i, report in enumerate(reports):
            passing, total = report.section_counts(section)
            totals[i][0] += passing
            totals[i][1] += total
            if total == 0:
                row.append("-")
                continue
            cell = f"{passing}/{total}"
            info = report.strict_counts(section).get("INFORMATIONAL", 0)
            if passing == total:
                cell += " OK" + (f" ({info} info)" if info else "")
            else:
                cell += " FAIL"
            row.append(cell)
        rows.append(row)
    rows.append(["total"] + [f"{p}/{t}" + (" OK" if p == t and t else " FAIL") for p, t in totals])
    widths = [max(len(str(x)) for x in col) for col in zip(head, *rows)]

    def fmt(cells):
        return "| " + " | ".join(str(c).ljust(w) for c, w in zip(cells, widths)) + " |"

    lines = [fmt(head), "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    lines += [fmt(r) for r in rows]
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="Summarize Autobahn|Testsuite reports.")
    parser.add_argument("reports", nargs="*", help="report directories or index.json files")
    args = parser.parse_args(argv)
    reports = find_reports(args.reports)
    if not reports:
        print("summary: no report found under compliance/reports/ (run compliance/run.py)")
        return 1
    print(table(reports))
    failed = False
    for report in reports:
        if report.problems:
            failed = True
            print(f"\n{report.label}: {len(report.problems)} problem(s)")
            for case_id, what in report.problems:
                print(f"  {case_id}: {what}")
    total = sum(len(r.results) for r in reports)
    if failed:
        print("\nsummary: FAILED: every case must be OK or INFORMATIONAL, with its close behaviour too")
        return 1
    print(f"\nsummary: all {total} cases OK or INFORMATIONAL (close behaviour included), "
          "in " + ", ".join(r.label for r in reports))
    return 0


if __name__ == "__main__":
    sys.exit(main())
