"""Property-based conformance of every operation with the OpenAPI document (schemathesis).

A valid key is sent; a few generated cases per operation, valid and invalid ones.
Checks: no 5xx, every status / content type / body is the documented one, and an
operation that needs a key refuses a request without one. Derandomised, so a run is
reproducible.
"""

from __future__ import annotations

from typing import Any

import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.result import Ok
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    ignored_auth,
    response_schema_conformance,
    status_code_conformance,
)

from app.config import Settings
from app.main import create_app
from app.storage.database import Database
from app.storage.tables import WorkerHeartbeat, utcnow
from tests.api.conftest import Keys, MakeClient, auth, make_dataset, make_network, train

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    response_schema_conformance,
    content_type_conformance,
    ignored_auth,
]
EXAMPLES = {GenerationMode.POSITIVE: 5, GenerationMode.NEGATIVE: 3}


def test_every_operation_conforms(db: Database, keys: Keys) -> None:
    with db.session() as session:  # a live worker, so that /readyz answers 200
        session.add(WorkerHeartbeat(id="w", hostname="h", pid=1, heartbeat_at=utcnow()))
    app = create_app(Settings(database_url=db.url, max_body_bytes=1_000_000), db)
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    operations = []
    for result in schema.get_all_operations():
        assert isinstance(result, Ok), result
        operations.append(result.ok())
    assert len(operations) >= 20
    headers = auth(keys.alice)
    for operation in operations:
        with db.session() as session:  # kept fresh: a slow run outlives the 30 s window
            session.merge(WorkerHeartbeat(id="w", hostname="h", pid=1, heartbeat_at=utcnow()))
        for mode, examples in EXAMPLES.items():

            @given(case=operation.as_strategy(generation_mode=mode))
            @settings(
                max_examples=examples,
                deadline=None,
                database=None,
                derandomize=True,
                suppress_health_check=list(HealthCheck),
            )
            def conforms(case: Any) -> None:
                case.call_and_validate(headers=headers, checks=CHECKS)

            try:
                conforms()
            except Unsatisfiable:
                # Nothing to make invalid (no parameters, no body): only positive cases.
                assert mode is GenerationMode.NEGATIVE, str(operation)


def test_event_stream_of_a_real_job_conforms(
    db: Database, keys: Keys, make_client: MakeClient
) -> None:
    """Finding A2: each SSE event of a finished job matches the documented event schema
    (the generated cases above only reach the stream with unknown ids: 404)."""
    client = make_client(keys.alice)
    job = train(client, db, make_network(client), make_dataset(client), epochs=3)
    schema = schemathesis.openapi.from_asgi("/openapi.json", client.app)
    operation = schema["/v1/jobs/{job_id}/events"]["GET"]
    case = operation.Case(path_parameters={"job_id": job["id"]})
    response = case.call_and_validate(headers=auth(keys.alice), checks=CHECKS)
    assert response.status_code == 200
    assert response.text.count("event: epoch") == 3 and "event: end" in response.text
