from tests.helpers.remote_servers import gcs_server, s3_server, signed_url_server  # noqa: F401
from tests.helpers.server_fixture import make_nucleus_server, nucleus_server, nucleus_url  # noqa: F401

_browser_tests = {"ran": 0, "left_out": 0}


def pytest_deselected(items):  # type: ignore[no-untyped-def]
    _browser_tests["left_out"] += sum(1 for i in items if i.get_closest_marker("browser"))


def pytest_runtest_logreport(report):  # type: ignore[no-untyped-def]
    if report.when == "call" and "browser" in report.keywords:
        _browser_tests["ran"] += 1


def pytest_terminal_summary(terminalreporter, exitstatus, config):  # type: ignore[no-untyped-def]
    """Say plainly when the browser tests did not run, and why (never a silent skip)."""
    from tests.helpers.browser import missing

    if _browser_tests["ran"] or not _browser_tests["left_out"]:
        return
    why = missing() or "left out by -m"
    terminalreporter.write_line(f"browser tests did not run: {why}")
