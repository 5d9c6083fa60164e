"""Loading a model file only after its checksum and provenance were checked, and only as a fitted estimator."""

from __future__ import annotations

import io
import pickle
from typing import TYPE_CHECKING, Any

import joblib

from core import constants as C
from core.errors import IntegrityError
from core.storage import sha256_bytes

if TYPE_CHECKING:
    from core.provenance import Provenance

# joblib.dump stores numpy arrays through this class; only joblib's unpickler can read what follows it.
JOBLIB_MARK = b"NumpyArrayWrapper"
RESTORE_HINT = "restore a complete backup set (Backups, or `manage_models.py restore <timestamp>`) or retrain"


def check_file(name: str, data: bytes, expected_sha: str | None, provenance: Provenance | None) -> str:
    """The file's sha256, or IntegrityError when it is not the file its metadata and the registry's records name."""
    actual = sha256_bytes(data)
    if expected_sha is None:
        raise IntegrityError(
            f"{name} has no checksum in its metadata, so where it came from is unknown; {RESTORE_HINT}"
        )
    if actual != expected_sha:
        raise IntegrityError(
            f"{name} does not match {C.METADATA_FILE} (sha256 {actual[:12]}… vs {expected_sha[:12]}…); {RESTORE_HINT}"
        )
    if provenance is not None and not provenance.known(actual):
        raise IntegrityError(
            f"{name} (sha256 {actual[:12]}…) is not a file this registry wrote: its checksum is in no recorded set; "
            f"{RESTORE_HINT}"
        )
    return actual


def load_checked(name: str, data: bytes, expected_sha: str | None, provenance: Provenance | None) -> Any:
    """Unpickle a file whose checksum matches its metadata and the registry's records; check what it holds."""
    check_file(name, data, expected_sha, provenance)
    return unpickle(name, data)


def unpickle(name: str, data: bytes) -> Any:
    """Load bytes already checked, then: is it the fitted estimator this file must hold?

    A file written by `joblib.dump` (sets made before the registry wrote standard pickles) is read with
    joblib; any other with the standard C unpickler, which is what makes loading the current set fast.
    """
    try:
        obj = _load(data)
    except Exception as exc:  # any unpickling failure means the file is unusable
        raise IntegrityError(f"{name} cannot be loaded ({type(exc).__name__}); {RESTORE_HINT}") from None
    check_estimator(name, obj)
    return obj


def _load(data: bytes) -> Any:
    if JOBLIB_MARK not in data:
        try:
            return pickle.loads(data)
        except Exception:  # e.g. a joblib file compressed by hand: joblib reads those too
            pass
    return joblib.load(io.BytesIO(data))


def check_estimator(name: str, obj: Any) -> None:
    """IntegrityError unless `obj` is a fitted classifier (the failure model) or a fitted anomaly scorer."""
    needs = "predict_proba" if name == C.FAILURE_MODEL_FILE else "decision_function"
    if not callable(getattr(obj, needs, None)):
        raise IntegrityError(f"{name} holds a {type(obj).__name__}, not a model with {needs}(); {RESTORE_HINT}")
    try:
        from sklearn.exceptions import NotFittedError
        from sklearn.utils.validation import check_is_fitted

        check_is_fitted(obj)
    except NotFittedError:
        raise IntegrityError(f"{name} holds an unfitted {type(obj).__name__}; {RESTORE_HINT}") from None
    except TypeError:
        raise IntegrityError(
            f"{name} holds a {type(obj).__name__}, not a scikit-learn estimator; {RESTORE_HINT}"
        ) from None
