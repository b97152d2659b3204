"""Several clients posting checkpoints at once against a live (threaded) server on the
file SQLite test DB (WAL, IMMEDIATE transactions): none is lost, none is duplicated."""

from __future__ import annotations

import sqlite3
import threading

import pytest
import requests

from luminide.models import ApiToken
from sweeps.models import Checkpoint, HistoryChunk, Trial, TrialEpoch
from tests.api.conftest import basic

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

BODY = {
    "name": "concurrency",
    "parameters": [{"name": "x", "type": "double", "bounds": {"min": 0, "max": 1}}],
    "metrics": [{"name": "loss", "objective": "minimize"}],
    "training_monitor": {
        "max_checkpoints": 200,
        "early_stopping_criteria": [{"type": "convergence", "lookback_checkpoints": 5}],
    },
}


def test_concurrent_checkpoints_are_all_stored(live_server, owner):
    _, raw = ApiToken.issue(owner, "concurrency")
    session = requests.Session()
    session.headers["Authorization"] = basic(raw)
    url = live_server.url + "/v1"
    exp = session.post(f"{url}/experiments", json=BODY).json()
    runs = []
    for _ in range(4):
        s = session.post(f"{url}/experiments/{exp['id']}/suggestions", json={}).json()
        runs.append(
            session.post(
                f"{url}/experiments/{exp['id']}/training_runs", json={"suggestion": s["id"]}
            ).json()["id"]
        )
    shared = runs[0]
    per_client = 15
    # Clients 0-3 post to their own run; clients 4-7 all post to the first run too.
    targets = runs + [shared] * 4
    statuses: list[list[int]] = [[] for _ in targets]
    barrier = threading.Barrier(len(targets))

    def client(i: int) -> None:
        with requests.Session() as s:
            s.headers["Authorization"] = basic(raw)
            barrier.wait()
            for k in range(per_client):
                r = s.post(
                    f"{url}/training_runs/{targets[i]}/checkpoints",
                    json={"values": [{"name": "loss", "value": 1.0 / (k + 1) + i}]},
                    timeout=60,
                )
                statuses[i].append(r.status_code)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(len(targets))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert all(code == 201 for codes in statuses for code in codes), statuses
    for run_id in runs:
        trial = Trial.objects.get(pk=int(run_id))
        expected = per_client * targets.count(run_id)
        seqs = list(Checkpoint.objects.filter(trial=trial).values_list("seq", flat=True))
        assert sorted(seqs) == list(range(expected))
        assert trial.epochs_done == expected and trial.rows_stored == expected
        assert TrialEpoch.objects.filter(trial=trial).count() == expected
        assert HistoryChunk.objects.filter(trial=trial).count() == expected
    listed = session.get(f"{url}/training_runs/{shared}/checkpoints", params={"limit": 1}).json()
    assert listed["count"] == 5 * per_client


def test_checkpoints_through_the_embedded_server_in_two_processes():
    """The embedded default's own stack: daphne in two processes (``luminide.serve``), the
    API's ASGI handler, Redis, SQLite. Clients post to their own runs and to one shared
    run at once, across both processes; every checkpoint is stored once, in order."""
    from sweeps.api.bench import Client, live_server

    with live_server(processes=2) as srv:
        setup = Client(srv)
        status, exp = setup.call("POST", "/v1/experiments", BODY)
        assert status == 201, exp
        runs = []
        for _ in range(3):
            _, sug = setup.call("POST", f"/v1/experiments/{exp['id']}/suggestions", {})
            _, run = setup.call(
                "POST", f"/v1/experiments/{exp['id']}/training_runs", {"suggestion": sug["id"]}
            )
            runs.append(run["id"])
        targets = runs + [runs[0]] * 3
        per_client = 10
        answers: list[list[tuple[int, dict]]] = [[] for _ in targets]
        barrier = threading.Barrier(len(targets))

        def client(i: int) -> None:
            c = Client(srv)
            barrier.wait()
            for k in range(per_client):
                body = {"values": [{"name": "loss", "value": 1.0 / (k + 1) + i}]}
                answers[i].append(
                    c.call("POST", f"/v1/training_runs/{targets[i]}/checkpoints", body)
                )
            c.close()

        threads = [threading.Thread(target=client, args=(i,)) for i in range(len(targets))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert all(code == 201 for got in answers for code, _ in got), answers
        with sqlite3.connect(srv.db_path) as db:
            for run_id in runs:
                expected = per_client * targets.count(run_id)
                status, run = setup.call("GET", f"/v1/training_runs/{run_id}")
                assert status == 200 and run["checkpoint_count"] == expected
                for table, column in (
                    ("sweeps_checkpoint", "seq"),
                    ("sweeps_trialepoch", "epoch"),
                    ("sweeps_historychunk", "first_seq"),
                ):
                    stored = db.execute(
                        f"SELECT {column} FROM {table} WHERE trial_id = ? ORDER BY 1", [run_id]
                    ).fetchall()
                    assert [v for (v,) in stored] == list(range(expected)), table
        # Errors keep the API's JSON shape through the ASGI handler.
        status, err = setup.call("POST", "/v1/training_runs/999999/checkpoints", {"values": []})
        assert status == 404 and err == {"message": "no training run 999999", "status": 404}
        setup.conn.request("GET", "/v1/openapi.json")
        answer = setup.conn.getresponse()
        answer.read()
        assert answer.status == 200 and answer.getheader("X-Content-Type-Options") == "nosniff"
        setup.headers["Authorization"] = "Basic " + "bm90LWEtdG9rZW46"  # "not-a-token:"
        status, err = setup.call("GET", f"/v1/experiments/{exp['id']}")
        assert status == 401 and err["status"] == 401
        setup.close()
