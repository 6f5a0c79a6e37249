"""An insurer's plan rules, loaded from TOML and checked as they load.

A `Policy` holds what adjudication needs: when the plan is in force, what
it covers, and how the member shares the cost. `Policy.from_toml` reads a
file laid out like `claims/examples/insurer-1.toml`:

    insurer = "..."                 # the insurer's name
    plan_id = "..."
    currency = "USD"                # ISO 4217, three capital letters

    [effective]
    start = 1940-01-01              # TOML dates; the plan is in force on
    end = 2030-12-31                # both days and every day between

    [benefits]
    waiting_period_days = 30        # from enrolment, no benefit
    covered_claim_types = ["institutional", "professional", "pharmacy"]
    annual_deductible = "500.00"    # per member and calendar year
    coinsurance = "0.20"            # the member's share after deductible, 0..1
    per_service_maximum = "25000"   # most paid for one line (optional)
    annual_limit = "250000"         # most paid per member and year (optional)
    review_threshold = "10000"      # payable above it goes to a person

    [benefits.copay]                # per claim, by claim type (optional)
    pharmacy = "10.00"

    [codes]
    excluded = ["http://snomed.info/sct|1234"]          # `system|code`
    preauthorisation = ["http://snomed.info/sct|5678"]

Amounts may be written as strings, integers or floats; floats are read
through their shortest text form, so `0.2` means exactly `Decimal("0.2")`.
Every problem is reported with the field at fault, e.g.
`benefits.coinsurance: must be between 0 and 1`.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from importlib import resources
from pathlib import Path
from typing import Any

from claims.errors import ConfigError, NotFound
from claims.money import AmountError, parse_amount
from credentials.errors import MalformedDocument
from credentials.parse import read_user_file

__all__ = [
    "CLAIM_TYPES",
    "Policy",
    "PolicyError",
    "example_policy_path",
    "read_policy_file",
]

CLAIM_TYPES = frozenset({"institutional", "oral", "pharmacy", "professional", "vision"})
"""The HL7 claim-type codes (http://terminology.hl7.org/CodeSystem/claim-type)."""

_CURRENCY = re.compile(r"[A-Z]{3}")


def example_policy_path(number: int = 1) -> Path:
    """A plan the project ships: `claims/examples/insurer-<number>.toml`.

    The first is the plan of the demo's first insurer, and the default of
    `claims adjudicate`.
    """
    return Path(str(resources.files("claims") / "examples" / f"insurer-{number}.toml"))


MAX_DAYS = 36_500
"""The longest waiting period a policy may set: a hundred years."""


def read_policy_file(path: Path) -> dict[str, Any]:
    """The TOML mapping of a policy file, read up to 1 MiB; not yet checked.

    Raises `NotFound` for a missing file, `PolicyError` for one that is not
    TOML, and `ConfigError` for one that cannot be read or is too large.
    """
    try:
        text = read_user_file(path, what=f"policy {path}", max_bytes=1 << 20)
        return tomllib.loads(text.decode("utf-8"))
    except FileNotFoundError:
        raise NotFound(
            f"no policy file {path}", remedy="give the path of a TOML policy"
        ) from None
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise ConfigError(f"policy {path} cannot be read ({reason})") from exc
    except MalformedDocument as exc:
        raise ConfigError(str(exc)) from exc
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise PolicyError(str(path), [f"not valid TOML ({exc})"]) from exc


class PolicyError(ConfigError):
    """Raised when a policy file or mapping is missing a field or holds a bad one.

    `problems` lists each `field: what is wrong`.
    """

    def __init__(self, source: str, problems: list[str]) -> None:
        super().__init__(
            f"policy {source} is not valid: {'; '.join(problems)}",
            remedy="fix the named fields (see claims/examples/insurer-1.toml)",
        )
        self.problems = tuple(problems)


@dataclass(frozen=True)
class Policy:
    """One insurance plan's rules. Amounts are in `currency`."""

    insurer: str
    plan_id: str
    currency: str
    effective_start: date
    effective_end: date
    """Inclusive: a service on this day is still covered."""
    waiting_period_days: int
    covered_claim_types: frozenset[str]
    annual_deductible: Decimal
    coinsurance: Decimal
    """The member's share of what is left after copay and deductible."""
    review_threshold: Decimal
    copay: Mapping[str, Decimal] = field(default_factory=dict, hash=False)
    """Per claim, by claim type; a type not named has no copay."""
    per_service_maximum: Decimal | None = None
    annual_limit: Decimal | None = None
    excluded_codes: frozenset[str] = frozenset()
    preauth_codes: frozenset[str] = frozenset()

    @classmethod
    def from_toml(cls, path: Path) -> Policy:
        """Load and check a policy file; raises `PolicyError` naming each field."""
        return cls.from_dict(read_policy_file(path), source=str(path))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, source: str = "mapping") -> Policy:
        """Build a policy from the TOML layout (module docstring), checking it."""
        reader = _Reader(data)
        insurer = reader.text("insurer")
        plan_id = reader.text("plan_id")
        currency = reader.text("currency")
        if currency and not _CURRENCY.fullmatch(currency):
            reader.problem("currency", "must be an ISO 4217 code such as USD")
        start = reader.day("effective.start")
        end = reader.day("effective.end")
        if start and end and end < start:
            reader.problem("effective.end", "is before effective.start")
        waiting = reader.whole("benefits.waiting_period_days", default=0)
        types = reader.texts("benefits.covered_claim_types")
        unknown = sorted(set(types) - CLAIM_TYPES)
        if unknown:
            reader.problem(
                "benefits.covered_claim_types",
                f"unknown claim type(s) {', '.join(unknown)}",
            )
        coinsurance = reader.amount("benefits.coinsurance", cents=False)
        if coinsurance is not None and not 0 <= coinsurance <= 1:
            reader.problem("benefits.coinsurance", "must be between 0 and 1")
        copay: dict[str, Decimal] = {}
        copay_table = reader.get("benefits.copay", {})
        if not isinstance(copay_table, Mapping):
            reader.problem("benefits.copay", "must be a table of claim type = amount")
            copay_table = {}
        for claim_type in copay_table:
            if claim_type not in CLAIM_TYPES:
                reader.problem(f"benefits.copay.{claim_type}", "unknown claim type")
                continue
            value = reader.amount(f"benefits.copay.{claim_type}")
            if value is not None:
                copay[claim_type] = value
        deductible = reader.amount("benefits.annual_deductible")
        threshold = reader.amount("benefits.review_threshold")
        per_service = reader.amount("benefits.per_service_maximum", required=False)
        annual_limit = reader.amount("benefits.annual_limit", required=False)
        excluded = frozenset(reader.codes("codes.excluded"))
        preauth = frozenset(reader.codes("codes.preauthorisation"))
        # A None below always comes with a recorded problem.
        if (
            reader.problems
            or start is None
            or end is None
            or deductible is None
            or coinsurance is None
            or threshold is None
        ):
            raise PolicyError(source, reader.problems)
        return cls(
            insurer=insurer,
            plan_id=plan_id,
            currency=currency,
            effective_start=start,
            effective_end=end,
            waiting_period_days=waiting,
            covered_claim_types=frozenset(types),
            annual_deductible=deductible,
            coinsurance=coinsurance,
            review_threshold=threshold,
            copay=copay,
            per_service_maximum=per_service,
            annual_limit=annual_limit,
            excluded_codes=excluded,
            preauth_codes=preauth,
        )

    def covers_date(self, day: date) -> bool:
        return self.effective_start <= day <= self.effective_end


class _Reader:
    """Reads dotted fields from a nested mapping, collecting problems."""

    def __init__(self, data: Mapping[str, Any]) -> None:
        self._data = data
        self.problems: list[str] = []

    def problem(self, name: str, message: str) -> None:
        self.problems.append(f"{name}: {message}")

    def get(self, name: str, default: Any = None) -> Any:
        node: Any = self._data
        for part in name.split("."):
            if not isinstance(node, Mapping) or part not in node:
                return default
            node = node[part]
        return node

    def text(self, name: str) -> str:
        value = self.get(name)
        if not isinstance(value, str) or not value.strip():
            self.problem(name, "missing or not a non-empty string")
            return ""
        return value

    def day(self, name: str) -> date | None:
        value = self.get(name)
        if isinstance(value, date) and not hasattr(value, "hour"):
            return value
        if isinstance(value, str):
            try:
                return date.fromisoformat(value)
            except ValueError:
                pass
        self.problem(name, "missing or not a date (YYYY-MM-DD)")
        return None

    def whole(self, name: str, *, default: int) -> int:
        value = self.get(name, default)
        if (
            isinstance(value, bool)
            or not isinstance(value, int)
            or not 0 <= value <= MAX_DAYS
        ):
            # Bounded because adjudication adds it to a date: 10**17 days
            # overflowed there and failed every claim of the insurer.
            self.problem(name, f"must be a whole number of days, 0 to {MAX_DAYS}")
            return default
        return value

    def amount(
        self, name: str, *, required: bool = True, cents: bool = True
    ) -> Decimal | None:
        value = self.get(name)
        if value is None:
            if required:
                self.problem(name, "missing")
            return None
        try:
            return parse_amount(value, cents=cents)
        except AmountError as problem:
            self.problem(name, str(problem))
            return None

    def texts(self, name: str) -> list[str]:
        value = self.get(name, [])
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            self.problem(name, "must be a list of strings")
            return []
        return value

    def codes(self, name: str) -> list[str]:
        codes = self.texts(name)
        for i, code in enumerate(codes):
            system, sep, value = code.rpartition("|")
            if not sep or not system or not value:
                self.problem(f"{name}[{i}]", "must be written system|code")
        return codes
