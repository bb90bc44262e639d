"""compliance/summary.py, the judge of the Autobahn|Testsuite reports: a clean report
passes, and each kind of bad one fails (the testsuite itself runs in compliance/run.py)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

SUMMARY = Path(__file__).resolve().parent.parent / "compliance" / "summary.py"


@pytest.fixture(scope="module")
def summary():
    spec = importlib.util.spec_from_file_location("compliance_summary", SUMMARY)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


CLEAN = {
    "1.1.1": ("OK", "OK"),
    "6.4.3": ("OK", "OK"),
    "7.1.6": ("INFORMATIONAL", "INFORMATIONAL"),
    "12.1.1": ("OK", "OK"),
}


def write_report(directory: Path, results: dict, expected=None) -> Path:
    directory.mkdir(parents=True)
    index = {
        "fastws": {
            case: {"behavior": b, "behaviorClose": c, "duration": 1, "remoteCloseCode": 1000,
                   "reportfile": f"fastws_case_{case.replace('.', '_')}.json"}
            for case, (b, c) in results.items()
        }
    }
    (directory / "index.json").write_text(json.dumps(index))
    if expected is not None:
        (directory / "expected.json").write_text(json.dumps({"cases": expected}))
    return directory


def test_clean_report_passes(summary, tmp_path, capsys):
    report = write_report(tmp_path / "cython" / "server", CLEAN, expected=list(CLEAN))
    assert summary.main([str(report)]) == 0
    out = capsys.readouterr().out
    assert "| 6 UTF-8 Handling" in out and "1/1 OK" in out
    assert "summary: all 4 cases OK or INFORMATIONAL" in out


# (id, change to the clean results, expected cases, what the summary must say)
BAD = [
    ("non-strict", {"6.4.3": ("NON-STRICT", "OK")}, None, "6.4.3: behavior NON-STRICT, close OK"),
    ("failed", {"1.1.1": ("FAILED", "OK")}, None, "1.1.1: behavior FAILED"),
    ("unimplemented", {"12.1.1": ("UNIMPLEMENTED", "OK")}, None, "12.1.1: behavior UNIMPLEMENTED"),
    ("close-wrong-code", {"1.1.1": ("OK", "WRONG CODE")}, None, "1.1.1: behavior OK, close WRONG CODE"),
    ("close-unclean", {"7.1.6": ("INFORMATIONAL", "UNCLEAN")}, None, "close UNCLEAN"),
    ("case-missing", {}, list(CLEAN) + ["9.1.6"], "9.1.6: selected by the spec but missing"),
]


@pytest.mark.parametrize("change, expected, message", [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_bad_report_fails(summary, tmp_path, capsys, change, expected, message):
    clean = write_report(tmp_path / "cython" / "client", CLEAN)
    bad = write_report(tmp_path / "python" / "server", {**CLEAN, **change}, expected=expected)
    assert summary.main([str(clean), str(bad)]) == 1
    out = capsys.readouterr().out
    assert message in out
    assert "FAIL" in out.splitlines()[-1] or "FAILED" in out


def test_missing_or_empty_report_fails(summary, tmp_path, capsys):
    assert summary.main([str(tmp_path / "nothing")]) == 1
    assert "no report" in capsys.readouterr().out
    empty = write_report(tmp_path / "empty", {})
    assert summary.main([str(empty)]) == 1
    assert "the report has no case" in capsys.readouterr().out
