"""`segcli convert` and `segcli manifest` from the command line: exit codes, --json, pipes, env."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import typer
from PIL import Image
from typer.main import get_command
from typer.testing import CliRunner

from segcli.cli.root import app
from segcli.exitcodes import ExitCode
from segcli.manifest import load_manifest
from segcli.server import LocalServer, ServerConfig, seed_dataset
from tests.helpers.convert import write_coco
from tests.helpers.paths import SAMPLE

COCO = str(SAMPLE / "coco" / "panoptic.json")
runner = CliRunner()


def invoke(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args), env=env)
    assert "Traceback" not in result.stdout + result.stderr, result.stdout + result.stderr
    return result.exit_code, result.stdout, result.stderr


def test_sample_coco_converts_and_the_manifest_validates(tmp_path: Path) -> None:
    report = tmp_path / "report.jsonl"
    code, out, _ = invoke(
        "convert", "coco-panoptic", COCO, "--out", str(tmp_path / "o"), "--report", str(report)
    )
    assert code == ExitCode.OK, out
    assert "CONVERTED: 2 images, 2 converted" in out
    records = [json.loads(line) for line in report.read_text().splitlines()]
    assert [(r["reference_id"], r["state"]) for r in records] == [
        ("street-0001", "converted"),
        ("street-0002", "converted"),
    ]
    manifest = tmp_path / "o" / "manifest.yaml"
    code, out, _ = invoke("validate", str(manifest))
    assert code == ExitCode.OK and "0 invalid" in out
    items = list(load_manifest(manifest))
    assert items[0].mask == str(tmp_path / "o" / "street-0001.png")
    assert "mask: street-0001.png" in manifest.read_text()  # relative to the manifest


def test_one_bad_image_exits_1_names_it_and_converts_the_rest(tmp_path: Path) -> None:
    ids = np.array([[1, 2]], dtype=np.uint32)
    path = write_coco(tmp_path / "src", [("a", ids, {1: 1, 2: 7}), ("b", ids, {1: 1, 2: 7})])
    (tmp_path / "src" / "panoptic" / "a.png").unlink()
    code, out, _ = invoke(
        "convert", "coco-panoptic", str(path), "--out", str(tmp_path / "o"), "--json"
    )
    assert code == ExitCode.ITEMS_FAILED
    summary = json.loads(out)  # stdout holds one JSON object
    assert summary["converted"] == 1 and summary["failed"] == 1
    assert summary["problems_by_code"] == {"source-unreadable": 1}
    [item] = load_manifest(tmp_path / "o" / "manifest.yaml")
    assert item.reference_id == "b"


@pytest.mark.parametrize(
    "args",
    [
        ["convert", "coco-panoptic", "/nonexistent/panoptic.json", "--out", "{tmp}/o"],
        ["convert", "palette", "{tmp}/empty", "--labels", "{tmp}/labels.txt", "--out", "{tmp}/o"],
        ["convert", "coco-panoptic", COCO, "--out", "s3://bucket/prefix"],
        [
            "convert",
            "consolidate",
            str(SAMPLE / "manifest_panoptic.yaml"),
            "--to",
            "x",
            "--out",
            "{tmp}/o",
        ],
        [
            "manifest",
            "{tmp}/empty",
            "--segments",
            str(SAMPLE / "folder" / "classes.json"),
            "-o",
            "{tmp}/m.yaml",
        ],
    ],
    ids=["missing-json", "no-images", "bucket-without-manifest", "bad-to", "no-masks"],
)
def test_usage_and_unreadable_input_exit_2_with_one_json_object(
    tmp_path: Path, args: list[str]
) -> None:
    (tmp_path / "empty").mkdir()
    (tmp_path / "labels.txt").write_text("background:0,0,0::\n")
    args = [a.replace("{tmp}", str(tmp_path)) for a in args]
    code, out, err = invoke(*args, "--json")
    assert code == ExitCode.USAGE, out + err
    document = json.loads(out)
    assert document["exit_code"] == 2
    assert set(document["error"]) == {"code", "message", "hint"}
    code, out, err = invoke(*args)
    assert code == ExitCode.USAGE and out == ""
    assert err.startswith("segcli: ")


def test_manifest_to_stdout_puts_the_json_summary_on_stderr(tmp_path: Path) -> None:
    code, out, err = invoke(
        "convert", "coco-panoptic", COCO, "--out", str(tmp_path), "-o", "-", "--json"
    )
    assert code == ExitCode.OK
    lines = [json.loads(line) for line in out.splitlines()]  # JSONL, mask paths absolute
    assert [r["reference_id"] for r in lines] == ["street-0001", "street-0002"]
    assert lines[0]["mask_url"] == str(tmp_path / "street-0001.png")
    assert json.loads(err[err.index("{") :])["converted"] == 2


def test_pipe_convert_into_upload(tmp_path: Path) -> None:
    key = "convert-pipe-key"
    data = tmp_path / "server"
    dataset = seed_dataset(data, "pipe", ["street-0001", "street-0002"])
    env = {**os.environ, "NUCLEUS_API_KEY": key}
    with LocalServer(ServerConfig(data_dir=data, api_keys=(key,))) as server:
        env["NUCLEUS_ENDPOINT"] = server.url
        segcli = [sys.executable, "-m", "segcli"]
        convert = subprocess.Popen(
            [*segcli, "convert", "coco-panoptic", COCO, "--out", str(tmp_path / "o"), "-o", "-"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
            cwd=tmp_path,
        )
        upload = subprocess.run(
            [*segcli, "upload", "-", "--dataset", dataset, "--json"],
            stdin=convert.stdout,
            capture_output=True,
            text=True,
            env=env,
            cwd=tmp_path,
            timeout=120,
        )
        assert convert.stdout is not None
        convert.stdout.close()
        assert convert.wait(timeout=60) == 0
        assert upload.returncode == 0, upload.stderr
        stored = server.store.segmentations(dataset)
    assert sorted(s["reference_id"] for s in stored) == ["street-0001", "street-0002"]
    labels = [a["label"] for a in stored[0]["annotations"]]
    assert labels[:6] == ["background", "building", "tree", "fence", "wall", "pavement"]


def test_env_vars_set_the_options(tmp_path: Path) -> None:
    env = {
        "SEGCLI_CONVERT_OUT": str(tmp_path / "o"),
        "SEGCLI_CONVERT_MANIFEST": str(tmp_path / "m.csv"),
    }
    code, out, _ = invoke("convert", "coco-panoptic", COCO, env=env)
    assert code == ExitCode.OK, out
    assert (tmp_path / "m.csv").read_text().startswith("reference_id,mask,")
    env = {
        "SEGCLI_MANIFEST_SEGMENTS": str(SAMPLE / "folder" / "classes.json"),
        "SEGCLI_MANIFEST_PATTERN": "{reference_id}_mask.png",
    }
    code, out, err = invoke(
        "manifest", str(SAMPLE / "folder"), "-o", str(tmp_path / "f.yaml"), env=env
    )
    assert code == ExitCode.OK, err
    assert [i.reference_id for i in load_manifest(tmp_path / "f.yaml")] == [
        "aerial-0001",
        "aerial-0002",
    ]


def _commands() -> list[tuple[str, typer.main.click.Command]]:  # type: ignore[name-defined]
    root = get_command(app)
    convert = root.commands["convert"]  # type: ignore[attr-defined]
    found = [(f"convert {n}", c) for n, c in convert.commands.items()]
    return [*found, ("manifest", root.commands["manifest"])]  # type: ignore[attr-defined]


@pytest.mark.parametrize(("name", "command"), _commands(), ids=lambda v: str(v))
def test_every_option_reads_an_env_var_and_help_ends_with_an_example(
    name: str, command: object
) -> None:
    options = [p for p in command.params if p.param_type_name == "option"]  # type: ignore[attr-defined]
    assert options
    missing = [p.name for p in options if not (p.envvar or "").startswith("SEGCLI_")]
    assert not missing, f"{name}: options without SEGCLI_* envvar: {missing}"
    code, out, _ = invoke(*name.split(), "--help")
    assert code == 0
    for p in options:
        assert p.envvar in out.replace("\n", " ").replace("  ", " ") or p.envvar in out
    assert "Example:" in out and f"segcli {name}" in out.split("Example:")[1]


def test_manifest_from_a_folder_in_each_format(tmp_path: Path) -> None:
    folder = SAMPLE / "folder"
    for ext in ("yaml", "csv", "jsonl"):
        target = tmp_path / f"m.{ext}"
        code, _, err = invoke(
            "manifest",
            str(folder),
            "--segments",
            str(folder / "classes.json"),
            "--id",
            "{reference_id}_mask.png",
            "-o",
            str(target),
        )
        assert code == ExitCode.OK, err
        items = list(load_manifest(target))
        assert [i.reference_id for i in items] == ["aerial-0001", "aerial-0002"]
        assert items[0].mask == str(folder / "aerial-0001_mask.png")
        assert all(not i.problems for i in items)
        code, out, _ = invoke("validate", str(target))
        assert code == ExitCode.OK, out


def test_manifest_reports_names_that_do_not_match(tmp_path: Path) -> None:
    for name in ("a.png", "b_mask.png", "notes.txt"):
        Image.new("L", (2, 2)).save(tmp_path / name) if name.endswith(".png") else (
            tmp_path / name
        ).write_text("x")
    (tmp_path / "t.yaml").write_text("- {index: 0, label: bg}\n")
    code, out, err = invoke(
        "manifest",
        str(tmp_path),
        "--segments",
        str(tmp_path / "t.yaml"),
        "--id",
        "{reference_id}_mask.png",
    )
    assert code == ExitCode.ITEMS_FAILED
    assert "skipped a.png" in err
    assert "reference_id: b\n" in out  # YAML on stdout, the default table once
    assert out.count("label: bg") == 1


def test_manifest_void_key_makes_declared_values_warnings(tmp_path: Path) -> None:
    Image.fromarray(np.array([[0, 255]], dtype=np.uint8), "L").save(tmp_path / "a.png")
    (tmp_path / "t.yaml").write_text("- {index: 0, label: bg}\n")
    target = tmp_path / "out" / "m.yaml"
    args = ["manifest", str(tmp_path), "--segments", str(tmp_path / "t.yaml"), "-o", str(target)]
    code, _, err = invoke(*args, "--void", "255")
    assert code == ExitCode.OK, err
    assert "void: [255]" in target.read_text()
    code, out, _ = invoke("validate", str(target))
    assert code == ExitCode.OK and "[void-without-segment]" in out
    code, _, err = invoke(*args[:-1], str(tmp_path / "m.csv"), "--void", "255")
    assert code == ExitCode.USAGE and "YAML" in err


def test_library_names_resolve() -> None:
    import segcli
    import segcli.convert

    for name in segcli.convert.__all__:
        assert getattr(segcli.convert, name) is not None, name
    assert callable(segcli.convert_masks) and callable(segcli.folder_items)


def test_validate_on_a_folder_suggests_segcli_manifest(tmp_path: Path) -> None:
    code, _, err = invoke("validate", str(SAMPLE / "folder"))
    assert code == ExitCode.USAGE
    assert "segcli manifest" in err


def test_validate_void_values_are_warnings(tmp_path: Path) -> None:
    mask = tmp_path / "m.png"
    Image.fromarray(np.array([[0, 1, 255]], dtype=np.uint8), "L").save(mask)
    body = "segments: [{index: 0, label: bg}, {index: 1, label: car}]\n"
    body += f"items:\n  - {{reference_id: a, mask: {mask}}}\n"
    plain = tmp_path / "plain.yaml"
    plain.write_text(body)
    code, out, _ = invoke("validate", str(plain))
    assert code == ExitCode.ITEMS_FAILED and "[value-without-segment]" in out
    code, out, _ = invoke("validate", str(plain), "--void", "255")
    assert code == ExitCode.OK and "[void-without-segment]" in out and "255 (1 px)" in out
    declared = tmp_path / "void.yaml"
    declared.write_text("void: [255]\n" + body)
    code, out, _ = invoke("validate", str(declared))
    assert code == ExitCode.OK and "warning [void-without-segment]" in out
    code, _, err = invoke("validate", str(plain), "--void", "300")
    assert code == ExitCode.USAGE and "0..255" in err
    bad = tmp_path / "bad.yaml"
    bad.write_text("void: [x]\n" + body)
    code, _, err = invoke("validate", str(bad))
    assert code == ExitCode.USAGE and "void values must be integers" in err
