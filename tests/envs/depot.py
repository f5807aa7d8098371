"""A parcel depot whose tools return plain dicts with bare `id` fields: what an id is and where it
comes from is said only in the parameter descriptions ("a parcel id as listed by list_parcels",
"the id returned by ship"). Staff start a shift with their badge and code (per-seed records); a
shift's session expires after a few actions ("session expired": start_shift again). Used by
tests/test_user_shapes.py (issue 12).
"""

from __future__ import annotations

import random
from typing import Literal

ACTIONS_PER_SHIFT = 7


class Depot:
    def __init__(self) -> None:
        self.staff: list[dict] = []
        self.parcels: dict[str, dict] = {}
        self.shipments: dict[str, dict] = {}
        self.session: dict | None = None  # the badge on duty and the actions it has left
        self.registered = 0
        self.shipped = 0

    def load_scenario(self, scenario: dict) -> None:
        self.staff = [dict(s) for s in scenario["staff"]]
        self.parcels = {p["id"]: dict(p) for p in scenario["parcels"]}

    def _act(self) -> None:
        if self.session is None:
            raise PermissionError("no shift started")
        if self.session["actions_left"] <= 0:
            raise PermissionError("session expired")
        self.session["actions_left"] -= 1

    def start_shift(self, badge: str, code: str) -> dict:
        """Start a shift.

        Args:
            badge: The staff member's badge.
            code: The staff member's door code.
        """
        if not any(s["badge"] == badge and s["code"] == code for s in self.staff):
            raise PermissionError("badge and code do not match")
        self.session = {"badge": badge, "actions_left": ACTIONS_PER_SHIFT}
        return {"on_duty": badge, "actions": ACTIONS_PER_SHIFT}

    def end_shift(self) -> dict:
        """End the current shift."""
        if self.session is None:
            raise PermissionError("no shift started")
        self.session = None
        return {"ended": True}

    def list_parcels(self) -> dict:
        """List the parcels waiting in the depot."""
        self._act()
        return {"items": [{"id": p["id"], "dest": p["dest"]} for p in self.parcels.values() if not p["shipped"]]}

    def register(self, dest: str, kg: float) -> dict:
        """Register a new parcel.

        Args:
            dest: Destination city.
            kg: Weight, between 1 and 30.
        """
        if not 1 <= kg <= 30:
            raise ValueError("weight must be between 1 and 30")
        self._act()
        self.registered += 1
        parcel = {"id": f"P-{500 + self.registered}", "dest": dest, "kg": kg, "shipped": False}
        self.parcels[parcel["id"]] = parcel
        return {"id": parcel["id"]}

    def inspect(self, parcel: str) -> dict:
        """Show a parcel's details.

        Args:
            parcel: A parcel id as listed by list_parcels or returned by register.
        """
        if parcel not in self.parcels:
            raise KeyError(f"unknown parcel {parcel}")
        self._act()
        return dict(self.parcels[parcel])

    def ship(self, parcel: str, carrier: Literal["road", "air"] = "road") -> dict:
        """Hand a parcel to a carrier.

        Args:
            parcel: A parcel id as listed by list_parcels.
            carrier: Who carries it.
        """
        p = self.parcels.get(parcel)
        if p is None or p["shipped"]:
            raise KeyError(f"parcel {parcel} is not waiting")
        self._act()
        p["shipped"] = True
        self.shipped += 1
        shipment = {"id": f"S-{self.shipped:03d}", "parcel": parcel, "carrier": carrier, "status": "in transit"}
        self.shipments[shipment["id"]] = shipment
        return {"id": shipment["id"], "carrier": carrier}

    def track(self, shipment: str) -> dict:
        """Where a shipment is.

        Args:
            shipment: The id returned by ship.
        """
        if shipment not in self.shipments:
            raise KeyError(f"unknown shipment {shipment}")
        self._act()
        return {"status": self.shipments[shipment]["status"]}

    def recall(self, shipment: str) -> dict:
        """Call a shipment back to the depot.

        Args:
            shipment: The id returned by ship.
        """
        s = self.shipments.get(shipment)
        if s is None or s["status"] != "in transit":
            raise KeyError(f"shipment {shipment} cannot be recalled")
        self._act()
        s["status"] = "recalled"
        self.parcels[s["parcel"]]["shipped"] = False
        return {"status": "recalled"}


def generate_scenario(seed: int) -> dict:
    """Two staff members with their own badge and code, three waiting parcels (all per seed)."""
    rng = random.Random(seed)
    staff = [{"badge": f"B-{rng.randint(100, 999)}", "code": f"{rng.randint(0, 9999):04d}", "name": n}
             for n in rng.sample(["Ines", "Jon", "Kai", "Lea", "Mo"], 2)]
    parcels = [{"id": f"P-{rng.randint(100, 499)}", "dest": rng.choice(["Lyon", "Porto", "Graz", "Turku"]),
                "kg": float(rng.randint(1, 20)), "shipped": False} for _ in range(3)]
    return {"staff": staff, "parcels": parcels}
