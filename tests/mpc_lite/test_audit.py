"""Tests for `mpc_lite.audit`: job records carry commitments, never inputs."""

from __future__ import annotations

import json

import pytest

from mpc_lite.audit import commit_inputs, hash_result, job_record
from mpc_lite.errors import InvalidInput
from mpc_lite.group import hash_to_group
from mpc_lite.psi import PSI_DOMAIN, Party, duplicate_check

SALT = bytes(range(32))


def test_commitment_depends_on_the_set_and_the_salt() -> None:
    a, b = hash_to_group(b"d", b"1"), hash_to_group(b"d", b"2")
    assert commit_inputs([a, b], SALT) == commit_inputs([b, a, a], SALT)
    assert commit_inputs([a, b], SALT) != commit_inputs([a], SALT)
    assert commit_inputs([a], SALT) != commit_inputs([a], bytes(32))


def test_commitment_refuses_a_short_salt() -> None:
    with pytest.raises(InvalidInput, match="salt must be 32 bytes"):
        commit_inputs([], b"short")


def test_job_record_holds_no_input_bytes() -> None:
    elements = {"a": [b"MRN-1|INV-9", b"MRN-2|INV-3"], "b": [b"MRN-2|INV-3"]}
    parties = [Party(name, items) for name, items in elements.items()]
    result = duplicate_check(parties, job_id="job-1")
    record = job_record(
        "job-1",
        [p.name for p in parties],
        {p.name: p.input_commitment() for p in parties},
        result,
        salt=SALT,
    )
    assert record["parties"] == ["a", "b"]
    assert record["result_hash"] == hash_result(result, SALT)
    text = json.dumps(record)
    for items in elements.values():
        for element in items:
            assert element.decode() not in text
            assert hash_to_group(PSI_DOMAIN, element).hex() not in text


def test_job_record_result_hash_is_salted() -> None:
    result = {"a": [True], "b": [True]}
    first = job_record("j", ["a", "b"], {"a": "0", "b": "1"}, result)
    second = job_record("j", ["a", "b"], {"a": "0", "b": "1"}, result)
    assert first["result_hash"] != second["result_hash"]
    assert hash_result(result, SALT) != hash_result({"a": [True], "b": [False]}, SALT)


def test_job_record_refuses_commitments_for_other_parties() -> None:
    with pytest.raises(InvalidInput, match="commitments must name exactly"):
        job_record("j", ["a", "b"], {"a": "0"}, {"a": [], "b": []})
