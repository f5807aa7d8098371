"""A deliberately broken environment: every tool refuses every call, so nothing can be sampled.
`cli demo` on it must exit non-zero with a message saying so (tests/test_user_shapes.py)."""

from __future__ import annotations


class Broken:
    def __init__(self) -> None:
        self.vault: dict[str, str] = {}

    def load_scenario(self, scenario: dict) -> None:
        self.vault = dict(scenario.get("vault", {}))

    def open_vault(self, code: str) -> dict:
        """Open the vault.

        Args:
            code: The vault's code.
        """
        raise PermissionError("the vault is jammed")

    def read_note(self, note_id: str) -> dict:
        """Read a note.

        Args:
            note_id: The note's id.
        """
        raise PermissionError("not logged in")


def generate_scenario(seed: int) -> dict:
    return {"vault": {"code": f"{seed:04d}"}}
