"""`make demo`: validate sample_data/, upload it to a local Nucleus server, verify it landed;
then convert the COCO panoptic sample, consolidate it to semantic and instance masks, validate,
upload and verify all three.

Runs the real commands a user would type, against `segcli serve` on a free
port, and stops the server at the end. Exits non-zero if any step does not
end the way it should.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import subprocess
import sys
from pathlib import Path

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

    step("start the local Nucleus server, with a model for the predictions")
    server = subprocess.Popen(
        [*SEGCLI, "serve", "--port", "0", "--data-dir", str(data_dir), "--model", "demo-model"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    try:
        assert server.stdout is not None and server.stderr is not None
        model_line = server.stderr.readline().strip()  # model 'demo-model': prj_...
        url = server.stdout.readline().strip()
        if not url.startswith("http") or not model_line.startswith("model "):
            sys.exit("demo: the server did not start")
        model_id = model_line.rsplit(" ", 1)[-1]
        print(f"server at {url}; dataset {dataset_id} with {len(refs)} items; model {model_id}")
        env["NUCLEUS_ENDPOINT"] = url

        def upload(manifest: str, journal: str, *extra: str) -> None:
            args = ["upload", f"sample_data/{manifest}", "--dataset", dataset_id]
            run([*SEGCLI, *args, "--journal", str(WORK / journal), *extra], env=env)

        step("upload ground truth")
        upload("manifest.yaml", "gt.journal")
        step("upload the same masks again: the journal skips them")
        upload("manifest.yaml", "gt.journal")
        step(f"upload predictions for model {model_id}")
        upload("predictions.yaml", "pred.journal", "--model", model_id)
        step("read everything back: each item's segments and mask bytes match (exit 0)")
        verify = [*SEGCLI, "verify", "--dataset", dataset_id]
        run([*verify, "sample_data/manifest.yaml", "--all"], env=env)
        run([*verify, "sample_data/predictions.yaml", "--model", model_id], env=env)
        for kind, manifest in CONVERTED:
            step(f"upload the {kind} masks of the COCO sample to {converted[kind]}, verify them")
            journal = str(WORK / f"{kind}.journal")
            upload_args = [*SEGCLI, "upload", manifest, "--dataset", converted[kind]]
            run([*upload_args, "--journal", journal], env=env)
            run([*SEGCLI, "verify", manifest, "--dataset", converted[kind]], env=env)
    finally:
        step("stop the server")
        server.send_signal(signal.SIGTERM)
        code = server.wait(timeout=20)
        print(f"server exited with {code}")


if __name__ == "__main__":
    main()
