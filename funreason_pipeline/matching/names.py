"""Names: how a parameter, a response field and an error message relate, by their words.

Matching is by name tokens ("receiver_id" ~ "user id"), qualified by the producing tool's noun
(`post_tweet` returns `id` -> a "tweet id"). The same affinity drives the graph's schema-derived
data edges and the sampler's argument choice, so the two agree.
"""

from __future__ import annotations

import re
from functools import lru_cache

GENERIC = frozenset(
    {"id", "name", "status", "type", "result", "value", "list", "data", "info", "current", "new", "message",
     "success", "login", "count", "all", "by", "of", "to", "from", "the"}
)
_VERBS = frozenset(
    {"get", "list", "create", "post", "add", "set", "place", "book", "register", "search", "view", "find",
     "display", "retrieve", "compute", "estimate", "edit", "resolve", "close", "cancel", "send", "delete",
     "remove", "purchase", "fund", "withdraw", "notify", "filter", "verify", "authenticate", "check"}
)
_SPLIT = re.compile(r"[A-Z]?[a-z]+|[A-Z]+(?![a-z])|\d+")


@lru_cache(maxsize=4096)
def name_words(name: str) -> tuple[str, ...]:
    """A name's words as written, lower-cased, not singularized: "get_user_tickets" -> get, user,
    tickets (for sentences; `tokens` is for matching)."""
    return tuple(p.lower() for p in _SPLIT.findall(name))


@lru_cache(maxsize=1 << 16)  # pure, and asked of the same names and state keys again and again
def tokens(name: str) -> tuple[str, ...]:
    out = []
    for part in _SPLIT.findall(name):
        t = part.lower()
        if len(t) > 3 and t.endswith("s") and not t.endswith(("ss", "us", "is")):
            t = t[:-1]  # crude singular: "messages" ~ "message", "numbers" ~ "number" (not "status")
        out.append(t)
    return tuple(out)


@lru_cache(maxsize=1024)
def tool_nouns(tool_name: str) -> tuple[str, ...]:
    return tuple(t for t in tokens(tool_name.split(".")[-1]) if t not in _VERBS and t not in GENERIC)


# words that name what proves who someone is (a parameter `password`, `pin`, `access_token`)
_SECRETS = frozenset({"password", "passwd", "pwd", "passcode", "passphrase", "pin", "token", "secret", "otp"})


def is_secret(param: str) -> bool:
    return bool(set(tokens(param)) & _SECRETS)


BARE = "()"  # ends the key of a bare result: "project()" is what create_project returned


@lru_cache(maxsize=1024)
def result_key(tool_name: str) -> str:
    """The name a bare result (`-> int`, `-> str`, a list of strings) is known by: the tool's name
    without its leading verbs, marked as a return value (`create_project` -> "project()",
    `order_status` -> "order_status()"); the marker does not change its words."""
    words = tokens(tool_name.split(".")[-1])
    i = 0
    while i < len(words) - 1 and words[i] in _VERBS:
        i += 1
    return ("_".join(words[i:]) or tool_name) + BARE


@lru_cache(maxsize=65536)
def affinity(param: str, param_desc: str, key: str, producer: str = "") -> float:
    """How strongly a value found under `key` (produced by tool `producer`) fits parameter `param`."""
    pt, kt = tokens(param), tokens(key)
    if not pt or not kt:
        return 0.0
    if any((set(pt) & {x}) and (set(kt) & {y}) for x, y in _OPPOSITES):
        return 0.0  # a first name is no last name, a max price no min price, an end date no start date
    if pt == kt and not (len(pt) == 1 and pt[0] in GENERIC and pt[0] != "id"):
        return 1.0
    nouns = tool_nouns(producer) if producer else ()
    if pt == kt and nouns and set(tokens(param_desc)) & set(nouns):
        return 0.8  # a ticket's `status` -> "Status of the tickets to list": the same kind of thing
    if nouns and set(kt) <= GENERIC:  # `id` of post_tweet -> tweet_id
        qualified = (nouns[-1], *kt)
        if qualified == pt or (len(pt) >= 2 and pt[-len(qualified):] == qualified):
            return 0.9
    specific_shared = (set(pt) & set(kt)) - GENERIC
    # same head noun, but both sides name a different kind of it: a car's current_speed is not a
    # fan_speed, a card_number not a passport_number, a travel_date not an expiration_date
    qualified_apart = bool(set(pt[:-1]) - GENERIC) and bool(kt[:-1]) and not (set(pt[:-1]) & set(kt)) \
        and not (set(kt[:-1]) & set(pt)) and not (set(pt[:-1]) & set(nouns))
    if pt[-1] == kt[-1] and specific_shared and not qualified_apart:
        return 0.8
    desc = param_desc.lower()
    phrase = " ".join(kt)
    if len(kt) >= 2 and phrase in desc:
        return 0.7  # "receiver_id": "User ID of the user to send the message to." ~ user_id
    if specific_shared and (set(kt) <= set(pt) or set(pt) <= set(kt)) and kt[-1] not in _OUTCOMES:
        return 0.6  # content ~ file_content (but a mention_status is no mention)
    for i in range(len(kt) - 1):  # "file from current directory" ~ current_directory_content
        pair = kt[i:i + 2]
        if set(pair) - GENERIC and " ".join(pair) in desc:
            return 0.6
    if len(kt) == 1 and kt[0] not in GENERIC and len(kt[0]) >= 4 and kt[0] in desc.split():
        return 0.6  # cityA: "The zipcode of the first city." ~ zipcode
    if kt == ("name",) and pt[-1] in _NAMED:
        return 0.5  # a file's or directory's `name` ~ file_name, dir_name, folder
    if pt[-1] in _NAMED and set(kt) & _CONTAINERS and "content" not in pt:
        return 0.5  # a directory listing names what a file or folder parameter can take
    return 0.0


def names_existing(description: str) -> bool:
    """A field described as the name of a thing it points at ("The name of the entity where the
    relation starts"): an existing thing's name, never a made-up one."""
    return referenced_noun(description) is not None


def referenced_noun(description: str) -> str | None:
    """The kind of thing such a field points at ("entity"), or None."""
    m = _NAME_OF.search(description.lower())
    return m.group(1) if m else None


_NAME_OF = re.compile(r"^the name of (?:the|an?) (\w+) (?:where|to|from|that|which|containing|of)\b")
_OPPOSITES = tuple((a, b) for a, b in (("first", "last"), ("min", "max"), ("start", "end"), ("source", "destination"),
                                       ("sender", "receiver")) for a, b in ((a, b), (b, a)))
_OUTCOMES = frozenset({"status", "success", "count", "type"})  # a field that reports on a thing, not the thing
_NAMED = frozenset({"name", "folder", "dir", "directory", "file", "path", "source", "destination"})
_CONTAINERS = frozenset({"directory", "dir", "folder"})


def error_kind(error: str | None) -> str:
    """An error message without its quoted or numeric particulars ('No such file: a.txt' ~ '...: b.txt')."""
    return re.sub(r"'[^']*'|\"[^\"]*\"|\d+(\.\d+)?|:\s.*$", "", error or "").strip().lower()


def error_words(error: str | None) -> set[str]:
    """The specific words of an error message ("not logged in" -> {"logged"})."""
    return {w for w in tokens(error or "") if w not in GENERIC and len(w) > 3}
