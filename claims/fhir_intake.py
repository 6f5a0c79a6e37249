"""Intake of FHIR R4 bundles: a hospital's own data turned into `Treatment`s.

`read_bundle` reads one Synthea-style bundle (`transaction`, `batch` or
`collection`), validates it with the `fhir.resources` R4B models (the R5
defaults of `fhir.resources` 8 reject R4 data), and returns the patients,
organisations and encounters it holds and one `Treatment` per FHIR Claim:
institutional, professional and pharmacy alike. `load_directory` does the
same for every `*.json` file of a folder, reports a bad file by name and goes
on with the others.

`validate_claim` lists what a payer must refuse in one Claim that
`fhir.resources` lets through (codes outside required value sets, Money
without an ISO 4217 currency, negative amounts, date-times without a zone,
references that resolve nowhere); every Claim of a bundle passes it before it
becomes a Treatment. `treatment_from_claim` does the same for a Claim sent on
its own, and `prior_claim` names the claim a correction replaces.

The models validate; the values are then read from the JSON itself, parsed
with `Decimal` for numbers, so that amounts keep their exact digits and dates
keep the text (and time zone) the hospital wrote.

References are resolved inside the bundle (FHIR R4 section 3.3.1, "Resolving
references in Bundles"): by `fullUrl` (`urn:uuid:...`), by `Type/id` (also at
the end of an absolute URL, with any `_history` part dropped), and by the
conditional form `Type?identifier=system|value` that newer Synthea versions
write for organisations and practitioners.

The pricing rule
----------------
Synthea never makes `Claim.total` equal to the sum of `Claim.item.net`: the
encounter line carries no `net`, and the total includes its price. Every
claim is therefore priced by one rule, the *residual rule*, applied in
`_price_lines`:

1. Lines with `net` keep it. `Claim.total` must not be below their sum.
2. The residual, `Claim.total` minus that sum, goes whole to the first line
   without `net` (in Synthea, the encounter line); the other unpriced lines
   (Synthea's diagnosis lines) are priced at zero.
3. A positive residual with no unpriced line to carry it, or a negative
   residual, refuses the claim with an error on `Claim.total`.
4. A claim without `Claim.total` is priced as the sum of its `net`s (unpriced
   lines at zero); a claim with neither is refused.

After the rule, `Treatment.total` equals the sum of its lines' amounts.

Errors
------
    ClaimsError                  (claims.errors)
    └── IntakeError              anything this module refuses
        ├── BundleUnreadable     the file cannot be read or is not JSON
        ├── NotABundle           the JSON is not a FHIR Bundle
        ├── BundleInvalid        an unsupported Bundle type, JSON of the wrong
        │                        shape (a null, an entry that is not an
        │                        object...), or the R4B models reject it
        └── ClaimRefused         one Claim cannot be turned into a Treatment

A refused claim does not refuse its bundle: `BundleContents.refused` lists it
with the field paths at fault. No message names a patient: messages carry file
names, resource ids and FHIR field paths only.

A file is read with `credentials.parse.load_user_json` (nesting at most 64
deep, a syntax error named by line and column), and its shape is checked
before the R4B models see it (`_check_shape`): `Bundle.entry` a list of
objects, each `resource` an object with a known `resourceType`, and no
`null` anywhere except where FHIR JSON allows one (in a primitive array that
has a `_name` array beside it: FHIR R4 JSON format, "JSON representation of
primitive elements"). The models accept a `null` for an absent element; the
readers below rely on its absence.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field, replace
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pydantic
from fhir.resources.R4B import get_fhir_model_class
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.claim import Claim
from fhir.resources.R4B.resource import Resource

from claims.errors import ClaimsError
from claims.money import MAX_AMOUNT, AmountError, parse_amount
from claims.treatment import Line, Treatment
from credentials.errors import MalformedDocument
from credentials.parse import load_user_json, read_user_file

__all__ = [
    "BundleContents",
    "BundleError",
    "BundleInvalid",
    "BundleUnreadable",
    "ClaimRefused",
    "EncounterInfo",
    "FieldError",
    "IntakeError",
    "IntakeResult",
    "NotABundle",
    "OrgInfo",
    "PatientInfo",
    "RefusedClaim",
    "load_directory",
    "prior_claim",
    "read_bundle",
    "treatment_from_claim",
    "validate_claim",
]

log = logging.getLogger(__name__)

SUPPORTED_BUNDLE_TYPES = frozenset({"transaction", "batch", "collection"})
MR_SYSTEM = "http://terminology.hl7.org/CodeSystem/v2-0203"
SYNTHEA_SYSTEM = "https://github.com/synthetichealth/synthea"


# -- errors ------------------------------------------------------------------


class IntakeError(ClaimsError):
    """Raised when FHIR input cannot be taken in; base of this module's errors."""


class BundleUnreadable(IntakeError):
    """Raised when a bundle file cannot be read or does not hold a JSON object."""


class NotABundle(IntakeError):
    """Raised when a JSON file holds something other than a FHIR Bundle."""


class BundleInvalid(IntakeError):
    """Raised when a Bundle has an unsupported type or fails R4B validation."""


@dataclass(frozen=True)
class FieldError:
    """One thing wrong with a FHIR resource, at a FHIRPath-like field path."""

    path: str
    """Where, e.g. `Claim.item[2].net.currency` (indexes count from 0)."""
    message: str
    """What is wrong; never the offending value."""

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


class ClaimRefused(IntakeError):
    """Raised when a FHIR Claim cannot be turned into a `Treatment`.

    `errors` lists every field at fault.
    """

    def __init__(self, claim_id: str, errors: list[FieldError]) -> None:
        joined = "; ".join(str(error) for error in errors)
        super().__init__(f"Claim/{claim_id} refused: {joined}")
        self.claim_id = claim_id
        self.errors = tuple(errors)


# -- what a bundle holds ------------------------------------------------------


@dataclass(frozen=True)
class PatientInfo:
    id: str
    """The Patient resource id in the hospital's data."""
    mrn: str | None
    """The medical record number (identifier typed MR, else Synthea's id)."""
    name: str
    """For display only; never logged, never put into errors."""


@dataclass(frozen=True)
class OrgInfo:
    id: str
    name: str


@dataclass(frozen=True)
class EncounterInfo:
    id: str
    patient_id: str
    start: str
    end: str
    class_code: str
    type: str
    """The first `Encounter.type` coding as `system|code`, or ``""``."""
    provider: str
    """`Encounter.serviceProvider` organisation id, or ``""``."""


@dataclass(frozen=True)
class RefusedClaim:
    claim_id: str
    errors: tuple[FieldError, ...]

    @property
    def reason(self) -> str:
        """Every field at fault, as `path: message; path: message`."""
        return "; ".join(str(error) for error in self.errors)

    def __str__(self) -> str:
        return f"Claim/{self.claim_id}: {self.reason}"


@dataclass
class BundleContents:
    """What one bundle file holds, as the engine needs it."""

    source: str
    """The file name the bundle came from."""
    bundle_type: str
    patients: dict[str, PatientInfo] = field(default_factory=dict)
    organizations: dict[str, OrgInfo] = field(default_factory=dict)
    encounters: dict[str, EncounterInfo] = field(default_factory=dict)
    treatments: list[tuple[str, Treatment]] = field(default_factory=list)
    """`(patient id, treatment)`, one per Claim, in bundle order."""
    refused: list[RefusedClaim] = field(default_factory=list)


@dataclass(frozen=True)
class BundleError:
    """A file `load_directory` skipped, or a claim in it that was refused."""

    file: str
    message: str
    """Why: for a claim, every field at fault (`RefusedClaim.reason`)."""
    claim_id: str | None = None
    """The refused claim's id; None when the whole file was skipped."""

    def __str__(self) -> str:
        if self.claim_id is None:
            return f"{self.file}: {self.message}"
        return f"claim Claim/{self.claim_id} skipped: {self.message} ({self.file})"


@dataclass
class IntakeResult:
    bundles: list[BundleContents] = field(default_factory=list)
    organizations: dict[str, OrgInfo] = field(default_factory=dict)
    """Every organisation of every bundle, the hospital bundles included."""
    errors: list[BundleError] = field(default_factory=list)

    @property
    def treatments(self) -> list[tuple[str, Treatment]]:
        return [pair for bundle in self.bundles for pair in bundle.treatments]


# -- reading ---------------------------------------------------------------------


def read_bundle(path: Path) -> BundleContents:
    """Read one FHIR R4 bundle file and turn its Claims into `Treatment`s.

    Raises `BundleUnreadable`, `NotABundle` or `BundleInvalid` when the file as
    a whole cannot be used. A Claim that cannot be priced or resolved does not
    raise: it is listed in `BundleContents.refused`.
    """
    name = path.name
    try:
        data = read_user_file(path, what="the file")
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise BundleUnreadable(f"{name}: cannot be read ({reason})") from exc
    except MalformedDocument as exc:
        raise BundleUnreadable(f"{name}: {exc}") from exc
    try:
        raw = load_user_json(data, what="the file", parse_float=Decimal)
    except MalformedDocument as exc:
        raise BundleUnreadable(f"{name}: {exc}") from exc
    if not isinstance(raw, dict):
        raise BundleUnreadable(f"{name}: the JSON is {_kind(raw)}, not an object")
    if raw.get("resourceType") != "Bundle":
        raise NotABundle(
            f"{name}: resourceType is {_shown(raw.get('resourceType'))}, not 'Bundle'",
            remedy="pass a FHIR R4 Bundle (transaction, batch or collection)",
        )
    bundle_type = raw.get("type")
    if not isinstance(bundle_type, str) or bundle_type not in SUPPORTED_BUNDLE_TYPES:
        raise BundleInvalid(
            f"{name}: Bundle.type {_shown(bundle_type)} is not one of "
            f"{', '.join(sorted(SUPPORTED_BUNDLE_TYPES))}"
        )
    problem = _check_shape(raw, maybe_null=b"null" in data)
    if problem is not None:
        raise BundleInvalid(f"{name}: {problem}")
    # Claims are left out here: `validate_claim` runs the R4B model on each
    # apart, so that one bad Claim is refused alone and not its patient's
    # whole bundle.
    positions = [
        i
        for i, entry in enumerate(raw.get("entry") or ())
        if not (isinstance(entry, dict) and _is_claim(entry.get("resource")))
    ]
    others = {**raw, "entry": [raw["entry"][i] for i in positions]}
    if "entry" not in raw:
        others = raw
    try:
        Bundle.model_validate(others)
    except pydantic.ValidationError as exc:
        raise BundleInvalid(f"{name}: {_summarise(exc, raw, positions)}") from exc
    except (AttributeError, KeyError, TypeError, ValueError) as exc:
        # NOTE: fhir.resources raises these, not a ValidationError, for some
        # shapes `_check_shape` does not foresee; the file is refused all the same.
        raise BundleInvalid(
            f"{name}: the R4B models cannot read it ({type(exc).__name__})"
        ) from exc

    entries = [e for e in raw.get("entry", ()) if "resource" in e]
    contents = _contents(name, bundle_type, entries)
    log.debug(
        "read %s: %d patients, %d claims, %d refused",
        name,
        len(contents.patients),
        len(contents.treatments),
        len(contents.refused),
    )
    return contents


def load_directory(path: Path) -> IntakeResult:
    """Read every `*.json` bundle of a folder, skipping and reporting bad ones.

    Organisations of all bundles (the hospital bundles included) are merged
    into `IntakeResult.organizations`, and a treatment whose provider was only
    named by reference gets its `provider_name` from there. Each refused claim
    is reported in `errors` too, with its file name.
    """
    result = IntakeResult()
    for file in sorted(path.glob("*.json")):
        if not file.is_file():  # a FIFO would never end, a device never stop
            result.errors.append(BundleError(file.name, "not a regular file"))
            continue
        try:
            contents = read_bundle(file)
        except IntakeError as exc:
            log.debug("skipped %s: %s", file.name, type(exc).__name__)
            message = str(exc).removeprefix(f"{file.name}: ")
            result.errors.append(BundleError(file.name, message))
            continue
        result.bundles.append(contents)
        result.organizations.update(contents.organizations)
        result.errors.extend(
            BundleError(file.name, refused.reason, claim_id=refused.claim_id)
            for refused in contents.refused
        )
    for contents in result.bundles:
        contents.treatments = [
            (patient, _with_provider_name(treatment, result.organizations))
            for patient, treatment in contents.treatments
        ]
    return result


def _with_provider_name(treatment: Treatment, orgs: dict[str, OrgInfo]) -> Treatment:
    if treatment.provider_name or treatment.provider not in orgs:
        return treatment
    return replace(treatment, provider_name=orgs[treatment.provider].name)


def _is_claim(resource: Any) -> bool:
    return isinstance(resource, dict) and resource.get("resourceType") == "Claim"


def _summarise(
    exc: pydantic.ValidationError, raw: dict[str, Any], positions: list[int]
) -> str:
    """One line naming the first failing field, without the offending value.

    The model saw the entries at `positions` of `raw`; messages name an
    entry by its place in `raw`.
    """
    errors = exc.errors()
    first = errors[0]
    loc = list(first["loc"])
    where = "Bundle"
    if len(loc) >= 3 and loc[0] == "entry" and loc[2] == "resource":
        seen = loc[1]
        index = positions[seen] if isinstance(seen, int) else seen
        entries = raw.get("entry")
        entry = (
            entries[index]
            if isinstance(index, int) and isinstance(entries, list)
            else {}
        )
        resource = entry.get("resource") if isinstance(entry, dict) else None
        kind = resource.get("resourceType") if isinstance(resource, dict) else None
        resource_type = kind if isinstance(kind, str) else "resource"
        where = f"Bundle.entry[{index}] {resource_type}"
        loc = loc[3:]
    for part in loc:
        where += f"[{part}]" if isinstance(part, int) else f".{_member(part)}"
    message = str(first.get("msg", "invalid")).removeprefix("Value error, ")
    offending = first.get("input")
    if isinstance(offending, str | int | Decimal) and str(offending) in message:
        message = "invalid value"
    count = len(errors)
    plural = "error" if count == 1 else "errors"
    return f"{count} validation {plural} (R4B); first at {where}: {message[:160]}"


_ELEMENT_NAME = re.compile(r"_?[A-Za-z][A-Za-z0-9_]{0,63}")
_CODE_TEXT = re.compile(r"[A-Za-z0-9 ._:/|-]{0,40}")


def _member(name: Any) -> str:
    """A member name for a field path: a FHIR element name as it is, else `?`.

    A name from the file that could not be an element name is not echoed
    (it could be anything, markup for a terminal included).
    """
    text = str(name)
    return text if _ELEMENT_NAME.fullmatch(text) else "?"


def _claim_id(claim: dict[str, Any]) -> str:
    """A Claim's id for a message; one past FHIR's 64 characters is cut."""
    claim_id = str(claim.get("id", "(no id)"))
    if len(claim_id) <= 64:
        return claim_id
    return f"{claim_id[:40]}... ({len(claim_id)} characters)"


def _shown(value: Any) -> str:
    """A code from the file, quoted, when it looks like one; else its kind."""
    if isinstance(value, str) and _CODE_TEXT.fullmatch(value):
        return repr(value)
    if isinstance(value, str):
        return "(a string that is not a code)"
    return "(missing or null)" if value is None else f"({_kind(value)})"


def _kind(value: Any) -> str:
    """What a JSON value is, in words (never the value itself)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true or false"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, int | float | Decimal):
        return "a number"
    return "a list" if isinstance(value, list) else "an object"


def _check_shape(raw: dict[str, Any], *, maybe_null: bool = True) -> str | None:
    """What is wrong with the shape of a Bundle's JSON, at its JSON path; or None.

    1. `Bundle.entry`, when present, is a list of objects, and each entry's
       `resource`, when present, is an object with a `resourceType` that
       names an R4 resource.
    2. No member anywhere is `null`, and an array holds `null` only where
       FHIR JSON puts one: a primitive array with a `_name` array beside it,
       or that `_name` array itself (FHIR R4 JSON format, "JSON
       representation of primitive elements"). Skipped when
       `maybe_null` is false (the file's text has no `null` at all).
    """
    # 1. Entries and their resources.
    entries = raw.get("entry", [])
    if not isinstance(entries, list):
        return f"Bundle.entry is {_kind(entries)}, not a list of entries"
    for i, entry in enumerate(entries):
        where = f"Bundle.entry[{i}]"
        if not isinstance(entry, dict):
            return f"{where} is {_kind(entry)}, not an object"
        if "resource" not in entry:
            continue
        resource = entry["resource"]
        if not isinstance(resource, dict):
            return f"{where}.resource is {_kind(resource)}, not an object"
        kind = resource.get("resourceType")
        if kind is None:
            return f"{where}.resource has no resourceType"
        if not isinstance(kind, str):
            return f"{where}.resource.resourceType is {_kind(kind)}, not a string"
        if not _is_resource_type(kind):
            return f"{where}.resource.resourceType {_shown(kind)} is not an R4 resource"

    # 2. Nulls.
    found = _null(raw, "Bundle") if maybe_null else None
    return None if found is None else f"{found.path} {found.message}"


def _null(root: Any, path: str) -> FieldError | None:
    """A `null` FHIR JSON does not allow below `root`, at its path; or None.

    A member is never `null`; an array holds `null` only beside its `_name`
    array (or is that array). Depth first; the JSON is at most 64 deep.
    """
    stack: list[tuple[Any, str]] = [(root, path)]
    while stack:
        node, where = stack.pop()
        if isinstance(node, dict):
            for key, value in node.items():
                here = f"{where}.{_member(key)}"
                if value is None:
                    return FieldError(
                        here, "is null; FHIR JSON leaves out an absent element"
                    )
                if isinstance(value, list):
                    paired = f"_{key}" in node or (
                        key.startswith("_") and key[1:] in node
                    )
                    for j, item in enumerate(value):
                        if item is None and not paired:
                            return FieldError(
                                f"{here}[{j}]",
                                "is null; FHIR JSON allows null in an array only"
                                f" beside its _{_member(key.lstrip('_'))} array",
                            )
                        stack.append((item, f"{here}[{j}]"))
                else:
                    stack.append((value, here))
        elif isinstance(node, list):
            stack.extend((item, f"{where}[{j}]") for j, item in enumerate(node))
    return None


def _is_resource_type(name: str) -> bool:
    try:
        model = get_fhir_model_class(name)
    except ValueError:
        return False
    return issubclass(model, Resource)


# -- turning resources into contents ------------------------------------------


class _Index:
    """Resolves references inside one bundle (FHIR R4 section 3.3.1)."""

    def __init__(self, resources: list[tuple[str | None, dict[str, Any]]]) -> None:
        self._by_key: dict[str, dict[str, Any]] = {}
        self._by_identifier: dict[tuple[str, str, str], dict[str, Any]] = {}
        for full_url, resource in resources:
            self.add(resource, full_url)

    @classmethod
    def of_contained(cls, resource: dict[str, Any]) -> _Index:
        """An index of a resource's `contained` resources, keyed `#id`."""
        index = cls([])
        for inner in resource.get("contained", ()):
            if isinstance(inner, dict) and inner.get("resourceType"):
                index.add(inner, f"#{inner.get('id', '')}")
        return index

    def add(self, resource: dict[str, Any], full_url: str | None = None) -> None:
        kind = resource["resourceType"]
        if full_url:
            self._by_key[full_url] = resource
        if resource.get("id"):
            self._by_key[f"{kind}/{resource['id']}"] = resource
        for ident in resource.get("identifier", ()):
            key = (kind, ident.get("system", ""), ident.get("value", ""))
            self._by_identifier[key] = resource

    def resolve(self, ref: Any, kind: str) -> dict[str, Any] | None:
        """The resource of type `kind` that `ref` (a Reference) points to."""
        if not isinstance(ref, dict):
            return None
        found: dict[str, Any] | None = None
        text = ref.get("reference")
        if isinstance(text, str):
            found = self._by_key.get(text)
            if found is None and "?identifier=" in text:
                kind_part, _, query = text.partition("?identifier=")
                system, _, value = query.rpartition("|")
                found = self._by_identifier.get((kind_part, system, value))
            if found is None and "/" in text:
                parts = text.split("/_history/")[0].rstrip("/").split("/")
                if len(parts) >= 2:
                    found = self._by_key.get(f"{parts[-2]}/{parts[-1]}")
        elif isinstance(ref.get("identifier"), dict):
            ident = ref["identifier"]
            key = (kind, ident.get("system", ""), ident.get("value", ""))
            found = self._by_identifier.get(key)
        if found is not None and found.get("resourceType") != kind:
            return None
        return found


def _contents(
    name: str, bundle_type: str, entries: list[dict[str, Any]]
) -> BundleContents:
    resources = [(e.get("fullUrl"), e["resource"]) for e in entries]
    index = _Index(resources)
    contents = BundleContents(source=name, bundle_type=bundle_type)
    for _, resource in resources:
        kind = resource["resourceType"]
        if kind == "Patient":
            patient = _patient(resource)
            contents.patients[patient.id] = patient
        elif kind == "Organization":
            org = OrgInfo(id=str(resource.get("id", "")), name=resource.get("name", ""))
            contents.organizations[org.id] = org
        elif kind == "Encounter":
            encounter = _encounter(resource, index)
            contents.encounters[encounter.id] = encounter
    for _, resource in resources:
        if resource["resourceType"] != "Claim":
            continue
        try:
            problems = validate_claim(resource)
            if problems:
                raise ClaimRefused(_claim_id(resource), problems)
            patient_id, treatment = _claim_to_treatment(resource, index)
        except ClaimRefused as exc:
            contents.refused.append(RefusedClaim(exc.claim_id, exc.errors))
            continue
        contents.treatments.append((patient_id, treatment))
    return contents


def _patient(resource: dict[str, Any]) -> PatientInfo:
    return PatientInfo(
        id=str(resource.get("id", "")),
        mrn=_mrn(resource),
        name=_display_name(resource),
    )


def _mrn(patient: dict[str, Any]) -> str | None:
    """The medical record number: identifier typed MR (HL7 v2 table 0203)."""
    fallback = None
    for ident in patient.get("identifier", ()):
        codings = (ident.get("type") or {}).get("coding", ())
        if any(c.get("code") == "MR" for c in codings) and ident.get("value"):
            return str(ident["value"])
        if ident.get("system") == SYNTHEA_SYSTEM and ident.get("value"):
            fallback = str(ident["value"])
    return fallback


def _display_name(patient: dict[str, Any]) -> str:
    names = patient.get("name") or [{}]
    name = names[0]
    if name.get("text"):
        return str(name["text"])
    # A null in `given` stands for a name part that has only extensions.
    given = [part for part in name.get("given", ()) if isinstance(part, str)]
    return " ".join([*given, name.get("family", "")]).strip()


def _encounter(resource: dict[str, Any], index: _Index) -> EncounterInfo:
    period = resource.get("period") or {}
    patient = index.resolve(resource.get("subject"), "Patient") or {}
    provider = index.resolve(resource.get("serviceProvider"), "Organization") or {}
    return EncounterInfo(
        id=str(resource.get("id", "")),
        patient_id=str(patient.get("id", "")),
        start=str(period.get("start", "")),
        end=str(period.get("end", "")),
        class_code=str((resource.get("class") or {}).get("code", "")),
        type=_first_code(resource.get("type", [{}])[0] if resource.get("type") else {}),
        provider=str(provider.get("id", "")),
    )


def _first_code(concept: dict[str, Any]) -> str:
    codings = concept.get("coding") or []
    if not codings:
        return ""
    return f"{codings[0].get('system', '')}|{codings[0].get('code', '')}"


def _claim_to_treatment(
    claim: dict[str, Any], index: _Index, *, standalone: bool = False
) -> tuple[str, Treatment]:
    """Flatten one FHIR Claim (JSON) into `(patient id, Treatment)`.

    In a bundle the patient, provider and encounter must resolve. A
    `standalone` Claim (one sent on its own, as in `$submit`) may point
    outside itself: the patient is then named by its identifier or reference,
    the encounter may be absent, and the service period falls back from
    `billablePeriod` to the items' `serviced[x]` and to `created`.

    Raises `ClaimRefused` listing every field at fault.
    """
    errors: list[FieldError] = []
    claim_id = str(claim.get("id", ""))
    if not claim_id:
        errors.append(FieldError("Claim.id", "missing; it is the invoice number"))

    # 1. Who: the patient (for the MRN) and the provider organisation.
    patient = index.resolve(claim.get("patient"), "Patient")
    mrn = None if patient is None else _mrn(patient)
    if mrn is None and standalone:
        mrn = _external_id(claim.get("patient"), patient)
    if mrn is None:
        if patient is None:
            problem = "does not resolve to a Patient"
        elif standalone:
            problem = "the Patient has no identifier to match a member by"
        else:
            problem = "the Patient has no medical record number"
        errors.append(FieldError("Claim.patient", problem))
    provider_id, provider_name = _provider(claim.get("provider"), index)
    if not provider_id and standalone:
        provider_id = _external_id(claim.get("provider"), None) or ""
    if not provider_id:
        errors.append(
            FieldError("Claim.provider", "does not resolve to an Organization")
        )

    # 2. What and when: the encounter, the service period, the claim type.
    encounter_id = _encounter_of(claim, index, errors, required=not standalone)
    period = claim.get("billablePeriod") or {}
    if standalone and not period.get("start"):
        period = _service_period(claim)
    if not period.get("start"):
        errors.append(FieldError("Claim.billablePeriod.start", "missing"))
    codings = (claim.get("type") or {}).get("coding") or [{}]
    claim_type = str(codings[0].get("code", ""))
    if not claim_type:
        errors.append(FieldError("Claim.type.coding[0].code", "missing"))

    # 3. How much: lines priced by the residual rule (module docstring).
    lines, total, currency = _price_lines(claim, errors)
    diagnoses = _diagnoses(claim, index, errors)
    if errors:
        raise ClaimRefused(claim_id or "(no id)", errors)

    treatment = Treatment(
        invoice=claim_id,
        encounter=encounter_id,
        patient_ref=str(mrn),
        provider=provider_id,
        provider_name=provider_name,
        claim_type=claim_type,
        start=str(period["start"]),
        end=str(period.get("end", period["start"])),
        currency=currency,
        lines=lines,
        diagnoses=diagnoses,
        total=total,
    )
    return str(patient.get("id", "")) if patient else "", treatment


def _provider(ref: Any, index: _Index) -> tuple[str, str]:
    """The provider organisation's id and name.

    An organisation that lives in another bundle (Synthea's hospital bundle)
    is accepted when the reference names it by `Organization/id` or by the
    conditional `Organization?identifier=...|id`; its name is filled in later
    by `load_directory`.
    """
    org = index.resolve(ref, "Organization")
    if org is not None:
        return str(org.get("id", "")), str(org.get("name", ""))
    text = ref.get("reference", "") if isinstance(ref, dict) else ""
    if text.startswith("Organization?identifier="):
        return text.rpartition("|")[2], ""
    if text.startswith("Organization/"):
        return text.removeprefix("Organization/"), ""
    return "", ""


def _external_id(ref: Any, resolved: dict[str, Any] | None) -> str | None:
    """How a standalone Claim names a party it does not contain."""
    if resolved is not None:
        for ident in resolved.get("identifier", ()):
            if ident.get("value"):
                return str(ident["value"])
    if not isinstance(ref, dict):
        return None
    ident = ref.get("identifier") or {}
    if ident.get("value"):
        return str(ident["value"])
    text = ref.get("reference")
    if isinstance(text, str) and text and not text.startswith("#"):
        return text
    return None


def _service_period(claim: dict[str, Any]) -> dict[str, Any]:
    """The span of the items' `serviced[x]`, else the day the claim was created."""
    days: list[str] = []
    for item in claim.get("item", ()):
        if item.get("servicedDate"):
            days.append(str(item["servicedDate"]))
        period = item.get("servicedPeriod") or {}
        days.extend(str(period[k]) for k in ("start", "end") if period.get(k))
    if days:
        return {"start": min(days), "end": max(days)}
    created = claim.get("created")
    return {"start": str(created), "end": str(created)} if created else {}


def _encounter_of(
    claim: dict[str, Any],
    index: _Index,
    errors: list[FieldError],
    *,
    required: bool = True,
) -> str:
    for i, item in enumerate(claim.get("item", ())):
        for j, ref in enumerate(item.get("encounter", ())):
            encounter = index.resolve(ref, "Encounter")
            if encounter is None and not required:
                return _external_id(ref, None) or ""
            if encounter is None:
                errors.append(
                    FieldError(
                        f"Claim.item[{i}].encounter[{j}]",
                        "does not resolve to an Encounter",
                    )
                )
                return ""
            return str(encounter.get("id", ""))
    if required:
        errors.append(FieldError("Claim.item.encounter", "no item names its encounter"))
    return ""


def _price_lines(
    claim: dict[str, Any], errors: list[FieldError]
) -> tuple[tuple[Line, ...], Decimal, str]:
    """Apply the residual rule (module docstring) to the claim's items."""
    items = claim.get("item") or []
    if not items:
        errors.append(FieldError("Claim.item", "the claim has no items"))
        return (), Decimal(0), ""
    total_money = claim.get("total")
    currency = str((total_money or {}).get("currency", ""))
    if total_money is not None and not currency:
        errors.append(FieldError("Claim.total.currency", "missing"))

    # 1. Lines with `net` keep it; all must share one currency.
    nets: list[Decimal | None] = []
    for i, item in enumerate(items):
        net = item.get("net")
        if net is None:
            nets.append(None)
            continue
        item_currency = str(net.get("currency", ""))
        if not item_currency:
            errors.append(FieldError(f"Claim.item[{i}].net.currency", "missing"))
        elif not currency:
            currency = item_currency
        elif item_currency != currency:
            errors.append(
                FieldError(
                    f"Claim.item[{i}].net.currency", "differs from the claim currency"
                )
            )
        nets.append(_amount(net, f"Claim.item[{i}].net.value", errors))
    priced = sum((n for n in nets if n is not None), Decimal(0))
    if priced > MAX_AMOUNT:
        errors.append(
            FieldError("Claim.item", f"the nets add up to more than {MAX_AMOUNT}")
        )

    # 2. The residual goes to the first unpriced line; others are zero.
    if total_money is None:
        if all(n is None for n in nets):
            errors.append(FieldError("Claim.total", "missing and no item has a net"))
        total = priced
    else:
        total = _amount(total_money, "Claim.total.value", errors)
    residual = total - priced
    first_unpriced = next((i for i, n in enumerate(nets) if n is None), None)
    if residual < 0:
        errors.append(FieldError("Claim.total", "is less than the sum of item.net"))
    elif residual > 0 and first_unpriced is None:
        errors.append(
            FieldError(
                "Claim.total", "exceeds the sum of item.net; no item is unpriced"
            )
        )

    # 3. Build the lines.
    lines = []
    for i, (item, net) in enumerate(zip(items, nets, strict=True)):
        if net is not None:
            amount = net
        elif i == first_unpriced and residual > 0:
            amount = residual
        else:
            amount = Decimal(0)
        concept = item.get("productOrService") or {}
        coding = (concept.get("coding") or [{}])[0]
        if not coding.get("code"):
            errors.append(
                FieldError(
                    f"Claim.item[{i}].productOrService.coding[0].code", "missing"
                )
            )
        lines.append(
            Line(
                sequence=int(item.get("sequence", i + 1)),
                system=str(coding.get("system", "")),
                code=str(coding.get("code", "")),
                display=str(coding.get("display") or concept.get("text") or ""),
                amount=amount,
            )
        )
    return tuple(lines), total, currency


def _diagnoses(
    claim: dict[str, Any], index: _Index, errors: list[FieldError]
) -> tuple[str, ...]:
    codes = []
    for i, diagnosis in enumerate(claim.get("diagnosis", ())):
        concept = diagnosis.get("diagnosisCodeableConcept")
        if concept is None and "diagnosisReference" in diagnosis:
            condition = index.resolve(diagnosis["diagnosisReference"], "Condition")
            if condition is None:
                errors.append(
                    FieldError(
                        f"Claim.diagnosis[{i}].diagnosisReference",
                        "does not resolve to a Condition",
                    )
                )
                continue
            concept = condition.get("code") or {}
        code = _first_code(concept or {})
        if not code:
            errors.append(FieldError(f"Claim.diagnosis[{i}]", "has no coded diagnosis"))
            continue
        codes.append(code)
    return tuple(codes)


# -- what a payer must refuse -------------------------------------------------

FM_STATUS = frozenset({"active", "cancelled", "draft", "entered-in-error"})
"""FHIR R4 `Claim.status`, required binding to FinancialResourceStatusCodes."""
CLAIM_USE = frozenset({"claim", "preauthorization", "predetermination"})
"""FHIR R4 `Claim.use`, required binding to Use."""
CLAIM_TYPE_SYSTEM = "http://terminology.hl7.org/CodeSystem/claim-type"
CLAIM_TYPES = frozenset({"institutional", "oral", "pharmacy", "professional", "vision"})

# ISO 4217 alphabetic codes in use (2024 list), less XTS (testing) and XXX
# (no currency), which no claim can be paid in.
ISO_4217 = frozenset(
    """
    AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BHD BIF BMD BND BOB
    BOV BRL BSD BTN BWP BYN BZD CAD CDF CHE CHF CHW CLF CLP CNY COP COU CRC CUC
    CUP CVE CZK DJF DKK DOP DZD EGP ERN ETB EUR FJD FKP GBP GEL GHS GIP GMD GNF
    GTQ GYD HKD HNL HTG HUF IDR ILS INR IQD IRR ISK JMD JOD JPY KES KGS KHR KMF
    KPW KRW KWD KYD KZT LAK LBP LKR LRD LSL LYD MAD MDL MGA MKD MMK MNT MOP MRU
    MUR MVR MWK MXN MXV MYR MZN NAD NGN NIO NOK NPR NZD OMR PAB PEN PGK PHP PKR
    PLN PYG QAR RON RSD RUB RWF SAR SBD SCR SDG SEK SGD SHP SLE SLL SOS SRD SSP
    STN SVC SYP SZL THB TJS TMT TND TOP TRY TTD TWD TZS UAH UGX USD USN UYI UYU
    UYW UZS VED VES VND VUV WST XAF XAG XAU XBA XBB XBC XBD XCD XCG XDR XOF XPD
    XPF XPT XSU XUA YER ZAR ZMW ZWG ZWL
    """.split()
)
_MONEY_FIELDS = frozenset({"total", "unitPrice", "net"})
_TIMED = re.compile(r"\d{4}-\d{2}-\d{2}T")
_ZONED = re.compile(r"(Z|[+-]\d{2}:\d{2})$")
# Claim elements whose Reference must point at one of these types (FHIR R4
# section 13.3.5, Claim resource content).
_REFERENCE_TYPES: dict[str, frozenset[str]] = {
    "patient": frozenset({"Patient"}),
    "provider": frozenset({"Practitioner", "PractitionerRole", "Organization"}),
    "insurer": frozenset({"Organization"}),
    "enterer": frozenset({"Practitioner", "PractitionerRole"}),
    "facility": frozenset({"Location"}),
    "coverage": frozenset({"Coverage"}),
    "prescription": frozenset(
        {"DeviceRequest", "MedicationRequest", "VisionPrescription"}
    ),
    "encounter": frozenset({"Encounter"}),
}
_SEQUENCE_LINKS = {
    "careTeamSequence": "careTeam",
    "diagnosisSequence": "diagnosis",
    "procedureSequence": "procedure",
    "informationSequence": "supportingInfo",
}


def validate_claim(resource: Any) -> list[FieldError]:
    """What a payer must refuse in one FHIR R4 Claim (JSON), field by field.

    `fhir.resources` accepts values a payer cannot act on; this returns an
    empty list only when the claim is also:

    1. a Claim the R4B model accepts, with no JSON `null` where FHIR has
       none (a `null` is the one error returned);
    2. coded inside its required value sets: `status` (fm-status), `use`
       (claim-use), and an HL7 `type` code (claim-type);
    3. complete where R4 requires it: `type`, `patient`, `created`,
       `provider`, `priority`, at least one `insurance`, exactly one of them
       `focal`, at least one `item`, unique item sequences;
    4. priced in money a payer can pay: every Money with a `value` that is
       not negative and an ISO 4217 `currency`;
    5. dated unambiguously: a date-time with a time carries its time zone
       (FHIR R4 section 2.24.0.1, dateTime);
    6. self-consistent: `#id` references find a contained resource of an
       allowed type, and an item's `...Sequence` numbers exist.

    References outside the claim (`Patient/1`) are not resolved here; the
    caller that holds a bundle resolves them.
    """
    if not isinstance(resource, dict) or resource.get("resourceType") != "Claim":
        return [FieldError("Claim.resourceType", "must be 'Claim'")]

    # 1. JSON nulls (the model would take them for absent elements), then
    # the R4B model.
    null = _null(resource, "Claim")
    if null is not None:
        return [null]
    model: list[FieldError] = []
    try:
        Claim.model_validate(resource)
    except pydantic.ValidationError as exc:
        model.extend(_model_errors(exc))
    except (AttributeError, KeyError, TypeError, ValueError) as exc:
        # NOTE: as in `read_bundle`, fhir.resources raises these for some shapes.
        model.append(
            FieldError("Claim", f"the R4B model cannot read it ({type(exc).__name__})")
        )

    # 2-6. The checks below read elements as R4 types them. Where the model
    # found an element of the wrong type they may trip over it; its errors
    # then stand for the claim (with what the checks found before). Where a
    # check and the model fault the same field, the check says it better
    # ("is not a finite number", not the model's regular expression).
    errors: list[FieldError] = []
    try:
        _payer_checks(resource, errors)
    except (AttributeError, KeyError, TypeError):
        if not model:
            raise
    checked = {error.path for error in errors}
    return [error for error in model if error.path not in checked] + errors


def _payer_checks(resource: dict[str, Any], errors: list[FieldError]) -> None:
    """Checks 2 to 6 of `validate_claim`, appending to `errors`."""
    # 2. Required value sets.
    if resource.get("status") not in FM_STATUS:
        errors.append(FieldError("Claim.status", "not in the fm-status value set"))
    if resource.get("use") not in CLAIM_USE:
        errors.append(FieldError("Claim.use", "not in the claim-use value set"))
    for i, coding in enumerate((resource.get("type") or {}).get("coding") or ()):
        system, code = coding.get("system"), coding.get("code")
        if system == CLAIM_TYPE_SYSTEM and code not in CLAIM_TYPES:
            errors.append(
                FieldError(f"Claim.type.coding[{i}].code", "not a claim-type code")
            )

    # 3. Required elements and focal insurance.
    for name in ("type", "patient", "created", "provider", "priority"):
        if not resource.get(name):
            errors.append(FieldError(f"Claim.{name}", "missing"))
    insurance = resource.get("insurance") or []
    if not insurance:
        errors.append(FieldError("Claim.insurance", "empty; one focal coverage needed"))
    elif sum(1 for entry in insurance if entry.get("focal") is True) != 1:
        errors.append(FieldError("Claim.insurance", "exactly one must be focal"))
    items = resource.get("item") or []
    if not items:
        errors.append(FieldError("Claim.item", "empty; nothing is billed"))
    sequences = [item.get("sequence") for item in items]
    for i, sequence in enumerate(sequences):
        if sequence in sequences[:i]:
            errors.append(FieldError(f"Claim.item[{i}].sequence", "repeats"))

    # 4-5. Money and date-times, wherever they are; a period in order.
    _walk(resource, "Claim", errors)
    period = resource.get("billablePeriod")
    if isinstance(period, dict) and _ends_before_start(period):
        errors.append(FieldError("Claim.billablePeriod.end", "is before its start"))

    # 6. Internal references.
    contained = {
        f"#{inner.get('id')}": inner.get("resourceType")
        for inner in resource.get("contained", ())
        if isinstance(inner, dict)
    }
    _check_references(resource, "Claim", contained, errors, parent="")
    for i, item in enumerate(items):
        for field_name, target in _SEQUENCE_LINKS.items():
            known = {entry.get("sequence") for entry in resource.get(target, ())}
            for j, number in enumerate(item.get(field_name, ())):
                if number not in known:
                    errors.append(
                        FieldError(
                            f"Claim.item[{i}].{field_name}[{j}]",
                            f"no {target} entry has this sequence",
                        )
                    )


def _model_errors(exc: pydantic.ValidationError) -> list[FieldError]:
    found = []
    for error in exc.errors():
        path = "Claim"
        for part in error["loc"]:
            path += f"[{part}]" if isinstance(part, int) else f".{_member(part)}"
        message = str(error.get("msg", "invalid")).removeprefix("Value error, ")
        offending = error.get("input")
        if isinstance(offending, str | int | Decimal) and str(offending) in message:
            message = "invalid value"
        found.append(FieldError(path, message[:160]))
    return found


def _walk(node: Any, path: str, errors: list[FieldError]) -> None:
    """Checks 4 and 5 of `validate_claim` over every element below `node`."""
    if isinstance(node, list):
        for i, value in enumerate(node):
            _walk(value, f"{path}[{i}]", errors)
        return
    if not isinstance(node, dict):
        return
    for key, value in node.items():
        here = f"{path}.{key}"
        if key in _MONEY_FIELDS and isinstance(value, dict):
            _check_money(value, here, errors)
        elif (
            isinstance(value, str) and _TIMED.match(value) and not _ZONED.search(value)
        ):
            errors.append(FieldError(here, "date-time without a time zone"))
        else:
            _walk(value, here, errors)


def _amount(money: dict[str, Any], path: str, errors: list[FieldError]) -> Decimal:
    """The `value` of a FHIR Money; 0, with the error noted, when it is unusable."""
    value = money.get("value")
    if value is None:
        errors.append(FieldError(path, "missing"))
        return Decimal(0)
    try:
        return parse_amount(value)
    except AmountError as problem:
        errors.append(FieldError(path, str(problem)))
        return Decimal(0)


def _ends_before_start(period: dict[str, Any]) -> bool:
    """Whether a Period's end is before its start; False when either is
    absent or partial (`2024-03`), or one has a time zone and the other not."""
    try:
        start = datetime.fromisoformat(str(period["start"]))
        end = datetime.fromisoformat(str(period["end"]))
        return end < start
    except (KeyError, ValueError, TypeError):
        return False


def _check_money(money: dict[str, Any], path: str, errors: list[FieldError]) -> None:
    currency = money.get("currency")
    if not currency:
        errors.append(FieldError(f"{path}.currency", "missing"))
    elif currency not in ISO_4217:
        errors.append(FieldError(f"{path}.currency", "not an ISO 4217 code"))
    _amount(money, f"{path}.value", errors)


def _check_references(
    node: Any,
    path: str,
    contained: dict[str, str | None],
    errors: list[FieldError],
    *,
    parent: str,
) -> None:
    """Check 6 of `validate_claim`: `#id` targets and reference types."""
    if isinstance(node, list):
        for i, value in enumerate(node):
            _check_references(value, f"{path}[{i}]", contained, errors, parent=parent)
        return
    if not isinstance(node, dict):
        return
    text = node.get("reference")
    if isinstance(text, str):
        allowed = _REFERENCE_TYPES.get(parent)
        target: str | None = None
        if text.startswith("#"):
            if text not in contained:
                errors.append(FieldError(path, "no contained resource has this id"))
                return
            target = contained[text]
        elif "/" in text and "?" not in text and not text.startswith("urn:"):
            target = text.split("/_history/")[0].rstrip("/").split("/")[-2]
        if allowed and target and target not in allowed:
            errors.append(
                FieldError(path, f"must refer to {' or '.join(sorted(allowed))}")
            )
        return
    for key, value in node.items():
        if key != "contained":
            _check_references(value, f"{path}.{key}", contained, errors, parent=key)


def treatment_from_claim(claim: Any) -> Treatment:
    """Flatten a FHIR R4 Claim sent on its own (not in a bundle) into a Treatment.

    The claim must pass `validate_claim`, be `active` and have `use` `claim`
    (a draft was never submitted, a cancelled or entered-in-error claim is
    withdrawn, and pre-authorisations and predeterminations are not paid).
    Parties it does not contain are named by identifier or reference (see
    `_claim_to_treatment`); lines are priced by the residual rule.

    Raises `ClaimRefused` listing every field at fault.
    """
    claim_id = str(claim.get("id", "(no id)")) if isinstance(claim, dict) else "?"
    problems = validate_claim(claim)
    if problems:
        raise ClaimRefused(claim_id, problems)
    if claim["status"] != "active":
        raise ClaimRefused(
            claim_id, [FieldError("Claim.status", "only an active claim is paid")]
        )
    if claim["use"] != "claim":
        raise ClaimRefused(
            claim_id, [FieldError("Claim.use", "only use 'claim' is adjudicated")]
        )
    _, treatment = _claim_to_treatment(
        claim, _Index.of_contained(claim), standalone=True
    )
    return treatment


RELATED_CLAIM_SYSTEM = (
    "http://terminology.hl7.org/CodeSystem/related-claim-relationship"
)


def prior_claim(claim: dict[str, Any]) -> str | None:
    """The claim this one corrects, if it says so (R4 `Claim.related`).

    A correction names the claim it replaces in `Claim.related` with the
    relationship `prior`; this returns that claim's id (from a `Claim/id`
    reference) or identifier value, else None.
    """
    for related in claim.get("related", ()):
        codings = (related.get("relationship") or {}).get("coding", ())
        if not any(c.get("code") == "prior" for c in codings):
            continue
        ref = related.get("claim") or {}
        text = ref.get("reference")
        if isinstance(text, str) and text:
            return text.rsplit("/", 1)[-1]
        value = (ref.get("identifier") or {}).get("value")
        if value:
            return str(value)
    return None
