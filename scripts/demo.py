"""`make demo`: validate sample_data/, upload it to a local Nucleus server, read one item back;
then convert the COCO panoptic sample, consolidate it to semantic and instance masks, validate and
upload all three.

Runs the real commands a user would type, against `segcli serve` on a free
port, and stops the server at the end. Exits non-zero if any step does not
end the way it should.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import httpx

from segcli.manifest import load_manifest
from segcli.server import seed_dataset

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "sample_data"
WORK = ROOT / ".demo"
SEGCLI = [sys.executable, "-m", "segcli"]
MANIFESTS = [
    "manifest.yaml",
    "manifest.csv",
    "manifest_long.csv",
    "manifest.jsonl",
    "manifest_semantic.yaml",
    "manifest_instance.yaml",
    "manifest_panoptic.yaml",
    "predictions.yaml",
]
# What `segcli convert` makes of the COCO panoptic sample: (dataset name, manifest).
CONVERTED = [
    ("panoptic", ".demo/coco/manifest.yaml"),
    ("semantic", ".demo/semantic/manifest.yaml"),
    ("instance", ".demo/instance/manifest.yaml"),
]


def step(title: str) -> None:
    print(f"\n=== {title}", flush=True)


def run(args: list[str], *, env: dict[str, str] | None = None, expect: int = 0) -> None:
    shown = " ".join(["segcli", *args[len(SEGCLI) :]]) if args[: len(SEGCLI)] == SEGCLI else args
    print(f"$ {shown}", flush=True)
    code = subprocess.run(args, env=env, cwd=ROOT, check=False).returncode
    if code != expect:
        sys.exit(f"demo: expected exit {expect}, got {code}")


def convert_samples() -> None:
    coco = [*SEGCLI, "convert", "coco-panoptic", "sample_data/coco/panoptic.json"]
    step("convert the COCO panoptic sample to index masks (exit 0 expected)")
    run([*coco, "--out", ".demo/coco"])
    step("run it again: unchanged images are skipped")
    run([*coco, "--out", ".demo/coco"])
    for kind in ("semantic", "instance"):
        step(f"consolidate it to {kind} masks, as the Nucleus guide does")
        consolidate = [*SEGCLI, "convert", "consolidate", ".demo/coco/manifest.yaml"]
        run([*consolidate, "--to", kind, "--out", f".demo/{kind}"])
    for _, manifest in CONVERTED:
        run([*SEGCLI, "validate", manifest])


def main() -> None:
    step("validate every sample manifest (exit 0 expected)")
    for name in MANIFESTS:
        run([*SEGCLI, "validate", f"sample_data/{name}"])

    step("a manifest with broken items on purpose (exit 1 expected, one line per problem)")
    run([*SEGCLI, "validate", "sample_data/broken/manifest.yaml"], expect=1)

    shutil.rmtree(WORK, ignore_errors=True)
    WORK.mkdir()
    # A fresh random key for this demo only; it is passed through the
    # environment and never printed.
    key = secrets.token_hex(16)
    env = {**os.environ, "NUCLEUS_API_KEY": key}
    data_dir = WORK / "server"
    refs = [i.reference_id for i in load_manifest(SAMPLE / "manifest.yaml")]
    dataset_id = seed_dataset(data_dir, "segcli-demo", refs)
    convert_samples()
    converted = {
        kind: seed_dataset(data_dir, f"segcli-demo-{kind}", ["street-0001", "street-0002"])
        for kind, _ in CONVERTED
    }

    step("start the local Nucleus server")
    server = subprocess.Popen(
        [*SEGCLI, "serve", "--port", "0", "--data-dir", str(data_dir)],
        env=env,
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    try:
        assert server.stdout is not None
        url = server.stdout.readline().strip()
        if not url.startswith("http"):
            sys.exit("demo: the server did not start")
        print(f"server at {url}; dataset {dataset_id} with {len(refs)} items")
        env["NUCLEUS_ENDPOINT"] = url
        auth = (key, "")
        with httpx.Client(base_url=url + "/", auth=auth, timeout=30) as http:
            reply = http.post(
                "models/add",
                json={"name": "demo-model", "reference_id": "demo-model", "metadata": {}},
            )
            reply.raise_for_status()
            model_id = reply.json()["model_id"]

            def upload(manifest: str, journal: str, *extra: str) -> None:
                args = ["upload", f"sample_data/{manifest}", "--dataset", dataset_id]
                run([*SEGCLI, *args, "--journal", str(WORK / journal), *extra], env=env)

            step("upload ground truth")
            upload("manifest.yaml", "gt.journal")
            step("upload the same masks again: the journal skips them")
            upload("manifest.yaml", "gt.journal")
            step(f"upload predictions for model {model_id}")
            upload("predictions.yaml", "pred.journal", "--model", model_id)
            step(f"read {refs[0]} back from the server")
            item = http.get(f"dataset/{dataset_id}/refloc/{refs[0]}").json()
            segs = item["annotations"]["segmentation"]
            if not segs:
                sys.exit("demo: the item has no segmentation on the server")
            print(f"item: {json.dumps(item['item'])}")
            for seg in segs:
                print(f"mask_url: {seg['mask_url']}")
                print(f"annotation_id: {seg['annotation_id']}")
                for s in seg["annotations"]:
                    print(f"  {s['index']:>3} {s['label']:<12} {json.dumps(s.get('metadata', {}))}")

            for kind, manifest in CONVERTED:
                step(f"upload the {kind} masks of the COCO sample to {converted[kind]}")
                journal = str(WORK / f"{kind}.journal")
                args = [*SEGCLI, "upload", manifest, "--dataset", converted[kind]]
                run([*args, "--journal", journal], env=env)
                stored = http.get(f"dataset/{converted[kind]}/refloc/street-0001").json()
                table = stored["annotations"]["segmentation"][0]["annotations"]
                listed = ", ".join(f"{s['index']} {s['label']}" for s in table)
                print(f"street-0001 on the server: {listed}")
    finally:
        step("stop the server")
        server.send_signal(signal.SIGTERM)
        code = server.wait(timeout=20)
        print(f"server exited with {code}")


if __name__ == "__main__":
    main()
