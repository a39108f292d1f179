"""segcli puts on the wire what the official client puts there, for the same items.

Both clients send the same masks through a recording proxy to the local
server; the routes, JSON keys and values, and multipart part names,
filenames and content types must match.
"""

from __future__ import annotations

import json
import os
import subprocess
import textwrap
from pathlib import Path
from urllib.parse import quote

from typer.testing import CliRunner

from segcli.cli.root import app
from segcli.exitcodes import ExitCode
from tests.helpers.official_client import CURRENT
from tests.helpers.recording_proxy import Recorded, RecordingProxy
from tests.helpers.upload import KEY, Nucleus, make_local_manifest

OFFICIAL = textwrap.dedent(
    """
    import json, os, sys
    from nucleus import NucleusClient, Segment, SegmentationAnnotation, SegmentationPrediction

    manifest, dataset_id, model_id = sys.argv[1], sys.argv[2], sys.argv[3]
    client = NucleusClient(os.environ["NUCLEUS_API_KEY"], endpoint=os.environ["NUCLEUS_ENDPOINT"])
    dataset = client.get_dataset(dataset_id)
    rows = [json.loads(line) for line in open(manifest)]

    def segments(r):
        return [Segment(label=s["label"], index=s["index"], metadata=s.get("metadata"))
                for s in r["annotations"]]

    gt = [SegmentationAnnotation(mask_url=r["mask_url"], annotations=segments(r),
                                 reference_id=r["reference_id"],
                                 annotation_id=r.get("annotation_id")) for r in rows]
    print(json.dumps(dataset.annotate(gt, update=False)))
    if model_id != "-":
        model = client.get_model(model_id)
        preds = [SegmentationPrediction(mask_url=r["mask_url"], annotations=segments(r),
                                        reference_id=r["reference_id"],
                                        annotation_id=r.get("annotation_id")) for r in rows]
        print(json.dumps(dataset.upload_predictions(model, preds, update=False)))
    """
)


def absolute_manifest(src: Path, dest: Path, *, metadata: bool) -> Path:
    lines = []
    for line in src.read_text().splitlines():
        record = json.loads(line)
        record["mask_url"] = str((src.parent / record["mask_url"]).resolve())
        record["annotation_id"] = record["reference_id"] + "-gt"
        if metadata:
            for seg in record["annotations"]:
                seg["metadata"] = {"confidence": 0.5 + seg["index"] / 100}
        lines.append(json.dumps(record))
    dest.write_text("\n".join(lines) + "\n")
    return dest


def remote_manifest(refs: list[str], dest: Path) -> Path:
    lines = [
        json.dumps(
            {
                "reference_id": ref,
                "mask_url": f"s3://bucket/masks/{ref}.png?x=1",
                "annotations": [{"index": 0, "label": "bg"}, {"index": 1, "label": "car"}],
                "annotation_id": None,
            }
        )
        for ref in refs
    ]
    dest.write_text("\n".join(lines) + "\n")
    return dest


def run_both(
    tmp_path: Path, manifest: Path, refs: list[str], *, predictions: bool
) -> tuple[list[Recorded], list[Recorded]]:
    recorded: list[list[Recorded]] = []
    for who in ("official", "segcli"):
        server = Nucleus(tmp_path / who, refs)
        proxy = RecordingProxy(server.url.removesuffix("/v1/nucleus"))
        url = proxy.start() + "/v1/nucleus"
        env = {**os.environ, "NUCLEUS_API_KEY": KEY, "NUCLEUS_ENDPOINT": url}
        try:
            model_id = server.create_model() if predictions else "-"
            if who == "official":
                script = tmp_path / "official.py"
                script.write_text(OFFICIAL)
                proc = subprocess.run(
                    [CURRENT.python, str(script), str(manifest), server.dataset_id, model_id],
                    env=env,
                    capture_output=True,
                    text=True,
                    timeout=120,
                )
                assert proc.returncode == 0, proc.stderr[-3000:]
            else:
                runner = CliRunner(env={"NUCLEUS_API_KEY": KEY, "NUCLEUS_ENDPOINT": url})
                common = ["--dataset", server.dataset_id, "--no-validate-remote"]
                result = runner.invoke(
                    app,
                    ["upload", str(manifest), *common, "--journal", str(tmp_path / "j1")],
                )
                assert result.exit_code == ExitCode.OK, result.stdout + result.stderr
                if predictions:
                    result = runner.invoke(
                        app,
                        [
                            "upload",
                            str(manifest),
                            *common,
                            "--model",
                            model_id,
                            "--journal",
                            str(tmp_path / "j2"),
                        ],
                    )
                    assert result.exit_code == ExitCode.OK, result.stdout + result.stderr
            recorded.append(proxy.uploads())
        finally:
            proxy.stop()
            server.stop()
    return recorded[0], recorded[1]


def route_shape(r: Recorded) -> str:
    # dataset and model ids differ between the two servers; the shape must not
    parts = r.path.split("/")
    return "/".join("ID" if p.startswith(("ds_", "prj_", "run_")) else p for p in parts)


def canonical_json(r: Recorded) -> list[dict[str, object]]:
    body = r.json() if not r.parts else json.loads(r.parts[0].data)
    assert set(body) == {"segmentations", "update"}
    return sorted(body["segmentations"], key=lambda s: s["reference_id"])


def test_local_masks_match_the_official_client(tmp_path: Path) -> None:
    src, refs = make_local_manifest(tmp_path / "data", 23)
    manifest = absolute_manifest(src, tmp_path / "abs.jsonl", metadata=True)
    theirs, ours = run_both(tmp_path, manifest, refs, predictions=True)
    assert sorted(map(route_shape, theirs)) == sorted(map(route_shape, ours))
    assert len(ours) == 6  # 3 multipart requests (10+10+3) for each route

    def by_route(recs: list[Recorded]) -> dict[str, list[Recorded]]:
        out: dict[str, list[Recorded]] = {}
        for r in recs:
            out.setdefault(route_shape(r), []).append(r)
        return out

    for route, their_reqs in by_route(theirs).items():
        our_reqs = by_route(ours)[route]
        their_segs = sorted(
            (s for r in their_reqs for s in canonical_json(r)), key=lambda s: s["reference_id"]
        )
        our_segs = sorted(
            (s for r in our_reqs for s in canonical_json(r)), key=lambda s: s["reference_id"]
        )
        assert our_segs == their_segs, route
        # Batches may group items differently (segcli sends whichever masks are
        # checked first); every request must still be built the same way.
        for req in [*our_reqs, *their_reqs]:
            assert req.content_type.startswith("multipart/form-data")
            head, *files = req.parts
            assert (head.name, head.filename, head.content_type) == (
                "serialized_request",
                None,
                "application/json",
            )
            segs = json.loads(head.data)["segmentations"]
            assert [(f.name, f.content_type) for f in files] == [("mask", "image/png")] * len(segs)
            assert [f.filename for f in files] == [quote(seg["mask_url"], safe="") for seg in segs]
            assert len(files) <= 10

        def file_parts(reqs: list[Recorded]) -> list[tuple[str | None, bytes]]:
            return sorted((f.filename, f.data) for r in reqs for f in r.parts[1:])

        assert file_parts(our_reqs) == file_parts(their_reqs)


def test_remote_urls_match_the_official_client(tmp_path: Path) -> None:
    refs = [f"r-{i:03d}" for i in range(45)]
    manifest = remote_manifest(refs, tmp_path / "remote.jsonl")
    theirs, ours = run_both(tmp_path, manifest, refs, predictions=False)
    assert [route_shape(r) for r in theirs] == [route_shape(r) for r in ours]
    assert sorted(len(r.json()["segmentations"]) for r in ours) == [5, 20, 20]
    assert sorted(s for r in ours for s in map(json.dumps, canonical_json(r))) == sorted(
        s for r in theirs for s in map(json.dumps, canonical_json(r))
    )
    for r in ours:
        assert r.content_type.startswith("application/json")
        assert list(r.json()) == list(theirs[0].json())  # same keys, same order


OFFICIAL_ASYNC = textwrap.dedent(
    """
    import json, os, sys
    from nucleus import NucleusClient, Segment, SegmentationAnnotation, SegmentationPrediction

    manifest, dataset_id, model_id = sys.argv[1], sys.argv[2], sys.argv[3]
    client = NucleusClient(os.environ["NUCLEUS_API_KEY"], endpoint=os.environ["NUCLEUS_ENDPOINT"])
    dataset = client.get_dataset(dataset_id)
    rows = [json.loads(line) for line in open(manifest)]
    kinds = (SegmentationAnnotation, SegmentationPrediction)
    gt, preds = (
        [kind(mask_url=r["mask_url"], reference_id=r["reference_id"],
              annotation_id=r.get("annotation_id"),
              annotations=[Segment(label=s["label"], index=s["index"]) for s in r["annotations"]])
         for r in rows]
        for kind in kinds
    )
    dataset.annotate(gt, update=False, asynchronous=True)
    dataset.upload_predictions(client.get_model(model_id), preds, asynchronous=True)
    """
)


def test_async_jobs_match_the_official_client(tmp_path: Path) -> None:
    """The NDJSON each client PUT (as the server stored it) and the POSTs that start jobs."""
    refs = [f"r-{i:03d}" for i in range(45)]
    manifest = remote_manifest(refs, tmp_path / "remote.jsonl")
    starts: dict[str, list[Recorded]] = {}
    bodies: dict[str, list[str]] = {}
    for who in ("official", "segcli"):
        server = Nucleus(tmp_path / who, refs)
        proxy = RecordingProxy(server.url.removesuffix("/v1/nucleus"))
        url = proxy.start() + "/v1/nucleus"
        try:
            model_id = server.create_model()
            if who == "official":
                script = tmp_path / "official_async.py"
                script.write_text(OFFICIAL_ASYNC)
                proc = subprocess.run(
                    [CURRENT.python, str(script), str(manifest), server.dataset_id, model_id],
                    env={**os.environ, "NUCLEUS_API_KEY": KEY, "NUCLEUS_ENDPOINT": url},
                    capture_output=True,
                    text=True,
                    timeout=120,
                )
                assert proc.returncode == 0, proc.stderr[-3000:]
            else:
                runner = CliRunner(env={"NUCLEUS_API_KEY": KEY, "NUCLEUS_ENDPOINT": url})
                common = [str(manifest), "--dataset", server.dataset_id, "--no-validate-remote"]
                for n, extra in enumerate([[], ["--model", model_id]]):
                    journal = ["--journal", str(tmp_path / f"async-{n}.journal")]
                    result = runner.invoke(app, ["upload", *common, "--async", *extra, *journal])
                    assert result.exit_code == ExitCode.OK, result.stdout + result.stderr
            starts[who] = [r for r in proxy.uploads() if r.query == "async=1"]
            bodies[who] = sorted(p.read_text() for p in server.store.uploads_dir.glob("*.ndjson"))
        finally:
            proxy.stop()
            server.stop()
    theirs, ours = starts["official"], starts["segcli"]
    assert [route_shape(r) for r in ours] == [route_shape(r) for r in theirs]
    assert len(ours) == 2
    for mine, their in zip(ours, theirs, strict=True):
        assert mine.content_type.startswith("application/json")
        a, b = mine.json(), their.json()
        assert list(a) == list(b)  # same keys, same order ("trained_slice_id" for predictions)
        assert len(a["requestId"]) == 32 and int(a["requestId"], 16) >= 0
        assert {**a, "requestId": "-"} == {**b, "requestId": "-"}
    # byte for byte: one segmentation a line, each with a newline, as the client writes them
    assert bodies["segcli"] == bodies["official"] and len(bodies["segcli"]) == 2
