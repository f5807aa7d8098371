"""Formats a parameter's description or schema states, and whether a value is in that format.

`described_format(name, schema)` reads the format a parameter asks for (a date "in the format
YYYY-MM-DD", an expiration date "MM/YYYY", a card number, an email, a person's name);
`in_format(fmt, value)` checks a value against it; `format_share` is the share of argument values
with a described format that are in it (the pipeline reports it; 100% is the target).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable
from typing import Any

from funreason_pipeline.matching.names import tokens

_PATTERNS: dict[str, re.Pattern[str]] = {
    "date": re.compile(r"\d{4}-\d{2}-\d{2}"),
    "datetime": re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}"),
    "month_year": re.compile(r"(0[1-9]|1[0-2])/\d{4}"),
    "time": re.compile(r"([01]\d|2[0-3]):[0-5]\d(:[0-5]\d)?"),
    "card_number": re.compile(r"\d{16}"),
    "email": re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+"),
    # a person's name: capitalised words (Ana, Mary-Jane, O'Neil, van Dijk not needed here)
    "person_name": re.compile(r"[A-Z][a-z]+(?:['-][A-Z]?[a-z]+)*(?: [A-Z][a-z]+(?:['-][A-Z]?[a-z]+)*){0,2}"),
    "cvv": re.compile(r"\d{3,4}"),
    "zipcode": re.compile(r"\d{5}"),
}
_PERSON = frozenset({"first", "last", "cardholder", "surname", "given", "family"})


def described_format(name: str, schema: dict[str, Any]) -> str | None:
    """The format a parameter's description or name states, or None (most parameters state none).
    Descriptions win over names: `expiration_date` "in the format MM/YYYY" is a month and year."""
    if "enum" in schema or schema.get("type") not in ("string", "integer", None):
        return None
    desc = schema.get("description", "")
    words = set(tokens(name))
    if schema.get("type") == "integer":  # a card's verification value is its only numeric format
        return "cvv" if "verification" in words or "cvv" in words or "cvc" in words else None
    if re.search(r"YYYY-MM-DDT?HH|YYYY-MM-DD HH", desc):
        return "datetime"
    if "MM/YYYY" in desc or "MM/YY" in desc:
        return "month_year"
    if "YYYY-MM-DD" in desc:
        return "date"
    if "HH:MM" in desc:
        return "time"
    if {"card", "number"} <= words and re.search(r"\b(?:credit|debit|payment)\b", f"{name} {desc}", re.IGNORECASE):
        return "card_number"  # a payment card's 16 digits (a library card's number is the library's own)
    if "zipcode" in words or {"zip", "code"} <= words or re.search(r"\bzip ?codes?\b", desc, re.IGNORECASE):
        return "zipcode"
    if "email" in words or re.search(r"\bemail address\b", desc, re.IGNORECASE):
        return "email"
    if "name" in words and words & _PERSON:
        return "person_name"
    if "date" in words and re.search(r"\bdates?\b", desc, re.IGNORECASE) and not words & {"update", "mandate"}:
        return "date"
    return None


def in_format(fmt: str, value: Any) -> bool:
    """Whether `value` is in format `fmt` (dates must also be real dates)."""
    if fmt == "cvv":
        return isinstance(value, int) and not isinstance(value, bool) and 100 <= value <= 9999
    if not isinstance(value, str) or not _PATTERNS[fmt].fullmatch(value):
        return False
    try:
        if fmt == "date":
            dt.date.fromisoformat(value)
        elif fmt == "datetime":
            dt.datetime.fromisoformat(value)
    except ValueError:
        return False
    return True


def format_share(calls: Iterable[tuple[dict[str, dict[str, Any]], dict[str, Any]]]) -> tuple[int, int]:
    """(values in their described format, values with a described format) over calls given as
    (the tool's parameter schemas, the call's arguments)."""
    ok = total = 0
    for properties, arguments in calls:
        for name, value in arguments.items():
            fmt = described_format(name, properties.get(name, {}))
            if fmt is not None:
                total += 1
                ok += in_format(fmt, value)
    return ok, total
