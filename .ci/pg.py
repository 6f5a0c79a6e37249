#!/usr/bin/env python3
"""A throwaway PostgreSQL server for tests and benchmarks.

    eval "$(python3 .ci/pg.py start)"   # sets CLAIMS_PG_DIR and
                                        # CLAIMS_TEST_POSTGRES_URL
    python3 .ci/pg.py stop "$CLAIMS_PG_DIR"   # stops it, removes the folder

The cluster lives in a fresh folder under the system temp folder, listens on
a free port of 127.0.0.1 and on a Unix socket inside its folder, runs with
fsync off, and trusts local connections: it is for a test run, never for
data. `start` prints shell assignments; `url DIR` prints the URL again.
PostgreSQL refuses to run as root, so as root the server runs as the
`postgres` user (or the user in `$CLAIMS_PG_USER`), which must exist. The
binaries are found on `$PATH`, in `$CLAIMS_PG_BIN`, or in the newest
/usr/lib/postgresql/*/bin.
"""

from __future__ import annotations

import glob
import os
import pwd
import shlex
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

USER = "postgres"


def _bin(name: str) -> str:
    folder = os.environ.get("CLAIMS_PG_BIN")
    if folder:
        return str(Path(folder) / name)
    found = shutil.which(name)
    if found:
        return found
    versions = sorted(
        glob.glob("/usr/lib/postgresql/*/bin"),
        key=lambda p: int(Path(p).parent.name.split(".")[0]),
    )
    if not versions:
        sys.exit(f"pg.py: no {name} on PATH nor in /usr/lib/postgresql/*/bin")
    return str(Path(versions[-1]) / name)


def _as_owner(argv: list[str], owner: str | None) -> list[str]:
    if owner is None:
        return argv
    return ["runuser", "-u", owner, "--", *argv]


def _owner() -> str | None:
    if os.geteuid() != 0:
        return None
    name = os.environ.get("CLAIMS_PG_USER", USER)
    try:
        pwd.getpwnam(name)
    except KeyError:
        sys.exit(f"pg.py: running as root needs a user {name!r} to run PostgreSQL")
    return name


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start() -> Path:
    owner = _owner()
    folder = Path(tempfile.mkdtemp(prefix="claims-pg-")).resolve()
    data = folder / "data"
    if owner is not None:
        entry = pwd.getpwnam(owner)
        os.chown(folder, entry.pw_uid, entry.pw_gid)
    quiet = {"stdout": subprocess.DEVNULL, "check": True}
    subprocess.run(
        _as_owner(
            [
                _bin("initdb"),
                "-D",
                str(data),
                "-U",
                "postgres",
                "--auth=trust",
                "--encoding=UTF8",
                "--no-sync",
            ],
            owner,
        ),
        **quiet,
    )
    port = _free_port()
    options = (
        f"-c listen_addresses=127.0.0.1 -c port={port} "
        f"-c unix_socket_directories={folder} -c fsync=off "
        "-c synchronous_commit=off -c full_page_writes=off -c max_connections=200"
    )
    subprocess.run(
        _as_owner(
            [
                _bin("pg_ctl"),
                "-D",
                str(data),
                "-o",
                options,
                "-l",
                str(folder / "server.log"),
                "-w",
                "start",
            ],
            owner,
        ),
        **quiet,
    )
    url = f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres"
    (folder / "url").write_text(url, encoding="utf-8")
    return folder


def stop(folder: Path) -> None:
    data = folder / "data"
    if (data / "postmaster.pid").exists():
        subprocess.run(
            _as_owner(
                [_bin("pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"],
                _owner(),
            ),
            stdout=subprocess.DEVNULL,
            check=False,
        )
    shutil.rmtree(folder, ignore_errors=True)


def main(argv: list[str]) -> None:
    if argv[1:] == ["start"]:
        folder = start()
        url = (folder / "url").read_text(encoding="utf-8")
        print(f"export CLAIMS_PG_DIR={shlex.quote(str(folder))}")
        print(f"export CLAIMS_TEST_POSTGRES_URL={shlex.quote(url)}")
    elif len(argv) == 3 and argv[1] == "url":
        print((Path(argv[2]) / "url").read_text(encoding="utf-8"))
    elif len(argv) == 3 and argv[1] == "stop":
        stop(Path(argv[2]).resolve())
    else:
        sys.exit("usage: pg.py start | url DIR | stop DIR")


if __name__ == "__main__":
    main(sys.argv)
