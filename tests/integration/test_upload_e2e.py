"""`segcli upload` end to end against `segcli serve` on a free port.

Every test checks the rows the server stored, not only what segcli says.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from segcli.cli.root import app
from segcli.exitcodes import ExitCode
from segcli.journal import Journal, Scope
from segcli.manifest import load_manifest
from segcli.settings import parse_shard, shard_of
from tests.helpers.paths import SAMPLE
from tests.helpers.upload import KEY, Nucleus, segcli_process

runner = CliRunner()


def sample_refs() -> list[str]:
    return [i.reference_id for i in load_manifest(SAMPLE / "manifest.yaml")]


@pytest.fixture
def nucleus(tmp_path: Path) -> Iterator[Nucleus]:
    server = Nucleus(tmp_path, sample_refs())
    yield server
    server.stop()


@pytest.fixture
def env(nucleus: Nucleus, monkeypatch: pytest.MonkeyPatch) -> Nucleus:
    return nucleus.point_at(monkeypatch)


def upload(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, ["upload", *args])
    out = result.stdout + result.stderr
    assert "Traceback" not in out
    assert KEY not in out
    return result.exit_code, result.stdout, result.stderr


def verify(manifest: Path | str, dataset: str, *extra: str) -> dict[str, Any]:
    """`segcli verify --json`: what the server holds, read back through its API."""
    result = runner.invoke(app, ["verify", str(manifest), "--dataset", dataset, "--json", *extra])
    assert "Traceback" not in result.stdout + result.stderr
    summary: dict[str, Any] = json.loads(result.stdout)
    assert result.exit_code == (ExitCode.OK if summary["ok"] else ExitCode.ITEMS_FAILED)
    return summary


def copy_sample(tmp: Path) -> Path:
    """A private copy, so the journal beside the manifest lands in tmp."""
    dest = tmp / "sample"
    shutil.copytree(SAMPLE, dest)
    return dest


def test_ground_truth_lands_with_its_segments(env: Nucleus, tmp_path: Path) -> None:
    sample = copy_sample(tmp_path)
    report = tmp_path / "report.jsonl"
    code, out, _ = upload(
        str(sample / "manifest.yaml"), "--dataset", env.dataset_id, "--report", str(report)
    )
    assert code == ExitCode.OK, out
    items = {i.reference_id: i for i in load_manifest(sample / "manifest.yaml")}
    assert {r["reference_id"] for r in env.rows()} == set(items)
    # Read back through the API: every item's segments (labels, metadata),
    # annotation_id and the very bytes of its mask match, and no item holds
    # a mask the manifest lacks.
    checked = verify(sample / "manifest.yaml", env.dataset_id, "--all")
    assert (checked["ok"], checked["counts"]["match"], checked["checked"]) == (True, 7, 7)
    states = [json.loads(line)["state"] for line in report.read_text().splitlines()]
    assert states == ["uploaded"] * len(items)
    assert (sample / "manifest.yaml.segcli-journal").exists()


def test_rerun_skips_everything_through_the_journal(env: Nucleus, tmp_path: Path) -> None:
    sample = copy_sample(tmp_path)
    manifest = str(sample / "manifest.yaml")
    assert upload(manifest, "--dataset", env.dataset_id)[0] == ExitCode.OK
    code, out, _ = upload(manifest, "--dataset", env.dataset_id, "--json")
    summary = json.loads(out)
    assert code == ExitCode.OK
    assert summary["skipped"] == 7 and summary["requests"] == 0
    assert len(env.rows()) == 7


def test_changed_item_is_sent_again(env: Nucleus, tmp_path: Path) -> None:
    sample = copy_sample(tmp_path)
    manifest = sample / "manifest.yaml"
    assert upload(str(manifest), "--dataset", env.dataset_id)[0] == ExitCode.OK
    # same file, new segment label for the default table: every item using it changes
    text = manifest.read_text().replace("label: sky", "label: heaven", 1)
    assert text != manifest.read_text()
    manifest.write_text(text)
    code, out, _ = upload(str(manifest), "--dataset", env.dataset_id, "--json", "--update")
    summary = json.loads(out)
    assert code == ExitCode.OK
    assert summary["uploaded"] >= 1 and summary["skipped"] >= 1
    labels = {a["label"] for r in env.rows() for a in r["annotations"]}
    assert "heaven" in labels
    assert verify(manifest, env.dataset_id)["counts"]["match"] == 7  # all of it, as edited


def test_second_mask_is_ignored_without_update_and_replaces_with_it(
    env: Nucleus, tmp_path: Path
) -> None:
    sample = copy_sample(tmp_path)
    manifest = str(sample / "manifest.yaml")
    assert upload(manifest, "--dataset", env.dataset_id)[0] == ExitCode.OK
    first = {r["reference_id"]: r["updated"] for r in env.rows()}

    code, out, _ = upload(manifest, "--dataset", env.dataset_id, "--force", "--json")
    assert code == ExitCode.OK
    assert json.loads(out)["ignored"] == 7
    assert {r["reference_id"]: r["updated"] for r in env.rows()} == first

    code, out, _ = upload(manifest, "--dataset", env.dataset_id, "--force", "--update", "--json")
    assert code == ExitCode.OK
    assert json.loads(out)["uploaded"] == 7
    assert len(env.rows()) == 7
    assert all(r["updated"] >= first[r["reference_id"]] for r in env.rows())


def test_predictions_land_for_the_model(env: Nucleus, tmp_path: Path) -> None:
    sample = copy_sample(tmp_path)
    model_id = env.create_model()
    code, out, _ = upload(
        str(sample / "predictions.yaml"), "--dataset", env.dataset_id, "--model", model_id
    )
    assert code == ExitCode.OK, out
    assert env.rows() == []  # ground truth untouched
    assert len(env.rows(target=model_id)) == 7
    # each prediction's segments, their confidence metadata included, read back as sent
    checked = verify(sample / "predictions.yaml", env.dataset_id, "--model", model_id)
    assert (checked["ok"], checked["counts"]["match"]) == (True, 7)


def test_dry_run_sends_nothing(env: Nucleus, tmp_path: Path) -> None:
    sample = copy_sample(tmp_path)
    code, out, _ = upload(
        str(sample / "manifest.yaml"), "--dataset", env.dataset_id, "-n", "--json"
    )
    assert code == ExitCode.OK
    summary = json.loads(out)
    (plan,) = summary["plan"].values()
    assert plan["items"] == 7 and plan["requests"] == 1
    assert env.rows() == []
    assert not (sample / "manifest.yaml.segcli-journal").exists()


def test_invalid_items_are_not_sent_and_the_rest_land(env: Nucleus, tmp_path: Path) -> None:
    sample = copy_sample(tmp_path)
    broken = sample / "broken" / "manifest.yaml"
    # the broken manifest's ids are not in the dataset yet
    refs = sorted({i.reference_id for i in load_manifest(broken)})
    reply = httpx.post(
        f"{env.url}/dataset/{env.dataset_id}/append",
        json={"items": [{"reference_id": r, "image_url": f"s3://b/{r}.jpg"} for r in refs]},
        auth=(KEY, ""),
    )
    reply.raise_for_status()
    report = tmp_path / "r.jsonl"
    code, out, _ = upload(str(broken), "--dataset", env.dataset_id, "--report", str(report))
    assert code == ExitCode.ITEMS_FAILED
    states: dict[str, list[str]] = {}
    for line in report.read_text().splitlines():
        rec = json.loads(line)
        states.setdefault(rec["reference_id"], []).append(rec["state"])
        if rec["reference_id"] == "palette-0001":
            # uploaded, and its warning still reaches the report and the screen
            assert [p["code"] for p in rec["problems"]] == ["mask-palette"]
    assert "palette-0001: warning [mask-palette]" in out
    assert "rgb-0001: error [mask-mode]" in out
    stored = {r["reference_id"] for r in env.rows()}
    assert stored == {"good-0001", "good-0002", "palette-0001"}
    assert states["rgb-0001"] == ["invalid"]
    assert sorted(states["good-0001"]) == ["invalid", "uploaded"]


def test_unknown_item_is_rejected_with_the_servers_message(env: Nucleus, tmp_path: Path) -> None:
    items = list(load_manifest(SAMPLE / "manifest.jsonl"))
    lines = []
    for n, item in enumerate(items):
        payload = item.payload()
        if n == 2:
            payload["reference_id"] = "not-in-dataset"
        lines.append(json.dumps(payload))
    manifest = tmp_path / "m.jsonl"
    manifest.write_text("\n".join(lines) + "\n")
    # load_manifest made the mask paths absolute, so the copy still finds them
    report = tmp_path / "r.jsonl"
    code, _, _ = upload(str(manifest), "--dataset", env.dataset_id, "--report", str(report))
    assert code == ExitCode.ITEMS_FAILED
    records = {
        json.loads(x)["reference_id"]: json.loads(x) for x in report.read_text().splitlines()
    }
    assert records["not-in-dataset"]["state"] == "rejected"
    assert "not-in-dataset" in records["not-in-dataset"]["message"]
    assert sum(r["state"] == "uploaded" for r in records.values()) == 6
    assert len(env.rows()) == 6


def test_bad_key_exits_3_and_sends_nothing(
    env: Nucleus, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NUCLEUS_API_KEY", "wrong-key-123")
    code, _, err = upload(str(copy_sample(tmp_path) / "manifest.yaml"), "--dataset", env.dataset_id)
    assert code == ExitCode.AUTH
    assert "wrong-key-123" not in err
    assert env.rows() == []


def test_unknown_dataset_exits_3(env: Nucleus, tmp_path: Path) -> None:
    code, _, err = upload(str(copy_sample(tmp_path) / "manifest.yaml"), "--dataset", "ds_nope")
    assert code == ExitCode.AUTH
    assert "ds_nope" in err


def test_missing_key_exits_2_before_any_work(
    env: Nucleus, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("NUCLEUS_API_KEY")
    code, _, err = upload(str(copy_sample(tmp_path) / "manifest.yaml"), "--dataset", env.dataset_id)
    assert code == ExitCode.USAGE
    assert "NUCLEUS_API_KEY" in err


def test_busy_journal_exits_4(env: Nucleus, tmp_path: Path) -> None:
    sample = copy_sample(tmp_path)
    journal = sample / "manifest.yaml.segcli-journal"
    with Journal(journal, Scope(env.url, env.dataset_id, "annotations")):
        code, _, err = upload(str(sample / "manifest.yaml"), "--dataset", env.dataset_id)
    assert code == ExitCode.BUSY
    assert "journal" in err
    assert env.rows() == []


def test_shards_are_disjoint_and_cover_everything() -> None:
    refs = [f"img-{i:05d}" for i in range(5000)]
    shards = [{r for r in refs if shard_of(r, 4) == k} for k in range(4)]
    assert set().union(*shards) == set(refs)
    assert sum(len(s) for s in shards) == len(refs)
    assert all(900 < len(s) < 1600 for s in shards)  # a hash, not a skewed split
    assert parse_shard("3/4") == (3, 4)
    # stable across runs: a fixed id always lands in the same shard
    assert shard_of("img-00042", 4) == shard_of("img-00042", 4)


def test_shard_flag_uploads_only_its_share(env: Nucleus, tmp_path: Path) -> None:
    sample = copy_sample(tmp_path)
    seen: set[str] = set()
    for k in range(3):
        code, out, _ = upload(
            str(sample / "manifest.yaml"),
            "--dataset",
            env.dataset_id,
            "--shard",
            f"{k}/3",
            "--journal",
            str(tmp_path / f"j{k}"),
            "--json",
        )
        assert code == ExitCode.OK
        now = {r["reference_id"] for r in env.rows()}
        new = now - seen
        assert not (new & seen)
        assert json.loads(out)["uploaded"] == len(new)
        seen = now
    assert seen == set(sample_refs())


def test_bad_shard_is_a_usage_error(env: Nucleus) -> None:
    code, _, err = upload(str(SAMPLE / "manifest.yaml"), "--dataset", "x", "--shard", "4/4", "-n")
    assert code == ExitCode.USAGE
    assert "--shard" in err


def test_status_lists_counts_and_failures(env: Nucleus, tmp_path: Path) -> None:
    sample = copy_sample(tmp_path)
    assert upload(str(sample / "manifest.yaml"), "--dataset", env.dataset_id)[0] == ExitCode.OK
    result = runner.invoke(app, ["status", str(sample / "manifest.yaml"), "--json"])
    assert result.exit_code == ExitCode.OK
    (scope,) = json.loads(result.stdout)["scopes"]
    assert scope["counts"] == {"uploaded": 7}
    assert scope["dataset_id"] == env.dataset_id


def test_environment_key_is_never_written(env: Nucleus, tmp_path: Path) -> None:
    sample = copy_sample(tmp_path)
    report = tmp_path / "r.jsonl"
    upload(str(sample / "manifest.yaml"), "--dataset", env.dataset_id, "--report", str(report))
    for path in [report, sample / "manifest.yaml.segcli-journal"]:
        assert KEY.encode() not in path.read_bytes()
    assert os.environ["NUCLEUS_API_KEY"] == KEY


def test_remote_masks_are_read_checked_and_sent_by_url(
    env: Nucleus, tmp_path: Path, s3_server: Any, gcs_server: Any
) -> None:
    items = list(load_manifest(SAMPLE / "manifest.jsonl"))
    lines = []
    for n, item in enumerate(items):
        data = Path(item.mask).read_bytes()
        if n == 1:  # an RGB mask: read from S3, found wrong, never sent
            data = (SAMPLE / "broken" / "rgb.png").read_bytes()
        store = gcs_server if n % 2 else s3_server
        payload = item.payload()
        payload["mask_url"] = store.put(f"masks/{item.reference_id}.png", data)
        lines.append(json.dumps(payload))
    manifest = tmp_path / "remote.jsonl"
    manifest.write_text("\n".join(lines) + "\n")
    report = tmp_path / "r.jsonl"
    # A process of its own: the storage emulators' threads log to this
    # process's stderr, which must not be mistaken for segcli's output.
    proc = segcli_process(
        [
            "upload",
            str(manifest),
            "--dataset",
            env.dataset_id,
            "--s3-endpoint-url",
            s3_server.endpoint_url,
            "--gcs-endpoint-url",
            gcs_server.endpoint_url,
            "--report",
            str(report),
        ],
        {"NUCLEUS_API_KEY": KEY, "NUCLEUS_ENDPOINT": env.url},
    )
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == ExitCode.ITEMS_FAILED, err
    assert "Traceback" not in out + err
    assert f"{items[1].reference_id}: error [mask-mode]" in out
    rows = {r["reference_id"]: r for r in env.rows()}
    assert set(rows) == {i.reference_id for i in items} - {items[1].reference_id}
    assert all(row["mask_file"] is None for row in rows.values())  # by URL, no copy
    # every mask_url stored as given, segments as sent; the RGB one never landed
    checked = verify(manifest, env.dataset_id)
    assert (checked["counts"]["match"], checked["counts"]["missing"]) == (len(items) - 1, 1)
    assert checked["not_matching"][0]["reference_id"] == items[1].reference_id
    assert {json.loads(x)["state"] for x in report.read_text().splitlines()} == {
        "uploaded",
        "invalid",
    }
