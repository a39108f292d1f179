"""``segcli upload --stage``: local masks copied to a bucket, then uploaded by URL.

Against the moto S3 server and the GCS emulator, with the local Nucleus
server reading the staged masks from the same bucket and checking them.
Writes to the bucket are counted by the store itself: S3 object versions
(versioning on), GCS object generations.
"""

from __future__ import annotations

import json
import re
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from segcli.exitcodes import ExitCode
from tests.helpers.remote_servers import GcsServer, S3Server
from tests.helpers.upload import (
    KEY,
    Nucleus,
    make_local_manifest,
    png_bytes,
    segcli_process,
    upload_args,
)

STAGE_BUCKET = "segcli-stage"


@dataclass
class Bucket:
    """A bucket of one store: where to stage, how segcli and the server reach it."""

    scheme: str
    name: str
    flags: list[str]  # segcli's endpoint flag
    storage_options: dict[str, dict[str, Any]]  # the Nucleus server's, to fetch masks
    read: Callable[[str], bytes]  # key -> the object's bytes
    writes: Callable[[str], dict[str, str]]  # key -> an id per write (version, generation)


@pytest.fixture(params=["s3", "gs"])
def bucket(request: pytest.FixtureRequest) -> Bucket:
    if request.param == "s3":
        s3: S3Server = request.getfixturevalue("s3_server")
        client = s3.client
        existing = {b["Name"] for b in client.list_buckets()["Buckets"]}
        if STAGE_BUCKET not in existing:
            client.create_bucket(Bucket=STAGE_BUCKET)
            client.put_bucket_versioning(
                Bucket=STAGE_BUCKET, VersioningConfiguration={"Status": "Enabled"}
            )

        def read_s3(key: str) -> bytes:
            data: bytes = client.get_object(Bucket=STAGE_BUCKET, Key=key)["Body"].read()
            return data

        def versions(prefix: str) -> dict[str, str]:
            found = client.list_object_versions(Bucket=STAGE_BUCKET, Prefix=prefix)
            return {f"{v['Key']}#{v['VersionId']}": v["Key"] for v in found.get("Versions", [])}

        return Bucket(
            "s3",
            STAGE_BUCKET,
            ["--s3-endpoint-url", s3.endpoint_url],
            s3.storage_options,
            read_s3,
            versions,
        )
    gcs: GcsServer = request.getfixturevalue("gcs_server")
    # gcsfs's plain JSON-API class, as segcli's storage.py uses: the one gcsfs
    # exports asks a gRPC API first, which an emulator keeps waiting 60 s.
    from gcsfs.core import GCSFileSystem

    fs = GCSFileSystem(endpoint_url=gcs.endpoint_url, token="anon")

    def read_gs(key: str) -> bytes:
        data: bytes = fs.cat_file(f"{gcs.bucket}/{key}")
        return data

    def generations(prefix: str) -> dict[str, str]:
        fs.invalidate_cache()
        found = fs.find(f"{gcs.bucket}/{prefix}", detail=True)
        return {f"{name}#{info['generation']}": name for name, info in found.items()}

    return Bucket(
        "gs",
        gcs.bucket,
        ["--gcs-endpoint-url", gcs.endpoint_url],
        gcs.storage_options,
        read_gs,
        generations,
    )


def run(args: list[str]) -> tuple[int, str, str]:
    proc = segcli_process(args, {"NUCLEUS_API_KEY": KEY})
    out, err = proc.communicate(timeout=120)
    assert "Traceback" not in out + err, err
    assert KEY not in out + err
    return proc.returncode, out, err


def journal_fingerprints(path: Path) -> dict[str, str]:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return dict(conn.execute("SELECT reference_id, landed_fingerprint FROM items"))
    finally:
        conn.close()


def test_masks_are_staged_once_and_a_changed_mask_again(tmp_path: Path, bucket: Bucket) -> None:
    manifest, refs = make_local_manifest(tmp_path / "data", 12)
    prefix = f"{tmp_path.name}/masks"
    target = f"{bucket.scheme}://{bucket.name}/{prefix}"
    server = Nucleus(tmp_path, refs, storage_options=bucket.storage_options)
    stage = ["--stage", target, *bucket.flags, "--json"]
    try:
        code, out, err = run(upload_args(manifest, server, *stage))
        first = json.loads(out)
        rows = {r["reference_id"]: r["mask_url"] for r in server.rows()}
        written = bucket.writes(prefix)
        verify = ["verify", str(manifest), "--dataset", server.dataset_id, "--endpoint"]
        verified = run([*verify, server.url, "--stage", target])
        unstaged = run([*verify, server.url])

        code_again, out_again, _ = run(upload_args(manifest, server, *stage))
        code_force, out_force, _ = run(upload_args(manifest, server, *stage, "--force", "--update"))
        unchanged = bucket.writes(prefix)

        changed = manifest.parent / "masks" / f"{refs[3]}.png"
        changed.write_bytes(png_bytes(999))
        code_changed, out_changed, err_changed = run(
            upload_args(manifest, server, *stage, "--update")
        )
        after = bucket.writes(prefix)
        rows_after = {r["reference_id"]: r["mask_url"] for r in server.rows()}
    finally:
        server.stop()
    assert code == ExitCode.OK, err
    assert first["uploaded"] == 12
    assert first["stage"]["copied"] == 12 and first["stage"]["already_staged"] == 0
    # each item holds its staged URL; the server fetched it from the bucket and checked it
    assert sorted(rows) == refs
    key_pattern = re.compile(rf"{re.escape(prefix)}/img-\d{{5}}-[0-9a-f]{{16}}\.png")
    for ref, url in rows.items():
        assert url.startswith(target + "/")
        key = url[len(f"{bucket.scheme}://{bucket.name}/") :]
        assert key_pattern.fullmatch(key), key
        assert bucket.read(key) == (manifest.parent / "masks" / f"{ref}.png").read_bytes()
    assert len(written) == 12
    # verify --stage expects each local mask at its staged URL; without it, not
    assert verified[0] == ExitCode.OK and "MATCH: 12 items" in verified[1], verified
    assert unstaged[0] == ExitCode.ITEMS_FAILED and "different-mask 12" in unstaged[1]
    # a re-run skips what landed; with --force (and --update: every item sent and
    # replaced) it finds every object in place: no write
    assert code_again == code_force == ExitCode.OK
    assert json.loads(out_again)["skipped"] == 12
    forced = json.loads(out_force)
    assert forced["stage"]["copied"] == 0 and forced["stage"]["already_staged"] == 12
    assert forced["uploaded"] == 12
    assert unchanged == written
    # a changed mask is staged again (one new write) and sent again
    assert code_changed == ExitCode.OK, err_changed
    changed_run = json.loads(out_changed)
    assert changed_run["stage"]["copied"] == 1
    assert (changed_run["uploaded"], changed_run["skipped"]) == (1, 11)
    new_writes = set(after) - set(written)
    assert len(new_writes) == 1 and rows_after == rows
    (new_key,) = {after[w] for w in new_writes}
    assert new_key.endswith(rows[refs[3]].rsplit("/", 1)[1])
    assert bucket.read(rows[refs[3]].split(f"{bucket.name}/", 1)[1]) == png_bytes(999)


def test_staged_masks_go_through_async_jobs(tmp_path: Path, bucket: Bucket) -> None:
    manifest, refs = make_local_manifest(tmp_path / "data", 9)
    prefix = f"{tmp_path.name}/async"
    target = f"{bucket.scheme}://{bucket.name}/{prefix}"
    server = Nucleus(tmp_path, refs, storage_options=bucket.storage_options)
    try:
        args = upload_args(manifest, server, "--stage", target, "--async", "--job-size", "4")
        code, out, err = run([*args, *bucket.flags, "--json"])
        jobs = server.store.count("jobs")
        rows = server.rows()
    finally:
        server.stop()
    assert code == ExitCode.OK, err
    summary = json.loads(out)
    assert summary["uploaded"] == 9 and summary["stage"]["copied"] == 9
    assert jobs == len(summary["jobs"]) == 3
    assert all(r["mask_url"].startswith(target + "/") for r in rows) and len(rows) == 9


def test_a_dry_run_says_what_it_would_stage_and_writes_nothing(
    tmp_path: Path, bucket: Bucket
) -> None:
    manifest, refs = make_local_manifest(tmp_path / "data", 3)
    prefix = f"{tmp_path.name}/dry"
    target = f"{bucket.scheme}://{bucket.name}/{prefix}"
    server = Nucleus(tmp_path, refs, storage_options=bucket.storage_options)
    try:
        args = upload_args(manifest, server, "--stage", target, *bucket.flags, "-n")
        code, out, err = run(args)
        code_json, out_json, _ = run([*args, "--json"])
        rows = server.rows()
    finally:
        server.stop()
    assert code == code_json == ExitCode.OK, err
    staged = [line for line in out.splitlines() if line.startswith("would stage ")]
    assert len(staged) == 3
    assert all(re.match(rf"would stage img-\d{{5}} to {re.escape(target)}/", s) for s in staged)
    url = f"{server.url}/dataset/{server.dataset_id}/annotate"
    assert f"would send POST {url} (json, 3 items" in out
    assert f"would stage 3 masks to {target}" in out
    summary = json.loads(out_json)
    assert (summary["would_send"], summary["stage"]["copied"]) == (3, 3)
    assert bucket.writes(prefix) == {} and rows == []
    assert not (manifest.parent / "manifest.jsonl.segcli-journal").exists()


def test_a_bucket_that_is_not_there_stops_the_run_before_anything_is_sent(
    tmp_path: Path, bucket: Bucket
) -> None:
    manifest, refs = make_local_manifest(tmp_path / "data", 2)
    server = Nucleus(tmp_path, refs)
    try:
        target = f"{bucket.scheme}://no-such-bucket-{tmp_path.name.lower()[-8:]}/x"
        code, _, err = run(upload_args(manifest, server, "--stage", target, *bucket.flags))
        rows = server.rows()
    finally:
        server.stop()
    assert code == ExitCode.USAGE
    assert "cannot reach the bucket" in err and "check the bucket's name" in err
    assert rows == []


@pytest.mark.parametrize("prefix", ["https://host/x", "/local/dir", "s3://", "memory://b/p"])
def test_stage_takes_only_a_bucket_prefix(tmp_path: Path, prefix: str) -> None:
    code, _, err = run(["upload", "m.yaml", "--dataset", "ds_x", "--stage", prefix])
    assert code == ExitCode.USAGE
    assert "s3://BUCKET/PREFIX or gs://BUCKET/PREFIX" in err
