"""PII detection and replacement before indexing, with an encrypted placeholder->original mapping.

Detectors are offline regular expressions plus validators (Luhn for cards, ISO 7064 mod-97 for IBANs,
octet/group checks for IP addresses, issued-range rules for US SSNs, NANP rules for US phone numbers).
Person names are found only next to a cue (an honorific such as "Dr." or "Ms.", or "my name is"/"Name:"):
there is no offline NER model here, so a bare name ("ask Sarah Connor") is not detected.
"""

from __future__ import annotations

import bisect
import dataclasses
import hashlib
import ipaddress
import json
import os
import re
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ragroute.tools.errors import ConfigError, InputError
from ragroute.tools.types import Document

KEY_ENV = "RAGROUTE_PII_KEY"
_KEYGEN_HINT = '`python -c "from ragroute.tools.pii import generate_key; print(generate_key())"`'

EMAIL = "EMAIL"
PHONE = "PHONE"
CREDIT_CARD = "CREDIT_CARD"
IBAN = "IBAN"
IP_ADDRESS = "IP_ADDRESS"
SSN = "SSN"
PERSON = "PERSON"

# Order is also the priority when two detectors claim overlapping text: validated, specific types first.
ENTITY_TYPES: tuple[str, ...] = (EMAIL, IBAN, CREDIT_CARD, SSN, IP_ADDRESS, PHONE, PERSON)
_PRIORITY = {t: i for i, t in enumerate(ENTITY_TYPES)}

_PLACEHOLDER_RE = re.compile(r"<([A-Z_]+)_(\d+)>")
_MAPPING_ID_RE = re.compile(r"^[A-Za-z0-9_-]{1,128}$")


@dataclass(frozen=True)
class PiiEntity:
    """One detected PII span in the original text: `text[start:end]` is the value."""

    type: str
    start: int
    end: int
    text: str
    placeholder: str | None = None

    def to_dict(self, *, include_text: bool = False) -> dict[str, Any]:
        """JSON-safe view; the original value is left out unless asked for (keep it out of traces)."""
        d: dict[str, Any] = {"type": self.type, "start": self.start, "end": self.end}
        if self.placeholder is not None:
            d["placeholder"] = self.placeholder
        if include_text:
            d["text"] = self.text
        return d


@dataclass
class RedactionResult:
    """Redacted text, the entities found (spans in the original text) and where the mapping is stored."""

    text: str
    entities: list[PiiEntity] = field(default_factory=list)
    mapping_id: str | None = None

    def counts(self) -> dict[str, int]:
        """Number of entities per type."""
        out: dict[str, int] = {}
        for e in self.entities:
            out[e.type] = out.get(e.type, 0) + 1
        return out

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe view without the original values."""
        return {
            "text": self.text,
            "entities": [e.to_dict() for e in self.entities],
            "mapping_id": self.mapping_id,
        }


# --------------------------------------------------------------------------------------------- validators


def luhn_valid(digits: str) -> bool:
    """True when an all-digit string passes the Luhn checksum."""
    if not digits.isascii() or not digits.isdigit():
        return False
    total = 0
    for i, ch in enumerate(reversed(digits)):
        n = ord(ch) - 48
        if i % 2 == 1:
            n *= 2
            if n > 9:
                n -= 9
        total += n
    return total % 10 == 0


# ISO 13616 IBAN lengths per country.
IBAN_LENGTHS: dict[str, int] = {
    "AD": 24, "AE": 23, "AL": 28, "AT": 20, "AZ": 28, "BA": 20, "BE": 16, "BG": 22, "BH": 22, "BR": 29,
    "BY": 28, "CH": 21, "CR": 22, "CY": 28, "CZ": 24, "DE": 22, "DK": 18, "DO": 28, "EE": 20, "EG": 29,
    "ES": 24, "FI": 18, "FO": 18, "FR": 27, "GB": 22, "GE": 22, "GI": 23, "GL": 18, "GR": 27, "GT": 28,
    "HR": 21, "HU": 28, "IE": 22, "IL": 23, "IQ": 23, "IS": 26, "IT": 27, "JO": 30, "KW": 30, "KZ": 20,
    "LB": 28, "LC": 32, "LI": 21, "LT": 20, "LU": 20, "LV": 21, "MC": 27, "MD": 24, "ME": 22, "MK": 19,
    "MR": 27, "MT": 31, "MU": 30, "NL": 18, "NO": 15, "PK": 24, "PL": 28, "PS": 29, "PT": 25, "QA": 29,
    "RO": 24, "RS": 22, "SA": 24, "SC": 31, "SE": 24, "SI": 19, "SK": 24, "SM": 27, "ST": 25, "SV": 28,
    "TL": 23, "TN": 24, "TR": 26, "UA": 29, "VA": 22, "VG": 24, "XK": 20,
}  # fmt: skip


def iban_valid(value: str) -> bool:
    """True when `value` (spaces allowed) has a known country length and passes ISO 7064 mod-97."""
    s = value.replace(" ", "")
    if not s.isascii() or not s.isalnum() or len(s) < 5:
        return False
    s = s.upper()
    if IBAN_LENGTHS.get(s[:2]) != len(s) or not s[2:4].isdigit():
        return False
    rearranged = s[4:] + s[:4]
    return int("".join(str(int(c, 36)) for c in rearranged)) % 97 == 1


_INVALID_SSNS = {"078051120", "219099999", "123456789"}  # published/advertising numbers, never issued


def ssn_valid(area: str, group: str, serial: str) -> bool:
    """True for a US SSN outside the never-issued ranges (area 000/666/9xx, group 00, serial 0000)."""
    if area in ("000", "666") or area.startswith("9") or group == "00" or serial == "0000":
        return False
    return (area + group + serial) not in _INVALID_SSNS


# ----------------------------------------------------------------------------------------------- detectors

_A = re.ASCII
_EMAIL_RE = re.compile(
    r"(?<![\w.%+-])[A-Za-z0-9][A-Za-z0-9._%+-]{0,63}@"
    r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,24}(?![\w-]|\.[A-Za-z0-9])",
    _A,
)
_CARD_RE = re.compile(r"(?<![\w.,-])\d[\d -]{11,24}\d(?![\w]|[.,-]\d)", _A)
_IBAN_START_RE = re.compile(r"(?<![A-Za-z0-9])[A-Z]{2}\d{2}", _A)
# "," in the look-behinds: digits after a thousands separator ("49,273 400 1904") are not an identifier
_SSN_RE = re.compile(r"(?<![\w.,-])(\d{3})-(\d{2})-(\d{4})(?![\w]|[.,-]\d)", _A)
# spaced or bare nine digits are an SSN only right after a cue ("SSN", "social security number")
_SSN_CUED_RE = re.compile(r"(?<![\w.,-])(\d{3})[ ]?(\d{2})[ ]?(\d{4})(?![\w]|[.,-]\d)", _A)
_SSN_CUE_RE = re.compile(r"(?i)\b(?:ssn|social\s+security(?:\s+(?:number|no\.?))?)\b\W{0,5}$")
_IPV4_RE = re.compile(r"(?<![\w.])(?:\d{1,3}\.){3}\d{1,3}(?![\w]|\.\d)", _A)
_IPV6_RE = re.compile(
    r"(?<![\w:.])(?:[0-9A-Fa-f]{0,4}:){2,7}(?:(?:\d{1,3}\.){3}\d{1,3}|[0-9A-Fa-f]{1,4})?(?![\w:])", _A
)
_VERSION_CUE_RE = re.compile(
    r"(?i)\b(?:version|ver|release|build|firmware|chapter|section|v|rev|revision|patch)\.?\s*$"
)
_PHONE_INTL_RE = re.compile(r"(?<![\w+])\+\d[\d ().-]{6,22}\d(?!\w)", _A)
_PHONE_NANP_RE = re.compile(
    r"(?<![\w+.,-])(?:1[ .-]?)?(?:\(([2-9]\d{2})\) ?|([2-9]\d{2})([ .-]))([2-9]\d{2})([ .-])(\d{4})"
    r"(?![\w]|[.,-]\d)",
    _A,
)
_PHONE_TRUNK_RE = re.compile(r"(?<![\w+.,-])0\d{1,4}([ -])\d{3,4}\1?\d{3,4}(?![\w]|[.,-]\d)", _A)
_PHONE_LOCAL_RE = re.compile(r"(?<![\w+.,-])(?:\d{3}[ .-]\d{4}|\d{10})(?![\w]|[.,-]\d)", _A)
_PHONE_CUE_RE = re.compile(
    r"(?i)\b(?:phone|tel|telephone|call|dial|mobile|cell|fax|hotline|whatsapp|text)\b[^\n\d]{0,20}$"
)

_UP = "A-ZÀ-ÖØ-Þ"
_LO = "a-zß-öø-ÿ"
# initials ("J.", "A.P.") or a capitalised word whose inner parts start with ' - or a capital: O'Connor,
# Hans-Peter, McDonald, DiLaurentis (repetitions start with distinct characters, so no backtracking blow-up)
_NAME_TOKEN = rf"(?:(?:[{_UP}]\.){{1,3}}|[{_UP}][{_LO}]*(?:(?:['’-][{_UP}]?|[{_UP}])[{_LO}]+)*)"
_HONORIFIC = r"(?:Mr|Mrs|Ms|Miss|Mx|Dr|Prof|Sir|Dame|Lady|Lord|Rev|Fr|Capt|Col|Gen|Sgt|Lt|Hon|Judge)"
_HONORIFIC_WORDS = frozenset(_HONORIFIC[3:-1].split("|"))
_HON = rf"\b{_HONORIFIC}(?:\.|\b)"
_NAME = rf"{_NAME_TOKEN}(?:[ \t]+{_NAME_TOKEN}){{0,2}}"
_PERSON_RE = re.compile(
    rf"(?P<hon>{_HON}(?:[ \t]+{_HON})*)[ \t]+(?P<name>{_NAME})"
    rf"|(?:\b[Mm]y name is|\bName:|\bPatient:)[ \t]+(?P<name2>{_NAME})"
)
# honorifics that are also ordinary words in place and work names ("Notre Dame", "Lord Chancellor")
_AMBIGUOUS_HONORIFICS = frozenset({"Dame", "Lady", "Lord", "Judge", "Gen", "Col", "Hon", "Fr"})
# a capitalised word that ends a name: what follows is a place or institution named after someone
_NOT_NAME_WORDS = frozenset(
    "Island Islands Church Cathedral Street St Road Avenue Drive Boulevard Lane Square Building Complex "
    "Center Centre Hall School College University Hospital Department Award Trophy Cup Bridge Park Station "
    "House Museum Library Theatre Theater Institute Foundation Stadium High Chancellor Treasurer Steward "
    "Justice Chief Mayor President Bishop Protector Advocate Privy".split()
)
_PREV_WORD_RE = re.compile(r"(\S+)[ \t]+$")


def _emails(text: str) -> Iterable[tuple[int, int]]:
    for m in _EMAIL_RE.finditer(text):
        yield m.start(), m.end()


def _cards(text: str) -> Iterable[tuple[int, int]]:
    for m in _CARD_RE.finditer(text):
        raw = m.group()
        seps = {c for c in raw if not c.isdigit()}
        if len(seps) > 1 or "  " in raw or "--" in raw:
            continue
        digits = raw.replace(" ", "").replace("-", "")
        if not 13 <= len(digits) <= 19 or digits[0] not in "23456":
            continue
        if seps:
            groups = [len(g) for g in re.split(r"[ -]", raw)]
            # 4-4-4-4(-3), Amex 4-6-5, Diners 4-6-4
            if not (all(g == 4 for g in groups[:-1]) and 1 <= groups[-1] <= 4) and groups not in (
                [4, 6, 5],
                [4, 6, 4],
            ):
                continue
        if luhn_valid(digits):
            yield m.start(), m.end()


def _ibans(text: str) -> Iterable[tuple[int, int]]:
    for m in _IBAN_START_RE.finditer(text):
        want = IBAN_LENGTHS.get(m.group()[:2])
        if want is None:
            continue
        i, n = m.end(), 4
        while n < want and i < len(text):
            ch = text[i]
            if ch.isascii() and (ch.isdigit() or ch.isupper()):
                n += 1
                i += 1
            elif ch == " " and i + 1 < len(text) and text[i + 1].isascii() and text[i + 1].isalnum():
                i += 1
            else:
                break
        if n != want or (i < len(text) and text[i].isascii() and text[i].isalnum()):
            continue
        if iban_valid(text[m.start() : i]):
            yield m.start(), i


def _ssns(text: str) -> Iterable[tuple[int, int]]:
    for m in _SSN_RE.finditer(text):
        if ssn_valid(*m.groups()):
            yield m.start(), m.end()
    for m in _SSN_CUED_RE.finditer(text):
        if _SSN_CUE_RE.search(text[max(0, m.start() - 30) : m.start()]) and ssn_valid(*m.groups()):
            yield m.start(), m.end()


def _is_netmask(ip: ipaddress.IPv4Address) -> bool:
    bits = int(ip)
    inverted = ~bits & 0xFFFFFFFF
    return bits != 0 and (inverted & (inverted + 1)) == 0  # ones then zeros, e.g. 255.255.255.0


def _ips(text: str) -> Iterable[tuple[int, int]]:
    for m in _IPV4_RE.finditer(text):
        try:
            ip = ipaddress.IPv4Address(m.group())
        except ValueError:
            continue
        if _is_netmask(ip) or _VERSION_CUE_RE.search(text[max(0, m.start() - 12) : m.start()]):
            continue
        yield m.start(), m.end()
    for m in _IPV6_RE.finditer(text):
        raw = m.group()
        if raw.count(":") < 2 or not any(c.isalnum() for c in raw):
            continue
        try:
            ipaddress.IPv6Address(raw)
        except ValueError:
            continue
        yield m.start(), m.end()


def _phone_shape_ok(raw: str) -> bool:
    if re.search(r"[ .-]{2,}|\(\)|[ .-]\)|\([ .-]", raw):
        return False
    depth = 0
    for c in raw:
        depth += c == "("
        depth -= c == ")"
        if depth < 0 or depth > 1:
            return False
    return depth == 0


def _phones(text: str) -> Iterable[tuple[int, int]]:
    for m in _PHONE_INTL_RE.finditer(text):
        raw = m.group()
        digits = sum(c.isdigit() for c in raw)
        if 8 <= digits <= 15 and _phone_shape_ok(raw):
            yield m.start(), m.end()
    for m in _PHONE_NANP_RE.finditer(text):
        sep_area = m.group(3)
        # an unparenthesised area code must use the same separator as the rest ("415-555-0198")
        if sep_area is not None and sep_area != m.group(5):
            continue
        yield m.start(), m.end()
    for m in _PHONE_TRUNK_RE.finditer(text):
        if 10 <= sum(c.isdigit() for c in m.group()) <= 11:
            yield m.start(), m.end()
    for m in _PHONE_LOCAL_RE.finditer(text):
        if _PHONE_CUE_RE.search(text[max(0, m.start() - 30) : m.start()]):
            yield m.start(), m.end()


def _persons(text: str) -> Iterable[tuple[int, int]]:
    for m in _PERSON_RE.finditer(text):
        g = "name" if m.group("name") is not None else "name2"
        if g == "name":
            hons = [h.rstrip(".") for h in m.group("hon").split()]
            if all(h in _AMBIGUOUS_HONORIFICS for h in hons):
                prev = _PREV_WORD_RE.search(text, max(0, m.start() - 40), m.start())
                if prev and prev.group(1)[:1].isupper():
                    continue  # "Notre Dame", "The Lord Chancellor": part of a longer proper noun
        s = e = m.start(g)
        for tok in re.finditer(r"\S+", m.group(g)):
            word = tok.group()
            possessive = word.endswith(("'s", "’s"))
            word = word[:-2] if possessive else word
            if word in _NOT_NAME_WORDS or word.rstrip(".") in _HONORIFIC_WORDS:
                break
            e = s + tok.start() + len(word)
            if possessive:  # "Laura Keene's Theatre": the name ends here
                break
        if e - s >= 2:
            yield s, e


_DETECTORS = {
    EMAIL: _emails,
    IBAN: _ibans,
    CREDIT_CARD: _cards,
    SSN: _ssns,
    IP_ADDRESS: _ips,
    PHONE: _phones,
    PERSON: _persons,
}


def _check_entities(entities: Iterable[str] | None) -> tuple[str, ...]:
    if entities is None:
        return ENTITY_TYPES
    if isinstance(entities, str):
        entities = [entities]
    chosen = []
    for t in entities:
        if t not in _PRIORITY:
            raise ConfigError(f"unknown PII entity type {t!r}; options: {', '.join(ENTITY_TYPES)}")
        chosen.append(t)
    if not chosen:
        raise ConfigError(f"no PII entity types chosen; options: {', '.join(ENTITY_TYPES)}")
    return tuple(sorted(set(chosen), key=_PRIORITY.__getitem__))


def detect_pii(text: str, entities: Iterable[str] | None = None) -> list[PiiEntity]:
    """Find PII spans in `text`: sorted by start, never overlapping, always within the text."""
    if not isinstance(text, str):
        raise InputError(f"PII detection needs a str, got {type(text).__name__}")
    types = _check_entities(entities)
    candidates: list[tuple[int, int, int, str]] = []
    for t in types:
        for s, e in _DETECTORS[t](text):
            if 0 <= s < e <= len(text):
                candidates.append((_PRIORITY[t], -(e - s), s, t))
    # accepted spans, kept sorted and disjoint, so an overlap check only needs the two neighbours
    starts: list[int] = []
    ends: list[int] = []
    found: list[PiiEntity] = []
    for _, neg_len, s, t in sorted(candidates):
        e = s - neg_len
        i = bisect.bisect_left(starts, s)
        if (i > 0 and ends[i - 1] > s) or (i < len(starts) and starts[i] < e):
            continue
        starts.insert(i, s)
        ends.insert(i, e)
        found.append(PiiEntity(t, s, e, text[s:e]))
    found.sort(key=lambda x: x.start)
    return found


# ------------------------------------------------------------------------------------------ mapping store


def generate_key() -> str:
    """A fresh Fernet key suitable for RAGROUTE_PII_KEY."""
    from cryptography.fernet import Fernet

    return Fernet.generate_key().decode()


class PiiMappingStore:
    """Placeholder->original mappings, one Fernet-encrypted file per mapping id, written atomically."""

    def __init__(self, path: str | os.PathLike[str], key: str | bytes) -> None:
        try:
            from cryptography.fernet import Fernet
        except ImportError as exc:  # pragma: no cover - cryptography is a declared dependency of [pii]
            raise ConfigError("PII mapping storage needs 'cryptography': pip install ragroute[pii]") from exc
        try:
            self._fernet = Fernet(key.encode() if isinstance(key, str) else key)
        except (ValueError, TypeError) as exc:
            raise ConfigError(
                f"{KEY_ENV} is not a valid Fernet key (32 url-safe base64 bytes); generate one with "
                f"{_KEYGEN_HINT}"
            ) from exc
        self.path = Path(path)
        if self.path.exists() and not self.path.is_dir():
            raise ConfigError(f"PII store path {str(self.path)!r} exists and is not a directory")
        self.path.mkdir(parents=True, exist_ok=True)

    def _file(self, mapping_id: str) -> Path:
        if not isinstance(mapping_id, str) or not _MAPPING_ID_RE.match(mapping_id):
            raise InputError(f"invalid PII mapping id {mapping_id!r}; expected [A-Za-z0-9_-]{{1,128}}")
        return self.path / f"{mapping_id}.pii"

    def save(self, mapping_id: str, mapping: dict[str, str]) -> None:
        """Encrypt and store `mapping` under `mapping_id` (replacing any previous one)."""
        target = self._file(mapping_id)
        token = self._fernet.encrypt(json.dumps(mapping, ensure_ascii=False).encode("utf-8"))
        tmp = target.with_suffix(f".tmp-{uuid.uuid4().hex}")
        tmp.write_bytes(token)
        os.replace(tmp, target)

    def load(self, mapping_id: str) -> dict[str, str]:
        """Decrypt the mapping stored under `mapping_id`."""
        from cryptography.fernet import InvalidToken

        target = self._file(mapping_id)
        if not target.exists():
            raise InputError(f"unknown PII mapping id {mapping_id!r} in {str(self.path)!r}")
        try:
            data = self._fernet.decrypt(target.read_bytes())
        except InvalidToken as exc:
            raise ConfigError(
                f"cannot decrypt PII mapping {mapping_id!r}: {KEY_ENV} differs from the key used to store it"
            ) from exc
        return dict(json.loads(data.decode("utf-8")))

    def delete(self, mapping_id: str) -> bool:
        """Remove a stored mapping; True when one existed."""
        target = self._file(mapping_id)
        if target.exists():
            target.unlink()
            return True
        return False


# ------------------------------------------------------------------------------------------------ redactor


def mapping_id_for(doc_id: str) -> str:
    """Stable mapping id for a document id (re-redacting a document replaces its mapping)."""
    return "doc-" + hashlib.sha256(doc_id.encode("utf-8")).hexdigest()[:32]


# metadata keys whose values are identifiers or filter operands, never free text to redact
STRUCTURAL_METADATA = frozenset(
    {
        "doc_id",
        "parent_id",
        "chunk_index",
        "access_groups",
        "security_level",
        "version",
        "last_updated",
        "created_at",
        "updated_at",
        "doc_type",
        "language",
        "format",
        "source",
        "pii_counts",
        "pii_mapping_id",
    }
)


def _metadata_slots(meta: dict[str, Any]) -> list[tuple[str, int | None]]:
    """(key, list position or None) of every free-text string in `meta`: top-level values and strings in
    lists (lists are copied, so a later write never changes the caller's document)."""
    slots: list[tuple[str, int | None]] = []
    for key in sorted(meta, key=str):
        value = meta[key]
        if key in STRUCTURAL_METADATA:
            continue
        if isinstance(value, str):
            slots.append((key, None))
        elif isinstance(value, list | tuple):
            meta[key] = list(value)
            slots += [(key, i) for i, item in enumerate(value) if isinstance(item, str)]
    return slots


class PiiRedactor:
    """Replaces PII with typed placeholders (`<EMAIL_1>`), consistent within one document.

    With `store_path`, the placeholder->original mapping is stored encrypted (key from `key` or the
    RAGROUTE_PII_KEY environment variable) and `restore` can undo the redaction; without it the
    redaction is irreversible.
    """

    def __init__(
        self,
        entities: Iterable[str] | None = None,
        *,
        store_path: str | os.PathLike[str] | None = None,
        key: str | bytes | None = None,
    ) -> None:
        self.entities = _check_entities(entities)
        self.store: PiiMappingStore | None = None
        if store_path is not None:
            key = key if key is not None else os.environ.get(KEY_ENV)
            if not key:
                raise ConfigError(
                    f"storing the PII mapping at {str(store_path)!r} needs an encryption key: set {KEY_ENV} "
                    f"to a Fernet key ({_KEYGEN_HINT}), or use store_path=None to redact irreversibly"
                )
            self.store = PiiMappingStore(store_path, key)

    @property
    def reversible(self) -> bool:
        """True when mappings are stored and `restore` works."""
        return self.store is not None

    def detect(self, text: str) -> list[PiiEntity]:
        """PII spans in `text` for the configured entity types."""
        return detect_pii(text, self.entities)

    def redact(self, text: str, doc_id: str | None = None) -> RedactionResult:
        """Replace PII in `text`; store the mapping (when reversible) under an id derived from `doc_id`."""
        found = self.detect(text)
        literal = {m.group() for m in _PLACEHOLDER_RE.finditer(text)}
        assigned: dict[tuple[str, str], str] = {}
        counters: dict[str, int] = {}
        entities: list[PiiEntity] = []
        parts: list[str] = []
        pos = 0
        for ent in found:
            ph = assigned.get((ent.type, ent.text))
            if ph is None:
                n = counters.get(ent.type, 0)
                while True:
                    n += 1
                    ph = f"<{ent.type}_{n}>"
                    # never reuse a placeholder string that already occurs literally in the document
                    if ph not in literal:
                        break
                counters[ent.type] = n
                assigned[(ent.type, ent.text)] = ph
            parts.append(text[pos : ent.start])
            parts.append(ph)
            pos = ent.end
            entities.append(PiiEntity(ent.type, ent.start, ent.end, ent.text, ph))
        parts.append(text[pos:])
        redacted = "".join(parts)
        mapping_id = None
        if self.store is not None and entities:
            mapping_id = mapping_id_for(doc_id) if doc_id is not None else uuid.uuid4().hex
            self.store.save(mapping_id, {ph: orig for (_, orig), ph in assigned.items()})
        return RedactionResult(redacted, entities, mapping_id)

    def restore(self, text: str, mapping_id: str | None) -> str:
        """Put the original values back into (a part of) a redacted text; needs the encryption key."""
        if mapping_id is None:
            return text
        if self.store is None:
            raise ConfigError("this PiiRedactor has no store_path, so redactions cannot be restored")
        mapping = self.store.load(mapping_id)
        if not mapping:
            return text
        # placeholders never contain "<" or ">", so matches cannot overlap and one pass finds them all;
        # placeholder-like text that was in the original document is not in the mapping and stays as is
        return _PLACEHOLDER_RE.sub(lambda m: mapping.get(m.group(), m.group()), text)

    def forget(self, mapping_id: str) -> bool:
        """Delete a stored mapping (e.g. when its document is purged); True when one existed."""
        if self.store is None:
            return False
        return self.store.delete(mapping_id)

    def redact_document(self, doc: Document) -> tuple[Document, RedactionResult]:
        """A copy of `doc` with PII replaced in its title, its free-text metadata and its text (one
        placeholder set for all of them).

        Metadata strings (and strings inside lists) are redacted except under the structural keys of
        `STRUCTURAL_METADATA` (ids, ACL fields, versions, dates), which filters compare as they are. The
        copy's metadata records `pii_mapping_id` (when reversible) and `pii_counts`; entity spans in the
        result refer to "title\nvalue 1\n...\nvalue n\ntext" (newlines inside values read as spaces).
        """
        title = doc.title.replace("\n", " ")
        meta = dict(doc.metadata)
        slots = _metadata_slots(meta)
        values = [str(meta[k] if i is None else meta[k][i]).replace("\n", " ") for k, i in slots]
        res = self.redact("\n".join([title, *values, doc.text]), doc_id=doc.doc_id)
        # spans never contain a newline, so the first 1 + len(values) newlines still separate the parts
        parts = res.text.split("\n", 1 + len(values))
        new_title, new_values, new_text = parts[0], parts[1:-1], parts[-1]
        for (key, pos), before, after in zip(slots, values, new_values, strict=True):
            if after == before:  # untouched values keep their exact form (newlines included)
                continue
            if pos is None:
                meta[key] = after
            else:
                meta[key][pos] = after
        meta["pii_counts"] = res.counts()
        if res.mapping_id is not None:
            meta["pii_mapping_id"] = res.mapping_id
        return dataclasses.replace(doc, title=new_title, text=new_text, metadata=meta), res

    def redact_query(self, query: str) -> str:
        """Irreversibly redact a query (before it reaches logs, traces or a remote provider)."""
        return redact_query(query, self.entities)


def redact_query(query: str, entities: Iterable[str] | None = None) -> str:
    """Query-time redaction: typed placeholders, nothing stored."""
    return PiiRedactor(entities).redact(query).text
