"""What BFCL's implementations accept but their schemas do not say, and the one tool that cannot work.

Facts read from bfcl-eval's source (func_source_code/*.py): the unit tables of the math conversions,
the cities `get_zipcode_based_on_city` knows, the zipcode pairs `estimate_distance` has distances
for, the companies `get_symbol_by_name` knows (any other name is "Stock not found", a failure) and
the passports `verify_traveler_information` accepts (issued by the United States: "US..." numbers). Without them a sampler proposes units and zipcodes blindly and never reaches these tools. They
feed only the sampler's argument proposals (as joint examples per tool); the tool schemas shown to
models stay BFCL's.
"""

from __future__ import annotations

from itertools import permutations
from typing import Any

_IMPERIAL_SI = [("cm", "in"), ("m", "ft"), ("m", "yd"), ("km", "miles"), ("kg", "lb"), ("celsius", "fahrenheit")]
_SI_LENGTH = ["km", "m", "cm", "mm", "um", "nm"]
_CITIES = ["Rivermist", "Stonebrook", "Maplecrest", "Silverpine", "Shadowridge", "Sunset Valley", "Oakendale",
           "Willowbend", "Crescent Hollow", "Autumnville", "San Francisco"]
_ZIP_PAIRS = [("83214", "74532"), ("56108", "62947"), ("71354", "83462"), ("47329", "52013"),
              ("69238", "51479"), ("94016", "83214"), ("94016", "94704"), ("94704", "08540"),
              ("94016", "08540"), ("62947", "47329"), ("94016", "62947")]

_COMPANIES = ["Apple", "Google", "Tesla", "Microsoft", "Nvidia", "Zeta Corp", "Alpha Tech", "Omega Industries",
              "Quasar Ltd.", "Neptune Systems", "Synex Solutions", "Amazon", "Gorilla"]

BFCL_ARGUMENT_EXAMPLES: dict[str, dict[str, list[dict[str, Any]]]] = {
    "MathAPI": {
        "imperial_si_conversion": [{"unit_in": a, "unit_out": b} for x, y in _IMPERIAL_SI for a, b in ((x, y), (y, x))],
        "si_unit_conversion": [{"unit_in": a, "unit_out": b} for a, b in permutations(_SI_LENGTH, 2)],
    },
    "TradingBot": {
        "get_symbol_by_name": [{"name": c} for c in _COMPANIES],
    },
    "TravelAPI": {
        "verify_traveler_information": [{"passport_number": f"US{n}"} for n in (4820193, 7391024, 5028371, 9182730,
                                                                                  6603918, 3847265)],
    },
    "VehicleControlAPI": {
        "get_zipcode_based_on_city": [{"city": c} for c in _CITIES],
        "estimate_distance": [{"cityA": a, "cityB": b} for x, y in _ZIP_PAIRS for a, b in ((x, y), (y, x))],
    },
}


# Tools whose implementation cannot succeed, whatever the state and arguments: not sampling targets.
BFCL_UNUSABLE: dict[str, dict[str, str]] = {
    "VehicleControlAPI": {
        "get_outside_temperature_from_weather_com":
            "BFCL's implementation is `return {\"error\": 404}`: no call can succeed, so no clean trace reaches it",
    },
}
