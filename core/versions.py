"""The MAJOR.MINOR.PATCH version value object: parsed and validated in one place."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from core.constants import VERSION_RE
from core.errors import InvalidInput


@dataclass(frozen=True, order=True)
class Version:
    major: int
    minor: int
    patch: int

    @classmethod
    def parse(cls, text: object) -> Version:
        match = VERSION_RE.match(str(text).strip()) if isinstance(text, str) else None
        if not match:
            raise InvalidInput(f"{text!r} is not a version; use MAJOR.MINOR.PATCH such as 1.4.0")
        return cls(*(int(part) for part in match.groups()))

    @classmethod
    def is_valid(cls, text: object) -> bool:
        return isinstance(text, str) and VERSION_RE.match(text) is not None

    def next_patch(self) -> Version:
        return Version(self.major, self.minor, self.patch + 1)

    def next_minor(self) -> Version:
        return Version(self.major, self.minor + 1, 0)

    def next_major(self) -> Version:
        return Version(self.major + 1, 0, 0)

    def __str__(self) -> str:
        return f"{self.major}.{self.minor}.{self.patch}"


FIRST_VERSION = Version(1, 0, 0)


CHANGES: tuple[str, ...] = ("patch", "minor", "major")


def next_version(seen: Iterable[str], *, change: str = "patch") -> Version:
    """The next version after every version ever seen, as the original service numbered them.

    PATCH for a retrain with the same features and parameters, MINOR when the training parameters changed,
    MAJOR when the feature set changed.
    """
    if change not in CHANGES:
        raise InvalidInput(f"a version change is one of {', '.join(CHANGES)}, not {change!r}")
    parsed = [Version.parse(v) for v in seen if Version.is_valid(v)]
    if not parsed:
        return FIRST_VERSION
    top = max(parsed)
    return {"patch": top.next_patch, "minor": top.next_minor, "major": top.next_major}[change]()
