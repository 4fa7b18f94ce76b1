"""PII detection and replacement before indexing, with an encrypted placeholder->original mapping.

`detection` finds typed spans, `redaction` puts placeholders into text, title and metadata, `mapping` is
the encrypted store that makes a redaction reversible.
"""

from ragroute.tools.pii.detection import (
    CREDIT_CARD,
    EMAIL,
    ENTITY_TYPES,
    IBAN,
    IBAN_LENGTHS,
    IP_ADDRESS,
    PERSON,
    PHONE,
    SSN,
    PiiEntity,
    check_entities,
    detect_pii,
    iban_valid,
    luhn_valid,
    ssn_valid,
)
from ragroute.tools.pii.mapping import KEY_ENV, PiiMappingStore, generate_key, mapping_id_for
from ragroute.tools.pii.redaction import STRUCTURAL_METADATA, PiiRedactor, RedactionResult, redact_query

__all__ = [
    "CREDIT_CARD",
    "EMAIL",
    "ENTITY_TYPES",
    "IBAN",
    "IBAN_LENGTHS",
    "IP_ADDRESS",
    "KEY_ENV",
    "PERSON",
    "PHONE",
    "SSN",
    "STRUCTURAL_METADATA",
    "PiiEntity",
    "PiiMappingStore",
    "PiiRedactor",
    "RedactionResult",
    "check_entities",
    "detect_pii",
    "generate_key",
    "iban_valid",
    "luhn_valid",
    "mapping_id_for",
    "redact_query",
    "ssn_valid",
]
