"""Tests for `mpc_lite.psi`: the n-party duplicate check and its messages."""

from __future__ import annotations

import random
from collections.abc import Callable

import pytest
from nacl.signing import SigningKey

from mpc_lite.errors import InvalidInput, InvalidPoint, PartyUnavailable, ProtocolError
from mpc_lite.group import hash_to_group
from mpc_lite.psi import PSI_DOMAIN, Party, duplicate_check
from mpc_lite.transport import Envelope, InProcessTransport, SealedMessage


def _expected(sets: dict[str, list[bytes]]) -> dict[str, list[bool]]:
    """The plain computation: is each element in some other party's set?"""
    answer = {}
    for name, elements in sets.items():
        others: set[bytes] = set()
        for other, items in sets.items():
            if other != name:
                others.update(items)
        answer[name] = [element in others for element in elements]
    return answer


def _random_sets(seed: int, names: list[str]) -> dict[str, list[bytes]]:
    rng = random.Random(seed)
    universe = [f"claim-{i}".encode() for i in range(80)]
    sets = {name: [rng.choice(universe) for _ in range(25)] for name in names}
    # Fixed cases: held by two parties, by all, repeated in one party only.
    sets[names[0]] += [b"two", b"all", b"mine", b"mine"]
    sets[names[1]] += [b"two", b"all"]
    for name in names[2:]:
        sets[name] += [b"all"]
    return sets


class RecordingTransport(InProcessTransport):
    """Keeps every sealed message; `edit` may rewrite one before delivery."""

    def __init__(
        self, edit: Callable[[SealedMessage], SealedMessage] | None = None
    ) -> None:
        super().__init__()
        self.sent: list[SealedMessage] = []
        self._edit = edit

    def send(self, message: SealedMessage) -> None:
        if self._edit is not None:
            message = self._edit(message)
        self.sent.append(message)
        super().send(message)


@pytest.mark.parametrize("count", [3, 4])
@pytest.mark.parametrize("seed", [1, 2])
def test_duplicate_check_matches_the_plain_computation(count: int, seed: int) -> None:
    names = [f"insurer-{i}" for i in range(count)]
    sets = _random_sets(seed, names)
    result = duplicate_check([Party(name, sets[name]) for name in names])
    assert result == _expected(sets)
    first = sets[names[0]]
    assert result[names[0]][first.index(b"two")] is True
    assert result[names[0]][first.index(b"all")] is True
    assert result[names[0]][first.index(b"mine")] is False


def test_duplicate_check_works_for_two_parties_and_empty_sets() -> None:
    result = duplicate_check(
        [Party("a", [b"1", b"2", b"2"]), Party("b", [b"2", b"3"]), Party("c", [])]
    )
    assert result == {"a": [False, True, True], "b": [True, False], "c": []}
    pair = duplicate_check([Party("a", [b"1", b"1"]), Party("b", [b"1", b"9"])])
    assert pair == {"a": [True, True], "b": [True, False]}


def test_a_party_own_repeats_are_not_duplicates() -> None:
    result = duplicate_check(
        [Party("a", [b"x", b"x", b"x"]), Party("b", [b"y"]), Party("c", [b"z"])]
    )
    assert result["a"] == [False, False, False]


def test_messages_never_carry_elements_or_their_unblinded_points() -> None:
    sets = _random_sets(3, ["a", "b", "c"])
    transport = RecordingTransport()
    duplicate_check([Party(n, s) for n, s in sets.items()], transport)
    secrets_ = {e for s in sets.values() for e in s}
    secrets_ |= {hash_to_group(PSI_DOMAIN, e) for e in secrets_}
    assert transport.sent
    for message in transport.sent:
        wire = message.to_bytes()
        assert not any(secret in wire for secret in secrets_)


def test_equal_tags_only_ever_meet_at_their_checking_party() -> None:
    """A tag that appears in two messages appears only in messages to one party.

    Comparing is possible only where equal tags meet; the plan makes that the
    checking party of the sub-protocol, never a helper or a relay.
    """
    transport = RecordingTransport()
    duplicate_check(
        [Party("a", [b"1", b"2"]), Party("b", [b"2", b"5"]), Party("c", [b"2"])],
        transport,
    )
    recipients: dict[bytes, set[str]] = {}
    repeated = 0
    for message in transport.sent:
        envelope = message.unverified_envelope()
        for points in envelope.streams.values():
            for point in points:
                if point in recipients:
                    repeated += 1
                recipients.setdefault(point, set()).add(envelope.recipient)
    assert repeated > 0
    assert all(len(names) == 1 for names in recipients.values())


def _reseal(
    message: SealedMessage, key: SigningKey, **changes: object
) -> SealedMessage:
    envelope = message.unverified_envelope()
    fields = {
        "job_id": envelope.job_id,
        "round": envelope.round,
        "sender": envelope.sender,
        "recipient": envelope.recipient,
        "streams": envelope.streams,
    }
    fields.update(changes)
    return Envelope(**fields).seal(key)  # type: ignore[arg-type]


def _parties() -> tuple[list[Party], dict[str, SigningKey]]:
    keys = {name: SigningKey.generate() for name in ("a", "b", "c")}
    parties = [
        Party("a", [b"1", b"2"], signing_key=keys["a"]),
        Party("b", [b"2", b"3"], signing_key=keys["b"]),
        Party("c", [b"3", b"4"], signing_key=keys["c"]),
    ]
    return parties, keys


def _first_from_b(
    edit: Callable[[SealedMessage], SealedMessage],
) -> Callable[[SealedMessage], SealedMessage]:
    state = {"done": False}

    def wrapper(message: SealedMessage) -> SealedMessage:
        envelope = message.unverified_envelope()
        if envelope.sender == "b" and envelope.round == 2 and not state["done"]:
            state["done"] = True
            return edit(message)
        return message

    return wrapper


def test_a_tampered_message_is_refused_naming_party_and_round() -> None:
    parties, _ = _parties()

    def flip(message: SealedMessage) -> SealedMessage:
        body = bytearray(message.body)
        body[-1] ^= 1
        return SealedMessage(bytes(body), message.signature)

    with pytest.raises(ProtocolError, match="from 'b' in round 2 .*signature") as info:
        duplicate_check(parties, RecordingTransport(_first_from_b(flip)))
    assert (info.value.party, info.value.round) == ("b", 2)


def test_a_message_signed_by_a_non_member_is_refused() -> None:
    parties, _ = _parties()
    mallory = SigningKey.generate()
    edit = _first_from_b(lambda message: _reseal(message, mallory))
    with pytest.raises(ProtocolError, match="from 'b' in round 2 .*signature"):
        duplicate_check(parties, RecordingTransport(edit))


def test_a_message_from_a_foreign_sender_is_refused() -> None:
    parties, _ = _parties()
    mallory = SigningKey.generate()
    edit = _first_from_b(lambda message: _reseal(message, mallory, sender="mallory"))
    with pytest.raises(ProtocolError, match="'mallory' in round 2 .*not a member"):
        duplicate_check(parties, RecordingTransport(edit))


def test_a_replayed_message_is_refused() -> None:
    parties, _ = _parties()
    transport = RecordingTransport()

    def replay(message: SealedMessage) -> SealedMessage:
        envelope = message.unverified_envelope()
        if envelope.round == 3 and envelope.sender == "b":
            earlier = next(
                old
                for old in transport.sent
                if old.unverified_envelope().round == 2
                and old.unverified_envelope().sender == "b"
                and old.unverified_envelope().recipient == envelope.recipient
            )
            return earlier
        return message

    transport._edit = replay
    with pytest.raises(ProtocolError, match="from 'b' in round 2 .*replayed") as info:
        duplicate_check(parties, transport)
    assert info.value.round == 2


def test_a_message_from_a_later_round_is_refused_as_out_of_order() -> None:
    parties, keys = _parties()
    edit = _first_from_b(lambda message: _reseal(message, keys["b"], round=3))
    with pytest.raises(
        ProtocolError, match=r"round 3 .*out of order \(expected round 2"
    ):
        duplicate_check(parties, RecordingTransport(edit))


def test_a_message_from_another_job_is_refused() -> None:
    parties, keys = _parties()
    edit = _first_from_b(lambda message: _reseal(message, keys["b"], job_id="old"))
    with pytest.raises(ProtocolError, match="another job"):
        duplicate_check(parties, RecordingTransport(edit))


@pytest.mark.parametrize(
    "bad", [bytes(32), b"\xff" * 32], ids=["identity", "non-canonical"]
)
def test_an_invalid_point_from_a_member_is_refused(bad: bytes) -> None:
    parties, keys = _parties()

    def poison(message: SealedMessage) -> SealedMessage:
        streams = message.unverified_envelope().streams
        name = sorted(streams)[0]
        poisoned = {**streams, name: [bad, *streams[name][1:]]}
        return _reseal(message, keys["b"], streams=poisoned)

    with pytest.raises(ProtocolError, match="element 0 of .* is invalid") as info:
        duplicate_check(parties, RecordingTransport(_first_from_b(poison)))
    assert isinstance(info.value.__cause__, InvalidPoint)


def test_missing_streams_are_refused() -> None:
    parties, keys = _parties()
    edit = _first_from_b(lambda message: _reseal(message, keys["b"], streams={}))
    with pytest.raises(ProtocolError, match="streams this round expects"):
        duplicate_check(parties, RecordingTransport(edit))


def test_a_party_that_drops_out_is_named() -> None:
    parties, _ = _parties()
    transport = InProcessTransport()
    transport.disconnect("c")
    with pytest.raises(PartyUnavailable, match="'c'") as info:
        duplicate_check(parties, transport)
    assert info.value.party == "c"


def test_a_silent_party_is_named() -> None:
    parties, _ = _parties()

    class Silent(InProcessTransport):
        def send(self, message: SealedMessage) -> None:
            if message.unverified_envelope().sender != "b":
                super().send(message)

    with pytest.raises(PartyUnavailable, match="party 'b' sent no message") as info:
        duplicate_check(parties, Silent())
    assert info.value.party == "b"


def test_bad_party_lists_are_refused() -> None:
    with pytest.raises(InvalidInput, match="at least two"):
        duplicate_check([Party("a", [b"1"])])
    with pytest.raises(InvalidInput, match="share a name"):
        duplicate_check([Party("a", [b"1"]), Party("a", [b"2"])])
    with pytest.raises(InvalidInput, match="party name"):
        Party("a/b", [])


def test_queries_get_answers_and_other_elements_only_serve_as_references() -> None:
    parties = [
        Party("a", [b"x", b"y", b"z"], queries=[b"y", b"x", b"y"]),
        Party("b", [b"y", b"q"], queries=[]),
        Party("c", [b"z"], queries=[b"z"]),
    ]
    result = duplicate_check(parties)
    assert result == {"a": [True, False, True], "b": [], "c": [True]}
    with pytest.raises(InvalidInput, match="every query must be an element"):
        Party("d", [b"x"], queries=[b"w"])


def _streams(transport: RecordingTransport) -> list[tuple[int, str, int]]:
    """(round, stream, points) of every message the transport carried."""
    return [
        (envelope.round, name, len(points))
        for message in transport.sent
        for envelope in [message.unverified_envelope()]
        for name, points in envelope.streams.items()
    ]


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_two_parties_match_the_plain_computation_in_two_rounds(seed: int) -> None:
    sets = _random_sets(seed, ["a", "b"])
    transport = RecordingTransport()
    result = duplicate_check([Party(n, s) for n, s in sets.items()], transport)
    assert result == _expected(sets)
    streams = _streams(transport)
    assert max(round_ for round_, _, _ in streams) == 2
    assert not [name for _, name, _ in streams if name.startswith("merge/")]


def test_two_parties_compare_under_k_with_four_multiplications_per_pair(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Each query and each reference is raised twice, as in two-party DH PSI."""
    import mpc_lite.psi as psi

    counted = {"points": 0}

    Blind = Callable[[list[bytes], bytes], list[bytes]]

    def counting(function: Blind) -> Blind:
        def wrapper(points: list[bytes], scalar: bytes) -> list[bytes]:
            counted["points"] += len(points)
            return function(points, scalar)

        return wrapper

    monkeypatch.setattr(psi, "blind_many", counting(psi.blind_many))
    monkeypatch.setattr(psi, "blind_received", counting(psi.blind_received))
    asking = [f"q{i}".encode() for i in range(40)]
    answering = [f"q{i}".encode() for i in range(30, 90)]
    result = duplicate_check([Party("a", asking), Party("b", answering, queries=[])])
    assert result == {"a": [i >= 30 for i in range(40)], "b": []}
    assert counted["points"] == 2 * len(asking) + 2 * len(answering)


@pytest.mark.parametrize("names", [["a", "b"], ["a", "b", "c"]])
def test_a_party_that_asks_nothing_gets_no_sub_protocol(names: list[str]) -> None:
    sets = _random_sets(5, names)
    parties = [
        Party(name, sets[name], queries=[] if name == "b" else None) for name in names
    ]
    transport = RecordingTransport()
    result = duplicate_check(parties, transport)
    expected = _expected(sets)
    expected["b"] = []
    assert result == expected
    # b's elements still served as references: a's "two" is held by b only.
    assert result["a"][sets["a"].index(b"two")] is True
    streams = [name for _, name, _ in _streams(transport)]
    assert not [name for name in streams if name.split("/")[1] == "b"]
    assert "ref/a/b" in streams


def test_rounds_follow_the_number_of_parties_and_who_asks() -> None:
    def last_round(parties: list[Party]) -> int:
        transport = RecordingTransport()
        duplicate_check(parties, transport)
        return max((r for r, _, _ in _streams(transport)), default=0)

    assert last_round([Party("a", [b"1"]), Party("b", [b"2"])]) == 2
    assert last_round([Party(n, [b"1"]) for n in "abc"]) == 4
    assert last_round([Party(n, [b"1"]) for n in "abcd"]) == 5
    assert last_round([Party("a", [b"1"], queries=[]), Party("b", [])]) == 0


def test_a_party_with_queries_must_be_listed_as_asking() -> None:
    party = Party("a", [b"1"])
    roster = {"a": party.verify_key, "b": Party("b", []).verify_key}
    with pytest.raises(InvalidInput, match="not listed as asking"):
        party.open_session("job", roster, askers=["b"])
    with pytest.raises(InvalidInput, match="must be in the job's roster"):
        party.open_session("job", roster, askers=["a", "z"])


def _pair() -> tuple[list[Party], dict[str, SigningKey]]:
    keys = {name: SigningKey.generate() for name in ("a", "b")}
    parties = [
        Party("a", [b"1", b"2", b"3"], signing_key=keys["a"]),
        Party("b", [b"2", b"3", b"4"], signing_key=keys["b"], queries=[]),
    ]
    return parties, keys


@pytest.mark.parametrize(
    ("round_", "stream"),
    [(1, "ref/a/b"), (2, "query/a")],
    ids=["raised-on-arrival", "only-compared"],
)
@pytest.mark.parametrize(
    "bad", [bytes(32), b"\xff" * 32], ids=["identity", "non-canonical"]
)
def test_two_parties_refuse_an_invalid_point_in_every_stream(
    round_: int, stream: str, bad: bytes
) -> None:
    parties, keys = _pair()

    def poison(message: SealedMessage) -> SealedMessage:
        envelope = message.unverified_envelope()
        if envelope.round != round_ or stream not in envelope.streams:
            return message
        points = list(envelope.streams[stream])
        points[1] = bad
        return _reseal(message, keys["b"], streams={stream: points})

    with pytest.raises(
        ProtocolError, match=f"from 'b' in round {round_} .*element 1 of {stream}"
    ) as info:
        duplicate_check(parties, RecordingTransport(poison))
    assert isinstance(info.value.__cause__, InvalidPoint)


def test_two_parties_refuse_a_replay_and_a_short_query() -> None:
    parties, keys = _pair()
    transport = RecordingTransport()

    def replay(message: SealedMessage) -> SealedMessage:
        if message.unverified_envelope().round == 2:
            return transport.sent[-1]
        return message

    transport._edit = replay
    with pytest.raises(ProtocolError, match="from 'b' in round 1 .*replayed"):
        duplicate_check(parties, transport)

    def shorten(message: SealedMessage) -> SealedMessage:
        envelope = message.unverified_envelope()
        if envelope.round == 2:
            short = {"query/a": envelope.streams["query/a"][1:]}
            return _reseal(message, keys["b"], streams=short)
        return message

    parties, keys = _pair()
    with pytest.raises(ProtocolError, match="round 2 .*different length"):
        duplicate_check(parties, RecordingTransport(shorten))


def test_two_parties_name_one_that_drops_out_after_round_one() -> None:
    parties, _ = _pair()

    class Drops(InProcessTransport):
        def send(self, message: SealedMessage) -> None:
            envelope = message.unverified_envelope()
            if not (envelope.sender == "b" and envelope.round == 2):
                super().send(message)

    with pytest.raises(
        PartyUnavailable, match="party 'b' sent no message in round 2"
    ) as info:
        duplicate_check(parties, Drops())
    assert (info.value.party, info.value.round) == ("b", 2)


def test_shuffle_is_a_permutation_that_reaches_every_order() -> None:
    from mpc_lite.psi import _shuffled

    orders = {tuple(_shuffled([1, 2, 3])) for _ in range(600)}
    assert orders == {
        (1, 2, 3),
        (1, 3, 2),
        (2, 1, 3),
        (2, 3, 1),
        (3, 1, 2),
        (3, 2, 1),
    }
    items = list(range(1000))
    assert sorted(_shuffled(items)) == list(range(1000))
