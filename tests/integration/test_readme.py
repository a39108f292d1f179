"""Every example in README, and every command's --help example, run as written.

README's shell blocks run in one bash session, in README order, in a folder
holding a copy of sample_data/, with segcli on PATH: the block of "Try it on
this machine" first (it starts the local server every other example talks to).
Only its port and data folder, and the Dask scheduler's port, are swapped
for free ones (other test runs may be using the same ports at once). Each command must
exit 0, or the code its line's comment names (``# exits 1``). A block is
left out only when an HTML comment above it says why (``<!-- not run: ... -->``).
Python blocks run at their place in the session, from standard input; the
library example runs from a script file too (with no ``__main__`` guard). YAML,
CSV and JSON blocks are manifest examples: each is read as a manifest placed
in sample_data/ and must hold no manifest error, except a YAML block whose
comment says it is not a manifest (``<!-- not a manifest: ... -->``, a
Kubernetes Job) and names the test that runs it.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import typer.main

from segcli.cli.root import app
from segcli.codes import RULES
from segcli.manifest import load_manifest
from tests.helpers.paths import REPO
from tests.helpers.readme import NOT_A_MANIFEST, blocks
from tests.helpers.upload import free_port

EXITS = re.compile(r"#.*\bexits (\d+)")
PORT, DATA = "8765", "/tmp/nucleus"
DASK_PORT = "8786"  # the Dask cluster example's scheduler
# Codes about the manifest itself; mask codes need the masks, which live elsewhere.
MANIFEST_CODES = {
    code
    for code in RULES
    if not code.startswith(("mask-", "value-", "segment-not", "values-"))
    and code != "size-mismatch"
}


def commands(body: str) -> list[tuple[str, int]]:
    """The block's commands (continuation lines joined), each with its expected exit code."""
    out: list[tuple[str, int]] = []
    pending = ""
    for line in body.splitlines():
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        command = pending + line
        pending = ""
        if not command.strip() or command.strip().startswith("#"):
            continue
        found = EXITS.search(command)
        out.append((command, int(found.group(1)) if found else 0))
    return out


def checked(body: str, where: str) -> str:
    lines = []
    for n, (command, code) in enumerate(commands(body), start=1):
        lines.append(command)
        lines.append(
            f'rc=$?; if [ $rc -ne {code} ]; then echo "README {where}, command {n}: '
            f'exit $rc, expected {code}" >&2; exit 97; fi'
        )
    return "\n".join(lines) + "\n"


def session_env() -> dict[str, str]:
    drop = ("NUCLEUS_", "SEGCLI_", "DASK_")
    env = {k: v for k, v in os.environ.items() if not k.startswith(drop)}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    return env


def run_session(script: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    full = (
        "set -uo pipefail\n"
        # the server goes when the script ends, whichever line ends it
        "trap 'kill $(jobs -p) 2>/dev/null || true' EXIT\n" + script
    )
    return subprocess.run(
        ["bash", "-c", full],
        cwd=cwd,
        env=session_env(),
        capture_output=True,
        text=True,
        timeout=600,
    )


def sandbox(tmp_path: Path) -> Path:
    work = tmp_path / "work"
    work.mkdir()
    shutil.copytree(REPO / "sample_data", work / "sample_data")
    return work


def test_every_readme_example_runs_as_written(tmp_path: Path) -> None:
    work = sandbox(tmp_path)
    found = blocks()
    (first,) = [b for b in found if b.first]
    shell = [b for b in found if b.lang == "sh" and not b.skipped and not b.first]
    python = [b for b in found if b.lang == "python" and not b.skipped]
    assert len(shell) >= 5 and len(python) >= 2
    for block in found:
        if block.skipped:
            assert block.note.split("not run:", 1)[1].strip(), "say why a block is not run"
    port = str(free_port())
    script = checked(
        first.body.replace(PORT, port).replace(DATA, str(tmp_path / "nucleus")), "try-it block"
    )
    dask_port = str(free_port())
    for n, block in enumerate(b for b in found if not b.first and not b.skipped):
        if block.lang == "sh":
            script += checked(block.body.replace(DASK_PORT, dask_port), f"shell block {n}")
        elif block.lang == "python":
            script += f"python - <<'PYEOF'\n{block.body}PYEOF\n"
            script += (
                f'rc=$?; [ $rc -eq 0 ] || {{ echo "README python block {n}" >&2; exit 98; }}\n'
            )
    done = run_session(script, work)
    said = done.stdout + done.stderr
    assert done.returncode == 0, said[-6000:]
    assert "Traceback" not in said, said[-6000:]
    assert "model 'demo-model': prj_" in (work / "serve.err").read_text()
    # the try-it block ends with every prediction read back as sent
    assert "MATCH: 7 items: match 7" in done.stdout
    report = [json.loads(x) for x in (work / "verify.jsonl").read_text().splitlines()]
    assert len(report) == 7 and {r["state"] for r in report} == {"match"}
    # the library example printed its verdicts and a dry run's summary
    assert "street-0001 ok []" in done.stdout
    assert "'would_send': 0, 'skipped': 0" not in done.stdout


def test_the_library_example_runs_from_a_script_without_a_main_guard(tmp_path: Path) -> None:
    work = sandbox(tmp_path)
    (library,) = [b for b in blocks() if b.lang == "python" and "segcli.upload(" in b.body]
    assert "__main__" not in library.body
    script = work / "example.py"
    script.write_text(library.body)
    env = session_env()
    env["NUCLEUS_API_KEY"] = "test"
    # No server: the dry run's preflight fails (exit 1 from the library: an
    # exception), but validate, with its worker processes, must have run first.
    env["NUCLEUS_ENDPOINT"] = f"http://127.0.0.1:{free_port()}/v1/nucleus"
    done = subprocess.run(
        [sys.executable, str(script)],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.stdout.count(" ok []") == 7, done.stdout + done.stderr
    assert "bootstrapping phase" not in done.stderr and "BrokenProcessPool" not in done.stderr
    assert "ServerUnavailableError" in done.stderr  # the library raises; the CLI would exit 1


@pytest.mark.parametrize("lang", ["yaml", "csv", "json"])
def test_the_manifest_examples_read_as_manifests(tmp_path: Path, lang: str) -> None:
    work = sandbox(tmp_path)
    examples = [b for b in blocks() if b.lang == lang]
    assert examples
    suffix = {"yaml": ".yaml", "csv": ".csv", "json": ".jsonl"}[lang]
    for n, block in enumerate(examples):
        if block.not_a_manifest:
            # Another kind of file (a Kubernetes Job): the note names the test that
            # runs it, and that test must exist and read the block by this note.
            cited = re.findall(r"tests/\S+\.py", block.note)
            assert cited, f"say which test runs this block: {block.note}"
            for path in cited:
                assert NOT_A_MANIFEST in (REPO / path).read_text(), (path, block.note)
            continue
        path = work / "sample_data" / f"readme-{n}{suffix}"
        path.write_text(block.body)
        items = list(load_manifest(path))
        assert items, block.body
        errors = [p for i in items for p in i.problems if p.code in MANIFEST_CODES]
        assert errors == [], (block.body, errors)


def help_examples() -> dict[str, str]:
    root = typer.main.get_command(app)
    found = {}
    for name, command in root.commands.items():  # type: ignore[attr-defined]
        text = command.help or ""
        assert "Example:" in text, f"segcli {name} --help has no example"
        example = textwrap.dedent(text.split("Example:", 1)[1].replace("\b", "")).strip()
        example = example.replace("\\\n", " ")  # one command, as the shell joins it
        found[name] = example
    return found


def test_every_help_example_runs_as_written(tmp_path: Path) -> None:
    work = sandbox(tmp_path)
    examples = help_examples()
    port = str(free_port())
    serve = examples.pop("serve").replace(PORT, port)
    script = (
        "export NUCLEUS_API_KEY=test\n"
        f"{serve} > serve.out 2> serve.err &\n"
        "until [ -s serve.out ] || ! kill -0 %1 2>/dev/null; do sleep 0.1; done\n"
        'export NUCLEUS_ENDPOINT=$(head -n 1 serve.out); [ -n "$NUCLEUS_ENDPOINT" ] || exit 96\n'
        "segcli upload sample_data/manifest.yaml --dataset ds_demo -q\n"
    )
    order = ["validate", "upload", "status", "verify"]
    for name in order + sorted(set(examples) - set(order)):
        script += checked(examples[name], f"segcli {name} --help")
    done = run_session(script, work)
    said = done.stdout + done.stderr
    assert done.returncode == 0, said[-6000:]
    assert "Traceback" not in said
