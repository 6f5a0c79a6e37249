"""Shared fixtures: where `../shared` lies beside the checkout."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from pathlib import Path

import pytest

# Prefect reads its settings when first imported: give the tests a Prefect home
# of their own (removed when the run ends) and keep its logs out of the output.
if "PREFECT_HOME" not in os.environ:
    _prefect_home = tempfile.mkdtemp(prefix="claims-prefect-")
    os.environ["PREFECT_HOME"] = _prefect_home
    atexit.register(shutil.rmtree, _prefect_home, ignore_errors=True)
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "ERROR")
os.environ.setdefault("PREFECT_SERVER_LOGGING_LEVEL", "ERROR")
# On a loaded 2-core machine the ephemeral server can take longer than the
# default 20 s to answer.
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "180")
# Member keys are sealed at rest; the tests' workspaces use this passphrase.
os.environ.setdefault("CLAIMS_KEY_PASSPHRASE", "test-only workspace passphrase")
os.environ.pop("CLAIMS_DATABASE_URL", None)
os.environ.pop("CLAIMS_WORKSPACE", None)

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("CLAIMS_SHARED_DIR", REPO.parent / "shared")).resolve()


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """The read-only `shared/` folder: data and published test vectors."""
    if not SHARED.is_dir():
        pytest.fail(f"shared folder not found at {SHARED}; set CLAIMS_SHARED_DIR")
    return SHARED


@pytest.fixture(scope="session")
def vectors_dir(shared_dir: Path) -> Path:
    return shared_dir / "vectors"
