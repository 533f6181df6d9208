"""HEAD through the real server (uvicorn behind `backprop serve`): headers only, and the
connection stays usable, so the response's framing is right (app/api/head_requests.py)."""

from __future__ import annotations

import http.client
import json
from pathlib import Path
from urllib.parse import urlsplit

from tests.processes import serve_on_sqlite


def test_head_over_http_keeps_the_connection_usable(tmp_path: Path) -> None:
    with serve_on_sqlite(tmp_path, workers=0, timeout=60) as served:
        address = urlsplit(served.url)
        connection = http.client.HTTPConnection(address.hostname, address.port, timeout=30)
        auth = {"Authorization": f"Bearer {served.key}", "Content-Type": "application/json"}

        def call(method: str, path: str, body: object = None) -> http.client.HTTPResponse:
            payload = None if body is None else json.dumps(body)
            connection.request(method, path, body=payload, headers=auth)
            response = connection.getresponse()
            response.read()
            return response

        network = {"name": "n", "input_size": 2, "layers": [{"units": 1, "activation": "sigmoid"}]}
        connection.request("POST", "/v1/networks", body=json.dumps(network), headers=auth)
        created = json.loads(connection.getresponse().read())
        dataset = {"name": "d", "x": [[0, 1], [1, 0]], "y": [0, 1]}
        connection.request("POST", "/v1/datasets", body=json.dumps(dataset), headers=auth)
        data = json.loads(connection.getresponse().read())
        job = {"network_id": created["id"], "dataset_id": data["id"], "epochs": 3}
        connection.request("POST", "/v1/jobs", body=json.dumps(job), headers=auth)
        queued = json.loads(connection.getresponse().read())

        got = call("GET", f"/v1/networks/{created['id']}")
        head = call("HEAD", f"/v1/networks/{created['id']}")
        assert head.status == got.status == 200
        assert head.getheader("content-length") == got.getheader("content-length")
        # An event stream of a job no worker will run: headers, then the response is over.
        events = call("HEAD", f"/v1/jobs/{queued['id']}/events")
        assert events.status == 200
        assert events.getheader("content-type", "").startswith("text/event-stream")
        assert call("HEAD", "/v1/networks/nope").status == 404
        assert call("GET", "/healthz").status == 200  # the same connection, still in step
        connection.close()
