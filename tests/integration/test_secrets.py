"""The API key never leaves the process: not in output, files, reports or tracebacks.

Every scenario runs ``segcli upload`` at each verbosity (-q, default, -v,
and --debug in a process of its own), then every byte it printed and every
file it wrote (report, journal and its WAL, lock and shared-memory files) is
searched for the key as written, as HTTP Basic sends it (base64 of ``KEY:``)
and URL-encoded. The failing scenarios send the key in a header and get it
echoed back by a hostile server in the error body, the way a proxy or a
debugging endpoint might.
"""

from __future__ import annotations

import base64
import http.server
import json
import os
import shutil
import subprocess
import sys
import threading
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from segcli.cli.root import app
from segcli.server import LocalServer, ServerConfig, seed_dataset
from tests.helpers.paths import REPO
from tests.helpers.pools import inspect_on_threads
from tests.helpers.upload import free_port, make_local_manifest

runner = CliRunner()

# "+", "/" and "=" make the URL-encoded form differ from the raw key.
SECRET = "sk_live_CANARY+9f/4e=2b7d"
FORMS = {
    "raw": SECRET,
    "basic": base64.b64encode(f"{SECRET}:".encode()).decode(),
    "url-encoded": urllib.parse.quote(SECRET, safe=""),
}
VERBOSITY = {"quiet": ["-q"], "default": [], "verbose": ["-v"], "debug": []}


class EchoHandler(http.server.BaseHTTPRequestHandler):
    """A hostile server: its error bodies repeat the credentials it was sent.

    The dataset id in the path picks the behaviour: ``ds_401`` refuses the
    key, ``ds_info500`` fails the first request, ``ds_up500`` and ``ds_up400``
    answer the info request and fail every upload.
    """

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _echo(self, status: int) -> None:
        auth = self.headers.get("Authorization", "")
        limited = self.headers.get("x-limited-access-key", "")
        user = ""
        if auth.startswith("Basic "):
            user = base64.b64decode(auth[6:]).decode().partition(":")[0]
        body = json.dumps(
            {
                "error": f"denied for Authorization={auth} key={user} limited={limited} "
                f"quoted={urllib.parse.quote(user or limited, safe='')}"
            }
        ).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        path = self.path
        if "ds_401" in path:
            return self._echo(401)
        if "ds_info500" in path:
            return self._echo(500)
        if path.endswith("/info"):
            body = json.dumps({"dataset_id": "x", "name": "x", "length": 3}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return None
        return self._echo(400 if "ds_up400" in path else 500)

    do_GET = _answer
    do_POST = _answer


@pytest.fixture(scope="module")
def echo_url() -> Iterator[str]:
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), EchoHandler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/v1/nucleus"
    httpd.shutdown()
    thread.join(10)


@pytest.fixture(scope="module")
def real_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LocalServer, str]]:
    """A well-behaved server that knows the key, with the manifest's items."""
    data_dir = tmp_path_factory.mktemp("secrets-server")
    dataset = seed_dataset(data_dir, "secrets", [f"img-{i:05d}" for i in range(6)])
    server = LocalServer(ServerConfig(data_dir=data_dir, api_keys=(SECRET,)))
    server.start()
    yield server, dataset
    server.stop()


@dataclass(frozen=True)
class Scenario:
    name: str
    exit: int
    stops: bool  # the run ends on an exception (shown whole with --debug)
    dataset: str = "ds_up500"
    endpoint: str = "echo"  # "echo", "real", "closed" or "userinfo"
    key_variable: str = "NUCLEUS_API_KEY"


SCENARIOS = [
    Scenario("everything lands", 1, stops=False, endpoint="real"),  # one invalid item: exit 1
    Scenario("401, key echoed", 3, stops=True, dataset="ds_401"),
    Scenario(
        "401, limited key echoed",
        3,
        stops=True,
        dataset="ds_401",
        key_variable="NUCLEUS_LIMITED_ACCESS_KEY",
    ),
    Scenario("first request 500 until retries run out", 1, stops=True, dataset="ds_info500"),
    Scenario("uploads 500 until retries run out", 1, stops=False, dataset="ds_up500"),
    Scenario("uploads 400, key echoed", 1, stops=False, dataset="ds_up400"),
    Scenario("connection refused", 1, stops=True, endpoint="closed"),
    Scenario("key pasted into the endpoint URL", 1, stops=True, endpoint="userinfo"),
]


def upload_args(
    scenario: Scenario, verbosity: str, folder: Path, urls: dict[str, str], dataset: str
) -> list[str]:
    return [
        *(["--debug"] if verbosity == "debug" else []),
        "upload",
        str(folder / "manifest.jsonl"),
        "--dataset",
        dataset if scenario.endpoint == "real" else scenario.dataset,
        "--endpoint",
        urls[scenario.endpoint],
        "--retries",
        "1",
        "--workers",
        "1",
        "--report",
        str(folder / "report.jsonl"),
        "--html",
        str(folder / "report.html"),
        *VERBOSITY[verbosity],
    ]


def clean_env(scenario: Scenario) -> dict[str, str | None]:
    """The key in the scenario's variable, and no other NUCLEUS_/SEGCLI_ setting."""
    env: dict[str, str | None] = {
        k: None for k in os.environ if k.startswith(("NUCLEUS_", "SEGCLI_"))
    }
    env["NUCLEUS_API_KEY"] = env["NUCLEUS_LIMITED_ACCESS_KEY"] = None
    env[scenario.key_variable] = SECRET
    return env


def start_process(args: list[str], env: dict[str, str | None]) -> subprocess.Popen[str]:
    full = {k: v for k, v in {**os.environ, **env}.items() if v is not None}
    return subprocess.Popen(
        [sys.executable, "-m", "segcli", *args],
        env=full,
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def endpoints(echo_url: str, server: LocalServer) -> dict[str, str]:
    """Where each kind of scenario points: a hostile server, a real one, nothing, a pasted key."""
    closed = f"http://127.0.0.1:{free_port()}/v1/nucleus"
    return {
        "echo": echo_url,
        "real": server.url,
        "closed": closed,
        "userinfo": closed.replace("http://", f"http://{urllib.parse.quote(SECRET, safe='')}@"),
    }


def leaks(text: str | bytes) -> list[str]:
    data = text.encode("utf-8", "surrogateescape") if isinstance(text, str) else text
    return [name for name, form in FORMS.items() if form.encode() in data]


def test_the_key_never_appears_anywhere(
    tmp_path: Path,
    echo_url: str,
    real_server: tuple[LocalServer, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    inspect_on_threads(monkeypatch)  # in-process runs: no worker start-up per run
    server, dataset = real_server
    template = tmp_path / "template"
    make_local_manifest(template, 5)
    with (template / "manifest.jsonl").open("a") as fh:  # one item that fails its checks
        fh.write(json.dumps({"reference_id": "img-00005", "mask_url": "masks/none.png"}) + "\n")
    urls = endpoints(echo_url, server)
    runs = [(s, v) for s in SCENARIOS for v in VERBOSITY]
    folders = {}
    for scenario, verbosity in runs:
        folders[(scenario.name, verbosity)] = folder = (
            tmp_path / f"{SCENARIOS.index(scenario)}-{verbosity}"
        )
        shutil.copytree(template, folder)
    results: dict[tuple[str, str], tuple[int, str, str]] = {}
    # --debug runs in real processes, so a traceback is printed the way Python
    # prints one; they run in the background while the others run in-process.
    procs = {
        (s.name, v): start_process(
            upload_args(s, v, folders[(s.name, v)], urls, dataset), clean_env(s)
        )
        for s, v in runs
        if v == "debug"
    }
    for scenario, verbosity in runs:
        if verbosity == "debug":
            continue
        key = (scenario.name, verbosity)
        args = upload_args(scenario, verbosity, folders[key], urls, dataset)
        result = runner.invoke(app, args, env=clean_env(scenario))
        assert result.exception is None or isinstance(result.exception, SystemExit), result
        results[key] = (result.exit_code, result.stdout, result.stderr)
    for key, proc in procs.items():
        out, err = proc.communicate(timeout=120)
        results[key] = (proc.returncode, out, err)

    checked_files = 0
    for scenario, verbosity in runs:
        code, out, err = results[(scenario.name, verbosity)]
        where = (scenario.name, verbosity)
        assert code == scenario.exit, (where, out, err)
        assert not leaks(out), (where, out)
        assert not leaks(err), (where, err)
        folder = folders[where]
        for file in folder.rglob("*"):
            if file.is_file():
                assert not leaks(file.read_bytes()), (where, file)
                checked_files += 1
        # a run that stops on an exception shows its traceback with --debug only
        assert ("Traceback" in err) == (scenario.stops and verbosity == "debug"), (where, err)
        if scenario.endpoint == "echo":
            # the server's words reached the user (and the report), the key blanked out
            said = err + out + (folder / "report.jsonl").read_text()
            assert "denied for Authorization=Basic ***" in said or "limited=***" in said, said
        if scenario.endpoint == "echo" and not scenario.stops:
            # and the --html page, whose cards quote them too
            page = (folder / "report.html").read_text()
            assert "denied for Authorization=Basic ***" in page, where
    assert checked_files > 4 * len(runs)  # manifest, masks, report, journal files...


VERIFY_SCENARIOS = [
    Scenario("verify: an item without a mask", 1, stops=False, endpoint="real"),
    Scenario("verify: 401, key echoed", 3, stops=True, dataset="ds_401"),
    Scenario(
        "verify: 401, limited key echoed",
        3,
        stops=True,
        dataset="ds_401",
        key_variable="NUCLEUS_LIMITED_ACCESS_KEY",
    ),
    Scenario("verify: first request 500", 1, stops=True, dataset="ds_info500"),
    Scenario("verify: reads 500, key echoed", 1, stops=False, dataset="ds_up500"),
    Scenario("verify: connection refused", 1, stops=True, endpoint="closed"),
    Scenario("verify: key pasted into the endpoint URL", 1, stops=True, endpoint="userinfo"),
]


def test_verify_never_shows_the_key(
    tmp_path: Path, echo_url: str, real_server: tuple[LocalServer, str]
) -> None:
    server, dataset = real_server
    # img-00005 never gets a mask (the upload test's sixth item is invalid),
    # so verifying against the real server ends 1 whichever test ran first.
    make_local_manifest(tmp_path, 6)
    urls = endpoints(echo_url, server)
    for scenario in VERIFY_SCENARIOS:
        for verbosity in VERBOSITY:
            where = (scenario.name, verbosity)
            report = tmp_path / f"{VERIFY_SCENARIOS.index(scenario)}-{verbosity}.jsonl"
            args = [
                *(["--debug"] if verbosity == "debug" else []),
                "verify",
                str(tmp_path / "manifest.jsonl"),
                "--dataset",
                dataset if scenario.endpoint == "real" else scenario.dataset,
                "--endpoint",
                urls[scenario.endpoint],
                "--retries",
                "1",
                "--report",
                str(report),
                "--html",
                str(report.with_suffix(".html")),
                *VERBOSITY[verbosity],
            ]
            if verbosity == "debug":
                proc = start_process(args, clean_env(scenario))
                out, err = proc.communicate(timeout=120)
                code = proc.returncode
            else:
                result = runner.invoke(app, args, env=clean_env(scenario))
                code, out, err = result.exit_code, result.stdout, result.stderr
            assert code == scenario.exit, (where, out, err)
            assert not leaks(out + err), (where, out, err)
            assert not report.exists() or not leaks(report.read_bytes()), where
            page = report.with_suffix(".html")
            assert not page.exists() or not leaks(page.read_bytes()), where
            assert page.exists() == (not scenario.stops), where
            assert ("Traceback" in err) == (scenario.stops and verbosity == "debug"), (where, err)
            if scenario.endpoint == "echo" and scenario.dataset == "ds_up500":
                # the server's words reach the report, the key blanked out
                assert "denied for Authorization=Basic ***" in report.read_text(), where
