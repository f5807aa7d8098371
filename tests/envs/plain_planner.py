"""A to-do list with a small calendar: the model layer of a desktop planner app.

Records are dataclasses, ids are ints from a counter, filters are Optional parameters, and methods
return the records (or lists of them) as they are.
"""
from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Optional


@dataclass
class Task:
    id: int
    title: str
    due: Optional[str] = None  # ISO date
    priority: int = 2  # 1 = high, 3 = low
    project: str = "Inbox"
    done: bool = False
    tags: list[str] = field(default_factory=list)


@dataclass
class Event:
    id: int
    title: str
    day: str
    start: str  # HH:MM
    minutes: int = 60


class Planner:
    def __init__(self):
        self.today = date(2026, 1, 5)
        self.projects: list[str] = ["Inbox"]
        self.tasks: dict[int, Task] = {}
        self.events: dict[int, Event] = {}
        self._last_id = 0

    def load_scenario(self, data: dict):
        self.today = date.fromisoformat(data["today"])
        self.projects = ["Inbox"] + data.get("projects", [])
        for t in data.get("tasks", []):
            task = Task(id=self._new_id(), **t)
            self.tasks[task.id] = task
        for e in data.get("events", []):
            ev = Event(id=self._new_id(), **e)
            self.events[ev.id] = ev

    # -- helpers --

    def _new_id(self) -> int:
        self._last_id += 1
        return self._last_id

    def _day(self, text: str) -> date:
        text = text.strip().lower()
        if text == "today":
            return self.today
        if text == "tomorrow":
            return self.today + timedelta(days=1)
        return date.fromisoformat(text)

    def _task(self, task_id: int) -> Task:
        if task_id not in self.tasks:
            raise LookupError(f"task {task_id} does not exist")
        return self.tasks[task_id]

    def _event(self, event_id: int) -> Event:
        if event_id not in self.events:
            raise LookupError(f"event {event_id} does not exist")
        return self.events[event_id]

    @staticmethod
    def _minutes(hhmm: str) -> int:
        t = datetime.strptime(hhmm, "%H:%M")
        return t.hour * 60 + t.minute

    def _clash(self, day: str, start: str, minutes: int, ignore: Optional[int] = None) -> Optional[Event]:
        a = self._minutes(start)
        for ev in self.events.values():
            if ev.id != ignore and ev.day == day:
                b = self._minutes(ev.start)
                if a < b + ev.minutes and b < a + minutes:
                    return ev
        return None

    # -- tasks --

    def add_task(self, title: str, due: Optional[str] = None, priority: int = 2,
                 project: Optional[str] = None) -> Task:
        """Add a task. Due dates can be YYYY-MM-DD, 'today' or 'tomorrow'."""
        project = project or "Inbox"
        if project not in self.projects:
            raise ValueError(f"there is no project called {project}")
        if priority not in (1, 2, 3):
            raise ValueError("priority is 1 (high), 2 or 3 (low)")
        if not title.strip():
            raise ValueError("title is empty")
        task = Task(self._new_id(), title.strip(), self._day(due).isoformat() if due else None, priority, project)
        self.tasks[task.id] = task
        return task

    def list_tasks(self, project: Optional[str] = None, include_done: bool = False) -> list[Task]:
        """Tasks, optionally only one project's."""
        if project is not None and project not in self.projects:
            raise ValueError(f"there is no project called {project}")
        return [t for t in self.tasks.values()
                if (project is None or t.project == project) and (include_done or not t.done)]

    def search_tasks(self, text: str) -> list[Task]:
        """Find tasks whose title contains the text."""
        return [t for t in self.tasks.values() if text.lower() in t.title.lower()]

    def due_soon(self, days: int = 7) -> list[Task]:
        """Open tasks due within the next few days, overdue ones included."""
        limit = (self.today + timedelta(days=days)).isoformat()
        return sorted((t for t in self.tasks.values() if t.due and not t.done and t.due <= limit),
                      key=lambda t: t.due)

    def complete_task(self, task_id: int) -> Task:
        """Mark a task as done."""
        task = self._task(task_id)
        if task.done:
            raise ValueError(f"task {task_id} is already done")
        task.done = True
        return task

    def postpone_task(self, task_id: int, days: int = 1) -> Task:
        """Push a task's due date back."""
        task = self._task(task_id)
        if task.done:
            raise ValueError("cannot postpone a finished task")
        if days < 1 or days > 60:
            raise ValueError("days must be between 1 and 60")
        start = date.fromisoformat(task.due) if task.due else self.today
        task.due = (start + timedelta(days=days)).isoformat()
        return task

    def tag_task(self, task_id: int, tag: str) -> list[str]:
        """Add a tag to a task; returns its tags."""
        task = self._task(task_id)
        tag = tag.strip().lower().lstrip("#")
        if not tag or " " in tag:
            raise ValueError("tags are single words")
        if tag not in task.tags:
            task.tags.append(tag)
        return task.tags

    def delete_task(self, task_id: int) -> bool:
        """Delete a task."""
        return self.tasks.pop(task_id, None) is not None

    def create_project(self, name: str) -> list[str]:
        """Create a project; returns all projects."""
        name = name.strip()
        if not name or name in self.projects:
            raise ValueError(f"project {name!r} exists or is empty")
        self.projects.append(name)
        return self.projects

    # -- calendar --

    def schedule_event(self, title: str, day: str, start: str, minutes: int = 60) -> Event:
        """Put an event in the calendar. start is HH:MM."""
        d = self._day(day)
        if d < self.today:
            raise ValueError("cannot schedule in the past")
        if not 5 <= minutes <= 480:
            raise ValueError("an event lasts 5 to 480 minutes")
        clash = self._clash(d.isoformat(), start, minutes)
        if clash:
            raise ValueError(f"clashes with {clash.title!r} at {clash.start}")
        ev = Event(self._new_id(), title, d.isoformat(), start, minutes)
        self.events[ev.id] = ev
        return ev

    def agenda(self, day: str = "today") -> list[Event]:
        """The events of a day, in order."""
        d = self._day(day).isoformat()
        return sorted((e for e in self.events.values() if e.day == d), key=lambda e: e.start)

    def move_event(self, event_id: int, day: Optional[str] = None, start: Optional[str] = None) -> Event:
        """Move an event to another day and/or time."""
        ev = self._event(event_id)
        new_day = self._day(day).isoformat() if day else ev.day
        new_start = start or ev.start
        clash = self._clash(new_day, new_start, ev.minutes, ignore=ev.id)
        if clash:
            raise ValueError(f"clashes with {clash.title!r}")
        ev.day, ev.start = new_day, new_start
        return ev

    def cancel_event(self, event_id: int) -> None:
        """Remove an event from the calendar."""
        self._event(event_id)
        del self.events[event_id]


def make_scenario(seed: int) -> dict:
    rng = random.Random(seed)
    today = date(2026, 1, 5) + timedelta(days=rng.randint(0, 300))
    projects = rng.sample(["Home", "Work", "Garden", "Taxes", "Wedding", "Thesis"], 2)
    titles = ["call plumber", "renew passport", "pay rent", "buy birthday gift", "book dentist",
              "send invoice", "water plants", "clean gutters", "file expenses", "order printer ink"]
    tasks = []
    for title in rng.sample(titles, 5):
        due = today + timedelta(days=rng.randint(-3, 14)) if rng.random() < 0.7 else None
        tasks.append({"title": title, "due": due.isoformat() if due else None, "priority": rng.randint(1, 3),
                      "project": rng.choice(["Inbox"] + projects), "done": rng.random() < 0.2})
    events = []
    for title in rng.sample(["standup", "lunch with Sam", "yoga", "1:1 with Kim", "dentist", "team retro"], 3):
        day = today + timedelta(days=rng.randint(0, 4))
        events.append({"title": title, "day": day.isoformat(), "start": f"{rng.randint(8, 17):02d}:{rng.choice([0, 30]):02d}",
                       "minutes": rng.choice([30, 45, 60])})
    return {"today": today.isoformat(), "projects": projects, "tasks": tasks, "events": events}
