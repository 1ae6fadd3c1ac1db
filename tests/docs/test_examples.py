"""The example suite (the README's main job) passes and prints the per-kind summary."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def test_example_suite_passes_with_the_summary(tmp_path: Path) -> None:
    shipping_log = tmp_path / "shipping.log"
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "--cachemock-report", "-p", "no:cacheprovider"],
        cwd=EXAMPLES,
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "SHOP_SHIPPING_LOG": str(shipping_log)},
    )
    out = proc.stdout
    assert proc.returncode == 0, out + proc.stderr
    assert re.search(r"^=+ (\d+) passed in ", out, re.M), out
    assert "configfile: pytest.ini" in out  # the examples' own configuration
    lines = out.splitlines()
    start = next(i for i, line in enumerate(lines) if "cachemock: cache stats per kind" in line)
    assert lines[start + 1].split() == ["kind", "tests", "puts", "hits", "misses", "errors"]
    rows = {line.split()[0]: line.split()[1:] for line in lines[start + 2 : start + 8]}
    assert set(rows) == {"pages", "prices", "sessions", "shipping", "vat_rate", "stock_level"}
    for kind, cells in rows.items():
        assert len(cells) == 5, kind
        assert int(cells[0]) > 0, f"no example test used {kind}"
    assert int(rows["pages"][4]) > 0  # fault injection shows up as errors
    # The memoizer's real log was made at import, and the mocked tests wrote nothing to it.
    assert shipping_log.exists()
    assert shipping_log.stat().st_size == 0


def test_main_job_script_asks_for_the_report() -> None:
    script = (EXAMPLES.parent / "scripts" / "examples.sh").read_text()
    assert 'python -m pytest --cachemock-report "$@"' in script
