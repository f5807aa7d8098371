"""A turn is a task: the requested action (the target) plus exactly what it needs, in steps.

The directed sampler walks toward the target on the live environment and may make calls on the way
that the target never needed: a feeder whose result it did not use, a repair that did not help, a
write nobody asked for. A user would not ask for those, and a model trained on them learns to do
more than asked (and RL would reward it, the side effects being in the ground-truth end state).

`shape_turn` keeps the target and the closure of its prerequisites: the calls whose results feed
its arguments (data) and the calls whose state it needs (state edges, and any earlier write without
which a kept call no longer returns what it returned). The kept calls are re-executed from the
turn's start state; they must return exactly what they returned on the walk, or the turn is not
kept as is. Then each kept call gets its step (`assign_steps`): the calls a model can emit at once
because none needs another's result or state.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from funreason_pipeline.environments.toolsets import World
from funreason_pipeline.matching.names import is_secret, name_words
from funreason_pipeline.matching.values import harvest
from funreason_pipeline.models import ToolCall, ToolSpec
from funreason_pipeline.verify.replay import canonical


def telling(value: Any) -> bool:
    """Whether a value is specific enough that finding it again means it was passed on: strings of 3
    or more characters that are not one plain word ("Open", "home" could come from anywhere; "A-0004",
    "Sami Jensen", "q3.txt" could not), and numbers other than small integers."""
    if isinstance(value, bool) or value is None:
        return False
    if isinstance(value, str):
        v = value.strip()
        return len(v) >= 3 and not v.isalpha()
    if isinstance(value, int):
        return abs(value) >= 10
    if isinstance(value, float):
        return not value.is_integer() or abs(value) >= 10
    return False


def argument_values(arguments: dict[str, Any]) -> list[tuple[str, Any]]:
    """(parameter, scalar) pairs of a call's arguments, list items and nested values included."""
    out: list[tuple[str, Any]] = []

    def walk(param: str, v: Any) -> None:
        if isinstance(v, dict):
            for x in v.values():
                walk(param, x)
        elif isinstance(v, list):
            for x in v:
                walk(param, x)
        else:
            out.append((param, v))

    for p, v in arguments.items():
        walk(p, v)
    return out


def _values_of(obj: Any) -> set[str]:
    return {canonical(v.value) for v in harvest(obj) if telling(v.value)}


def link_values(calls: list[ToolCall], offset: int, specs: dict[str, ToolSpec] | None = None) -> None:
    """Record as a source any earlier call of the turn whose result holds an argument's value: the
    argument came from it whatever the sampler thought (a value read back from the state that a
    call of this turn created and returned), so it is not the user's to give and not the model's
    to know before that result. A value the tool's own schema names (an enum member such as a
    status "Open") is known from the schema, not from a result."""
    seen: list[set[str]] = []
    said: set[str] = set()  # values the user gave to earlier calls of the turn
    for j, call in enumerate(calls):
        spec = (specs or {}).get(call.tool)
        schema_text = json.dumps(spec.parameters) if spec is not None else ""
        for param, v in argument_values(call.arguments):
            if param in call.sources or not telling(v) or (isinstance(v, str) and v in schema_text):
                continue
            if _is_record(call.arguments.get(param)):
                continue  # a record: below, whole
            if canonical(v) in said:
                continue  # still the user's: the patient id given to book_appointment, echoed in its result
            key = canonical(v)
            for i in range(j - 1, -1, -1):
                if key in seen[i]:
                    call.sources[param] = offset + i
                    break
        for param, value in call.arguments.items():
            # a record (`entities: [{name, entityType, observations}]`) came from a result only when
            # every value in it is in that one result; a new entity's name is the user's, and with
            # it the whole record
            if param in call.sources or not _is_record(value):
                continue
            leaves = {canonical(v) for p, v in argument_values({param: value})
                      if telling(v) and not (isinstance(v, str) and v in schema_text)}
            if leaves and not leaves & said:
                i = next((i for i in range(j - 1, -1, -1) if leaves <= seen[i]), None)
                if i is not None:
                    call.sources[param] = offset + i
        seen.append(_values_of(call.result))
        said |= {canonical(v) for p, v in argument_values(call.arguments) if p not in call.sources}


def _is_record(value: Any) -> bool:
    """An object, or a list of objects: a record passed whole."""
    return isinstance(value, dict) or (isinstance(value, list) and bool(value)
                                       and all(isinstance(x, dict) for x in value))


def _needs(call: ToolCall, offset: int, n: int) -> set[int]:
    """Positions (within the turn) of the earlier calls of the turn this call needs."""
    return {k - offset for k in [*call.sources.values(), *call.after] if offset <= k < offset + n}


def _closure(calls: list[ToolCall], roots: set[int], offset: int) -> set[int]:
    keep, todo = set(), list(roots)
    while todo:
        j = todo.pop()
        if j in keep:
            continue
        keep.add(j)
        todo += _needs(calls[j], offset, len(calls)) - keep
    return keep


@dataclass
class ShapedTurn:
    calls: list[ToolCall]  # the kept calls, sources/after renumbered, steps and changes_state set
    world: World  # the environment after the kept calls
    dropped: list[tuple[ToolCall, str]] = field(default_factory=list)  # (call, reason)


class TurnNotKept(ValueError):
    """The turn cannot be a clean task (its reason is the message's first word). `undone_by`: for a
    turn that takes back its own writes, those writes (asked for in a turn of their own, they make
    the state in which the target is a request of its own: log out, then log in)."""

    def __init__(self, message: str, undone_by: list[str] | None = None):
        super().__init__(message)
        self.undone_by = undone_by or []


def _leaves(obj: Any, path: str = "", out: dict[str, str] | None = None, empty: bool = False) -> dict[str, str]:
    """Leaf values by path; with `empty`, an empty object or list is a leaf too (an empty folder)."""
    out = {} if out is None else out
    if isinstance(obj, dict) and (obj or not empty):
        for k, v in obj.items():
            _leaves(v, f"{path}/{k}", out, empty)
    elif isinstance(obj, list) and (obj or not empty):
        for i, v in enumerate(obj):
            _leaves(v, f"{path}[{i}]", out, empty)
    else:
        out[path] = canonical(obj)
    return out


def _state_of(world: World, cls: str) -> tuple[str, Any]:
    snap = world.envs[cls].snapshot()
    return canonical(snap), snap


def _delta(before: tuple[str, Any], after: tuple[str, Any]) -> frozenset:
    """What a call changed, as (path, new value) pairs: a file touched in another directory, or a
    ticket closed under another id, is another change even when the call's result reads the same."""
    if before[0] == after[0]:
        return frozenset()
    for empty in (False, True):
        # the state changed but no leaf did: an empty folder came or went, and that is the change
        b, a = _leaves(before[1], empty=empty), _leaves(after[1], empty=empty)
        delta = frozenset({(p, v) for p, v in a.items() if b.get(p) != v} | {(p, None) for p in b if p not in a})
        if delta:
            return delta
    return delta


def shape_turn(world_before: World, calls: list[ToolCall], target_pos: int, offset: int,
               specs: dict[str, ToolSpec]) -> ShapedTurn:
    """The turn's target (`calls[target_pos]`) and the closure of its prerequisites, re-executed from
    `world_before` (the state at the turn's start, not mutated). Raises TurnNotKept."""
    link_values(calls, offset, specs)
    for c in calls:
        # a plain word ("Open") is the user's to say even when a result also showed it
        c.sources = {p: k for p, k in c.sources.items()
                     if not (isinstance(c.arguments.get(p), str) and c.arguments[p].strip().isalpha())}
        # the graph's state edges say what *may* be needed (probed on other scenarios: get_ticket
        # failed before any create_ticket); within the turn only the replay below decides
        c.after = [k for k in c.after if k < offset]
    cls_of = {c.tool: specs[c.tool].class_name for c in calls}
    # which calls changed the state, on a replay of the walk as it was
    w = world_before.copy()
    start_snapshot = world_before.snapshot()
    deltas, walk_after = [], {}
    for j, c in enumerate(calls):
        before = _state_of(w, cls_of[c.tool])
        w.call(c.tool, c.arguments)
        after = _state_of(w, cls_of[c.tool])
        deltas.append(_delta(before, after))
        walk_after[j] = after[1]
    writes = [bool(d) for d in deltas]
    feeds = {k - offset for c in calls for k in c.sources.values()}

    def first_mismatch(keep: set[int]):
        """Replay the kept calls: (first call that differs or None, its result, world, snapshots,
        minted: {position: (result, delta)} of the writes that did the same with other numbers)."""
        world, snaps, minted = world_before.copy(), {}, {}
        for j in sorted(keep):
            before = _state_of(world, cls_of[calls[j].tool]) if writes[j] else None
            res = world.call(calls[j].tool, calls[j].arguments)
            delta = frozenset()
            if before is not None:
                after = _state_of(world, cls_of[calls[j].tool])
                snaps[j] = after[1]
                delta = _delta(before, after)
            if res.ok and canonical(res.value) == canonical(calls[j].result) and (
                    delta == deltas[j] or _same_end(delta, deltas[j], after[1])):
                continue
            if (res.ok and writes[j] and j not in feeds and _masked(res.value) == _masked(calls[j].result)
                    and _masked_delta(delta) == _masked_delta(deltas[j])):
                # the same write, only the ids or counts it mints moved: a dropped call had drawn
                # from a counter the environment shares (a clinic numbers appointments and
                # prescriptions alike). What the kept calls leave is the truth
                minted[j] = (res.value, delta)
                continue
            return j, res, world, snaps, minted
        return None, None, world, snaps, minted

    keep = _closure(calls, {target_pos}, offset)
    for _ in range(2 * len(calls) + 2):
        if len(keep) == len(calls):  # nothing dropped: the walk's replay is the turn
            world, after_snaps = w, walk_after
            break
        bad, res, world, after_snaps, minted = first_mismatch(keep)
        if bad is None:
            for j, (value, delta) in minted.items():
                calls[j].result, deltas[j] = value, delta
            break
        if not writes[bad] and res.ok and bad not in feeds:
            # a read that feeds nothing further (the target itself, typically) reads the state the
            # kept calls left: its new result is the true one, the dropped writes stay dropped
            calls[bad].result = res.value
            continue
        # a dropped call changed what this call sees or does. Put back every dropped call of its
        # class before it, then take out again each one it does without: writes first, latest
        # first (an unrequested mkdir goes, the cd it runs in stays; state no snapshot shows, such
        # as the file system's working directory, is found this way too)
        extra = [i for i in range(bad) if i not in keep and cls_of[calls[i].tool] == cls_of[calls[bad].tool]]

        def passes(k: set[int], bad=bad) -> bool:
            b = first_mismatch(k)[0]
            return b is None or b > bad

        if not extra or not passes(_closure(calls, keep | set(extra), offset)):
            raise TurnNotKept(f"replay_differs: {calls[bad].tool} returns or does something else without the "
                              "calls the target does not need")
        for i in sorted(extra, key=lambda i: (not writes[i], -i)):
            rest = [x for x in extra if x != i]
            if passes(_closure(calls, keep | set(rest), offset)):
                extra = rest
        calls[bad].after = sorted({*calls[bad].after, *(offset + i for i in extra)})
        keep = _closure(calls, keep | set(extra), offset)
    else:
        raise TurnNotKept("replay_differs: no set of prerequisites reproduces the turn")
    kept = sorted(keep)
    _link_state_results(calls, kept, offset)
    _check_purpose(calls, kept, deltas, target_pos, start_snapshot, world, cls_of[calls[target_pos].tool])
    dropped = [(calls[i], "unrequested_write" if writes[i] else "dead_read")
               for i in range(len(calls)) if i not in keep]
    renumber = {offset + old: offset + new for new, old in enumerate(kept)}
    out = []
    for old in kept:
        c = calls[old]
        out.append(c.model_copy(update={
            "sources": {p: renumber.get(k, k) for p, k in c.sources.items()},
            "after": sorted(renumber.get(k, k) for k in c.after),
            "changes_state": writes[old],
        }))
    _check_created_values(start_snapshot, out, [after_snaps.get(old) for old in kept])
    assign_steps(out, offset, cls_of)
    return ShapedTurn(out, world, dropped)


def _same_end(delta: frozenset, walked: frozenset, after: Any) -> bool:
    """Whether a write left what it left on the walk, having changed less: locking every door when
    one was already locked (the unlock the walk made first is gone) ends with every door locked."""
    if not {p for p, _ in delta} <= {p for p, _ in walked}:
        return False  # it changed something the walk's call did not (a file made in another folder)
    now = _leaves(after)
    return all(now.get(p) == v for p, v in walked)


def _strings(obj: Any, out: Counter | None = None) -> Counter:
    """How often each leaf value and each mapping key occurs in a state or result (canonical)."""
    out = Counter() if out is None else out
    if isinstance(obj, dict):
        for k, v in obj.items():
            out[canonical(k)] += 1
            _strings(v, out)
    elif isinstance(obj, list):
        for v in obj:
            _strings(v, out)
    else:
        out[canonical(obj)] += 1
    return out


def _shape(text: str) -> str:
    """A value or name with its digits blurred: A-0007 and A-0006, 5 and 6, read the same."""
    return re.sub(r"\d+(\.\d+)?", "9", text)


def _masked(obj: Any) -> str:
    """A result with its numbers blurred (`_shape`): what the same call returns when an id or a
    counter it mints moved."""
    return _shape(canonical(obj))


def _masked_delta(delta: frozenset) -> frozenset:
    """A state change with numbers in names and values blurred: the appointment stored under A-0007
    instead of A-0006, with the clinic's counter at 8 instead of 7, is the same change; a file made
    in another directory is not."""
    return frozenset((_shape(p), _shape(str(v))) for p, v in delta)


def _link_state_results(calls: list[ToolCall], kept: list[int], offset: int) -> None:
    """A call that needs an earlier write's state and passes a value that write returned under a
    matching name (`comment(tweet_id=7)` after `post_tweet` returned `{"id": 7}`) took it from that
    result, even when the value is too plain (a small number) for `link_values` to trust."""
    for j in kept:
        c = calls[j]
        for k in c.after:
            i = k - offset
            if not (0 <= i < j) or i not in kept:
                continue
            named = {}
            for path, v in _leaves(calls[i].result).items():
                named.setdefault(v, []).append(path.rsplit("/", 1)[-1].split("[")[0].lower())
            for p, v in c.arguments.items():
                if p in c.sources or isinstance(v, (bool, dict, list)) or v is None:
                    continue
                p_low = p.lower()
                if any(key and (key == p_low or key in p_low or p_low in key) for key in named.get(canonical(v), [])):
                    c.sources[p] = k


# verbs of a write that takes back an earlier one
_UNDO = frozenset({"cancel", "delete", "remove", "rm", "rmdir", "unfollow", "close", "revoke", "undo", "discard",
                   "unsubscribe", "unregister", "withdraw", "retract"})


# verbs of a write that makes something (a record, an entry, a link)
_MAKES = frozenset({"create", "add", "insert", "register", "append", "post", "new"})
# verbs of a write that replaces what is there (a file's text, rows): writing what is there changes nothing
_REPLACES = frozenset({"write"})


def _holds_state(snapshot: Any, cls: str) -> bool:
    """Whether the class keeps any state at all (MathAPI's snapshot is empty)."""
    return not isinstance(snapshot, dict) or not cls or bool(snapshot.get(cls, True))


def _made_by(delta: frozenset) -> set[str]:
    """The names and values a write put into the state (canonical): the file `q3.txt`, the user
    followed, the contact added."""
    out = set()
    for path, value in delta:
        if value is not None:
            out.add(value)
        out |= {canonical(seg) for seg in re.split(r"/|\[\d+\]", path) if seg}
    return out


def _names(value: Any) -> list[str]:
    """A value as the state may show it (canonical): an absolute path also by its last name, which
    is what a folder's snapshot holds (`/workspace/files/notes/a.txt` is `a.txt` under `notes`)."""
    out = [canonical(value)]
    if isinstance(value, str) and value.startswith("/") and value.rstrip("/").rsplit("/", 1)[-1]:
        out.append(canonical(value.rstrip("/").rsplit("/", 1)[-1]))
    return out


def _check_purpose(calls: list[ToolCall], kept: list[int], deltas: list[frozenset], target_pos: int,
                   start: Any, world: World, target_class: str = "") -> None:
    """A turn must change something the user would want changed, and a read must read what was
    there before the turn: `mkdir x` then `rmdir x` leaves the world as it was (`no_net_effect`);
    `follow_user(ana)` then `unfollow_user(ana)` takes back what the request itself made
    (`undoes_own_write`); `touch a.txt` then `tail a.txt`, or `add_contact(Ana)` then
    `get_user_id(Ana)`, reads back what the request itself made (`reads_own_write`); deleting what
    is not there, which some servers answer as done, removes nothing (`removes_nothing`), and adding
    what is there already adds nothing (`adds_nothing`)."""
    kept_writes = [i for i in kept if deltas[i]]
    target = calls[target_pos]
    verbs = set(name_words(target.tool))
    if not deltas[target_pos] and (verbs & (_UNDO | _MAKES | _REPLACES)) and _holds_state(start, target_class):
        # a server that answers "done" to deleting what is not there (a relation never made), to
        # adding what is there already (an observation the entity has) or to writing a file's own
        # text back; a stateless tool (math's `add`) changes nothing by design
        why = "removes_nothing" if verbs & _UNDO else "adds_nothing" if verbs & _MAKES else "changes_nothing"
        raise TurnNotKept(f"{why}: {target.tool} left the state as it was")
    end = world.snapshot()
    others = [calls[i].tool for i in kept_writes if i != target_pos]
    if kept_writes and canonical(end) == canonical(start):
        raise TurnNotKept(f"no_net_effect: {', '.join(calls[i].tool for i in kept_writes)} leave the "
                          "state as the turn found it", others)
    wanted = {n for p, v in argument_values(target.arguments)
              if p not in target.sources and not isinstance(v, bool) and v not in (None, "") for n in _names(v)}
    at_start, at_end = _strings(start), _strings(end)
    for i in kept_writes:
        if i == target_pos:
            continue
        given = {n for p, v in argument_values(calls[i].arguments)
                 if p not in calls[i].sources and not isinstance(v, bool) and v not in (None, "") for n in _names(v)}
        made = given & _made_by(deltas[i])
        if not deltas[target_pos] and made & wanted:
            raise TurnNotKept(f"reads_own_write: {target.tool} reads {min(made & wanted)} that "
                              f"{calls[i].tool} of the same turn made")
        undone = sorted(v for v in made & wanted if at_end[v] <= at_start[v])
        if _UNDO & set(name_words(target.tool)):
            # cancelling, deleting or closing what the same request just made (book, then cancel
            # that appointment), whether the user named it or its result did
            # (a credential the turn's login made is what lets it act, not what it takes back)
            undone += sorted({canonical(v) for p, v in argument_values(target.arguments)
                              if not is_secret(p) and not isinstance(v, bool) and v not in (None, "")}
                             & _made_by(deltas[i]))
        if deltas[target_pos] and undone:
            raise TurnNotKept(f"undoes_own_write: {target.tool} takes back {undone[0]} that "
                              f"{calls[i].tool} of the same turn made", [calls[i].tool])


def _check_created_values(start_snapshot: Any, calls: list[ToolCall], after: list[Any]) -> None:
    """Record on each write the telling values it created in the state (`ToolCall.created`; `after`:
    the class's snapshot after each write). A value a call of the turn created that a later call uses
    without any result having shown it was not the user's to give nor the model's to know: such a
    turn is not kept."""
    start = {canonical(v.value) for v in harvest(start_snapshot) if telling(v.value)}
    given: set[str] = set()
    created: set[str] = set()
    for c, snap in zip(calls, after):
        for param, v in argument_values(c.arguments):
            key = canonical(v)
            if param not in c.sources and telling(v) and key in created and key not in given:
                raise TurnNotKept(f"created_value_unseen: {c.tool}({param}={v!r}) uses a value an earlier call "
                                  "of the turn created in the state and no result showed")
            given.add(key)
        if c.changes_state and snap is not None:
            new = {canonical(v.value): v.value for v in harvest(snap) if telling(v.value)}
            fresh = {k: v for k, v in new.items() if k not in start and k not in given and k not in created}
            created |= fresh.keys()
            c.created = [fresh[k] for k in sorted(fresh)][:50]


def assign_steps(calls: list[ToolCall], offset: int, cls_of: dict[str, str]) -> None:
    """Each call's step: after every call whose result or state it needs, and after any call of the
    same environment class when either of the two changes the state (their order matters). Steps
    never decrease along the turn, so running steps in order is running the calls in order."""
    step = 0
    for j, c in enumerate(calls):
        needs = _needs(c, offset, len(calls))
        for i in range(j):
            o = calls[i]
            same_class = cls_of[o.tool] == cls_of[c.tool]
            if i in needs or (same_class and (o.changes_state or c.changes_state)):
                step = max(step, calls[i].step + 1)
        c.step = step


def _numbers(obj: Any) -> list[float]:
    if isinstance(obj, bool) or obj is None:
        return []
    if isinstance(obj, (int, float)):
        return [float(obj)]
    if isinstance(obj, dict):
        return [x for v in obj.values() for x in _numbers(v)]
    if isinstance(obj, list):
        return [x for v in obj for x in _numbers(v)]
    return []


# --- the gate ------------------------------------------------------------------------------------
def turn_problems(calls: list[ToolCall], target_pos: int, offset: int, failure_of=None) -> list[str]:
    """What makes a stored turn something a user would not ask for, each "<reason>: <detail>":
    a call the target does not need (`unrequested_call`), the same call twice (`repeated_call`),
    one value in two parameters of a call (`duplicate_value`), a result that reports a failure
    (`failed_result`, with `failure_of(result, tool) -> message | None`), a target that gives back a
    number the request gave (`round_trip`: gallons to liters and back), a call that uses a result of
    its own or a later step (`clairvoyant_step`)."""
    problems = []
    needed = _closure(calls, {target_pos}, offset)
    for j, c in enumerate(calls):
        if j not in needed:
            problems.append(f"unrequested_call: {c.tool}({canonical(c.arguments)[:120]}) feeds nothing the "
                            f"target {calls[target_pos].tool} needs")
    seen = set()
    for c in calls:
        key = (c.tool, canonical(c.arguments))
        if key in seen:
            problems.append(f"repeated_call: {c.tool} is called twice with the same arguments")
        seen.add(key)
        by_value: dict[str, str] = {}
        for param, v in c.arguments.items():
            if telling(v) and not isinstance(v, (list, dict)):
                other = by_value.setdefault(canonical(v), param)
                if other != param:
                    problems.append(f"duplicate_value: {c.tool} gives {v!r} to both {other} and {param}")
        if failure_of is not None:
            msg = failure_of(c.result, c.tool)  # the name tells a status read ("no") from a failure
            if msg:
                problems.append(f"failed_result: {c.tool} reported a failure: {msg}"[:300])
    target = calls[target_pos]
    given = [v for c in calls[:target_pos] for p, v in argument_values(c.arguments)
             if p not in c.sources and isinstance(v, (int, float)) and not isinstance(v, bool) and v]
    # a conversion answers with one number: a record that echoes a priority the request set is not one
    out = _numbers(target.result)
    back = [v for v in out if len(out) == 1 and any(
        telling(u) and abs(v - u) <= 1e-3 * max(1.0, abs(u)) for u in given)]
    if back and target.sources:
        problems.append(f"round_trip: {target.tool} gives back {back[0]!r}, a number the request itself gave "
                        "(a conversion and its inverse)")
    for c in calls:
        for k in [*c.sources.values(), *c.after]:
            if offset <= k < offset + len(calls) and calls[k - offset].step >= c.step:
                problems.append(f"clairvoyant_step: {c.tool} (step {c.step}) uses call {k} of step "
                                f"{calls[k - offset].step}")
    return problems
