"""What segcli says is what it does: messages, counts, exit paths and their JSON."""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import typer.main
from typer.testing import CliRunner

from segcli.cli.root import app
from segcli.exitcodes import ExitCode
from segcli.journal import Journal, Scope
from tests.helpers.upload import KEY, Nucleus, make_local_manifest, png_bytes

runner = CliRunner()


@pytest.fixture(autouse=True)
def one_worker(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SEGCLI_WORKERS", "1")


@pytest.fixture
def nucleus(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Nucleus]:
    _, refs = make_local_manifest(tmp_path / "data", 8)
    server = Nucleus(tmp_path, refs)
    monkeypatch.setenv("NUCLEUS_API_KEY", KEY)
    monkeypatch.setenv("NUCLEUS_ENDPOINT", server.url)
    yield server
    server.stop()


def invoke(*args: str, input: str | None = None) -> Any:
    result = runner.invoke(app, list(args), input=input)
    assert "Traceback" not in result.output, result.output
    assert KEY not in result.output
    return result


# -- rejected items: the server's words and what to do, the raw answer in the report ------


def test_rejected_items_show_the_servers_text_not_its_json(
    nucleus: Nucleus, tmp_path: Path
) -> None:
    manifest = tmp_path / "data" / "manifest.jsonl"
    record = json.loads(manifest.read_text().splitlines()[0])
    record["reference_id"] = "not-in-dataset"
    manifest.write_text(manifest.read_text() + json.dumps(record) + "\n")
    report = tmp_path / "report.jsonl"
    result = invoke(
        "upload", str(manifest), "--dataset", nucleus.dataset_id, "--report", str(report)
    )
    assert result.exit_code == ExitCode.ITEMS_FAILED
    (line,) = [x for x in result.stdout.splitlines() if "not-in-dataset: rejected: " in x]
    assert "the server rejected it:" in line
    assert "add the item to the dataset first" in line
    assert "{" not in line and '"annotation"' not in line
    (rejected,) = [
        r for r in map(json.loads, report.read_text().splitlines()) if r["state"] == "rejected"
    ]
    raw = json.loads(rejected["server_error"])  # exactly as the server answered
    assert raw["annotation"]["reference_id"] == "not-in-dataset"


# -- standard input, --base-dir, and repeated problems ------------------------------------


def test_stdin_paths_resolve_against_the_working_directory_and_say_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    manifest, _ = make_local_manifest(tmp_path / "data", 50)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    result = invoke("validate", "-", input=manifest.read_text())
    assert result.exit_code == ExitCode.ITEMS_FAILED
    lines = [x for x in result.stdout.splitlines() if " error [mask-unreadable] " in x]
    assert len(lines) == 3  # then counted
    assert f"resolved against the working directory {elsewhere}" in lines[0]
    assert "came from standard input" in lines[0] and "--base-dir DIR" in lines[0]
    assert "manifest's folder" not in result.stdout
    assert "... and 47 more items with the same [mask-unreadable] problem as <stdin>:1" in (
        result.stdout
    )
    assert "--report FILE lists all" in result.stdout
    assert "mask-unreadable: 50 of 50 items" in result.stdout

    result = invoke("validate", "-", "--base-dir", str(manifest.parent), input=manifest.read_text())
    assert result.exit_code == ExitCode.OK, result.output


def test_a_missing_relative_mask_names_the_manifests_folder(tmp_path: Path) -> None:
    manifest, _ = make_local_manifest(tmp_path / "data", 2)
    shutil.rmtree(tmp_path / "data" / "masks")
    result = invoke("validate", str(manifest))
    assert f"resolved against the manifest's folder {manifest.parent}" in result.stdout


# -- warnings by code ------------------------------------------------------------------


def unused_segment_manifest(tmp_path: Path, n: int = 50) -> Path:
    manifest, _ = make_local_manifest(tmp_path / "data", n)
    lines = []
    for line in manifest.read_text().splitlines():
        record = json.loads(line)
        record["annotations"].append({"index": 9, "label": "never-drawn"})
        lines.append(json.dumps(record))
    manifest.write_text("\n".join(lines) + "\n")
    return manifest


def test_one_warning_on_every_item_is_shown_a_few_times_then_summed(tmp_path: Path) -> None:
    manifest = unused_segment_manifest(tmp_path)
    result = invoke("validate", str(manifest))
    assert result.exit_code == ExitCode.OK
    shown = [x for x in result.stdout.splitlines() if " warning [segment-not-in-mask] " in x]
    assert len(shown) == 3
    assert "segment-not-in-mask: 50 of 50 items" in result.stdout
    # in manifest order
    numbers = [int(re.search(r":(\d+) ", x).group(1)) for x in shown]  # type: ignore[union-attr]
    assert numbers == sorted(numbers) == [1, 2, 3]


def test_ignore_drops_a_warning_and_error_makes_it_fail(tmp_path: Path) -> None:
    manifest = unused_segment_manifest(tmp_path, 5)
    result = invoke("validate", str(manifest), "--ignore", "segment-not-in-mask,mask-palette")
    assert result.exit_code == ExitCode.OK
    assert "segment-not-in-mask" not in result.stdout
    result = invoke("validate", str(manifest), "--error", "segment-not-in-mask", "--json")
    assert result.exit_code == ExitCode.ITEMS_FAILED
    assert json.loads(result.stdout)["invalid"] == 5
    result = invoke("validate", str(manifest), "--ignore", "value-without-segment")
    assert result.exit_code == ExitCode.USAGE
    assert "only warnings can be ignored" in result.output
    result = invoke("validate", str(manifest), "--ignore", "no-such-code")
    assert result.exit_code == ExitCode.USAGE
    assert "unknown code no-such-code" in result.output


def test_upload_prints_problems_in_manifest_order(nucleus: Nucleus, tmp_path: Path) -> None:
    manifest = unused_segment_manifest(tmp_path / "ordered", 8)
    lines = manifest.read_text().splitlines()
    broken = json.loads(lines[6])
    broken["mask_url"] = "masks/missing.png"  # invalid at once, while the others are sent
    lines[6] = json.dumps(broken)
    manifest.write_text("\n".join(lines) + "\n")
    shutil.copytree(tmp_path / "data" / "masks", manifest.parent / "masks", dirs_exist_ok=True)
    result = invoke(
        "upload", str(manifest), "--dataset", nucleus.dataset_id, "--local-batch-size", "2"
    )
    where = [
        int(m.group(1)) for m in re.finditer(r"^\S+manifest\.jsonl:(\d+) ", result.stdout, re.M)
    ]
    assert where == sorted(where) and 7 in where, result.stdout


# -- every exit path with --json prints one JSON object --------------------------------------


def _one_object(text: str) -> dict[str, Any]:
    value = json.loads(text)
    assert isinstance(value, dict)
    return value


def test_json_on_every_exit_path(nucleus: Nucleus, tmp_path: Path) -> None:
    manifest = tmp_path / "data" / "manifest.jsonl"
    ds = nucleus.dataset_id
    cases = [
        (["upload", str(manifest), "--dataset", ds, "--json"], ExitCode.OK, None),
        (["upload", str(tmp_path / "nope.yaml"), "--dataset", ds, "--json"], 2, "manifest"),
        (["upload", str(manifest), "--json"], ExitCode.USAGE, "usage"),  # no --dataset
        (["upload", str(manifest), "--dataset", "ds_nope", "--json"], 3, "not-found"),
        (["validate", str(manifest), "--workers", "x", "--json"], ExitCode.USAGE, "usage"),
        (["validate", str(tmp_path / "empty.csv"), "--json"], ExitCode.USAGE, "manifest"),
        (["status", "--journal", str(tmp_path / "none"), "--json"], ExitCode.USAGE, "journal"),
    ]
    (tmp_path / "empty.csv").write_text("")
    for args, code, error in cases:
        result = invoke(*args)
        assert result.stdout.strip(), (args, result.output)
        assert result.exit_code == code, (args, result.output)
        found = _one_object(result.stdout)
        assert found["exit_code"] == code, args
        if error is None:
            assert "error" not in found
        else:
            assert found["error"]["code"] == error, (args, found)
            assert found["error"]["message"] and found["error"]["hint"]

    journal = manifest.parent / "manifest.jsonl.segcli-journal"
    with Journal(journal, Scope(nucleus.url, ds, "annotations")):
        result = invoke("upload", str(manifest), "--dataset", ds, "--force", "--json")
    assert result.exit_code == ExitCode.BUSY
    assert _one_object(result.stdout)["error"]["code"] == "journal-busy"

    os.environ.pop("NUCLEUS_API_KEY")
    result = invoke("upload", str(manifest), "--dataset", ds, "--json")
    assert result.exit_code == ExitCode.USAGE
    assert "NUCLEUS_API_KEY" in _one_object(result.stdout)["error"]["hint"]


# -- nothing to do ----------------------------------------------------------------------


@pytest.mark.parametrize("command", ["validate", "upload"])
def test_an_empty_manifest_is_an_error_unless_allowed(
    nucleus: Nucleus, tmp_path: Path, command: str
) -> None:
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n")
    args = [command, str(empty)] + (
        ["--dataset", nucleus.dataset_id] if command == "upload" else []
    )
    result = invoke(*args)
    assert result.exit_code == ExitCode.USAGE
    assert f"{empty} holds no items" in result.output and "--allow-empty" in result.output
    result = invoke(*args, "--allow-empty")
    assert result.exit_code == ExitCode.OK, result.output
    assert not list(tmp_path.glob("*.segcli-journal*"))  # nothing was recorded, nothing left


# -- small things a careful user notices --------------------------------------------------


def test_no_lock_file_is_left_beside_the_journal(nucleus: Nucleus, tmp_path: Path) -> None:
    manifest = tmp_path / "data" / "manifest.jsonl"
    assert invoke("upload", str(manifest), "--dataset", nucleus.dataset_id).exit_code == 0
    assert sorted(p.name for p in manifest.parent.iterdir()) == [
        "manifest.jsonl",
        "manifest.jsonl.segcli-journal",
        "masks",
    ]


def test_not_found_and_retry_messages_say_each_thing_once(nucleus: Nucleus, tmp_path: Path) -> None:
    manifest = tmp_path / "data" / "manifest.jsonl"
    result = invoke("upload", str(manifest), "--dataset", "ds_nope")
    assert "not found: not found" not in result.output
    assert "not found: dataset ds_nope does not exist" in result.output
    assert "attempt(s)" not in result.output


def test_counts_are_plural_only_when_they_should_be(tmp_path: Path) -> None:
    manifest, _ = make_local_manifest(tmp_path, 1)
    result = invoke("validate", str(manifest))
    assert "PASSED: 1 item, 1 ok, 0 with warnings, 0 invalid" in result.stdout


def test_trained_slice_id_needs_predictions(nucleus: Nucleus, tmp_path: Path) -> None:
    manifest = tmp_path / "data" / "manifest.jsonl"
    args = ["upload", str(manifest), "--dataset", nucleus.dataset_id]
    result = invoke(*args, "--trained-slice-id", "slc_1")
    assert result.exit_code == ExitCode.USAGE
    assert "--trained-slice-id is for predictions" in result.output
    assert nucleus.rows() == []


def test_help_shows_plain_metavars() -> None:
    root = typer.main.get_command(app)
    for name, command in root.commands.items():  # type: ignore[attr-defined]
        text = command.get_help(command.make_context(name, ["--help"], resilient_parsing=True))
        for odd in ("[[", "<str>", "<list", "<int", "<float", "<path>", "<file>"):
            assert odd not in text, (name, odd)
        # Typer's {ARGUMENT}; braces as such are fine (segcli manifest's '{reference_id}.png')
        assert not re.search(r"\{[A-Z_]+\}", text), (name, "{METAVAR}")
    usage = root.commands["status"].get_usage(  # type: ignore[attr-defined]
        root.commands["status"].make_context("status", [], resilient_parsing=True)  # type: ignore[attr-defined]
    )
    assert "[MANIFEST]" in usage


def test_values_not_contiguous_reads_as_a_sentence(tmp_path: Path) -> None:
    import io

    from PIL import Image

    mask = tmp_path / "m.png"
    image = Image.new("L", (4, 2))
    image.putdata([0, 0, 2, 2, 0, 0, 2, 2])
    buf = io.BytesIO()
    image.save(buf, "PNG")
    mask.write_bytes(buf.getvalue())
    manifest = tmp_path / "m.csv"
    manifest.write_text(
        'reference_id,mask,segments\na,m.png,"[{""index"": 0, ""label"": ""bg""}, '
        '{""index"": 2, ""label"": ""x""}]"\n'
    )
    result = invoke("validate", str(manifest))
    assert "should be 0..1, but 1 is missing and 2 is used instead" in result.stdout
    assert "beyond" not in result.stdout


def test_quiet_silences_progress_lines(tmp_path: Path) -> None:
    manifest, _ = make_local_manifest(tmp_path, 3)
    result = invoke("validate", str(manifest), "-q")
    assert result.stderr == ""
    assert png_bytes(0)  # the helper still makes masks
