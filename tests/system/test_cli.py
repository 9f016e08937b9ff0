"""The gateway's command line refuses a bad config in one line, as a user sees it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.support import ROOT, TEST_SECRET


def test_gateway_cli_reports_bad_config_in_one_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("routes: []\n")
    proc = subprocess.run(
        [sys.executable, str(ROOT / "gateway.py"), "--config", str(path), "--port", "1"],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=ROOT,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0
    assert "routes" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_gateway_cli_production_flag_refuses_demo_key() -> None:
    proc = subprocess.run(
        [sys.executable, str(ROOT / "gateway.py"), "--production", "--port", "1"],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=ROOT,
        env={"GATEWAY_SECRET": TEST_SECRET, "PATH": "/usr/bin:/bin"},
    )
    assert proc.returncode == 2
    assert proc.stderr.strip() == (
        "gateway: config error: consumers: the demo key is configured; "
        "remove it before running in production"
    )
