"""Which model files this registry wrote: their checksums in the database, so a planted file is never unpickled."""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from typing import Any

from sqlalchemy import func, select

from core.db import ArtifactRecord, Database, RegistryEvent, utcnow
from core.domain import artifact_checksums

log = logging.getLogger(__name__)


class Provenance:
    """The checksums of every set the registry promoted, recorded before the set goes live."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._known: set[str] = set()
        self._adopted = False
        self._lock = threading.Lock()

    def record(self, artifacts: Mapping[str, Any], *, version: str | None, source: str, actor: str) -> None:
        """Record these artifact checksums (idempotent)."""
        rows = artifact_checksums({"artifacts": dict(artifacts)})
        with self.db.session() as s:
            present = set(
                s.scalars(
                    select(ArtifactRecord.sha256).where(ArtifactRecord.sha256.in_([r["sha256"] for r in rows.values()]))
                )
            )
            for name, entry in rows.items():
                if entry["sha256"] in present:
                    continue
                s.add(
                    ArtifactRecord(
                        sha256=entry["sha256"],
                        file_name=name,
                        version=version,
                        size_bytes=entry["bytes"],
                        source=source,
                        actor=actor,
                        recorded_at=utcnow(),
                    )
                )
        with self._lock:
            self._known.update(r["sha256"] for r in rows.values())

    def known(self, sha256: str) -> bool:
        """Whether this checksum belongs to a set the registry wrote (or an admin trusted)."""
        if sha256 in self._known:
            return True
        self._adopt_history()
        with self.db.session() as s:
            found = s.scalar(select(ArtifactRecord.sha256).where(ArtifactRecord.sha256 == sha256)) is not None
        if found:
            with self._lock:
                self._known.add(sha256)
        return found

    def versions(self) -> set[str]:
        """Every version whose files were recorded."""
        self._adopt_history()
        with self.db.session() as s:
            return {v for v in s.scalars(select(ArtifactRecord.version).distinct()) if v}

    def _adopt_history(self) -> None:
        """Promotions recorded before this table existed carry their checksums in the event: adopt them once."""
        if self._adopted:
            return
        with self.db.session() as s:
            empty = not s.scalar(select(func.count()).select_from(ArtifactRecord))
            events = list(s.scalars(select(RegistryEvent).where(RegistryEvent.kind == "promote"))) if empty else []
            details = [(e.to_version, (e.details or {}).get("metadata") or {}) for e in events]
        for version, metadata in details:
            checksums = artifact_checksums(metadata)
            if checksums:
                self.record(checksums, version=version, source="history", actor="registry")
        if details:
            log.info("provenance: adopted the checksums of %d promotions from history", len(details))
        self._adopted = True
