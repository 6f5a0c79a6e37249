"""A flow that fails under Prefect prints one line, not Prefect's traceback.

Prefect logs a failed flow or task run at ERROR with its whole traceback,
some hundred lines; without `--debug` the CLI must be the only one to speak.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

# Runs in a child process: Prefect reads its logging settings once, at import.
SCRIPT = """
import sys
from claims.settings import quiet_prefect
quiet_prefect(home=sys.argv[1])
import flows.steps
def fail(*args, **kwargs):
    raise RuntimeError("adjudication broke")
flows.steps.adjudicate = fail
from claims.cli.main import main
sys.argv = ["claims", "--workspace", sys.argv[2], "demo", "--out", sys.argv[3]]
main()
"""


def test_a_failed_flow_run_reaches_the_terminal_as_one_line(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT]
        + [str(tmp_path / name) for name in ("prefect", "ws", "out")],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
        check=False,
    )
    assert done.returncode == 70, done.stderr
    assert done.stderr.strip() == (
        "internal error: RuntimeError; run again with --debug and report it"
    )
