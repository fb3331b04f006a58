"""What the storage proxy and its workers agree on beyond Optuna's own gRPC service: the study
lease calls and the metadata that fences trial creation.

The lease calls are plain gRPC methods with JSON bodies (no generated code to keep in step).
"""

from __future__ import annotations

import json
from typing import Any

DEFAULT_PORT = 13000
LEASE_SERVICE = "hpo.StudyLease"
ACQUIRE, RELEASE = "Acquire", "Release"
LEASE_HEADER = (
    "hpo-lease"  # "<study id>:<token>", sent by a worker while it holds the study's lease
)
LEASE_LOST = "the study lease was lost (another worker holds it now); the turn is retried"
MAX_WAIT_S = (
    1.0  # an Acquire call waits at most this long on the proxy, so waiters never pile up there
)


def encode(body: dict[str, Any]) -> bytes:
    return json.dumps(body).encode()


def decode(data: bytes) -> dict[str, Any]:
    return json.loads(data)


def lease_header(study_id: int, token: str) -> tuple[str, str]:
    return LEASE_HEADER, f"{study_id}:{token}"


def parse_lease_header(metadata: Any) -> tuple[int, str] | None:
    """The (study id, token) a call carries, or None for a call made without a lease."""
    for key, value in metadata or ():
        if key == LEASE_HEADER:
            study_id, _, token = str(value).partition(":")
            return int(study_id), token
    return None
