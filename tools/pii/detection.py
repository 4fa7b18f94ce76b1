"""PII detection: offline regular expressions plus validators, returning typed, non-overlapping spans.

Validators: Luhn for cards, ISO 7064 mod-97 for IBANs, octet/group checks for IP addresses, issued-range
rules for US SSNs, NANP rules for US phone numbers. Person names are found only next to a cue (an
honorific such as "Dr." or "Ms.", or "my name is"/"Name:"): there is no offline NER model here, so a bare
name ("ask Sarah Connor") is not detected.
"""

from __future__ import annotations

import bisect
import ipaddress
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from ragroute.tools.errors import ConfigError, InputError

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


def check_entities(entities: Iterable[str] | None) -> tuple[str, ...]:
    """The chosen entity types in priority order (all when None); ConfigError for an unknown one."""
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
    types = check_entities(entities)
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
