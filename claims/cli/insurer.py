"""`claims insurer ...`: run an insurer's gateway and its processing flow."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from claims.cli._common import STATE, check_member_id, errors
from claims.errors import ConfigError

__all__ = ["register"]

insurer_app = typer.Typer(
    help="Run an insurer: its claims gateway and the flow that processes claims.",
    no_args_is_help=True,
)


@insurer_app.command("serve")
def serve(
    insurer: Annotated[
        str, typer.Option("--insurer", help="The insurer to serve.")
    ] = "insurer-1",
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535, help="Port.")] = 8000,
    flow: Annotated[
        bool,
        typer.Option(
            "--flow/--no-flow",
            help="Also serve the processing flow as a Prefect deployment.",
        ),
    ] = True,
    interval: Annotated[
        float, typer.Option(min=1.0, help="Seconds between flow runs.")
    ] = 5.0,
) -> None:
    """Serve the claims gateway and process submitted claims every few seconds.

    Uses the Prefect server at PREFECT_API_URL when set, otherwise starts a
    local one. Ctrl-C (or SIGTERM) stops both. The workspace's keys are opened
    before anything starts; a failed flow run is reported in one line.

    Example: claims -w ws insurer serve --insurer insurer-1 --port 8000
    """
    from claims.consortium import Consortium
    from claims.gateway.serve import ServeOptions, serve

    consortium = Consortium(STATE.settings())
    if consortium.member(insurer).kind != "insurer":
        raise ConfigError(f"{insurer} is not an insurer")
    consortium.check_keys(insurer)
    _check_port(host, port)
    errors.print(
        f"gateway of {insurer} on http://{host}:{port}"
        f" (OpenAPI at /docs); flow {'on' if flow else 'off'}; Ctrl-C stops",
        highlight=False,
    )
    serve(
        consortium,
        ServeOptions(
            insurer_id=insurer,
            host=host,
            port=port,
            flow=flow,
            interval=interval,
            debug=STATE.debug,
            on_failure=_print_failure,
        ),
    )


def _check_port(host: str, port: int) -> None:
    """Refuse, before anything starts, an address nobody may listen on."""
    import socket

    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM
        )[0]
        with socket.socket(family, kind, proto) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn
            probe.bind(address)
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise ConfigError(
            f"cannot listen on {host}:{port} ({reason})",
            remedy="choose another --port or --host, or stop what holds it",
        ) from None


def _print_failure(line: str) -> None:
    """One line on the console for a failed flow run (no markup: it quotes errors)."""
    errors.print(line, markup=False, highlight=False, soft_wrap=True)


@insurer_app.command("init")
def init(
    insurer_id: Annotated[
        str,
        typer.Argument(help="The insurer's member id.", callback=check_member_id),
    ],
    name: Annotated[str | None, typer.Option(help="Display name.")] = None,
    policy: Annotated[
        Path | None,
        typer.Option(help="A policy TOML file (default: a shipped example plan)."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Create an insurer with its key, domain and policy (again: no change).

    The joint fraud check needs at least three insurers in the consortium.

    Example: claims insurer init insurer-1 --name "Insurer 1"
    """
    from claims.cli._common import console, emit_json
    from claims.consortium import Consortium
    from claims.demo import example_policy
    from claims.policy import read_policy_file

    # Read before the workspace is touched.
    data = None if policy is None else read_policy_file(policy)
    consortium = Consortium(STATE.settings())
    if data is None:
        data = example_policy(len(consortium.members("insurer")) + 1)
    member = consortium.add_insurer(insurer_id, name or insurer_id, data)
    result = {"id": member.id, "did": member.did, "domain": member.domain}
    if as_json:
        emit_json(result)
        return
    console.print(
        f"insurer {member.id}: {member.did} (domain {member.domain})", emoji=False
    )


@insurer_app.command("enrol")
def enrol(
    did: Annotated[str, typer.Argument(help="The claimant's wallet DID.")],
    insurer: Annotated[
        str, typer.Option("--insurer", help="The insurer the policy is with.")
    ] = "insurer-1",
    since: Annotated[
        str | None,
        typer.Option(
            help="Policy start date, YYYY-MM-DD \\[default: 2000-01-01]. An"
            " enrolment's start is never changed: claims were judged by it.",
            show_default=False,
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Record that a claimant holds a policy with an insurer from a date.

    Example: claims insurer enrol DID --insurer insurer-1 --since 2020-01-01,
    where DID is the claimant's did:key, as `claims wallet list` prints it.
    """
    from datetime import date

    from claims.cli._common import console, emit_json
    from claims.consortium import Consortium
    from claims.errors import ConfigError
    from credentials.did_key import public_key_from_did
    from credentials.errors import CredentialError

    try:
        start = date.fromisoformat(since or "2000-01-01")
    except ValueError:
        raise typer.BadParameter(
            f"{since!r} is not a YYYY-MM-DD date", param_hint="'--since'"
        ) from None
    try:
        public_key_from_did(did)
    except CredentialError as exc:
        raise typer.BadParameter(
            f"{did!r} is not a did:key: {exc}", param_hint="'DID'"
        ) from None
    consortium = Consortium(STATE.settings())
    if consortium.member(insurer).kind != "insurer":
        raise ConfigError(f"{insurer} is not an insurer")
    held = consortium.enrollment(insurer, did)
    if held is None:
        consortium.enrol(insurer, did, start)
    elif since is not None and held.since != start:
        raise ConfigError(
            f"{did} already holds a policy with {insurer} since {held.since};"
            " an enrolment's start is not changed, since claims were judged by it"
        )
    data = {"insurer": insurer, "did": did, "since": str(held.since if held else start)}
    if as_json:
        emit_json(data)
        return
    console.print(
        f"{did} holds a policy with {insurer} since {data['since']}", emoji=False
    )


def register(root: typer.Typer) -> None:
    """Add this group's commands to the root command."""
    root.add_typer(insurer_app, name="insurer")
