"""`segcli validate` through Typer's runner: exit codes, output, report, stdin."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from segcli.cli.root import app
from segcli.exitcodes import ExitCode
from tests.helpers.paths import SAMPLE

runner = CliRunner()


def invoke(*args: str, input: str | None = None) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args), input=input)
    assert "Traceback" not in result.stdout + result.stderr
    return result.exit_code, result.stdout, result.stderr


@pytest.mark.parametrize(
    "name",
    [
        "manifest.yaml",
        "manifest.csv",
        "manifest_long.csv",
        "manifest.jsonl",
        "manifest_semantic.yaml",
        "manifest_instance.yaml",
        "predictions.yaml",
    ],
)
def test_every_sample_manifest_is_valid(name: str) -> None:
    code, out, _ = invoke("validate", str(SAMPLE / name), "--workers", "1")
    assert code == ExitCode.OK, out
    assert "PASSED" in out
    assert "invalid" in out and " 0 invalid" in out


def test_broken_manifest_exits_1_with_one_line_per_problem(tmp_path: Path) -> None:
    report = tmp_path / "report.jsonl"
    code, out, _ = invoke(
        "validate", str(SAMPLE / "broken" / "manifest.yaml"), "--report", str(report)
    )
    assert code == ExitCode.ITEMS_FAILED
    expected = {
        "rgb-0001": "mask-mode",
        "deep-0001": "mask-mode",
        "palette-0001": "mask-palette",
        "pond-0001": "value-without-segment",
        "good-0001": "duplicate-reference-id",
        "missing-0001": "mask-unreadable",
        "bad-index-0001": "bad-segment-index",
        "notes-0001": "mask-not-png",
    }
    for ref, problem_code in expected.items():
        assert any(ref in line and f"[{problem_code}]" in line for line in out.splitlines()), (
            ref,
            problem_code,
            out,
        )
    # each problem line names the manifest file and line
    assert "manifest.yaml:" in out
    records = [json.loads(line) for line in report.read_text().splitlines()]
    assert len(records) == 10
    verdicts = {(r["reference_id"], r["source"]): r["verdict"] for r in records}
    assert list(verdicts.values()).count("invalid") == 7
    assert "palette-0001" in {r for r, _ in verdicts if verdicts[(r, _)] == "warning"}
    assert "FAILED" in out


def test_json_summary_is_the_only_stdout(tmp_path: Path) -> None:
    code, out, err = invoke("validate", str(SAMPLE / "broken" / "manifest.yaml"), "--json")
    assert code == ExitCode.ITEMS_FAILED
    summary = json.loads(out)
    assert summary["items"] == 10
    assert summary["invalid"] == 7
    assert summary["with_warnings"] == 1
    assert summary["problems_by_code"]["mask-mode"] == 2
    assert "[mask-mode]" in err


def test_strict_makes_warnings_fail(tmp_path: Path) -> None:
    manifest = tmp_path / "m.yaml"
    manifest.write_text(
        "segments:\n"
        "  - {index: 0, label: background}\n"
        "  - {index: 1, label: field}\n"
        "  - {index: 2, label: road}\n"
        "  - {index: 3, label: building}\n"
        f"items:\n  - reference_id: p\n    mask: {SAMPLE / 'broken' / 'palette.png'}\n"
    )
    assert invoke("validate", str(manifest))[0] == ExitCode.OK
    assert invoke("validate", str(manifest), "--strict")[0] == ExitCode.ITEMS_FAILED


def test_stdin_manifest_is_sniffed() -> None:
    text = (SAMPLE / "manifest.jsonl").read_text()
    # Relative mask paths in stdin resolve against the working directory,
    # so make them absolute first.
    lines = []
    for line in text.splitlines():
        record = json.loads(line)
        record["mask_url"] = str(SAMPLE / record["mask_url"])
        lines.append(json.dumps(record))
    code, out, _ = invoke("validate", "-", "--json", input="\n".join(lines) + "\n")
    assert code == ExitCode.OK
    assert json.loads(out)["items"] == 7


def test_missing_manifest_is_a_usage_error(tmp_path: Path) -> None:
    code, _, err = invoke("validate", str(tmp_path / "nope.yaml"))
    assert code == ExitCode.USAGE
    assert "nope.yaml" in err


def test_bad_flag_is_a_usage_error() -> None:
    code, _, _ = invoke("validate", str(SAMPLE / "manifest.yaml"), "--workers", "0")
    assert code == ExitCode.USAGE


def test_unwritable_report_is_a_usage_error(tmp_path: Path) -> None:
    code, _, err = invoke(
        "validate", str(SAMPLE / "manifest.yaml"), "--report", str(tmp_path / "no" / "r.jsonl")
    )
    assert code == ExitCode.USAGE
    assert "--report" in err
