"""What the storage proxy and its workers agree on beyond Optuna's own gRPC service: the study
lease, two small reads for the turn taken under it, the whole common turn as one call (ClaimTrial),
a batch of writes as one call (ApplyWrites), the trials whose heartbeats stopped (StaleTrials),
and the metadata that fences trial creation.

They are plain gRPC methods with JSON bodies (no generated code to keep in step); the queued
trials come back as Optuna's own GetTrialsReply.
"""

from __future__ import annotations

import base64
import json
from typing import Any

DEFAULT_PORT = 13000
SERVICE = "hpo.StudyProxy"
ACQUIRE, RELEASE, COUNT_STATES, WAITING_TRIALS, CLAIM_TRIAL, APPLY_WRITES, STALE_TRIALS = (
    "Acquire",
    "Release",
    "CountStates",
    "WaitingTrials",
    "ClaimTrial",
    "ApplyWrites",
    "StaleTrials",
)
LEASE_HEADER = (
    "hpo-lease"  # "<study id>:<token>", sent by a worker while it holds the study's lease
)
LEASE_LOST = "the study lease was lost (another worker holds it now); the turn is retried"
MAX_WAIT_S = 1.0  # an Acquire (or ClaimTrial) call waits at most this long for the lease
CLAIM_TTL_S = 30.0  # the lease a ClaimTrial call holds in the proxy while it counts and creates


def encode(body: dict[str, Any]) -> bytes:
    return json.dumps(body).encode()


def decode(data: bytes) -> dict[str, Any]:
    return json.loads(data)


def encode_trial(proto: Any) -> str:
    """An Optuna trial message (api_pb2.Trial) inside a JSON body."""
    return base64.b64encode(proto.SerializeToString()).decode()


def decode_trial(text: str, message_type: Any) -> Any:
    return message_type.FromString(base64.b64decode(text))


def lease_header(study_id: int, token: str) -> tuple[str, str]:
    return LEASE_HEADER, f"{study_id}:{token}"


def parse_lease_header(metadata: Any) -> tuple[int, str] | None:
    """The (study id, token) a call carries, or None for a call made without a lease."""
    for key, value in metadata or ():
        if key == LEASE_HEADER:
            study_id, _, token = str(value).partition(":")
            return int(study_id), token
    return None
