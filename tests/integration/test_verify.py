"""`segcli verify` end to end: upload with segcli, change things, read back through `segcli serve`.

Every difference is made for real (a label edited in the manifest, a mask
file rewritten, an item never uploaded) and must be found by reading the
server back over HTTP on loopback.
"""

from __future__ import annotations

import hashlib
import json
import random
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from segcli.cli.root import app
from segcli.compare import segment_differences
from segcli.exitcodes import ExitCode
from segcli.manifest import load_manifest
from segcli.model import MaskItem, Segment, Source
from segcli.readback import sample_items
from segcli.server import FaultConfig
from tests.helpers.paths import SAMPLE
from tests.helpers.upload import KEY, Nucleus, make_local_manifest, png_bytes

runner = CliRunner()


@pytest.fixture
def sample(tmp_path: Path) -> Path:
    dest = tmp_path / "sample"
    shutil.copytree(SAMPLE, dest)
    return dest


@pytest.fixture
def nucleus(tmp_path: Path) -> Iterator[Nucleus]:
    refs = [i.reference_id for i in load_manifest(SAMPLE / "manifest.yaml")]
    server = Nucleus(tmp_path, [*refs, "no-mask-yet", "img-extra"])
    yield server
    server.stop()


@pytest.fixture
def env(nucleus: Nucleus, monkeypatch: pytest.MonkeyPatch) -> Nucleus:
    return nucleus.point_at(monkeypatch)


def cli(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args))
    out = result.stdout + result.stderr
    assert "Traceback" not in out
    assert KEY not in out
    return result.exit_code, result.stdout, result.stderr


def upload(manifest: Path, dataset: str, *extra: str) -> None:
    code, out, err = cli("upload", str(manifest), "--dataset", dataset, "-q", *extra)
    assert code == ExitCode.OK, out + err


def verify_json(manifest: Path, dataset: str, *extra: str) -> tuple[int, dict[str, Any]]:
    code, out, _ = cli("verify", str(manifest), "--dataset", dataset, "--json", *extra)
    return code, json.loads(out)


def by_ref(summary: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {r["reference_id"]: r for r in summary["not_matching"]}


def test_an_upload_that_landed_matches_item_for_item(env: Nucleus, sample: Path) -> None:
    upload(sample / "manifest.yaml", env.dataset_id)
    report = sample / "verify.jsonl"
    code, out, _ = cli(
        "verify",
        str(sample / "manifest.yaml"),
        "--dataset",
        env.dataset_id,
        "--report",
        str(report),
    )
    assert code == ExitCode.OK, out
    assert out.splitlines()[-1].startswith("MATCH: 7 items: match 7, missing 0")
    records = [json.loads(line) for line in report.read_text().splitlines()]
    assert sorted(r["reference_id"] for r in records) == sorted(
        i.reference_id for i in load_manifest(sample / "manifest.yaml")
    )
    assert {r["state"] for r in records} == {"match"}
    assert all(r["source"].startswith(str(sample / "manifest.yaml") + ":") for r in records)


def test_every_manifest_format_verifies_the_same_upload(env: Nucleus, sample: Path) -> None:
    upload(sample / "manifest.yaml", env.dataset_id)
    for name in ("manifest.jsonl", "manifest.csv", "manifest_long.csv"):
        code, summary = verify_json(sample / name, env.dataset_id)
        assert (code, summary["counts"]["match"], summary["ok"]) == (ExitCode.OK, 7, True), name


def test_missing_items_are_named(env: Nucleus, tmp_path: Path) -> None:
    manifest, refs = make_local_manifest(tmp_path / "data", 3)
    # Two of the three items join the dataset; only the first gets its mask.
    items = [{"reference_id": r, "image_url": f"s3://i/{r}.jpg"} for r in refs[:2]]
    httpx.post(
        f"{env.url}/dataset/{env.dataset_id}/append", json={"items": items}, auth=(KEY, "")
    ).raise_for_status()
    lines = manifest.read_text().splitlines()
    first = manifest.with_name("first.jsonl")  # beside the masks it names
    first.write_text(lines[0] + "\n")
    upload(first, env.dataset_id)
    code, summary = verify_json(manifest, env.dataset_id)
    assert code == ExitCode.ITEMS_FAILED
    assert summary["counts"] == {
        "match": 1,
        "missing": 2,
        "different-segments": 0,
        "different-mask": 0,
        "extra": 0,
        "invalid": 0,
        "error": 0,
    }
    found = by_ref(summary)
    assert found[refs[1]]["message"] == "the item holds no mask"
    assert found[refs[2]]["message"] == "the item is not an item of the dataset"


def test_different_segments_say_which_labels_indices_and_metadata(
    env: Nucleus, sample: Path
) -> None:
    manifest = sample / "manifest.yaml"
    upload(manifest, env.dataset_id)
    text = manifest.read_text()
    text = text.replace(
        "{index: 2, label: tree, metadata: {isthing: false}}",
        "{index: 2, label: shrub, metadata: {isthing: false}}",
    )
    text = text.replace(
        "{index: 3, label: fence, metadata: {isthing: false}}",
        "{index: 3, label: fence, metadata: {isthing: true}}",
    )
    text = text.replace(
        "      - {index: 10, label: bird, metadata: {instance_id: 3, isthing: true}}\n", ""
    )
    text = text.replace("annotation_id: street-0003-gt", "annotation_id: street-0003-v2")
    manifest.write_text(text)
    code, summary = verify_json(manifest, env.dataset_id)
    assert code == ExitCode.ITEMS_FAILED
    assert (summary["counts"]["match"], summary["counts"]["different-segments"]) == (5, 2)
    found = by_ref(summary)
    street1 = found["street-0001"]
    assert street1["state"] == "different-segments"
    assert street1["differences"] == [
        {"index": 2, "field": "label", "manifest": "shrub", "server": "tree"},
        {
            "index": 3,
            "field": "metadata",
            "manifest": {"isthing": True},
            "server": {"isthing": False},
        },
        {"index": 10, "field": "index", "manifest": None, "server": 10},
    ]
    assert "label of 2: 'shrub' here, 'tree' on the server" in street1["message"]
    assert "segment 10 is only on the server" in street1["message"]
    assert found["street-0003"]["differences"] == [
        {
            "index": None,
            "field": "annotation_id",
            "manifest": "street-0003-v2",
            "server": "street-0003-gt",
        }
    ]


def test_a_rewritten_mask_file_is_a_different_mask_by_content(env: Nucleus, sample: Path) -> None:
    manifest = sample / "manifest.yaml"
    upload(manifest, env.dataset_id)
    changed = sample / "masks" / "street-0002.png"
    before = changed.read_bytes()
    changed.write_bytes(png_bytes(7, size=8, values=2))
    code, summary = verify_json(manifest, env.dataset_id)
    assert code == ExitCode.ITEMS_FAILED
    (record,) = summary["not_matching"]
    assert (record["reference_id"], record["state"]) == ("street-0002", "different-mask")
    assert record["mask"] == {
        "compared": "sha256",
        "manifest": "sha256:" + hashlib.sha256(changed.read_bytes()).hexdigest(),
        "server": "sha256:" + hashlib.sha256(before).hexdigest(),
    }
    changed.write_bytes(before)  # the same bytes again: a match, wherever the file is
    assert verify_json(manifest, env.dataset_id)[0] == ExitCode.OK


def test_a_remote_mask_is_compared_by_its_url(env: Nucleus, tmp_path: Path) -> None:
    refs = ["no-mask-yet", "img-extra"]
    manifest = tmp_path / "remote.jsonl"
    rows = [
        {
            "reference_id": r,
            "mask_url": f"s3://bucket/{r}.png",
            "annotations": [{"index": 0, "label": "bg"}],
        }
        for r in refs
    ]
    manifest.write_text("".join(json.dumps(r) + "\n" for r in rows))
    upload(manifest, env.dataset_id, "--no-validate-remote")
    rows[1]["mask_url"] = "s3://bucket/moved.png"
    manifest.write_text("".join(json.dumps(r) + "\n" for r in rows))
    code, summary = verify_json(manifest, env.dataset_id)
    assert code == ExitCode.ITEMS_FAILED
    (record,) = summary["not_matching"]
    assert record["mask"] == {
        "compared": "mask_url",
        "manifest": "s3://bucket/moved.png",
        "server": "s3://bucket/img-extra.png",
    }


def test_all_finds_items_with_masks_the_manifest_lacks(env: Nucleus, sample: Path) -> None:
    upload(sample / "manifest.yaml", env.dataset_id)
    items = list(load_manifest(sample / "manifest.jsonl"))
    partial = sample / "partial.jsonl"
    partial.write_text("".join(json.dumps(i.payload()) + "\n" for i in items[:5]))
    code, summary = verify_json(partial, env.dataset_id)
    assert code == ExitCode.OK  # without --all only the manifest's items count
    code, summary = verify_json(partial, env.dataset_id, "--all")
    assert code == ExitCode.ITEMS_FAILED
    assert summary["counts"]["extra"] == 2 and summary["counts"]["match"] == 5
    extras = {r["reference_id"] for r in summary["not_matching"]}
    assert extras == {i.reference_id for i in items[5:]}  # no-mask-yet has no mask: not extra


def test_predictions_are_checked_for_the_model(env: Nucleus, sample: Path) -> None:
    model = env.create_model()
    predictions = sample / "predictions.yaml"
    upload(predictions, env.dataset_id, "--model", model)
    code, summary = verify_json(predictions, env.dataset_id, "--model", model)
    assert (code, summary["counts"]["match"], summary["model_id"]) == (ExitCode.OK, 7, model)
    code, summary = verify_json(predictions, env.dataset_id)  # ground truth: none
    assert code == ExitCode.ITEMS_FAILED and summary["counts"]["missing"] == 7


def test_a_sample_checks_n_items_and_a_seed_repeats_it(env: Nucleus, sample: Path) -> None:
    upload(sample / "manifest.yaml", env.dataset_id)
    picks = []
    for _ in range(2):
        report = sample / "r.jsonl"
        code, summary = verify_json(
            sample / "manifest.yaml",
            env.dataset_id,
            "--sample",
            "3",
            "--seed",
            "4",
            "--report",
            str(report),
        )
        assert (code, summary["checked"], summary["manifest_items"]) == (ExitCode.OK, 3, 7)
        picks.append(sorted(json.loads(x)["reference_id"] for x in report.read_text().splitlines()))
    assert picks[0] == picks[1] and len(set(picks[0])) == 3


def test_reservoir_sampling_is_uniform_and_keeps_manifest_order() -> None:
    items = [MaskItem(f"r{i}", "m.png", (Segment(0, "bg"),), Source("m", i)) for i in range(10)]
    counts = dict.fromkeys(range(10), 0)
    rng = random.Random(1)
    for _ in range(4000):
        picked = sample_items(iter(items), 3, rng)
        assert [p.source.line for p in picked] == sorted(p.source.line for p in picked)
        for p in picked:
            counts[p.source.line] += 1
    assert all(1000 < n < 1400 for n in counts.values()), counts  # 1200 expected each
    assert sample_items(iter(items), 20, rng) == items


def test_segment_order_does_not_matter_but_values_do() -> None:
    segments = (Segment(0, "bg"), Segment(1, "car", {"c": 1}))
    held = {
        "annotations": [
            {"index": 1, "label": "car", "metadata": {"c": 1.0}},
            {"index": 0, "label": "bg"},
        ]
    }
    assert segment_differences(segments, held) == []
    held["annotations"][1]["metadata"] = {}
    assert segment_differences(segments, held) == []  # no metadata and {} are the same
    held["annotations"][0]["metadata"] = {"c": 2}
    assert segment_differences(segments, held) == [
        {"index": 1, "field": "metadata", "manifest": {"c": 1}, "server": {"c": 2}}
    ]


def test_invalid_manifest_items_are_reported_not_looked_up(env: Nucleus, tmp_path: Path) -> None:
    manifest = tmp_path / "m.jsonl"
    manifest.write_text(
        json.dumps(
            {"reference_id": "x", "mask_url": "x.png", "annotations": [{"index": 0, "label": ""}]}
        )
        + "\n{not json\n"
    )
    code, summary = verify_json(manifest, env.dataset_id)
    assert code == ExitCode.ITEMS_FAILED
    assert summary["counts"]["invalid"] == 2
    assert all("never sent" in r["message"] for r in summary["not_matching"])


def test_reads_are_retried_through_server_faults(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sample: Path
) -> None:
    refs = [i.reference_id for i in load_manifest(SAMPLE / "manifest.yaml")]
    faults = FaultConfig(seed=5, rate_503=0.3, rate_500=0.2, routes=("refloc", "_masks"))
    server = Nucleus(tmp_path / "faulty", refs, faults)
    try:
        server.point_at(monkeypatch)
        upload(sample / "manifest.yaml", server.dataset_id)
        code, summary = verify_json(sample / "manifest.yaml", server.dataset_id, "--retries", "10")
        assert (code, summary["counts"]["match"]) == (ExitCode.OK, 7), summary
    finally:
        server.stop()


def test_reads_run_concurrently(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    manifest, refs = make_local_manifest(tmp_path / "data", 16)
    server = Nucleus(tmp_path / "slow", refs, FaultConfig(latency_s=0.5, routes=("refloc",)))
    try:
        server.point_at(monkeypatch)
        upload(manifest, server.dataset_id)
        start = time.monotonic()
        code, summary = verify_json(manifest, server.dataset_id, "--concurrency", "8")
        elapsed = time.monotonic() - start
        assert (code, summary["counts"]["match"]) == (ExitCode.OK, 16)
        assert elapsed < 6.0, elapsed  # one at a time: 16 x 0.5 s = 8 s at least
    finally:
        server.stop()


# -- exit codes and messages ----------------------------------------------------


def test_an_unreadable_manifest_exits_2(env: Nucleus, tmp_path: Path) -> None:
    code, _, err = cli("verify", str(tmp_path / "nope.yaml"), "--dataset", env.dataset_id)
    assert code == ExitCode.USAGE and "nope.yaml" in err


def test_no_key_exits_2(env: Nucleus, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NUCLEUS_API_KEY")
    code, _, err = cli("verify", str(SAMPLE / "manifest.yaml"), "--dataset", env.dataset_id)
    assert code == ExitCode.USAGE and "NUCLEUS_API_KEY" in err


def test_a_bad_key_an_unknown_dataset_or_model_exit_3(
    env: Nucleus, monkeypatch: pytest.MonkeyPatch
) -> None:
    manifest = str(SAMPLE / "manifest.yaml")
    code, _, err = cli("verify", manifest, "--dataset", "ds_nope")
    assert code == ExitCode.AUTH and "ds_nope" in err
    code, _, err = cli("verify", manifest, "--dataset", env.dataset_id, "--model", "prj_nope")
    assert code == ExitCode.AUTH and "prj_nope" in err
    monkeypatch.setenv("NUCLEUS_API_KEY", "wrong-key-42")
    code, _, err = cli("verify", manifest, "--dataset", env.dataset_id)
    assert code == ExitCode.AUTH and "wrong-key-42" not in err and "NUCLEUS_API_KEY" in err


def test_a_server_that_is_down_exits_1_and_says_nothing_was_checked(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from tests.helpers.upload import free_port

    monkeypatch.setenv("NUCLEUS_API_KEY", KEY)
    monkeypatch.setenv("NUCLEUS_ENDPOINT", f"http://127.0.0.1:{free_port()}/v1/nucleus")
    code, _, err = cli(
        "verify", str(SAMPLE / "manifest.yaml"), "--dataset", "ds_x", "--retries", "0"
    )
    assert code == ExitCode.ITEMS_FAILED
    assert "nothing was checked" in err.lower()


def test_a_model_run_is_refused_as_a_target() -> None:
    from segcli.errors import UsageError
    from segcli.readback import VerifySettings, verify
    from segcli.settings import Credentials
    from segcli.target import Target

    settings = VerifySettings(target=Target("ds_x", model_run_id="run_x"))
    with pytest.raises(UsageError, match="model run"):
        verify([], settings, Credentials(api_key="k"))
