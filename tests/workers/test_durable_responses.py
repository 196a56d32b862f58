"""Stored /v1/responses answers on the Worker, on CPython: the real ``EdgerelayLimits`` object
(its ``responses_get``/``responses_put``) over ``SqlRows`` on CPython's SQLite, held to the
Durable Object's 2 MB value limit, reached over an awaited stand-in for RPC; the Worker entry's
wiring with and without the EDGERELAY_LIMITS binding. Pyodide runs the store with a fake
namespace (tests/pyodide/test_durable_responses.py) and workerd the whole of it
(tests/workerd/test_worker_responses.py)."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import types

import pytest

from edgerelay.core.responses_api.records import SWEEP_SLACK, DictRows, ResponseRecords
from tests.workers import fake_platform as fake
from tests.workers.fake_durable import (
    Namespace,
    SqliteSql,
    Storage,
    database,
    durable_object,
)

NOW = 1_760_000_000.0


def respond(worker, env, body):
    stream = fake.ReadableStream([json.dumps(body).encode()])
    request = fake.Request("https://edgerelay.example.workers.dev/v1/responses", body=stream)
    response = asyncio.run(worker.entry.Default(fake.Context(), env).fetch(request))
    return response.status, json.loads(response.body)


def test_with_the_binding_references_resolve_from_the_objects_across_configurations(worker):
    namespace = Namespace(worker)
    env = types.SimpleNamespace(EDGERELAY_ALLOW_ANONYMOUS="true", EDGERELAY_LIMITS=namespace)
    status, first = respond(worker, env, {"model": "mock/echo", "input": "first words"})
    assert status == 200 and first["output"][0]["content"][0]["text"] == "first words"
    assert namespace.calls == ["responses_put", "responses_put"]  # the response, its one item
    changed = types.SimpleNamespace(
        EDGERELAY_ALLOW_ANONYMOUS="true",
        EDGERELAY_MAX_BODY_BYTES="99999",
        EDGERELAY_LIMITS=namespace,
    )
    follow = {"model": "mock/echo", "input": "more", "previous_response_id": first["id"]}
    status, second = respond(worker, changed, follow)
    assert status == 200 and second["previous_response_id"] == first["id"]
    assert namespace.calls[2] == "responses_get"
    item = {"type": "item_reference", "id": first["output"][0]["id"]}
    status, _ = respond(worker, changed, {"model": "mock/echo", "input": [item]})
    assert status == 200
    status, error = respond(worker, changed, {**follow, "previous_response_id": "resp_unknown"})
    assert status == 400 and error["error"]["param"] == "previous_response_id"
    assert list(namespace.objects) == [n for n in namespace.objects if n.startswith("responses:")]
    assert len(namespace.objects) == 1  # one client, one object
    status, _ = respond(worker, env, {"model": "mock/echo", "input": "x", "store": False})
    assert status == 200 and namespace.calls.count("responses_put") == 6  # none for store: false


def test_without_the_binding_answers_go_out_and_a_reference_is_a_503_naming_it(worker, capsys):
    env = types.SimpleNamespace(EDGERELAY_ALLOW_ANONYMOUS="true")
    status, first = respond(worker, env, {"model": "mock/echo", "input": "first words"})
    assert status == 200 and first["status"] == "completed"
    status, _ = respond(worker, env, {"model": "mock/echo", "input": "again"})
    assert status == 200
    logged = [line for line in capsys.readouterr().out.splitlines() if "not stored" in line]
    assert logged == ["edgerelay: responses: no EDGERELAY_LIMITS binding: answers are not stored"]
    follow = {"model": "mock/echo", "input": "more", "previous_response_id": first["id"]}
    status, error = respond(worker, env, follow)
    assert status == 503
    assert error["error"]["code"] == "store_unavailable"
    assert error["error"]["type"] == "service_unavailable"
    assert "EDGERELAY_LIMITS" in error["error"]["message"]
    assert "EDGERELAY_STORE" not in error["error"]["message"]  # not a setting of the Worker
    item = {"type": "item_reference", "id": first["output"][0]["id"]}
    status, error = respond(worker, env, {"model": "mock/echo", "input": [item]})
    assert status == 503 and "EDGERELAY_LIMITS" in error["error"]["message"]
    # Sent back whole, with store: false, a conversation needs no store.
    items = first["output"] + [{"role": "user", "content": "more"}]
    status, _ = respond(worker, env, {"model": "mock/echo", "input": items, "store": False})
    assert status == 200


def test_an_unreachable_object_is_a_503_naming_the_binding(worker):
    class Down:
        def getByName(self, name):
            raise RuntimeError("the runtime's own words, never shown")

    env = types.SimpleNamespace(EDGERELAY_ALLOW_ANONYMOUS="true", EDGERELAY_LIMITS=Down())
    status, first = respond(worker, env, {"model": "mock/echo", "input": "hi"})
    assert status == 200  # the answer goes out though it could not be kept
    follow = {"model": "mock/echo", "input": "x", "previous_response_id": first["id"]}
    status, error = respond(worker, env, follow)
    assert status == 503 and error["error"]["code"] == "store_unavailable"
    assert "EDGERELAY_LIMITS" in error["error"]["message"]
    assert "never shown" not in error["error"]["message"]


def records_on_sqlite(worker, db=None):
    rows = worker.durable_responses.SqlRows(SqliteSql(db or database()))
    return rows, ResponseRecords(rows, max_bytes=1 << 30)


def put(records, key, value, expires_at, now=NOW, **extra):
    payload = {"key": key, "value": value, "expires_at": expires_at, "now": now, **extra}
    return records.put(json.dumps(payload))


def get(records, key, now=NOW):
    return records.get(json.dumps({"key": key, "now": now}))


def test_a_record_past_the_objects_value_limit_is_kept_in_parts(worker):
    db = database()
    rows, records = records_on_sqlite(worker, db)
    big = "é" * 1_500_000 + "end"  # 3 MB in UTF-8: over the limit as one value
    with pytest.raises(sqlite3.DataError):
        db.execute("INSERT INTO responses VALUES ('x', 0, ?, 0, 0)", (big,))
    assert put(records, "resp_big", big, NOW + 60) == "ok"
    assert get(records, "resp_big") == big
    parts = db.execute("SELECT COUNT(*) FROM responses WHERE key = 'resp_big'").fetchone()[0]
    assert parts == 4  # 400,000 characters a part
    assert (
        rows.size()
        == len(big.encode())
        == sum(r[0] for r in db.execute("SELECT size FROM responses"))
    )
    assert put(records, "resp_big", "short", NOW + 60) == "ok"  # replaced: its parts go
    assert get(records, "resp_big") == "short" and rows.size() == 5
    assert db.execute("SELECT COUNT(*) FROM responses").fetchone()[0] == 1


def test_records_expire_and_a_client_stays_within_its_bound_oldest_first(worker):
    db = database()
    rows, records = records_on_sqlite(worker, db)
    assert put(records, "a", "x" * 100, NOW + 60, max_bytes=250) == "ok"
    assert put(records, "b", "y" * 100, NOW + 120, max_bytes=250) == "ok"
    assert put(records, "c", "z" * 100, NOW + 180, max_bytes=250) == "ok"  # 300 > 250
    assert get(records, "a") == "" and get(records, "b") == "y" * 100
    assert put(records, "huge", "w" * 251, NOW + 60, max_bytes=250) == "too large"
    assert get(records, "b") == "y" * 100  # nothing else dropped for it
    assert get(records, "b", now=NOW + 120) == ""  # expired: unreadable at once
    assert db.execute("SELECT COUNT(*) FROM responses").fetchone()[0] == 2  # not yet deleted
    put(records, "d", "d", NOW + 500, now=NOW + 150)  # the next write deletes what expired
    assert sorted(k for (k,) in db.execute("SELECT key FROM responses")) == ["c", "d"]
    # A woken object reads its total once, then keeps it.
    again, _ = records_on_sqlite(worker, db)
    assert again.size() == rows.size() == 101


def test_each_write_reads_the_total_once_per_object_not_every_row(worker):
    sql = SqliteSql(database())
    rows = worker.durable_responses.SqlRows(sql)
    records = ResponseRecords(rows, max_bytes=1 << 20)
    for n in range(50):
        put(records, f"k{n}", "v" * 10, NOW + 60)
    before = sql.queries
    put(records, "last", "v" * 10, NOW + 60)
    # drop expired (a sum, no delete), drop the old key (a sum), one insert
    assert sql.queries - before == 3


def test_dict_rows_keep_the_same_rules(worker):
    records = ResponseRecords(DictRows(), max_bytes=250)
    put(records, "a", "x" * 100, NOW + 60)
    put(records, "b", "y" * 100, NOW + 120)
    put(records, "c", "z" * 100, NOW + 180)
    assert get(records, "a") == "" and get(records, "c") == "z" * 100
    assert get(records, "c", now=NOW + 180) == ""


def test_an_alarm_deletes_what_expired_for_a_client_who_never_writes_again(worker, monkeypatch):
    storage = Storage()
    obj = durable_object(worker, storage)

    def store(key, expires_at):
        payload = {"key": key, "value": "v" * 10, "expires_at": expires_at, "now": NOW}
        assert asyncio.run(obj.responses_put(json.dumps(payload))) == "ok"

    store("a", NOW + 60)
    assert storage.alarms == [int((NOW + 60 + SWEEP_SLACK) * 1000)]
    later = NOW + 60 + SWEEP_SLACK + 100  # past the first alarm
    store("b", later)
    assert len(storage.alarms) == 1  # set once while it stands
    monkeypatch.setattr(worker.limits_object, "clock", lambda: NOW + 60 + SWEEP_SLACK)
    asyncio.run(obj.alarm())
    keys = [row.key for row in storage.sql.exec("SELECT key FROM responses").toArray()]
    assert keys == ["b"]  # "a" deleted though no write came
    assert storage.alarms[-1] == int((later + SWEEP_SLACK) * 1000)  # for what remains
    monkeypatch.setattr(worker.limits_object, "clock", lambda: later + SWEEP_SLACK)
    asyncio.run(obj.alarm())
    assert storage.sql.exec("SELECT key FROM responses").toArray() == []
    assert len(storage.alarms) == 2  # nothing left: no alarm
    store("c", NOW + 500)  # the next write sets one again
    assert storage.alarms[-1] == int((NOW + 500 + SWEEP_SLACK) * 1000)
    # A woken object (a new instance over the same storage) sets it again at its first write.
    woken = durable_object(worker, storage)
    payload = {"key": "d", "value": "v", "expires_at": NOW + 900, "now": NOW}
    asyncio.run(woken.responses_put(json.dumps(payload)))
    assert storage.alarms[-1] == int((NOW + 500 + SWEEP_SLACK) * 1000)  # the oldest's
    assert len(storage.alarms) == 4
