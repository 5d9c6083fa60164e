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

    def next_minor(self) -> Version:
        return Version(self.major, self.minor + 1, 0)

    def next_major(self) -> Version:
        return Version(self.major + 1, 0, 0)

    def __str__(self) -> str:
        return f"{self.major}.{self.minor}.{self.patch}"


FIRST_VERSION = Version(1, 0, 0)


def next_version(seen: Iterable[str], *, features_changed: bool = False) -> Version:
    """The next version after every version ever seen: minor bump, or major when the features changed."""
    parsed = [Version.parse(v) for v in seen if Version.is_valid(v)]
    if not parsed:
        return FIRST_VERSION
    top = max(parsed)
    return top.next_major() if features_changed else top.next_minor()
