"""Docstrings of user environment methods: summary, parameter descriptions, Returns (docstring-parser)."""

from __future__ import annotations

import inspect
import re
from dataclasses import dataclass, field
from typing import Any

import docstring_parser

# Google "Returns:" entries that name result fields ("patient_id (str): ..."); docstring-parser
# reads a Google Returns section as one `type: description`, so the named form is read here
_NAMED_RETURN = re.compile(r"\*{0,2}(?P<name>\w+)\s*\((?P<type>[^)]*)\)\s*:\s*(?P<desc>.*)")


@dataclass(frozen=True)
class DocEntry:
    type_text: str
    description: str


@dataclass
class ParsedDocstring:
    summary: str = ""
    params: dict[str, DocEntry] = field(default_factory=dict)
    returns: str = ""  # free text of the Returns section
    return_fields: dict[str, DocEntry] = field(default_factory=dict)  # named fields of the result


def _one_line(text: str | None) -> str:
    return " ".join((text or "").split())


def parse_docstring(doc: str | None) -> ParsedDocstring:
    """Summary (the first paragraph), parameter descriptions and Returns of a Google-, NumPy- or
    reST-style docstring, read with docstring-parser."""
    parsed = ParsedDocstring()
    if not doc:
        return parsed
    try:
        ds = docstring_parser.parse(inspect.cleandoc(doc))
    except docstring_parser.ParseError:
        ds = docstring_parser.Docstring()
        ds.short_description = inspect.cleandoc(doc)
    description = "\n".join(p for p in (ds.short_description, ds.long_description) if p)
    if ds.blank_after_short_description or not ds.long_description:
        parsed.summary = _one_line(ds.short_description)
    else:  # a summary wrapped over several lines
        parsed.summary = _one_line(description.split("\n\n")[0])
    for p in ds.params:
        if p.args and p.args[0] not in ("param", "keyword", "other_param"):
            continue
        for name in (n.strip().lstrip("*") for n in p.arg_name.split(",")):
            parsed.params[name] = DocEntry(_one_line(p.type_name), _one_line(p.description))
    texts = []
    for r in ds.many_returns:
        if r.return_name:  # NumPy: "due : str" then its description
            parsed.return_fields[r.return_name] = DocEntry(_one_line(r.type_name), _one_line(r.description))
            continue
        named = _named_returns(r.description or "") if not r.type_name else {}
        if named:
            parsed.return_fields.update(named)
        elif r.description:
            texts.append(_one_line(r.description))
    parsed.returns = " ".join(texts)
    return parsed


def _named_returns(text: str) -> dict[str, DocEntry]:
    """Google Returns entries naming fields, one per line (deeper lines continue the entry)."""
    lines = [line for line in text.splitlines() if line.strip()]
    if not lines or not _NAMED_RETURN.fullmatch(lines[0].strip()):
        return {}
    out: dict[str, list[str]] = {}
    types: dict[str, str] = {}
    last = ""
    for line in lines:
        m = _NAMED_RETURN.fullmatch(line.strip())
        if m and not line.startswith((" ", "\t")):
            last = m.group("name")
            types[last], out[last] = m.group("type").strip(), [m.group("desc")]
        else:
            out[last].append(line.strip())
    return {n: DocEntry(types[n], _one_line(" ".join(d))) for n, d in out.items()}


_DOC_TYPES = {"str": "string", "string": "string", "int": "integer", "integer": "integer", "float": "number",
              "number": "number", "bool": "boolean", "boolean": "boolean", "list": "array", "tuple": "array",
              "set": "array", "sequence": "array", "array": "array", "dict": "object", "mapping": "object",
              "object": "object"}


def _doc_type_schema(type_text: str) -> dict[str, Any]:
    """A docstring's type words ("list[str]", "int, optional") as a JSON Schema, as far as they go."""
    words = re.findall(r"[A-Za-z]+", type_text.lower())
    words = [w for w in words if w not in ("optional", "typing")]
    if not words or words[0] not in _DOC_TYPES:
        return {}
    schema: dict[str, Any] = {"type": _DOC_TYPES[words[0]]}
    if schema["type"] == "array" and len(words) > 1 and words[1] in _DOC_TYPES:
        schema["items"] = {"type": _DOC_TYPES[words[1]]}
    return schema
