"""Team kanban board, the backend of a small web app.

Handlers never raise: they answer {"ok": True, ...} or {"ok": False, "msg": ...}, and the older
text commands answer "OK ..." or "Error: ...".
"""
import random

COLUMNS = ["backlog", "todo", "doing", "done"]
WIP_LIMIT = 3


class KanbanBoard:
    def __init__(self):
        self.team = {}  # name -> {"token": ..., "admin": bool}
        self.cards = {}  # id -> card
        self.next_id = 1
        self.user = None

    def load_scenario(self, scenario):
        self.team = {m["name"]: {"token": m["token"], "admin": m["admin"]} for m in scenario["team"]}
        for c in scenario["cards"]:
            self.cards[self.next_id] = {"id": self.next_id, "title": c["title"], "column": c["column"],
                                        "owner": c.get("owner"), "points": c["points"], "comments": []}
            self.next_id += 1

    def login(self, name: str, token: str) -> dict:
        m = self.team.get(name)
        if m is None or m["token"] != token:
            return {"ok": False, "msg": "invalid login"}
        self.user = name
        return {"ok": True, "user": name, "admin": m["admin"]}

    def logout(self) -> dict:
        if self.user is None:
            return {"ok": False, "msg": "not logged in"}
        self.user = None
        return {"ok": True}

    def create(self, title: str, points: int = 1, column: str = "backlog") -> dict:
        """New card."""
        if self.user is None:
            return {"ok": False, "msg": "login required"}
        if column not in COLUMNS:
            return {"ok": False, "msg": f"unknown column {column}"}
        if points not in (1, 2, 3, 5, 8, 13):
            return {"ok": False, "msg": "points must be a fibonacci number up to 13"}
        cid = self.next_id
        self.next_id += 1
        self.cards[cid] = {"id": cid, "title": title, "column": column, "owner": None, "points": points,
                           "comments": []}
        return {"ok": True, "id": cid}

    def get(self, id: int) -> dict:
        card = self.cards.get(id)
        if card is None:
            return {"ok": False, "msg": f"no card {id}"}
        return {"ok": True, "card": card}

    def board(self, column: str = None) -> dict:
        """Cards by column."""
        if column is not None and column not in COLUMNS:
            return {"ok": False, "msg": f"unknown column {column}"}
        cols = [column] if column else COLUMNS
        return {"ok": True, "columns": {col: [{"id": c["id"], "title": c["title"], "owner": c["owner"]}
                                              for c in self.cards.values() if c["column"] == col] for col in cols}}

    def move(self, id: int, to: str) -> str:
        if self.user is None:
            return "Error: login required"
        card = self.cards.get(id)
        if card is None:
            return f"Error: no card {id}"
        if to not in COLUMNS:
            return f"Error: unknown column {to}"
        if to == "doing" and sum(c["column"] == "doing" for c in self.cards.values()) >= WIP_LIMIT:
            return "Error: WIP limit reached"
        card["column"] = to
        return f"OK moved {id} to {to}"

    def assign(self, id: int, name: str) -> str:
        if self.user is None:
            return "Error: login required"
        card = self.cards.get(id)
        if card is None:
            return f"Error: no card {id}"
        if name not in self.team:
            return f"Error: {name} is not on the team"
        card["owner"] = name
        return "OK"

    def comment(self, id: int, text: str) -> str:
        if self.user is None:
            return "Error: login required"
        card = self.cards.get(id)
        if card is None:
            return f"Error: no card {id}"
        card["comments"].append({"by": self.user, "text": text})
        return "OK"

    def delete(self, id: int) -> dict:
        if self.user is None:
            return {"ok": False, "msg": "login required"}
        if not self.team[self.user]["admin"]:
            return {"ok": False, "msg": "only admins can delete cards"}
        if self.cards.pop(id, None) is None:
            return {"ok": False, "msg": f"no card {id}"}
        return {"ok": True}

    def stats(self) -> dict:
        done = [c for c in self.cards.values() if c["column"] == "done"]
        return {"ok": True, "cards": len(self.cards), "done": len(done),
                "points_done": sum(c["points"] for c in done)}


def scenario(seed):
    rng = random.Random(seed)
    names = rng.sample(["maya", "tom", "lena", "raj", "ivo", "sue"], 3)
    team = [{"name": n, "token": "%032x" % rng.getrandbits(128), "admin": i == 0} for i, n in enumerate(names)]
    titles = ["fix login bug", "write release notes", "update deps", "design onboarding", "add dark mode",
              "migrate db", "flaky test in CI", "customer export", "rate limiting"]
    cards = [{"title": t, "column": rng.choice(COLUMNS), "points": rng.choice([1, 2, 3, 5, 8]),
              "owner": rng.choice(names + [None])} for t in rng.sample(titles, 6)]
    return {"team": team, "cards": cards}
