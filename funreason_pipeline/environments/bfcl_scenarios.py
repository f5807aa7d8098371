"""Seeded generators of fresh, realistic initial states for BFCL's multi-turn tool classes.

Why: BFCL ships only its *test* initial configs; synthesising training data on those would leak
the benchmark. Each generator here builds a new state from a ``random.Random(seed)`` only (no
global random, no clock), shaped exactly as the class's ``_load_scenario`` reads it and filled
so that most tools succeed when called with values read from the state. Which generator serves
which class, and each class's other facts (its login tool, argument examples, unusable tools), are
in bfcl_classes.py; ``bfcl_classes.generate_scenario`` is the entry point.

Auth-bearing classes draw "logged in or not" from the seed (about half each). Some classes check no
credentials at all (TicketAPI, TradingBot, TravelAPI accept anything); their scenarios still carry
the credentials a user would quote (``username``/``password``, ``client_id``/``client_secret``/
``refresh_token``). ``_load_scenario`` ignores extra keys. TwitterAPI's ``comments`` uses *int*
tweet ids as keys because BFCL's ``comment`` and ``get_tweet_comments`` index by int and
``_load_scenario`` converts only ``tweets`` keys (after a JSON round trip they become strings again:
pre-existing comments then stay in the state but ``get_tweet_comments`` no longer finds them).
"""

from __future__ import annotations

import random
import string

# ---------------------------------------------------------------------------------------------
# shared vocabulary
# ---------------------------------------------------------------------------------------------

# fmt: off
FIRST_NAMES = [
    "Alice", "Bruno", "Chloe", "Dmitri", "Elena", "Farah", "Gabriel", "Hana", "Isaac", "Jasmine",
    "Kenji", "Leila", "Marcus", "Nadia", "Oscar", "Priya", "Quentin", "Rosa", "Samuel", "Tara",
    "Umar", "Valeria", "Wesley", "Ximena", "Yusuf", "Zoe", "Amara", "Boris", "Camila", "Diego",
    "Esther", "Felix", "Greta", "Hugo", "Ingrid", "Jonas", "Keira", "Lucas", "Mira", "Noah",
    "Olivia", "Pavel", "Rahul", "Sofia", "Theo", "Uma", "Victor", "Wanda", "Yara", "Zane",
]
LAST_NAMES = [
    "Anderson", "Becker", "Castillo", "Dubois", "Eriksen", "Fischer", "Gupta", "Hoffman", "Ibrahim",
    "Jensen", "Kowalski", "Lindqvist", "Moreau", "Nakamura", "Okafor", "Petrov", "Quinn", "Rossi",
    "Schneider", "Tanaka", "Ueda", "Varga", "Whitaker", "Xu", "Yilmaz", "Zimmerman", "Alvarez",
    "Brennan", "Costa", "Delgado", "Novak", "Park", "Reyes", "Silva", "Walsh", "Horvat", "Mendes",
]
COMPANIES = [
    "Northwind Labs", "Bluepeak Analytics", "Cedar & Finch", "Helios Robotics", "Lumen Health",
    "Orchard Logistics", "Pinecrest Media", "Riverstone Bank", "Tidewater Energy", "Vantage Foods",
]
PROJECTS = [
    "atlas", "nimbus", "falcon", "harbor", "quartz", "juniper", "beacon", "sequoia", "meridian",
    "ember", "tundra", "cobalt", "aurora", "lighthouse", "pebble", "orbit",
]
KEYWORDS = [
    "budget", "deadline", "migration", "release", "invoice", "forecast", "latency", "onboarding",
    "compliance", "backup", "roadmap", "audit", "renewal", "rollout", "benchmark", "vendor",
]
REGIONS = ["North", "South", "East", "West", "Central"]
PRODUCTS = [
    "Desk Lamp", "Ergo Chair", "Standing Desk", "USB-C Hub", "Noise-Cancelling Headset",
    "Webcam HD", "Monitor Arm", "Mechanical Keyboard", "Wireless Mouse", "Laptop Stand",
]
WEEKDAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday"]
# fmt: on


def _name(rng: random.Random) -> tuple[str, str]:
    return rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)


def _people(rng: random.Random, k: int) -> list[str]:
    firsts = rng.sample(FIRST_NAMES, k)
    return [f"{f} {rng.choice(LAST_NAMES)}" for f in firsts]


def _date(rng: random.Random, year: int) -> str:
    return f"{year}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"


def _password(rng: random.Random) -> str:
    # Realistic-looking, never a dictionary password, always with a digit and a symbol.
    alphabet = string.ascii_letters + string.digits
    core = "".join(rng.choice(alphabet) for _ in range(rng.randint(8, 12)))
    return core + rng.choice("!#$%&*@^") + str(rng.randint(10, 99))


def _token(rng: random.Random, length: int) -> str:
    return "".join(rng.choice(string.ascii_lowercase + string.digits) for _ in range(length))


def _digits(rng: random.Random, length: int) -> str:
    return str(rng.randint(1, 9)) + "".join(str(rng.randint(0, 9)) for _ in range(length - 1))


def _login_state(rng: random.Random) -> bool:
    # drawn first: whether the scenario starts logged in (about half do)
    return rng.random() < 0.5


# ---------------------------------------------------------------------------------------------
# GorillaFileSystem
# ---------------------------------------------------------------------------------------------


def _f(content: str) -> dict:
    return {"type": "file", "content": content}


def _d(contents: dict) -> dict:
    return {"type": "directory", "contents": contents}


class _Ctx:
    """Words shared by all files of one tree, so grep/sort/diff across files find real overlap."""

    def __init__(self, rng: random.Random) -> None:
        self.people = _people(rng, 6)
        self.firsts = [p.split()[0] for p in self.people]
        self.company = rng.choice(COMPANIES)
        self.domain = self.company.lower().replace(" & ", "").replace(" ", "") + ".com"
        self.project = rng.choice(PROJECTS)
        self.year = rng.randint(2022, 2025)
        self.keywords = rng.sample(KEYWORDS, 4)


def _meeting_notes(rng: random.Random, c: _Ctx, date: str, kind: str) -> str:
    attendees = rng.sample(c.firsts, rng.randint(3, 5))
    agenda_pool = [
        f"{c.project} {c.keywords[0]} review",
        f"status of the {c.keywords[1]} work",
        f"Q{rng.randint(1, 4)} {c.keywords[2]} plan",
        "hiring update",
        f"customer feedback on {c.project}",
        f"risks for the {c.keywords[3]}",
        "open questions from last week",
    ]
    actions_pool = [
        f"update the {c.keywords[0]} spreadsheet",
        f"send the {c.keywords[1]} summary to the team",
        f"book a follow-up with {c.company} finance",
        f"review the {c.project} pull requests",
        f"draft the {c.keywords[2]} announcement",
        "clean up the shared drive",
        f"confirm the {c.keywords[3]} date with the vendor",
    ]
    lines = [f"# {kind.title()} - {date}", f"Attendees: {', '.join(attendees)}", "", "## Agenda"]
    lines += [f"- {a}" for a in rng.sample(agenda_pool, rng.randint(2, 4))]
    lines += ["", "## Notes"]
    lines += [
        f"- {rng.choice(attendees)} said the {c.keywords[0]} is {rng.choice(['on track', 'at risk', 'slightly over'])}.",
        f"- The {c.keywords[1]} check-in moves to {rng.choice(WEEKDAYS)}; {rng.choice(attendees)} owns it.",
    ]
    lines += ["", "## Action items"]
    for action in rng.sample(actions_pool, rng.randint(2, 4)):
        lines.append(f"- [ ] {rng.choice(attendees)}: {action} by {rng.choice(WEEKDAYS)}")
    return "\n".join(lines) + "\n"


def _report(rng: random.Random, c: _Ctx, quarter: int) -> str:
    revenue = rng.randint(400, 2500) * 1000
    costs = int(revenue * rng.uniform(0.55, 0.95))
    growth = rng.uniform(-6, 18)
    lines = [
        f"{c.company} - Q{quarter} {c.year} Report",
        f"Prepared by: {rng.choice(c.people)}",
        "",
        "Summary",
        f"Revenue was ${revenue:,} and operating costs were ${costs:,}.",
        f"Quarter-over-quarter growth: {growth:.1f}%.",
        f"The {c.project} {c.keywords[0]} stayed within plan; the {c.keywords[1]} work slipped two weeks.",
        "",
        "Key metrics",
        f"- Revenue: ${revenue:,}",
        f"- Costs: ${costs:,}",
        f"- Margin: {100 * (revenue - costs) / revenue:.1f}%",
        f"- Headcount: {rng.randint(12, 140)}",
        "",
        "Risks",
        f"- {c.keywords[2].capitalize()} depends on a single vendor.",
        f"- {c.keywords[3].capitalize()} needs sign-off from {rng.choice(c.people)}.",
    ]
    return "\n".join(lines) + "\n"


def _doc_pair(rng: random.Random, c: _Ctx) -> tuple[str, str]:
    """Two versions of one document differing in a few lines (what diff is for)."""
    amount = rng.randint(20, 90) * 1000
    base = [
        f"Proposal: {c.project} {c.keywords[0]} for {c.year + 1}",
        f"Owner: {c.people[0]}",
        f"Requested amount: ${amount:,}",
        f"Timeline: {rng.randint(3, 9)} months",
        f"Goal: reduce {c.keywords[1]} issues by {rng.randint(10, 40)}%",
        f"Dependencies: {c.keywords[2]}, {c.keywords[3]}",
        "Status: draft",
        "Reviewers: TBD",
    ]
    final = list(base)
    final[2] = f"Requested amount: ${amount + rng.randint(2, 15) * 1000:,}"
    final[6] = "Status: approved"
    final[7] = f"Reviewers: {', '.join(rng.sample(c.firsts[1:], 2))}"
    return "\n".join(base) + "\n", "\n".join(final) + "\n"


def _todo(rng: random.Random, c: _Ctx) -> str:
    pool = [
        f"Renew the {c.keywords[3]} contract",
        f"Email {rng.choice(c.firsts)} about the {c.keywords[0]}",
        "Back up laptop to external drive",
        f"Prepare slides for the {c.project} demo",
        "Pay the electricity invoice",
        f"Read the {c.keywords[1]} checklist",
        "Schedule dentist appointment",
        f"Fix the flaky test in {c.project}",
        "Order new printer toner",
        f"Approve {rng.choice(c.firsts)}'s expense report",
        "Water the office plants",
    ]
    return "\n".join(rng.sample(pool, rng.randint(5, 8))) + "\n"


def _sales_csv(rng: random.Random, c: _Ctx) -> str:
    rows = ["date,region,product,units,unit_price,total"]
    for _ in range(rng.randint(8, 14)):
        units = rng.randint(1, 60)
        price = rng.choice([19.99, 24.5, 39.0, 49.99, 89.0, 129.0, 249.0, 399.0])
        rows.append(
            f"{_date(rng, c.year)},{rng.choice(REGIONS)},{rng.choice(PRODUCTS)},{units},{price},{units * price:.2f}"
        )
    return "\n".join(rows) + "\n"


def _expenses_csv(rng: random.Random, c: _Ctx) -> str:
    rows = ["date,category,description,amount,approved_by"]
    cats = [
        ("travel", "Train tickets to client site"),
        ("software", f"{c.project} CI minutes"),
        ("meals", "Team lunch after release"),
        ("hardware", "Replacement laptop charger"),
        ("training", f"{c.keywords[2].capitalize()} workshop"),
        ("office", "Printer paper and toner"),
        ("travel", "Hotel for the conference"),
    ]
    for _ in range(rng.randint(6, 11)):
        cat, desc = rng.choice(cats)
        rows.append(f"{_date(rng, c.year)},{cat},{desc},{rng.uniform(8, 900):.2f},{rng.choice(c.firsts)}")
    return "\n".join(rows) + "\n"


def _inventory_csv(rng: random.Random, c: _Ctx) -> str:
    rows = ["sku,item,quantity,warehouse,reorder_level"]
    for item in rng.sample(PRODUCTS, rng.randint(5, 8)):
        rows.append(
            f"SKU-{rng.randint(1000, 9999)},{item},{rng.randint(0, 500)},"
            f"{rng.choice(['Reno', 'Dallas', 'Newark', 'Columbus'])},{rng.choice([10, 25, 50, 100])}"
        )
    return "\n".join(rows) + "\n"


def _contacts_csv(rng: random.Random, c: _Ctx) -> str:
    rows = ["name,email,phone,team"]
    for person in c.people:
        first, last = person.split()
        rows.append(
            f"{person},{first.lower()}.{last.lower()}@{c.domain},"
            f"+1-{rng.randint(200, 989)}-555-{rng.randint(1000, 9999)},"
            f"{rng.choice(['Engineering', 'Finance', 'Sales', 'Design', 'Support'])}"
        )
    return "\n".join(rows) + "\n"


def _log(rng: random.Random, c: _Ctx, service: str, lines_n: int, month: int | None = None) -> str:
    month = month or rng.randint(1, 12)
    day, hour, minute, sec = rng.randint(1, 27), rng.randint(0, 20), 0, 0
    users = [f.lower() for f in c.firsts]
    info = [
        "User {u} logged in",
        "Request GET /api/{p}/items completed in {ms}ms",
        "Scheduled {k} job finished",
        "Cache warmed for {p}",
        "User {u} logged out",
        "Health check OK",
    ]
    warn = [
        "Slow query on orders table took {ms}ms",
        "Retrying connection to {k} service (attempt {n})",
        "Disk usage at {pct}% on /var/data",
    ]
    err = [
        "Timeout while calling {k} service after {ms}ms",
        "Failed to write backup: connection refused",
        "Unhandled exception in {p} worker: KeyError 'user_id'",
    ]
    out = []
    for _ in range(lines_n):
        minute += rng.randint(0, 9)
        sec = rng.randint(0, 59)
        if minute > 59:
            minute, hour = minute - 60, min(hour + 1, 23)
        level, pool = rng.choices([("INFO", info), ("WARNING", warn), ("ERROR", err)], [6, 2, 1])[0]
        msg = rng.choice(pool).format(
            u=rng.choice(users),
            p=c.project,
            k=rng.choice(c.keywords),
            ms=rng.randint(40, 9000),
            n=rng.randint(1, 5),
            pct=rng.randint(70, 97),
        )
        out.append(
            f"{c.year}-{month:02d}-{day:02d} {hour:02d}:{minute:02d}:{sec:02d} {level} [{service}] {msg}"
        )
    return "\n".join(out) + "\n"


def _py_main(rng: random.Random, c: _Ctx) -> str:
    return (
        "\n".join(
            [
                f'"""Entry point for the {c.project} service."""',
                "import argparse",
                "import json",
                "",
                f"from {c.project}.utils import load_config, summarize",
                "",
                f'DEFAULT_CONFIG = "config/{c.project}.json"',
                "",
                "",
                "def main() -> None:",
                f'    parser = argparse.ArgumentParser(description="Run the {c.project} {c.keywords[0]} job")',
                '    parser.add_argument("--config", default=DEFAULT_CONFIG)',
                f'    parser.add_argument("--limit", type=int, default={rng.choice([10, 50, 100, 500])})',
                "    args = parser.parse_args()",
                "    config = load_config(args.config)",
                "    print(json.dumps(summarize(config, limit=args.limit), indent=2))",
                "",
                "",
                'if __name__ == "__main__":',
                "    main()",
            ]
        )
        + "\n"
    )


def _py_utils(rng: random.Random, c: _Ctx) -> str:
    threshold = rng.choice([0.5, 0.75, 0.9])
    return (
        "\n".join(
            [
                "import json",
                "from pathlib import Path",
                "",
                f"THRESHOLD = {threshold}",
                "",
                "",
                "def load_config(path):",
                "    # TODO: validate required keys",
                "    return json.loads(Path(path).read_text())",
                "",
                "",
                "def summarize(config, limit=100):",
                f'    items = config.get("{c.keywords[0]}_items", [])[:limit]',
                '    flagged = [i for i in items if i.get("score", 0) > THRESHOLD]',
                '    return {"total": len(items), "flagged": len(flagged)}',
                "",
                "",
                "def slugify(text):",
                '    return "-".join(text.lower().split())',
            ]
        )
        + "\n"
    )


def _py_test(rng: random.Random, c: _Ctx) -> str:
    return (
        "\n".join(
            [
                f"from {c.project}.utils import slugify, summarize",
                "",
                "",
                "def test_slugify():",
                f'    assert slugify("{c.project.title()} Release Notes") == "{c.project}-release-notes"',
                "",
                "",
                "def test_summarize_counts_flagged():",
                f'    config = {{"{c.keywords[0]}_items": [{{"score": 0.95}}, {{"score": 0.1}}]}}',
                "    # TODO: cover the limit argument",
                '    assert summarize(config)["flagged"] == 1',
            ]
        )
        + "\n"
    )


def _readme(rng: random.Random, c: _Ctx) -> str:
    return (
        "\n".join(
            [
                f"# {c.project.title()}",
                "",
                f"{c.project.title()} automates the {c.keywords[0]} and {c.keywords[1]} workflows at {c.company}.",
                "",
                "## Setup",
                "1. Create a virtual environment",
                "2. pip install -r requirements.txt",
                f"3. python -m {c.project}.main --config config/{c.project}.json",
                "",
                "## Maintainers",
                *[f"- {p}" for p in rng.sample(c.people, 2)],
                "",
                "## Known issues",
                f"- TODO: document the {c.keywords[2]} steps",
            ]
        )
        + "\n"
    )


def _requirements(rng: random.Random) -> str:
    pkgs = [
        f"requests=={rng.randint(25, 32)}.{rng.randint(0, 9)}.0",
        f"pandas=={rng.choice(['1.5.3', '2.0.3', '2.1.4', '2.2.2'])}",
        f"numpy=={rng.choice(['1.24.4', '1.26.4', '2.0.1'])}",
        f"pytest=={rng.choice(['7.4.4', '8.1.1', '8.2.0'])}",
        f"pyyaml=={rng.choice(['6.0', '6.0.1'])}",
        f"click=={rng.choice(['8.1.3', '8.1.7'])}",
    ]
    return "\n".join(rng.sample(pkgs, rng.randint(3, 6))) + "\n"


def _changelog(rng: random.Random, c: _Ctx) -> str:
    major, minor = rng.randint(0, 3), rng.randint(1, 9)
    lines = ["# Changelog", ""]
    for i in range(3):
        lines.append(f"## {major}.{max(minor - i, 0)}.{rng.randint(0, 5)} - {_date(rng, c.year)}")
        lines.append(f"- {rng.choice(['Added', 'Fixed', 'Improved'])} {rng.choice(c.keywords)} handling")
        lines.append(
            f"- {rng.choice(['Fixed', 'Removed', 'Updated'])} {rng.choice(['logging', 'CLI flags', 'retry logic'])}"
        )
        lines.append("")
    return "\n".join(lines)


def _settings_yaml(rng: random.Random, c: _Ctx) -> str:
    return (
        "\n".join(
            [
                f"project: {c.project}",
                f"environment: {rng.choice(['staging', 'production', 'dev'])}",
                "database:",
                f"  host: db-{rng.randint(1, 4)}.internal.{c.domain}",
                f"  port: {rng.choice([5432, 3306, 5433])}",
                f"  pool_size: {rng.choice([5, 10, 20])}",
                "logging:",
                f"  level: {rng.choice(['INFO', 'DEBUG', 'WARNING'])}",
                f"  path: /var/log/{c.project}.log",
                f'backup_schedule: "0 {rng.randint(0, 5)} * * *"',
            ]
        )
        + "\n"
    )


def _itinerary(rng: random.Random, c: _Ctx) -> str:
    cities = rng.sample(
        ["Lisbon", "Kyoto", "Montreal", "Cape Town", "Vienna", "Oaxaca", "Reykjavik", "Hanoi"], 3
    )
    lines = [f"Trip itinerary {c.year}", ""]
    month = rng.randint(3, 10)
    day = rng.randint(1, 10)
    for city in cities:
        nights = rng.randint(2, 5)
        lines.append(f"{c.year}-{month:02d}-{day:02d}: arrive in {city}, {nights} nights")
        lines.append(
            f"  hotel: {rng.choice(['Hotel Central', 'Riverside Inn', 'Old Town Suites', 'Harbor View'])}"
        )
        day += nights
    lines.append("")
    lines.append(f"Budget: ${rng.randint(18, 60) * 100:,}")
    return "\n".join(lines) + "\n"


def _packing_list(rng: random.Random) -> str:
    items = [
        "passport",
        "phone charger",
        "toothbrush",
        "rain jacket",
        "sunscreen",
        "headphones",
        "travel adapter",
        "notebook",
        "walking shoes",
        "medication",
        "camera",
        "snacks",
    ]
    return "\n".join(rng.sample(items, rng.randint(6, 10))) + "\n"


def _recipe(rng: random.Random) -> tuple[str, str]:
    name, ingredients, steps = rng.choice(
        [
            (
                "banana_bread.txt",
                ["3 ripe bananas", "250 g flour", "100 g sugar", "1 egg", "1 tsp baking soda"],
                [
                    "Mash the bananas",
                    "Mix in the egg and sugar",
                    "Fold in flour and soda",
                    "Bake 60 min at 175C",
                ],
            ),
            (
                "lentil_soup.txt",
                ["200 g red lentils", "1 onion", "2 carrots", "1 l vegetable stock", "1 tsp cumin"],
                [
                    "Fry the onion",
                    "Add carrots and cumin",
                    "Add lentils and stock",
                    "Simmer 25 min and blend",
                ],
            ),
            (
                "pancakes.txt",
                ["200 g flour", "300 ml milk", "2 eggs", "1 tbsp sugar", "pinch of salt"],
                ["Whisk everything", "Rest the batter 10 min", "Cook on a hot pan", "Serve with fruit"],
            ),
        ]
    )
    servings = rng.randint(2, 6)
    body = [f"Serves {servings}", "", "Ingredients:", *[f"- {i}" for i in ingredients], "", "Steps:"]
    body += [f"{i + 1}. {s}" for i, s in enumerate(steps)]
    return name, "\n".join(body) + "\n"


def _paper_notes(rng: random.Random, c: _Ctx) -> str:
    topic = rng.choice(
        [
            "graph neural networks",
            "retrieval-augmented generation",
            "time-series forecasting",
            "federated learning",
            "anomaly detection",
            "causal inference",
        ]
    )
    return (
        "\n".join(
            [
                f"Title: A study of {topic} for {c.keywords[0]} prediction",
                f"Authors: {', '.join(rng.sample(c.people, 3))}",
                f"Year: {c.year - rng.randint(0, 3)}",
                "",
                "Key ideas:",
                f"- Applies {topic} to {c.keywords[1]} data",
                f"- Reports {rng.uniform(2, 15):.1f}% improvement over the baseline",
                "",
                "Open questions:",
                f"- Does it hold for the {c.project} dataset?",
                "- TODO: reproduce table 2",
            ]
        )
        + "\n"
    )


def _results_csv(rng: random.Random) -> str:
    rows = ["experiment,model,accuracy,loss,epochs"]
    for i in range(rng.randint(5, 9)):
        rows.append(
            f"exp_{i + 1:02d},{rng.choice(['baseline', 'small', 'large', 'distilled'])},"
            f"{rng.uniform(0.6, 0.97):.3f},{rng.uniform(0.05, 1.2):.3f},{rng.choice([5, 10, 20, 40])}"
        )
    return "\n".join(rows) + "\n"


def _bibliography(rng: random.Random, c: _Ctx) -> str:
    entries = []
    for person in rng.sample(c.people, 3):
        last = person.split()[1]
        year = c.year - rng.randint(0, 6)
        entries.append(
            f"@article{{{last.lower()}{year},\n  author = {{{person}}},\n  title = {{Notes on {rng.choice(c.keywords)} "
            f"at scale}},\n  year = {{{year}}}\n}}"
        )
    return "\n\n".join(entries) + "\n"


def _theme_documents(rng: random.Random, c: _Ctx) -> dict:
    reports: dict = {}
    for q in sorted(rng.sample([1, 2, 3, 4], rng.randint(1, 3))):
        reports[f"Q{q}_report.txt"] = _f(_report(rng, c, q))
    draft, final = _doc_pair(rng, c)
    stem = rng.choice(["proposal", "budget_plan", "project_brief"])
    reports[f"{stem}_draft.md"] = _f(draft)
    reports[f"{stem}_final.md"] = _f(final)
    meetings: dict = {}
    for _ in range(rng.randint(2, 3)):
        date = _date(rng, c.year)
        kind = rng.choice(["standup", "planning", "retro", "1on1"])
        meetings[f"{date}_{kind}.md"] = _f(_meeting_notes(rng, c, date, kind))
    contents = {"reports": _d(reports), "meetings": _d(meetings), "todo.txt": _f(_todo(rng, c))}
    if rng.random() < 0.6:
        contents["notes.txt"] = _f(_todo(rng, c))
    return {rng.choice(["documents", "Documents", "docs"]): _d(contents)}


def _theme_projects(rng: random.Random, c: _Ctx) -> dict:
    src = {"main.py": _f(_py_main(rng, c)), "utils.py": _f(_py_utils(rng, c))}
    if rng.random() < 0.5:
        src["__init__.py"] = _f("")
    project = {
        "src": _d(src),
        "tests": _d({"test_utils.py": _f(_py_test(rng, c))}),
        "README.md": _f(_readme(rng, c)),
        "requirements.txt": _f(_requirements(rng)),
        ".gitignore": _f("__pycache__/\n*.pyc\n.venv/\n.env\nbuild/\n"),
    }
    if rng.random() < 0.6:
        project["CHANGELOG.md"] = _f(_changelog(rng, c))
    projects = {c.project: _d(project)}
    if rng.random() < 0.5:
        other = rng.choice([p for p in PROJECTS if p != c.project])
        projects[other] = _d(
            {
                "README.md": _f(f"# {other.title()}\n\nPrototype, paused since {c.year}.\n"),
                "ideas.txt": _f(_todo(rng, c)),
            }
        )
    return {rng.choice(["projects", "code", "repos"]): _d(projects)}


def _theme_data(rng: random.Random, c: _Ctx) -> dict:
    contents = {
        f"sales_{c.year}.csv": _f(_sales_csv(rng, c)),
        f"expenses_Q{rng.randint(1, 4)}.csv": _f(_expenses_csv(rng, c)),
        "contacts.csv": _f(_contacts_csv(rng, c)),
    }
    if rng.random() < 0.7:
        contents["inventory.csv"] = _f(_inventory_csv(rng, c))
    contents["raw"] = _d(
        {
            f"export_{_date(rng, c.year)}.csv": _f(_sales_csv(rng, c)),
            f"export_{_date(rng, c.year)}_backup.csv": _f(_sales_csv(rng, c)),
        }
    )
    return {rng.choice(["data", "datasets", "spreadsheets"]): _d(contents)}


def _theme_logs(rng: random.Random, c: _Ctx) -> dict:
    month = rng.randint(2, 12)
    contents = {
        "app.log": _f(_log(rng, c, c.project, rng.randint(10, 18), month)),
        "error.log": _f(_log(rng, c, "worker", rng.randint(6, 10), month)),
        "archive": _d(
            {f"app_{c.year}-{month - 1:02d}.log": _f(_log(rng, c, c.project, rng.randint(8, 14), month - 1))}
        ),
    }
    if rng.random() < 0.5:
        contents["access.log"] = _f(_log(rng, c, "nginx", rng.randint(8, 14), month))
    return {"logs": _d(contents)}


def _theme_personal(rng: random.Random, c: _Ctx) -> dict:
    name, recipe = _recipe(rng)
    contents = {
        "travel": _d({"itinerary.txt": _f(_itinerary(rng, c)), "packing_list.txt": _f(_packing_list(rng))}),
        "recipes": _d({name: _f(recipe)}),
        "journal.md": _f(
            f"## {_date(rng, c.year)}\nFinally finished the {c.keywords[0]} spreadsheet. "
            f"Called {rng.choice(c.firsts)} about the trip.\n\n## {_date(rng, c.year)}\n"
            f"Long day. The {c.keywords[1]} moved again.\n"
        ),
    }
    if rng.random() < 0.5:
        contents["todo.txt"] = _f(_todo(rng, c))
    return {rng.choice(["personal", "home", "private"]): _d(contents)}


def _theme_research(rng: random.Random, c: _Ctx) -> dict:
    papers = {f"paper_{i + 1}_notes.txt": _f(_paper_notes(rng, c)) for i in range(rng.randint(2, 3))}
    contents = {
        "papers": _d(papers),
        "results.csv": _f(_results_csv(rng)),
        "references.bib": _f(_bibliography(rng, c)),
        "notes.txt": _f(_todo(rng, c)),
    }
    return {rng.choice(["research", "thesis", "papers_and_notes"]): _d(contents)}


def _theme_archive(rng: random.Random, c: _Ctx) -> dict:
    old_year = c.year - 1
    contents = {
        f"Q4_report_{old_year}.txt": _f(_report(rng, c, 4).replace(str(c.year), str(old_year))),
        "old_drafts": _d({}),  # an empty directory, so rmdir has something to act on
    }
    if rng.random() < 0.5:
        contents["settings.yaml.bak"] = _f(_settings_yaml(rng, c))
    return {rng.choice(["archive", "old", "backup"]): _d(contents)}


def _theme_config(rng: random.Random, c: _Ctx) -> dict:
    return {
        "config": _d(
            {
                "settings.yaml": _f(_settings_yaml(rng, c)),
                ".env": _f(f"API_URL=https://api.{c.domain}\nLOG_LEVEL=info\nRETRIES={rng.randint(2, 6)}\n"),
            }
        )
    }


_THEMES = [
    _theme_documents,
    _theme_projects,
    _theme_data,
    _theme_logs,
    _theme_personal,
    _theme_research,
    _theme_archive,
    _theme_config,
]


def gen_gorilla_file_system(rng: random.Random) -> dict:
    c = _Ctx(rng)
    contents: dict = {}
    for theme in rng.sample(_THEMES, rng.randint(3, 5)):
        for name, node in theme(rng, c).items():
            if name not in contents:
                contents[name] = node
    # A few loose files at the top, as in a real home directory.
    if rng.random() < 0.6:
        contents.setdefault("todo.txt", _f(_todo(rng, c)))
    if rng.random() < 0.4:
        contents.setdefault("notes.txt", _f(_meeting_notes(rng, c, _date(rng, c.year), "sync")))
    if rng.random() < 0.3:
        contents.setdefault(
            ".bashrc", _f(f"export EDITOR=vim\nalias ll='ls -la'\nexport PROJECT={c.project}\n")
        )
    root_name = rng.choice([c.firsts[0].lower(), "workspace", f"{c.firsts[0].lower()}_home", c.project])
    return {"root": {root_name: _d(contents)}}


# ---------------------------------------------------------------------------------------------
# MessageAPI
# ---------------------------------------------------------------------------------------------

_MESSAGE_TEMPLATES = [
    "Hi {to}, can you send me the {k} numbers before {day}?",
    "Reminder: the {k} review is on {day} at {hour}:00.",
    "Thanks {to}! The {k} draft looks good to me.",
    "Could you upload the {k} file to the shared folder?",
    "Are we still on for lunch on {day}?",
    "I pushed the fix for the {k} bug, please take a look.",
    "Heads up: the {k} meeting moved to {hour}:30.",
    "{to}, the client approved the {k}. Great work!",
    "Can you review my comments on the {k} doc?",
]


def gen_message_api(rng: random.Random) -> dict:
    login = _login_state(rng)
    n = rng.randint(4, 7)
    names = rng.sample(FIRST_NAMES, n)
    # IDs are contiguous and user_count is the highest number in use, so that add_contact
    # (which mints USR{user_count + 1}) produces a fresh id instead of a collision error.
    offset = rng.choice([0, 0, rng.randint(1, 40)])
    user_map = {name: f"USR{offset + i + 1:03d}" for i, name in enumerate(names)}
    owner_id = user_map[names[0]]
    keywords = rng.sample(KEYWORDS, 3)
    inbox = []
    for _ in range(rng.randint(3, 7)):
        to = rng.choice(names[1:])
        text = rng.choice(_MESSAGE_TEMPLATES).format(
            to=to, k=rng.choice(keywords), day=rng.choice(WEEKDAYS), hour=rng.randint(9, 17)
        )
        inbox.append({user_map[to]: text})
    return {
        "random_seed": rng.randint(1, 10**6),
        "user_count": offset + n,
        "user_map": user_map,
        "inbox": inbox,
        "message_count": len(inbox),
        "current_user": owner_id if login else None,
    }


# ---------------------------------------------------------------------------------------------
# TwitterAPI
# ---------------------------------------------------------------------------------------------

_HANDLE_SUFFIX = ["_dev", "_codes", "_writes", "_travels", "_data", "_design", "_runs", "", "_io", "_eats"]
_TWEET_TOPICS = [
    ("Just shipped the new {k} dashboard, feedback welcome!", ["#product", "#launch"]),
    ("Three lessons from our {k} postmortem (thread)", ["#engineering", "#postmortem"]),
    ("Coffee, code, and a long {k} checklist today", ["#mondaymotivation"]),
    ("Reading about {k} best practices this weekend", ["#learning", "#reading"]),
    ("Our team is hiring for the {k} squad, DM me", ["#hiring", "#jobs"]),
    ("Finally hit our {k} target for the quarter", ["#milestone", "#teamwork"]),
    ("Hot take: most {k} meetings could be an email", ["#worklife"]),
    ("Sunset run done, {k} problems can wait until tomorrow", ["#running", "#balance"]),
    ("Slides from my talk on {k} are up", ["#conference", "#slides"]),
]
_COMMENTS = [
    "Congrats, well deserved!",
    "Great thread, bookmarking this.",
    "Totally agree.",
    "Would love to read more about this.",
    "Can you share the slides?",
    "Ha, so true.",
]


def _handle(rng: random.Random) -> str:
    first, last = _name(rng)
    style = rng.randint(0, 2)
    if style == 0:
        return f"{first.lower()}{rng.choice(_HANDLE_SUFFIX)}"
    if style == 1:
        return f"{first.lower()}_{last.lower()}"
    return f"{first[0].lower()}{last.lower()}{rng.randint(1, 99)}"


def gen_twitter_api(rng: random.Random) -> dict:
    login = _login_state(rng)
    username = _handle(rng)
    others = sorted({_handle(rng) for _ in range(8)} - {username})
    following = rng.sample(others, min(len(others), rng.randint(2, 5)))
    tweets: dict[str, dict] = {}
    next_id = rng.choice([0, 0, rng.randint(1, 30)])
    for _ in range(rng.randint(3, 8)):
        author = username if rng.random() < 0.6 else rng.choice(others)
        text, tags = rng.choice(_TWEET_TOPICS)
        mentions = [f"@{m}" for m in rng.sample(others, rng.randint(0, 2)) if m != author]
        tweets[str(next_id)] = {
            "id": next_id,
            "username": author,
            "content": text.format(k=rng.choice(KEYWORDS)),
            "tags": list(tags),
            "mentions": mentions,
        }
        next_id += rng.choice([1, 1, 1, 2])  # occasional gaps: deleted tweets
    ids = [t["id"] for t in tweets.values()]
    comments: dict[int, list] = {}
    for tid in rng.sample(ids, rng.randint(1, min(3, len(ids)))):
        comments[tid] = [
            {"username": rng.choice(others + [username]), "content": rng.choice(_COMMENTS)}
            for _ in range(rng.randint(1, 3))
        ]
    foreign = [t["id"] for t in tweets.values() if t["username"] != username]
    retweets = {username: rng.sample(foreign, rng.randint(0, len(foreign)))} if foreign else {}
    return {
        "username": username,
        "password": _password(rng),
        "authenticated": login,
        "tweets": tweets,
        "comments": comments,
        "retweets": retweets,
        "following_list": following,
        "tweet_counter": next_id,
    }


# ---------------------------------------------------------------------------------------------
# TicketAPI
# ---------------------------------------------------------------------------------------------

_TICKETS = [
    (
        "VPN disconnects every few minutes",
        "Since the last update my VPN drops roughly every 5 minutes when on office Wi-Fi.",
    ),
    ("Cannot access shared drive", "Getting 'permission denied' on the finance shared drive since {day}."),
    ("Laptop battery drains quickly", "Battery goes from 100% to 20% in about two hours with light use."),
    ("Request: new monitor", "My second monitor flickers; requesting a replacement 27 inch monitor."),
    ("Email not syncing on phone", "Work email stopped syncing on my phone after the password change."),
    ("Printer on floor 3 jammed", "The printer near the kitchen on floor 3 shows a paper jam error."),
    ("Software license expired", "The license for the design software expired on {day}; need renewal."),
    ("Slow CI pipeline", "Builds for the {k} project take over 40 minutes since yesterday."),
    ("Password reset loop", "Password reset page keeps redirecting back to the login screen."),
    ("Access request: analytics dashboard", "Please grant read access to the {k} analytics dashboard."),
    ("Meeting room display broken", "The screen in meeting room Orion does not detect HDMI input."),
]
_TICKET_STATUSES = ["Open", "Open", "In Progress", "Resolved", "Closed"]


def _work_username(rng: random.Random) -> str:
    first, last = _name(rng)
    return rng.choice([f"{first.lower()}.{last.lower()}", f"{first[0].lower()}{last.lower()}", first.lower()])


def gen_ticket_api(rng: random.Random) -> dict:
    login = _login_state(rng)
    username = _work_username(rng)
    password = _password(rng)
    colleagues = [_work_username(rng) for _ in range(3)]
    next_id = rng.randint(1, 9000)
    queue = []
    for title, desc in rng.sample(_TICKETS, rng.randint(3, 7)):
        status = rng.choice(_TICKET_STATUSES)
        ticket = {
            "id": next_id,
            "title": title,
            "description": desc.format(day=rng.choice(WEEKDAYS), k=rng.choice(PROJECTS)),
            "status": status,
            "priority": rng.randint(1, 5),
            "created_by": username if rng.random() < 0.7 else rng.choice(colleagues),
        }
        if status == "Resolved":
            ticket["resolution"] = rng.choice(
                [
                    "Reinstalled the client.",
                    "Permissions updated.",
                    "Replaced the hardware.",
                    "Cleared cache.",
                ]
            )
        queue.append(ticket)
        next_id += rng.randint(1, 40)
    if not any(t["created_by"] == username for t in queue):
        queue[0]["created_by"] = username  # get_user_tickets should return something after login
    return {
        "ticket_queue": queue,
        "ticket_counter": next_id,
        "current_user": username if login else None,
        # Not read by TicketAPI (its login accepts any non-empty pair): the user's credentials.
        "username": username,
        "password": password,
    }


# ---------------------------------------------------------------------------------------------
# TradingBot
# ---------------------------------------------------------------------------------------------

# Approximate price levels; symbols are the ones TradingBot's name map and sector map know.
_STOCK_BASE = {
    "AAPL": 210.0,
    "GOOG": 165.0,
    "TSLA": 240.0,
    "MSFT": 415.0,
    "NVDA": 120.0,
    "AMZN": 180.0,
    "ALPH": 1300.0,
    "OMEG": 450.0,
    "QUAS": 720.0,
    "NEPT": 88.0,
    "SYNX": 345.0,
    "ZETA": 22.0,
    "GORI": 64.0,
    "F": 11.5,
    "GM": 47.0,
}


def gen_trading_bot(rng: random.Random) -> dict:
    login = _login_state(rng)
    username = _work_username(rng)
    password = _password(rng)
    symbols = rng.sample(list(_STOCK_BASE), rng.randint(9, len(_STOCK_BASE)))
    stocks = {}
    for sym in symbols:
        price = round(_STOCK_BASE[sym] * rng.uniform(0.75, 1.25), 2)
        stocks[sym] = {
            "price": price,
            "percent_change": round(rng.uniform(-3.5, 3.5), 2),
            "volume": round(rng.uniform(0.3, 6.0), 3),
            "MA(5)": round(price * rng.uniform(0.97, 1.03), 2),
            "MA(20)": round(price * rng.uniform(0.92, 1.08), 2),
        }
    order_id = rng.randint(10000, 90000)
    orders = {}
    for _ in range(rng.randint(2, 6)):
        sym = rng.choice(symbols)
        orders[str(order_id)] = {  # digit-string keys: _load_scenario converts them to int
            "id": order_id,
            "order_type": rng.choice(["Buy", "Sell"]),
            "symbol": sym,
            "price": round(stocks[sym]["price"] * rng.uniform(0.95, 1.05), 2),
            "amount": rng.choice([1, 2, 5, 10, 15, 20, 25, 50, 100]),
            "status": rng.choice(["Completed", "Completed", "Pending", "Open", "Cancelled"]),
        }
        order_id += rng.randint(1, 120)
    history = []
    for _ in range(rng.randint(0, 6)):
        history.append(
            {
                "type": rng.choice(["deposit", "withdrawal"]),
                "amount": round(rng.uniform(50, 8000), 2),
                "timestamp": f"2024-{rng.randint(1, 8):02d}-{rng.randint(1, 28):02d} "
                f"{rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}:{rng.randint(0, 59):02d}",
            }
        )
    history.sort(key=lambda t: t["timestamp"])
    return {
        "account_info": {
            "account_id": rng.randint(10000, 999999),
            "balance": round(rng.uniform(1500, 80000), 2),
            "binding_card": int(_digits(rng, 16)),
        },
        "authenticated": login,
        "market_status": rng.choice(["Open", "Open", "Closed"]),
        "orders": orders,
        # One past the highest order id (BFCL's default reuses an existing id here).
        "order_counter": order_id,
        "stocks": stocks,
        "watch_list": rng.sample(symbols, rng.randint(1, 4)),
        "transaction_history": history,
        "random_seed": rng.randint(1, 10**6),
        # Not read by TradingBot (its login accepts anything): the user's credentials.
        "username": username,
        "password": password,
    }


# ---------------------------------------------------------------------------------------------
# TravelAPI
# ---------------------------------------------------------------------------------------------

# (from, to, base cost) for routes TravelAPI.get_flight_cost knows; used for past bookings.
_ROUTES = [
    ("SFO", "LAX", 200),
    ("SFO", "JFK", 500),
    ("SFO", "ORD", 400),
    ("SFO", "BOS", 450),
    ("LAX", "JFK", 600),
    ("LAX", "SFO", 100),
    ("LAX", "ORD", 500),
    ("JFK", "ORD", 300),
    ("JFK", "BOS", 250),
    ("JFK", "HND", 800),
    ("ORD", "BOS", 200),
    ("RMS", "JFK", 210),
    ("SBK", "MPC", 200),
    ("CRH", "SFO", 270),
    ("OKD", "LAX", 220),
    ("LHR", "CDG", 100),
]
_CLASS_FACTOR = {"economy": 1, "business": 2, "first": 5}


def _flight_cost(base: int, travel_class: str, date: str) -> float:
    # Same pricing rule as TravelAPI.get_flight_cost, so invoices look consistent.
    digit_sum = sum(int(ch) for ch in date if ch.isdigit())
    return float(base * _CLASS_FACTOR[travel_class] * (2 if digit_sum % 2 == 0 else 1))


def gen_travel_api(rng: random.Random) -> dict:
    login = _login_state(rng)
    first, last = _name(rng)
    cards = {}
    for _ in range(rng.randint(1, 3)):
        card_id = _digits(rng, 12)
        cards[card_id] = {
            "card_number": _digits(rng, 16),
            "expiration_date": f"{rng.randint(1, 12):02d}/{rng.randint(2026, 2031)}",
            "cardholder_name": f"{first} {last}",
            "card_verification_number": rng.randint(100, 999),
            "balance": float(rng.randint(50, 400) * 100),
        }
    bookings = {}
    for _ in range(rng.randint(0, 3)):
        src, dst, base = rng.choice(_ROUTES)
        date = f"{rng.randint(2024, 2025)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"
        travel_class = rng.choice(["economy", "economy", "business", "first"])
        bookings[_digits(rng, 7)] = {
            "card_id": rng.choice(list(cards)),
            "travel_date": date,
            "travel_from": src,
            "travel_to": dst,
            "travel_class": travel_class,
            "travel_cost": _flight_cost(base, travel_class, date),
            "transaction_id": _digits(rng, 8),
        }
    # book_flight refuses when a card's balance is below budget_limit, so keep it under all cards.
    min_balance = min(card["balance"] for card in cards.values())
    budget = rng.choice([None, float(rng.randint(5, int(min_balance // 200) or 5) * 100)])
    token = _token(rng, rng.choice([16, 24, 32]))
    expires = rng.choice([3600, 7200, 86400])
    scope = rng.choice(["read_write", "read_write", "read", "write"])
    return {
        "random_seed": rng.randint(1, 10**6),
        "credit_card_list": cards,
        "booking_record": bookings,
        "access_token": token if login else None,
        "token_type": "Bearer" if login else None,
        "token_expires_in": expires if login else None,
        "token_scope": scope if login else None,
        "user_first_name": first,
        "user_last_name": last,
        "budget_limit": budget,
        # Not read by TravelAPI (authenticate_travel accepts any values): the app credentials.
        "client_id": f"client_{_token(rng, 10)}",
        "client_secret": _token(rng, 24),
        "refresh_token": f"rt_{_token(rng, 20)}",
        "grant_type": scope,
    }


# ---------------------------------------------------------------------------------------------
# VehicleControlAPI
# ---------------------------------------------------------------------------------------------

_DOORS = ["driver", "passenger", "rear_left", "rear_right"]
_STREETS = ["Maple Ave", "Oak Street", "Harbor Blvd", "Pine Road", "Elm Court", "Sunset Drive"]
_CITIES = ["Rivermist", "Stonebrook", "Maplecrest", "Silverpine", "Shadowridge", "Oakendale", "Willowbend"]


def gen_vehicle_control(rng: random.Random) -> dict:
    running = rng.random() < 0.35
    # A running car was started with all doors locked; a parked one has any mix.
    doors = {d: "locked" if running or rng.random() < 0.5 else "unlocked" for d in _DOORS}
    brake_pressed = (not running) and rng.random() < 0.3
    parking = "engaged" if (not running and rng.random() < 0.5) else "released"
    cruise = running and rng.random() < 0.4
    temp_front = round(rng.uniform(28.0, 36.0), 1)
    destination = (
        f"{rng.randint(10, 999)} {rng.choice(_STREETS)}, {rng.choice(_CITIES)}, CA"
        if rng.random() < 0.4
        else "None"
    )
    return {
        "random_seed": rng.randint(1, 10**6),
        "fuelLevel": round(rng.uniform(2.0, 45.0), 1),
        "batteryVoltage": round(rng.uniform(11.8, 14.2), 1),
        "engineState": "running" if running else "stopped",  # the loader reads "engineState"
        "remainingUnlockedDoors": sum(1 for s in doors.values() if s == "unlocked"),
        "doorStatus": doors,
        "acTemperature": round(rng.uniform(17.0, 27.0), 1),
        "fanSpeed": rng.choice([0, 20, 30, 40, 50, 60, 70, 80, 100]),
        "acMode": rng.choice(["auto", "cool", "heat", "defrost"]),
        "humidityLevel": round(rng.uniform(25.0, 75.0), 1),
        "headLightStatus": rng.choice(["on", "off"]),
        "parkingBrakeStatus": parking,
        "parkingBrakeForce": 500.0 if parking == "engaged" else 0.0,
        "slopeAngle": round(rng.uniform(0.0, 12.0), 1) if parking == "engaged" else 0.0,
        "brakePedalStatus": "pressed" if brake_pressed else "released",
        "brakePedalForce": float(rng.choice([300, 500, 800, 1000])) if brake_pressed else 0.0,
        "distanceToNextVehicle": float(rng.choice([20, 30, 40, 50, 60, 80, 100])),
        "cruiseStatus": "active" if cruise else "inactive",
        "destination": destination,
        "frontLeftTirePressure": temp_front,
        "frontRightTirePressure": round(temp_front + rng.uniform(-1.5, 1.5), 1),
        "rearLeftTirePressure": round(rng.uniform(27.0, 35.0), 1),
        "rearRightTirePressure": round(rng.uniform(27.0, 35.0), 1),
    }


def gen_math_api(rng: random.Random) -> dict:
    return {}  # MathAPI is stateless and has no _load_scenario
