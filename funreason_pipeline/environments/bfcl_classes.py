"""Everything the pipeline knows about each of BFCL's eight multi-turn classes, one record per class.

A record names where the class and its tool docs live in bfcl-eval, how a fresh scenario of it is
made (the generators are in bfcl_scenarios.py), what its implementation accepts that its schemas do
not say (argument examples, read from bfcl-eval's func_source_code/*.py: the unit tables of the math
conversions, the cities `get_zipcode_based_on_city` knows, the zipcode pairs `estimate_distance` has
distances for, the companies `get_symbol_by_name` knows, the passports `verify_traveler_information`
accepts), which tool can never work, and how it logs in. The examples feed only the sampler's
argument proposals; the tool schemas shown to models stay BFCL's.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from itertools import permutations
from typing import Any

from funreason_pipeline.environments import bfcl_scenarios as gen
from funreason_pipeline.environments.decontamination import is_contaminated_config


@dataclass(frozen=True)
class BfclClass:
    module: str  # bfcl_eval.eval_checker.multi_turn_eval.func_source_code.<module>
    doc_file: str  # bfcl_eval/data/multi_turn_func_doc/<doc_file>: the tool schemas
    generate: Callable[[random.Random], dict]  # a fresh scenario, shaped as `_load_scenario` reads it
    # the tool that logs the scenario's user in (None: no login), and how the scenario says it starts
    # logged in (generators draw it from the seed, about half each)
    login_tool: str | None = None
    login_state: str = ""
    # tool -> joint argument examples the implementation accepts but the schema does not say
    argument_examples: Mapping[str, list[dict[str, Any]]] = field(default_factory=dict)
    unusable: Mapping[str, str] = field(default_factory=dict)  # tool -> why no call of it can succeed
    stateless: bool = False  # no state at all: its only scenario `{}` is BFCL's too, not contamination


_IMPERIAL_SI = [("cm", "in"), ("m", "ft"), ("m", "yd"), ("km", "miles"), ("kg", "lb"), ("celsius", "fahrenheit")]
_SI_LENGTH = ["km", "m", "cm", "mm", "um", "nm"]
_CITIES = ["Rivermist", "Stonebrook", "Maplecrest", "Silverpine", "Shadowridge", "Sunset Valley", "Oakendale",
           "Willowbend", "Crescent Hollow", "Autumnville", "San Francisco"]
_ZIP_PAIRS = [("83214", "74532"), ("56108", "62947"), ("71354", "83462"), ("47329", "52013"),
              ("69238", "51479"), ("94016", "83214"), ("94016", "94704"), ("94704", "08540"),
              ("94016", "08540"), ("62947", "47329"), ("94016", "62947")]
# any other name is "Stock not found", a failure
_COMPANIES = ["Apple", "Google", "Tesla", "Microsoft", "Nvidia", "Zeta Corp", "Alpha Tech", "Omega Industries",
              "Quasar Ltd.", "Neptune Systems", "Synex Solutions", "Amazon", "Gorilla"]

BFCL_CLASSES: dict[str, BfclClass] = {
    "GorillaFileSystem": BfclClass("gorilla_file_system", "gorilla_file_system.json", gen.gen_gorilla_file_system),
    "MathAPI": BfclClass(
        "math_api", "math_api.json", gen.gen_math_api, stateless=True,
        argument_examples={
            "imperial_si_conversion": [{"unit_in": a, "unit_out": b} for x, y in _IMPERIAL_SI
                                       for a, b in ((x, y), (y, x))],
            "si_unit_conversion": [{"unit_in": a, "unit_out": b} for a, b in permutations(_SI_LENGTH, 2)],
        }),
    # the first entry of `user_map` is the workspace owner, the one who logs in (by user id)
    "MessageAPI": BfclClass("message_api", "message_api.json", gen.gen_message_api,
                            login_tool="message_login", login_state="current_user"),
    # `comments` has int tweet ids as keys: BFCL's comment tools index by int and `_load_scenario`
    # converts only `tweets` keys
    "TwitterAPI": BfclClass("posting_api", "posting_api.json", gen.gen_twitter_api,
                            login_tool="authenticate_twitter", login_state="authenticated"),
    # the login accepts any non-empty pair; the scenario still carries the user's credentials
    "TicketAPI": BfclClass("ticket_api", "ticket_api.json", gen.gen_ticket_api,
                           login_tool="ticket_login", login_state="current_user"),
    # the login accepts anything; the scenario still carries the user's credentials
    "TradingBot": BfclClass(
        "trading_bot", "trading_bot.json", gen.gen_trading_bot,
        login_tool="trading_login", login_state="authenticated",
        argument_examples={"get_symbol_by_name": [{"name": c} for c in _COMPANIES]}),
    # authenticate_travel accepts any values; the scenario carries the app credentials
    # (client_id, client_secret, refresh_token)
    "TravelAPI": BfclClass(
        "travel_booking", "travel_booking.json", gen.gen_travel_api,
        login_tool="authenticate_travel", login_state="access_token",
        argument_examples={"verify_traveler_information": [  # passports issued by the United States
            {"passport_number": f"US{n}"} for n in (4820193, 7391024, 5028371, 9182730, 6603918, 3847265)]}),
    "VehicleControlAPI": BfclClass(
        "vehicle_control", "vehicle_control.json", gen.gen_vehicle_control,
        argument_examples={
            "get_zipcode_based_on_city": [{"city": c} for c in _CITIES],
            "estimate_distance": [{"cityA": a, "cityB": b} for x, y in _ZIP_PAIRS for a, b in ((x, y), (y, x))],
        },
        unusable={"get_outside_temperature_from_weather_com":
                  "BFCL's implementation is `return {\"error\": 404}`: no call can succeed, so no clean trace "
                  "reaches it"}),
}

_MAX_RETRIES = 16


def bfcl_class(class_name: str) -> BfclClass:
    try:
        return BFCL_CLASSES[class_name]
    except KeyError:
        raise KeyError(f"no BFCL class {class_name!r}; known: {', '.join(BFCL_CLASSES)}") from None


def generate_scenario(class_name: str, seed: int) -> dict:
    """A fresh, JSON-serialisable initial state for `class_name`, fully determined by `seed`. It never
    equals a BFCL test config (a stateless class aside: its only state is `{}`, which BFCL uses too)."""
    record = bfcl_class(class_name)
    for attempt in range(_MAX_RETRIES):
        # Retries (astronomically unlikely) re-derive deterministically from the same seed.
        rng = random.Random(seed if attempt == 0 else f"{seed}/retry{attempt}")
        scenario = record.generate(rng)
        if record.stateless or not is_contaminated_config(class_name, scenario):
            return scenario
    raise RuntimeError(f"{class_name}: could not generate a non-BFCL scenario for seed {seed}")
