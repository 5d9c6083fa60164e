"""One error hierarchy with codes; interfaces map codes to exit codes / HTTP statuses once."""

from __future__ import annotations


class RegistryError(Exception):
    """Base error: `code` names the kind, the message says what happened and what to do."""

    code = "error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class NotFound(RegistryError):
    code = "not_found"


class Conflict(RegistryError):
    code = "conflict"


class Held(RegistryError):
    """A promotion was not made because the live version is held (or promotion waits for approval)."""

    code = "held"


class Unchanged(RegistryError):
    """A promotion was not made because the new artifacts are byte-identical to the live set's."""

    code = "unchanged"


class Forbidden(RegistryError):
    """Who is acting may not do this (their role), or could not be identified."""

    code = "forbidden"


class InvalidInput(RegistryError):
    code = "invalid_input"


class IntegrityError(RegistryError):
    code = "integrity"


class DataError(RegistryError):
    """The telemetry cannot support the request: empty, too few samples, a single class."""

    code = "data"


class Unavailable(RegistryError):
    """A dependency (the database) cannot be reached or failed mid-request; the same call may work later."""

    code = "unavailable"


HTTP_STATUS: dict[str, int] = {
    "not_found": 404,
    "conflict": 409,
    "forbidden": 403,
    "held": 409,
    "invalid_input": 422,
    "integrity": 409,
    "data": 422,
    "unavailable": 503,
    "error": 500,
}
