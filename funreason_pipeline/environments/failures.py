"""Failures a tool reports in its return value instead of raising: one rule for every adapter.

Every adapter (BFCL classes via bfcl.py, user classes via user.py, later MCP servers) goes through
`invoke_tool`, which asks `failure_of` whether the returned value reports a failure; such a call
becomes `ToolResult(value, error)`, a failed attempt, never a ground-truth step.

What BFCL's classes return on failure (bfcl_eval .../func_source_code, read for this module):

- GorillaFileSystem, MathAPI, VehicleControlAPI, MessageAPI, TicketAPI, TravelAPI, TradingBot,
  TwitterAPI: `{"error": "..."}` (VehicleControlAPI once `{"error": 404}`).
- TicketAPI.get_user_tickets: `[{"error": "User not authenticated. ..."}]` (an error in a list).
- TradingBot.get_watchlist: `["Error: User not authenticated. ..."]` (an error string in a list).
- TradingBot.get_symbol_by_name: `{"symbol": "Stock not found"}`; TravelAPI
  .get_nearest_airport_by_city: `{"nearest_airport": "Unknown"}` (a lookup that found nothing,
  as the only field).
- TradingBot: `{"status": "No user is currently logged in"}` (logout), `{"status": "Already logged
  in"}` (login: nothing happened); TwitterAPI: `{"retweet_status": "Already retweeted"}`.
- `*_status: False`: MessageAPI.message_login `{"login_status": False, "message": "User ID ... not
  found."}`; TwitterAPI.authenticate_twitter `{"authentication_status": False}`, follow_user /
  unfollow_user `{"follow_status": False}` / `{"unfollow_status": False}`; TravelAPI book_flight,
  cancel_booking, purchase_insurance `{"..._status": False, "error": ...}`,
  verify_traveler_information `{"verification_status": False, "verification_failure": ...}`.
- `success: False`: TicketAPI.ticket_login and logout.

Not failures: a status *read* answering "no" (get_login_status -> `{"login_status": False}`,
TravelAPI.travel_get_login_status -> `{"status": False}`): the tool's name asks for the status, so
False is the answer. Content is never read for failure words: a file whose text says "not found",
a tweet, a message body are data. The rule is by structure: `error` keys at any depth; flags and
message fields at the top level of a dict; a whole-string result (or a list holding one such
string). A bare boolean result is an answer too (`is_open() -> False`).
"""

from __future__ import annotations

import re
from typing import Any

from funreason_pipeline.matching.names import tokens

_ERROR_TEXT = re.compile(r"\s*(?:error\b|err\s*:|failed\s*:|failure\s*:)", re.IGNORECASE)
# a message saying the request was refused or found nothing; matched on message fields and
# whole-string results only (see the docstring), never on content
_REFUSAL = re.compile(
    r"\bnot found\b|\bnot authenticated\b|\bnot (?:currently )?logged in\b|\bno user is (?:currently )?logged in\b"
    r"|\bnot authori[sz]ed\b|\bunauthori[sz]ed\b|\bpermission denied\b|\baccess denied\b|\bdoes not exist\b"
    r"|\bdoesn't exist\b|\bno such\b|^\s*(?:invalid|cannot|can't|unable to|already)\b",
    re.IGNORECASE)
_NOTHING = re.compile(r"^\s*unknown\.?\s*$", re.IGNORECASE)  # a lookup's only field: found nothing
_FLAGS = ("ok", "success", "succeeded")  # a boolean flag that is False on failure
_FAILED_STATUS = frozenset({"error", "failed", "failure", "fail"})
_MESSAGE_KEYS = ("error", "msg", "message", "reason", "detail", "details", "status")
# fields whose text is content (what a file, a tweet, a message says), never a report on the call
_CONTENT = frozenset({"content", "text", "body", "output", "line", "lines", "data", "note", "comment",
                      "description", "title", "match", "matches", "diff", "tweet", "messages"})
_READS = frozenset({"get", "check", "display", "view", "is", "has"})  # a tool asking for a state


def failure_of(value: Any, method: str = "") -> str | None:
    """The failure a tool's return value reports (its message), or None. `method` is the tool's
    name: a status read's False is its answer, not a failure."""
    if isinstance(value, str):
        return _string_failure(value)
    if isinstance(value, list):
        # a list holding just an error string (TradingBot.get_watchlist); records are data, but an
        # `error` key inside them is not (TicketAPI.get_user_tickets)
        if len(value) == 1 and isinstance(value[0], str):
            return _string_failure(value[0])
        return _nested_error(value)
    if not isinstance(value, dict):
        return None
    nested = _nested_error(value)
    if nested:
        return nested
    read = bool(set(tokens(method)) & _READS) and "status" in tokens(method)
    failed = any(value.get(k) is False for k in _FLAGS) or (not read and any(
        v is False and _is_status(k) for k, v in value.items()))
    status = value.get("status")
    if isinstance(status, str) and status.strip().lower() in _FAILED_STATUS:
        failed = True
    if failed:
        return _message(value)
    # a refusal in a top-level message field ("No user is currently logged in", "Already retweeted")
    for k, v in value.items():
        if isinstance(v, str) and (k.lower() in _MESSAGE_KEYS or _is_status(k) or k.lower().endswith("_failure")) \
                and _REFUSAL.search(v):
            return v.strip()
    # a lookup's only field says it found nothing ({"symbol": "Stock not found"})
    if len(value) == 1:
        (k, v), = value.items()
        if isinstance(v, str) and not set(tokens(k)) & _CONTENT and (_short_refusal(v) or _NOTHING.match(v)):
            return f"{k}: {v.strip()}"
    return None


def _is_status(key: str) -> bool:
    words = tokens(key)
    return bool(words) and words[-1] == "status"


def _string_failure(value: str) -> str | None:
    found = _ERROR_TEXT.match(value)
    if found:  # the message without its "Error:" (error kinds compare what follows it)
        return value[found.end():].strip(" :-") or value.strip()
    return value.strip() if _short_refusal(value) else None


def _short_refusal(text: str) -> bool:
    # a whole result that is one short refusal ("Stock not found", "Unknown"); long text is content
    return len(text) <= 120 and "\n" not in text and bool(_REFUSAL.search(text))


def _nested_error(value: Any, depth: int = 0) -> str | None:
    """A non-empty `error` value at any depth (a dict inside a list included)."""
    if depth > 6:
        return None
    if isinstance(value, dict):
        err = value.get("error")
        if err not in (None, "", False, [], {}):
            return str(err)
        items = value.values()
    elif isinstance(value, list):
        items = value[:50]
    else:
        return None
    for v in items:
        if isinstance(v, (dict, list)):
            found = _nested_error(v, depth + 1)
            if found:
                return found
    return None


def _message(value: dict[str, Any]) -> str:
    for k in (*_MESSAGE_KEYS, *(k for k in value if k.lower().endswith(("_failure", "_message", "_error")))):
        if isinstance(value.get(k), str) and value[k].strip():
            return value[k].strip()
    return "the call reported a failure: " + ", ".join(f"{k}={v!r}" for k, v in list(value.items())[:4])


def no_op_of(properties: dict[str, Any], required: list[str], arguments: dict[str, Any]) -> str | None:
    """A call whose arguments make it do nothing, refused before it runs (it would report success on
    empty input: `edit_ticket(updates={})` "updated successfully"): an empty object argument, or an
    empty list where the schema requires one (mention nobody). Optional empty lists are defaults
    (`post_tweet(tags=[])`), not no-ops."""
    for name, value in arguments.items():
        if value == {} and properties.get(name, {}).get("type") == "object":
            return f"no-op: argument {name!r} is empty, so the call would change nothing"
        if value == [] and name in required and properties.get(name, {}).get("type") == "array":
            return f"no-op: argument {name!r} is an empty list, so the call would do nothing"
    return None
