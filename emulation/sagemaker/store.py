"""Resources as JSON documents in one SQLite file, so state survives a restart.

A document is what Describe<Kind> returns; `kind` is e.g. "TrainingJob". Threads share one
connection under a lock (the service's writes are few and small).
"""

import json
import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

Document = dict[str, Any]


class Store:
    def __init__(self, path: Path):
        path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS resources (kind TEXT, name TEXT, document TEXT, "
            "seq INTEGER PRIMARY KEY AUTOINCREMENT, UNIQUE(kind, name))"
        )

    def insert(self, kind: str, name: str, document: Document) -> bool:
        """False when a resource of that kind and name exists already."""
        with self._lock:
            try:
                self._db.execute(
                    "INSERT INTO resources (kind, name, document) VALUES (?, ?, ?)",
                    (kind, name, json.dumps(document)),
                )
            except sqlite3.IntegrityError:
                return False
        return True

    def get(self, kind: str, name: str) -> Document | None:
        with self._lock:
            row = self._db.execute(
                "SELECT document FROM resources WHERE kind = ? AND name = ?", (kind, name)
            ).fetchone()
        return json.loads(row[0]) if row else None

    def update(self, kind: str, name: str, change: Callable[[Document], None]) -> Document:
        """Apply `change` to the stored document atomically; returns the new document."""
        with self._lock:
            row = self._db.execute(
                "SELECT document FROM resources WHERE kind = ? AND name = ?", (kind, name)
            ).fetchone()
            if row is None:
                raise KeyError(f"{kind} {name}")
            document = json.loads(row[0])
            change(document)
            self._db.execute(
                "UPDATE resources SET document = ? WHERE kind = ? AND name = ?",
                (json.dumps(document), kind, name),
            )
        return document

    def delete(self, kind: str, name: str) -> bool:
        with self._lock:
            cursor = self._db.execute(
                "DELETE FROM resources WHERE kind = ? AND name = ?", (kind, name)
            )
        return cursor.rowcount > 0

    def all(self, kind: str) -> list[Document]:
        """Oldest first."""
        with self._lock:
            rows = self._db.execute(
                "SELECT document FROM resources WHERE kind = ? ORDER BY seq", (kind,)
            ).fetchall()
        return [json.loads(row[0]) for row in rows]

    def clear(self) -> None:
        with self._lock:
            self._db.execute("DELETE FROM resources")
