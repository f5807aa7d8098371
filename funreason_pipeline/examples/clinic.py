"""A clinic front desk: an example user environment written for this pipeline (not BFCL).

Staff log in, find patients, look up doctors and free slots, book, check in or cancel appointments,
write notes and prescriptions. Ids travel from one call to the next (search_patients -> patient_id ->
book_appointment), and calls leave state behind (login before anything that touches patient data).

Everything the pipeline needs is in the class: public methods are the tools, type hints and Google
docstrings are their schemas, `load_scenario` takes the initial state, public attributes are the state
that verification compares. `generate_scenario(seed)` makes fresh initial states.
"""

from __future__ import annotations

import random
from typing import Literal, TypedDict

from pydantic import BaseModel, Field


class ClinicError(Exception):
    """A refused request. Tools may raise or return {"error": ...}: both become error results."""


Specialty = Literal["general", "cardiology", "dermatology", "pediatrics"]
Medication = Literal["amoxicillin", "ibuprofen", "lisinopril", "metformin", "cetirizine"]
Reason = Literal["checkup", "follow-up", "vaccination", "consultation"]


# ---- what the tools return (TypedDicts give the response schemas the API graph reads) ----------


class Session(TypedDict):
    username: str
    staff_name: str
    role: str


class LogoutResult(TypedDict):
    logged_out: str


class PatientSummary(TypedDict):
    patient_id: str
    name: str
    date_of_birth: str


class PatientSearch(TypedDict):
    patients: list[PatientSummary]


class PatientRecord(TypedDict):
    patient_id: str
    name: str
    date_of_birth: str
    allergies: list[str]
    notes: list[str]


class Doctor(TypedDict):
    doctor_id: str
    name: str
    specialty: str


class DoctorList(TypedDict):
    doctors: list[Doctor]


class Slot(TypedDict):
    slot_id: str
    doctor_id: str
    date: str
    time: str


class SlotList(TypedDict):
    slots: list[Slot]


class Appointment(TypedDict):
    appointment_id: str
    patient_id: str
    doctor_id: str
    slot_id: str
    date: str
    time: str
    reason: str
    status: str


class AppointmentList(TypedDict):
    appointments: list[Appointment]


class StatusChange(TypedDict):
    appointment_id: str
    status: str


class NoteAdded(TypedDict):
    patient_id: str
    note_count: int


class Prescription(TypedDict):
    prescription_id: str
    patient_id: str
    medication: str
    dose_mg: int
    refills: int


# ---- the scenario: validated at the boundary, so a bad one fails to load with a clear message ----


class StaffMember(BaseModel):
    username: str
    password: str
    name: str
    role: Literal["doctor", "nurse", "receptionist"]


class PatientIn(BaseModel):
    patient_id: str
    name: str
    date_of_birth: str
    allergies: list[Medication] = Field(default_factory=list)
    notes: list[str] = Field(default_factory=list)


class DoctorIn(BaseModel):
    doctor_id: str
    name: str
    specialty: Specialty


class SlotIn(BaseModel):
    slot_id: str
    doctor_id: str
    date: str
    time: str
    booked: bool = False


class AppointmentIn(BaseModel):
    appointment_id: str
    patient_id: str
    slot_id: str
    reason: Reason = "checkup"
    status: Literal["booked", "checked_in", "cancelled"] = "booked"


class ClinicScenario(BaseModel):
    staff: list[StaffMember] = Field(min_length=1)
    patients: list[PatientIn] = Field(min_length=1)
    doctors: list[DoctorIn] = Field(min_length=1)
    slots: list[SlotIn] = Field(default_factory=list)
    appointments: list[AppointmentIn] = Field(default_factory=list)


class ClinicSystem:
    """The clinic's front-desk system. State is plain public attributes (compared for verification)."""

    def __init__(self) -> None:
        self.staff: dict[str, dict] = {}
        self.current_user: str | None = None
        self.patients: dict[str, dict] = {}
        self.doctors: dict[str, dict] = {}
        self.slots: dict[str, dict] = {}
        self.appointments: dict[str, dict] = {}
        self.prescriptions: list[dict] = []
        self.next_number = 1  # ids come from state, never from a clock, so replays match

    def load_scenario(self, scenario: dict) -> None:
        """Set the initial state (not a tool: the pipeline calls it before the first turn)."""
        sc = ClinicScenario.model_validate(scenario)
        self.staff = {s.username: s.model_dump() for s in sc.staff}
        self.patients = {p.patient_id: p.model_dump() for p in sc.patients}
        self.doctors = {d.doctor_id: d.model_dump() for d in sc.doctors}
        self.slots = {s.slot_id: s.model_dump() for s in sc.slots}
        for s in self.slots.values():
            if s["doctor_id"] not in self.doctors:
                raise ValueError(f"slot {s['slot_id']} names unknown doctor {s['doctor_id']}")
        self.appointments = {}
        for a in sc.appointments:
            slot = self.slots.get(a.slot_id)
            if slot is None or a.patient_id not in self.patients:
                raise ValueError(f"appointment {a.appointment_id} names an unknown slot or patient")
            slot["booked"] = a.status != "cancelled"
            self.appointments[a.appointment_id] = {**a.model_dump(), "doctor_id": slot["doctor_id"],
                                                   "date": slot["date"], "time": slot["time"]}
        self.current_user = None
        self.next_number = len(self.appointments) + 1

    # -- helpers (private: not tools) --

    def _require_login(self) -> None:
        if self.current_user is None:
            raise ClinicError("not logged in: log in with your staff username and password first")

    def _new_id(self, prefix: str) -> str:
        number = self.next_number
        self.next_number += 1
        return f"{prefix}-{number:04d}"

    def _patient(self, patient_id: str) -> dict:
        patient = self.patients.get(patient_id)
        if patient is None:
            raise ClinicError(f"no patient with id {patient_id}")
        return patient

    # -- tools --

    def login(self, username: str, password: str) -> Session:
        """Log a staff member in to the front-desk system.

        Args:
            username: Staff username, e.g. 'reception_amy'.
            password: The staff member's password.

        Returns:
            username (str): The logged-in staff username.
            staff_name (str): Full name of the staff member.
            role (str): Their role at the clinic.
        """
        if self.current_user is not None:
            raise ClinicError(f"already logged in as {self.current_user}; log out first")
        member = self.staff.get(username)
        if member is None or member["password"] != password:
            raise ClinicError("invalid username or password")
        self.current_user = username
        return {"username": username, "staff_name": member["name"], "role": member["role"]}

    def logout(self) -> LogoutResult:
        """Log the current staff member out."""
        if self.current_user is None:
            raise ClinicError("nobody is logged in")
        user, self.current_user = self.current_user, None
        return {"logged_out": user}

    def search_patients(self, name: str) -> PatientSearch:
        """Find patients whose name contains the given text (case-insensitive).

        Args:
            name: Part of the patient's name, e.g. a surname.
        """
        self._require_login()
        needle = name.strip().lower()
        found = [{"patient_id": p["patient_id"], "name": p["name"], "date_of_birth": p["date_of_birth"]}
                 for p in self.patients.values() if needle and needle in p["name"].lower()]
        if not found:
            raise ClinicError(f"no patient matches {name!r}")
        return {"patients": found}

    def get_patient(self, patient_id: str) -> PatientRecord:
        """Get a patient's record: date of birth, allergies and notes.

        Args:
            patient_id: The patient's id, as returned by search_patients.
        """
        self._require_login()
        p = self._patient(patient_id)
        return {"patient_id": p["patient_id"], "name": p["name"], "date_of_birth": p["date_of_birth"],
                "allergies": list(p["allergies"]), "notes": list(p["notes"])}

    def list_doctors(self, specialty: Specialty | None = None) -> DoctorList:
        """List the clinic's doctors, optionally only those of one specialty.

        Args:
            specialty: Only doctors of this specialty.
        """
        doctors = [dict(d) for d in self.doctors.values() if specialty is None or d["specialty"] == specialty]
        if not doctors:
            raise ClinicError(f"no {specialty} doctors at this clinic")
        return {"doctors": doctors}

    def find_slots(self, doctor_id: str, date: str | None = None) -> SlotList:
        """Find a doctor's free appointment slots, optionally on one date.

        Args:
            doctor_id: The doctor's id, as returned by list_doctors.
            date: Only slots on this date, formatted YYYY-MM-DD.
        """
        if doctor_id not in self.doctors:
            raise ClinicError(f"no doctor with id {doctor_id}")
        free = [{k: s[k] for k in ("slot_id", "doctor_id", "date", "time")} for s in self.slots.values()
                if s["doctor_id"] == doctor_id and not s["booked"] and (date is None or s["date"] == date)]
        if not free:
            raise ClinicError("no free slots" + (f" on {date}" if date else ""))
        return {"slots": free}

    def book_appointment(self, patient_id: str, slot_id: str, reason: Reason = "checkup") -> Appointment:
        """Book a free slot for a patient.

        Args:
            patient_id: The patient's id.
            slot_id: A free slot's id, as returned by find_slots.
            reason: Why the patient is coming in.

        Returns:
            The new appointment, with status 'booked'.
        """
        self._require_login()
        self._patient(patient_id)
        slot = self.slots.get(slot_id)
        if slot is None or slot["booked"]:
            raise ClinicError(f"slot {slot_id} is not free")
        slot["booked"] = True
        appt = {"appointment_id": self._new_id("A"), "patient_id": patient_id, "doctor_id": slot["doctor_id"],
                "slot_id": slot_id, "date": slot["date"], "time": slot["time"], "reason": reason,
                "status": "booked"}
        self.appointments[appt["appointment_id"]] = appt
        return dict(appt)

    def list_appointments(self, patient_id: str) -> AppointmentList:
        """List a patient's appointments, including cancelled ones.

        Args:
            patient_id: The patient's id.
        """
        self._require_login()
        self._patient(patient_id)
        return {"appointments": [dict(a) for a in self.appointments.values()
                                 if a["patient_id"] == patient_id]}

    def check_in(self, appointment_id: str) -> StatusChange:
        """Check a patient in for a booked appointment.

        Args:
            appointment_id: The appointment's id, as returned by book_appointment.
        """
        return self._set_status(appointment_id, "checked_in")

    def cancel_appointment(self, appointment_id: str) -> StatusChange:
        """Cancel a booked appointment and free its slot.

        Args:
            appointment_id: The appointment's id.
        """
        result = self._set_status(appointment_id, "cancelled")
        self.slots[self.appointments[appointment_id]["slot_id"]]["booked"] = False
        return result

    def _set_status(self, appointment_id: str, status: str) -> StatusChange:
        self._require_login()
        appt = self.appointments.get(appointment_id)
        if appt is None:
            raise ClinicError(f"no appointment with id {appointment_id}")
        if appt["status"] != "booked":
            raise ClinicError(f"appointment {appointment_id} is {appt['status']}")
        appt["status"] = status
        return {"appointment_id": appointment_id, "status": status}

    def add_note(self, patient_id: str, text: str) -> NoteAdded:
        """Add a note to a patient's record.

        Args:
            patient_id: The patient's id.
            text: The note's text.
        """
        self._require_login()
        patient = self._patient(patient_id)
        patient["notes"].append(f"{self.current_user}: {text}")
        return {"patient_id": patient_id, "note_count": len(patient["notes"])}

    def prescribe(self, patient_id: str, medication: Medication, dose_mg: int, refills: int = 0) -> Prescription:
        """Write a prescription for a patient; refused if the patient is allergic to the medication.

        Args:
            patient_id: The patient's id.
            medication: The medication to prescribe.
            dose_mg: Dose in milligrams, between 50 and 1000.
            refills: Number of refills, between 0 and 5.
        """
        self._require_login()
        patient = self._patient(patient_id)
        if medication in patient["allergies"]:
            raise ClinicError(f"{patient['name']} is allergic to {medication}")
        if not 50 <= dose_mg <= 1000 or not 0 <= refills <= 5:
            raise ValueError("dose_mg must be 50-1000 and refills 0-5")
        rx = {"prescription_id": self._new_id("RX"), "patient_id": patient_id, "medication": medication,
              "dose_mg": dose_mg, "refills": refills}
        self.prescriptions.append(rx)
        return dict(rx)


# ---- seeded scenarios -------------------------------------------------------------------------

_FIRST = ["Ana", "Ben", "Chen", "Dara", "Eli", "Fatima", "Goran", "Hana", "Ivan", "Julia", "Kofi", "Lena",
          "Mateo", "Nora", "Omar", "Priya", "Quinn", "Rosa", "Sami", "Tara"]
_LAST = ["Alvarez", "Brennan", "Costa", "Dubois", "Eriksen", "Fischer", "Garcia", "Haddad", "Ito", "Jensen",
         "Kowalski", "Larsen", "Moreau", "Novak", "Okafor", "Petrov", "Quiroga", "Rossi", "Silva", "Tanaka"]
_STAFF = ["amy", "raj", "mei", "tom", "lucia", "ola"]
_TIMES = ["08:30", "09:00", "09:30", "10:15", "11:00", "13:30", "14:00", "15:45", "16:30"]
_SPECIALTIES: list[Specialty] = ["general", "cardiology", "dermatology", "pediatrics"]
_MEDICATIONS: list[Medication] = ["amoxicillin", "ibuprofen", "lisinopril", "metformin", "cetirizine"]


def generate_scenario(seed: int) -> dict:
    """A fresh clinic for `seed`: staff, patients, doctors, free slots and a few booked appointments."""
    rng = random.Random(seed)  # never the global random: the same seed must give the same clinic
    names = rng.sample([f"{f} {last}" for f in _FIRST for last in _LAST], rng.randint(6, 10))
    staff = [{"username": f"{rng.choice(['reception', 'nurse', 'dr'])}_{u}", "password": f"pw-{rng.randint(1000, 9999)}",
              "name": f"{u.capitalize()} {rng.choice(_LAST)}", "role": rng.choice(["doctor", "nurse", "receptionist"])}
             for u in rng.sample(_STAFF, rng.randint(1, 2))]
    patients = [{"patient_id": f"P-{rng.randint(1000, 9999)}{i}", "name": n,
                 "date_of_birth": f"{rng.randint(1940, 2020)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}",
                 "allergies": rng.sample(_MEDICATIONS, rng.choice([0, 0, 1, 2]))}
                for i, n in enumerate(names)]
    doctors = [{"doctor_id": f"D-{i + 1:02d}{rng.randint(10, 99)}", "name": f"Dr. {rng.choice(_LAST)}",
                "specialty": spec} for i, spec in enumerate(rng.sample(_SPECIALTIES, rng.randint(2, 4)))]
    slots = []
    for d in doctors:
        for day in sorted(rng.sample(range(1, 29), rng.randint(2, 3))):
            for t in sorted(rng.sample(_TIMES, rng.randint(1, 3))):
                slots.append({"slot_id": f"S-{len(slots) + 1:03d}{rng.randint(0, 9)}", "doctor_id": d["doctor_id"],
                              "date": f"2026-06-{day:02d}", "time": t})
    booked = rng.sample(slots, min(len(slots) // 4, 3))
    appointments = [{"appointment_id": f"A-{i + 1:04d}", "patient_id": rng.choice(patients)["patient_id"],
                     "slot_id": s["slot_id"], "reason": rng.choice(["checkup", "follow-up", "consultation"])}
                    for i, s in enumerate(booked)]
    return {"staff": staff, "patients": patients, "doctors": doctors, "slots": slots, "appointments": appointments}
