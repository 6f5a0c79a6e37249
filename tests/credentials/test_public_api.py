"""Pins the public names the rest of the engine calls."""

from __future__ import annotations

import inspect

import credentials.data_integrity
import credentials.did_key
import credentials.errors
import credentials.holder
import credentials.issuer
import credentials.key_file
import credentials.keys
import credentials.parse
import credentials.registry
import credentials.report
import credentials.status_list
import credentials.validate
import credentials.verifier
from credentials.errors import CredentialError


def test_public_names() -> None:
    assert credentials.keys.__all__ == ["Ed25519Key"]
    assert set(credentials.did_key.__all__) >= {
        "did_from_public_key",
        "public_key_from_did",
        "resolve",
    }
    assert set(credentials.data_integrity.__all__) >= {"add_proof", "verify_proof"}
    assert set(credentials.status_list.__all__) >= {
        "StatusList",
        "status_entry",
        "status_list_credential",
    }
    assert credentials.registry.__all__ == ["Accreditation", "TrustedIssuers"]
    assert credentials.issuer.__all__ == ["issue_credential"]
    assert credentials.holder.__all__ == ["present"]
    assert credentials.verifier.__all__ == ["verify_presentation"]
    assert set(credentials.validate.__all__) >= {
        "validate_credential",
        "validate_presentation",
    }
    assert "load_json" in credentials.parse.__all__
    assert set(credentials.key_file.__all__) >= {"seal_key", "open_key"}
    assert set(credentials.report.__all__) >= {"check_document", "CHECKS"}


def test_every_error_derives_from_the_base_and_says_when_raised() -> None:
    for name in credentials.errors.__all__:
        value = getattr(credentials.errors, name)
        if inspect.isclass(value):
            assert issubclass(value, CredentialError), name
            assert (value.__doc__ or "").startswith(("Raised when", "Base of")), name


def test_verify_presentation_keyword_signature() -> None:
    parameters = inspect.signature(credentials.verifier.verify_presentation).parameters
    assert list(parameters) == [
        "vp",
        "challenge",
        "domain",
        "issuers",
        "status_lists",
        "now",
        "skew",
    ]
