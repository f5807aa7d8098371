"""What a value or a parameter means beyond its JSON type.

A string is a string to the schema, but a user never files a ticket whose status is "Ticket 869
has been resolved successfully.", writes "1967-05-20" as a note, or presses the brake by 0. These
predicates let the argument provider (and the quality counts) tell such values apart:

- `is_message_text`: a status, result or error message some call returned;
- `is_free_text` / `looks_like_id`: parameters that take prose, and values that are ids, tokens,
  dates or bare numbers (which belong where ids and dates go, never in prose);
- `is_no_op`: arguments that make a call do nothing (a zero press, an empty update);
- `fits_name`: a person's name holds no id, a folder's name no file extension;
- `fits_kind`: a name the state files as a folder never fills a file's parameter, and the reverse;
- `free_text`: a short plausible sentence for a prose parameter.
"""

from __future__ import annotations

import random
import re
from typing import Any

from funreason_pipeline.matching.names import tokens, tool_nouns

# sentences results report with: "... successfully", "not found", "Error ...", "has been closed"
_MESSAGE = re.compile(
    r"\bsuccessfully\b|\bnot found\b|\bnot authenticated\b|\bnot (?:currently )?logged in\b|\blogged (?:in|out)\b"
    r"|\bhas been \w+|\bhave been \w+|^\s*(?:error|failed|failure)(?:\s*:|\s+\w)"
    r"|^\s*(?:invalid|cannot|can't|unable to|already|insufficient|no user)\s|\bplease (?:log|authenticate)\b"
    r"|\bdoes not exist\b|\bno such\b",
    re.IGNORECASE)
_PROSE = frozenset({"note", "reason", "tweet", "message", "description", "resolution", "comment", "content",
                    "text", "body", "summary", "feedback", "bio", "caption", "memo", "remark", "title", "subject",
                    "detail", "explanation", "notes"})
# words that make a prose-sounding name an identifier or a structured value (message_id, note_date)
_NOT_PROSE = frozenset({"id", "ids", "date", "time", "number", "email", "token", "user", "username", "name",
                        "file", "dir", "path", "url", "type", "status", "code", "key", "count", "format"})
_DATEISH = re.compile(r"\d{4}-\d{2}-\d{2}|\d{1,2}/\d{1,2}/\d{2,4}|\d{2}/\d{4}|\d{1,2}:\d{2}")
_TOKENISH = re.compile(r"[A-Za-z0-9_-]*\d[A-Za-z0-9_-]*")  # one word with a digit: an id, token or code
_HEXISH = re.compile(r"[0-9a-fA-F-]{16,}")
_ZERO_VERBS = frozenset({"press", "fill", "fund", "deposit", "withdraw", "add", "buy", "sell", "transfer", "pay",
                         "purchase", "increase", "decrease", "top", "charge", "refund"})
_AMOUNTS = frozenset({"amount", "quantity", "qty", "gallon", "liter", "volume", "share", "shares", "units", "sum"})


def is_message_text(value: Any) -> bool:
    """A status, result or error message ("Ticket 869 has been resolved successfully.", "Stock not
    found", "Error: ..."): what a call reported, never what a user supplies."""
    return isinstance(value, str) and bool(_MESSAGE.search(value))


def is_free_text(name: str, schema: dict[str, Any]) -> bool:
    """A prose parameter (a note, a reason, a tweet, a message, a description, a resolution)."""
    if schema.get("type") != "string" or "enum" in schema:
        return False
    words = set(tokens(name))
    return bool(words & _PROSE) and not words & _NOT_PROSE


def looks_like_id(value: Any) -> bool:
    """An id, token, code, date or bare number: belongs where ids and dates go, never in prose."""
    if isinstance(value, bool):
        return False
    if isinstance(value, (int, float)):
        return True
    if not isinstance(value, str):
        return False
    v = value.strip()
    if not v:
        return True
    if _DATEISH.search(v) and len(v.split()) <= 2:
        return True
    return " " not in v and (_TOKENISH.fullmatch(v) is not None or _HEXISH.fullmatch(v) is not None)


# what a `*_name` parameter names when it is not a person: a file, a folder, a class ...
_THING_NAMES = frozenset({"file", "dir", "folder", "directory", "path", "class", "host", "domain", "table", "column",
                          "field", "key", "server", "project", "board", "list", "tag", "model", "stock", "company",
                          "product", "item", "city", "airport", "device", "mode", "category", "event", "group"})
_EXTENSION = re.compile(r"\.[A-Za-z0-9]{1,5}$")


def names_a_person(name: str) -> bool:
    """A parameter that takes a person's name (`user_name`, `cardholder_name`, `first_name`), not a
    file's or a project's; `username` (a login handle) is not one."""
    words = tokens(name)
    return len(words) >= 1 and words[-1] == "name" and not set(words[:-1]) & _THING_NAMES and name != "name"


def names_a_folder(name: str) -> bool:
    """A parameter that takes a directory's name (`dir_name`, `folder`)."""
    return bool(set(tokens(name)) & {"dir", "folder", "directory"}) and "file" not in tokens(name)


def names_a_file(name: str) -> bool:
    """A parameter that takes a file's name (`file_name`, `file_name1`), not a folder's."""
    words = set(tokens(name))
    return "file" in words and not words & {"dir", "folder", "directory"}


_FOLDER_KINDS = frozenset({"directory", "dir", "folder"})


def fits_kind(name: str, kind: str) -> bool:
    """A name the world files as a folder is no file's name, and a file's is no folder's:
    `diff(file_name1="config")` with `config` a directory asks for nothing."""
    if not kind:
        return True
    if names_a_file(name):
        return kind not in _FOLDER_KINDS
    return not (names_a_folder(name) and kind == "file")


_PERSON = re.compile(r"[A-Za-z][A-Za-z'-]*\.?(?: [A-Za-z][A-Za-z'-]*\.?)*")  # "Ana Jensen", "J. R. Smith"
_HANDLE = re.compile(r"\S*(?:_|@|\.[A-Za-z0-9]{1,5}$)\S*")  # nurse_ola, @axu46, notes.txt


def is_handle(value: Any) -> bool:
    """One word that is a login, a mention or a file's name: never prose (a message is not "nurse_ola")."""
    return isinstance(value, str) and " " not in value.strip() and bool(_HANDLE.fullmatch(value.strip()))


_LABELS = frozenset({"type", "kind", "mode", "class", "category", "level", "unit", "status"})


def fits_name(name: str, value: Any) -> bool:
    """A person is not called "USR002", an order's type is not "55212", and a folder is not
    "inventory.csv": an id in a person's name or in a label, or a file's name for a folder, is a
    value chosen by type, not by meaning."""
    if not isinstance(value, str):
        return True
    words = tokens(name)
    if (names_a_person(name) or (words and words[-1] in _LABELS)) and any(c.isdigit() for c in value):
        return False
    if names_a_person(name) and not _PERSON.fullmatch(value.strip()):
        return False  # "references.bib" or "nurse_ola" is a file or a login, not a person
    return not (names_a_folder(name) and _EXTENSION.search(value.strip()))


def zero_is_no_op(tool: str, name: str) -> bool:
    """Whether 0 for this numeric parameter makes the call change nothing (press the pedal by 0,
    fund 0, buy 0 shares)."""
    return bool(set(tokens(tool.split(".")[-1])) & _ZERO_VERBS) or bool(set(tokens(name)) & _AMOUNTS)


def is_no_op(tool: str, properties: dict[str, dict[str, Any]], required: list[str] | tuple[str, ...],
             arguments: dict[str, Any]) -> str | None:
    """The parameter whose value makes the call do nothing, or None: an empty object, a required
    list left empty (`edit_ticket(updates={})`, mention nobody), a zero press or amount. (An
    optional empty list is a default: `post_tweet(tags=[])` still posts.)"""
    for name, value in arguments.items():
        schema = properties.get(name, {})
        if value == {} and schema.get("type") == "object":
            return name
        if value == [] and schema.get("type") == "array" and name in required:
            return name
        if isinstance(value, (int, float)) and not isinstance(value, bool) and value == 0 \
                and schema.get("type") in ("integer", "number") and zero_is_no_op(tool, name):
            return name
    return None


# ---- prose a user would write ---------------------------------------------------------------------

_TOPICS = ["the login page", "last week's invoice", "the quarterly report", "my account settings", "the shared drive",
           "the delivery schedule", "the new dashboard", "the billing address", "the team calendar",
           "the mobile app", "the printer on floor 3", "the travel itinerary"]
_KINDS: dict[str, list[str]] = {
    "resolution": ["Reset the account credentials and confirmed the user can sign in again.",
                   "Cleared the cache and restarted the service; the issue no longer occurs.",
                   "Updated {topic} and verified the fix with the customer.",
                   "Replaced the faulty configuration and tested that everything works.",
                   "Applied the latest patch; the reported error is gone."],
    "reason": ["Plans changed and the trip is no longer needed.", "The request was filed twice by mistake.",
               "I found a better option for {topic}.", "The problem with {topic} went away on its own.",
               "Schedule conflict with another commitment."],
    "description": ["Having trouble with {topic} since this morning; it keeps timing out.",
                    "Requesting access to {topic} for the new project.",
                    "{Topic} shows outdated information after the last update.",
                    "Need help setting up {topic} for the team.",
                    "Opening {topic} takes minutes; please take a look."],
    "title": ["Trouble opening {topic}", "Question about {topic}", "Request: update {topic}", "Issue with {topic}",
              "Follow-up on {topic}"],
    "message": ["Hi, could you take a look at {topic} when you have a moment?",
                "Thanks for the help yesterday, everything works now.",
                "Reminder: we meet at 3 pm to go over {topic}.", "Can you send me the latest version of {topic}?",
                "Just checking in on {topic}. Any updates?"],
    "note": ["Remember to review {topic} before Friday.", "Follow up with the team about {topic}.",
             "Prices looked stable today; check again next week.", "Ask about {topic} at the next meeting.",
             "Keep an eye on {topic} this month."],
    "tweet": ["Excited to share our progress on {topic}!", "Great day at the conference, learned a lot.",
              "Big thanks to everyone who helped with {topic}.", "Working on {topic} today. Stay tuned!",
              "Loving the new features in {topic}."],
}
_KIND_OF = {"resolution": "resolution", "reason": "reason", "description": "description", "detail": "description",
            "explanation": "reason", "title": "title", "subject": "title", "message": "message", "comment": "message",
            "body": "message", "feedback": "message", "text": "note", "note": "note", "notes": "note",
            "memo": "note", "remark": "note", "summary": "note", "content": "tweet", "tweet": "tweet",
            "caption": "tweet", "bio": "tweet"}


_CONTENT_KEYS = frozenset({"content", "text", "body", "message", "note", "comment", "description", "summary"})


def can_carry(param: str, key: str) -> bool:
    """Whether a prose parameter may carry an earlier result's text found under `key`: a tweet or a
    message may quote a file's content; a resolution, a reason or a title is its own kind of text
    (a ticket's title is no resolution)."""
    kind = _kind(param)
    return kind in ("note", "message", "tweet", "description") and bool(set(tokens(key)) & _CONTENT_KEYS)


def _kind(name: str) -> str:
    words = tokens(name)
    # the most specific word wins: a comment's content is a comment, a tweet's content a tweet
    return next((_KIND_OF[w] for w in words if w in _KIND_OF and w not in ("content", "text", "body")),
                next((_KIND_OF[w] for w in words if w in _KIND_OF), "note"))


def free_text(name: str, tool: str, rng: random.Random) -> str:
    """A short sentence of the kind the parameter asks for (a resolution, a reason, a message, a
    tweet), about a topic named after the tool's nouns when it has one."""
    kind = _kind(name)
    if kind == "tweet" and "tweet" not in tokens(tool) and "post" not in tokens(tool):
        kind = "note"  # a file's content or an item's text reads like a note, not a tweet
    nouns = [n for n in tool_nouns(tool) if n not in _KIND_OF and n not in _KINDS]  # "about the tweet" says nothing
    topic = f"the {nouns[-1]}" if nouns and rng.random() < 0.3 else rng.choice(_TOPICS)
    text = rng.choice(_KINDS[kind])
    return text.replace("{topic}", topic).replace("{Topic}", topic[:1].upper() + topic[1:])


_FIRST = ["Alice", "Bruno", "Camila", "Daniel", "Elena", "Farid", "Grace", "Hiro", "Isabel", "Jonas", "Keiko",
          "Liam", "Maya", "Nikhil", "Olivia", "Pedro", "Rosa", "Samuel", "Tara", "Victor"]
_LAST = ["Anderson", "Brooks", "Castillo", "Dubois", "Evans", "Fischer", "Garcia", "Hughes", "Ivanova", "Jensen",
         "Kowalski", "Lopez", "Moreau", "Nakamura", "Okafor", "Patel", "Quinn", "Rossi", "Silva", "Tanaka"]


def person_name(name: str, rng: random.Random) -> str:
    """A first name, a last name, or both, as the parameter asks."""
    words = set(tokens(name))
    if words & {"first", "given"}:
        return rng.choice(_FIRST)
    if words & {"last", "surname", "family"}:
        return rng.choice(_LAST)
    return f"{rng.choice(_FIRST)} {rng.choice(_LAST)}"
