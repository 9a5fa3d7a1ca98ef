"""Reindex jobs over HTTP (``service.jobs``, ``service.resources``): the build lock is the only
exclusion, the child sees only the indexer's settings, and a job whose worker died is
recovered from the indexer's report."""

from __future__ import annotations

import json
import os
import re
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from falcon import testing

from indexer.publish import build_lock, lock_holder
from service.app import create_app
from service.jobs import INDEXER_SETTINGS, JobStore, child_environment

from .conftest import TOKEN, Site
from .test_api import NEW_HEADING, OLD_HEADING, first_result

ROOT = Path(__file__).resolve().parents[2]


# --------------------------------------------------------------------------- reindex


def auth(token: str = TOKEN) -> dict:
    return {"Authorization": f"Bearer {token}"}


def wait_for_job(client, job: str, timeout: float = 60) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        res = client.simulate_get(f"/v1/reindex/{job}", headers=auth())
        assert res.status_code == 200, res.text
        if res.json["status"] in ("succeeded", "failed"):
            return res.json
        assert res.json["status"] in ("queued", "running")
        assert time.monotonic() < deadline, f"job {job} still {res.json['status']}"
        time.sleep(0.1)


def test_reindex_routes_are_404_when_no_token_is_set(client):
    assert client.simulate_post("/v1/reindex", json={"mode": "update"}, headers=auth()).status_code == 404
    assert client.simulate_get("/v1/reindex/" + "0" * 32, headers=auth()).status_code == 404


@pytest.mark.parametrize("headers", [{}, auth("wrong-token"), {"Authorization": "Basic dXNlcjpwYXNz"},
                                     {"Authorization": f"Bearer {TOKEN}x"}, {"Authorization": "Bearer"}])
def test_reindex_with_missing_or_wrong_token_is_401_with_bearer_challenge(make_client, headers):
    client = make_client(reindex_token=TOKEN)
    for res in (client.simulate_post("/v1/reindex", json={}, headers=headers),
                client.simulate_get("/v1/reindex/" + "0" * 32, headers=headers)):
        assert res.status_code == 401
        assert res.headers["www-authenticate"] == "Bearer"
        assert set(res.json) == {"title", "description"}
        assert TOKEN not in res.text


@pytest.mark.parametrize(("body", "content_type"), [
    (b"not json", "application/json"), (b"[1, 2]", "application/json"), (b'{"mode": "everything"}', "application/json"),
    (b'{"mode": 1}', "application/json"), (b'{"mode": "full", "force": true}', "application/json"),
    (b"\xff\xfe", "application/json"), (b"mode=full", "application/x-www-form-urlencoded"),
])
def test_reindex_bad_body_is_400(make_client, body, content_type):
    client = make_client(reindex_token=TOKEN)
    res = client.simulate_post("/v1/reindex", body=body, headers={**auth(), "Content-Type": content_type})
    assert res.status_code == 400, res.text


def test_reindex_body_over_64_kib_is_413(make_client):
    client = make_client(reindex_token=TOKEN)
    body = json.dumps({"mode": "update", "pad": "x" * 70_000}).encode()
    res = client.simulate_post("/v1/reindex", body=body, headers={**auth(), "Content-Type": "application/json"})
    assert res.status_code == 413
    assert set(res.json) == {"title", "description"}


def test_unknown_job_is_404(make_client):
    client = make_client(reindex_token=TOKEN)
    assert client.simulate_get("/v1/reindex/" + "f" * 32, headers=auth()).status_code == 404
    assert client.simulate_get("/v1/reindex/../../etc", headers=auth()).status_code == 404


def test_reindex_happy_path_publishes_a_new_generation_and_refuses_a_second_job_meanwhile(site):
    client = testing.TestClient(create_app(site.config(reindex_token=TOKEN)))
    before = client.simulate_get("/readyz").json["generation"]
    site.edit("goals-of-psychotherapy", OLD_HEADING, NEW_HEADING)

    res = client.simulate_post("/v1/reindex", json={"mode": "update"}, headers=auth())
    assert res.status_code == 202, res.text
    job = res.json
    assert job["status"] in ("queued", "running") and job["mode"] == "update"
    assert res.headers["location"] == f"/v1/reindex/{job['job']}"
    assert res.headers["cache-control"] == "no-store"

    again = client.simulate_post("/v1/reindex", headers=auth())  # empty body: mode "update"
    assert again.status_code == 409
    assert job["job"] in again.json["description"]

    done = wait_for_job(client, job["job"])
    assert done["status"] == "succeeded", done
    assert done["generation"] != before and done["published"] is True
    assert done["counts"]["changed"] == 1 and done["counts"]["articles"] == 4
    assert done["started"] and done["finished"] and done["errors"] == []
    assert client.simulate_get("/readyz").json["generation"] == done["generation"]
    assert first_result(client, "zanzibar psychotherapy")["question"] == "What Is Zanzibar Psychotherapy?"
    client.app.jobs.join(10)

    # Nothing changed since: the job succeeds without publishing.
    res = client.simulate_post("/v1/reindex", json={"mode": "update"}, headers=auth())
    assert res.status_code == 202
    done2 = wait_for_job(client, res.json["job"])
    assert done2["status"] == "succeeded" and done2["published"] is False
    assert done2["generation"] == done["generation"]
    client.app.jobs.join(10)


def test_a_second_job_is_409_while_a_build_holds_the_lock_whoever_started_it(site):
    client = testing.TestClient(create_app(site.config(reindex_token=TOKEN)))
    with build_lock(site.index):
        res = client.simulate_post("/v1/reindex", json={"mode": "full"}, headers=auth())
        assert res.status_code == 409, res.text
        assert "Another build holds the index lock" in res.json["description"]
    res = client.simulate_post("/v1/reindex", json={"mode": "update"}, headers=auth())
    assert res.status_code == 202
    assert wait_for_job(client, res.json["job"])["status"] == "succeeded"
    client.app.jobs.join(10)


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def _insert_running_job(store: JobStore, job: str, pid: int, out: str = "") -> None:
    store.get("0" * 32)  # creates the database
    (store.out_dir / f"{job}.out").write_text(out, encoding="utf-8")
    with sqlite3.connect(store.path) as conn:
        conn.execute(
            "INSERT INTO jobs (id, status, mode, created, started, counts, errors, warnings, pid, out_path, err_path) "
            "VALUES (?, 'running', 'full', '2026-01-01T00:00:00Z', '2026-01-01T00:00:00Z', '{}', '[]', '[]', ?, ?, ?)",
            (job, pid, str(store.out_dir / f"{job}.out"), str(store.out_dir / f"{job}.err")),
        )
    conn.close()


def test_running_job_whose_process_is_gone_reads_as_failed_and_does_not_block(site):
    client = testing.TestClient(create_app(site.config(reindex_token=TOKEN)))
    job = "a" * 32
    _insert_running_job(client.app.jobs, job, _dead_pid())
    res = client.simulate_get(f"/v1/reindex/{job}", headers=auth())
    assert res.json["status"] == "failed"
    assert "ended without a report" in res.json["errors"][0]
    res = client.simulate_post("/v1/reindex", json={"mode": "update"}, headers=auth())
    assert res.status_code == 202
    assert wait_for_job(client, res.json["job"])["status"] == "succeeded"
    client.app.jobs.join(10)


def test_job_of_a_restarted_worker_is_recovered_from_its_report(unbuilt_site):
    site = unbuilt_site
    client = testing.TestClient(create_app(site.config(reindex_token=TOKEN)))
    job = "b" * 32
    report = {"generation": "000009-x", "published": True, "articles": 4, "sections": 46, "links": 9,
              "added": [], "changed": ["a.html"], "removed": [], "rewritten": ["a.html"],
              "issues": [{"source": "a.html", "message": "odd heading", "level": "warning", "code": "other"}],
              "warnings": 1, "errors": 0}
    _insert_running_job(client.app.jobs, job, _dead_pid(), json.dumps(report))
    body = client.simulate_get(f"/v1/reindex/{job}", headers=auth()).json
    assert body["status"] == "succeeded" and body["generation"] == "000009-x"
    assert body["counts"]["changed"] == 1 and body["counts"]["warnings"] == 1
    assert body["warnings"] == ["a.html: odd heading"]


_HOLD_LOCK = """
import fcntl, os, sys, time
fh = open(sys.argv[1], "a+")
fcntl.flock(fh, fcntl.LOCK_EX)
fh.seek(0); fh.truncate(); fh.write(f"pid {os.getpid()} since now\\n"); fh.flush()
print("locked", flush=True)
time.sleep(30)
"""


def test_a_job_whose_indexer_holds_the_lock_reads_as_running_and_blocks_others(unbuilt_site):
    site = unbuilt_site
    client = testing.TestClient(create_app(site.config(reindex_token=TOKEN)))
    site.index.mkdir(parents=True, exist_ok=True)
    holder = subprocess.Popen([sys.executable, "-c", _HOLD_LOCK, str(site.index / "LOCK")],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        assert lock_holder(site.index) == holder.pid
        _insert_running_job(client.app.jobs, "c" * 32, holder.pid)
        res = client.simulate_post("/v1/reindex", headers=auth())
        assert res.status_code == 409
        assert "c" * 32 in res.json["description"]
        assert client.simulate_get(f"/v1/reindex/{'c' * 32}", headers=auth()).json["status"] == "running"
    finally:
        holder.kill()
        holder.wait()
    assert client.simulate_get(f"/v1/reindex/{'c' * 32}", headers=auth()).json["status"] == "failed"


def test_the_indexer_child_gets_only_the_indexer_settings_and_never_the_token(site, monkeypatch):
    monkeypatch.setenv("FAQ_REINDEX_TOKEN", TOKEN)
    monkeypatch.setenv("SOME_SECRET", "s3cret")
    config = site.config(reindex_token=TOKEN, cors_origins=("https://a.example",))
    env = child_environment(config)
    assert TOKEN not in json.dumps(env)
    assert "FAQ_REINDEX_TOKEN" not in env and "SOME_SECRET" not in env and "FAQ_CORS_ORIGINS" not in env
    assert env["FAQ_CORPUS_DIR"] == str(Path(config.corpus_dir).resolve())
    assert env["FAQ_INDEX_DIR"] == str(Path(config.index_dir).resolve())


def test_every_setting_the_indexer_reads_is_passed_to_the_child():
    used = set()
    for path in (ROOT / "indexer").glob("*.py"):
        used |= set(re.findall(r"config\.([a-z_]+)", path.read_text(encoding="utf-8")))
    used -= {"replace", "as_dict"}
    assert used <= set(INDEXER_SETTINGS), sorted(used - set(INDEXER_SETTINGS))


def test_a_reindex_job_started_through_the_api_holds_the_lock_in_its_child_not_in_the_worker(site):
    client = testing.TestClient(create_app(site.config(reindex_token=TOKEN)))
    res = client.simulate_post("/v1/reindex", json={"mode": "full"}, headers=auth())
    assert res.status_code == 202
    holder = lock_holder(site.index)
    if holder is not None:  # the build may already be over on a fast machine
        assert holder != os.getpid()
    assert wait_for_job(client, res.json["job"])["status"] == "succeeded"
    client.app.jobs.join(10)
    assert lock_holder(site.index) is None


def test_jobs_database_is_in_wal_mode(unbuilt_site):
    site = unbuilt_site
    client = testing.TestClient(create_app(site.config(reindex_token=TOKEN)))
    client.simulate_get("/v1/reindex/" + "0" * 32, headers=auth())
    with sqlite3.connect(site.index / "jobs.sqlite") as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    conn.close()
    assert os.path.isdir(site.index / "jobs")


def test_reindex_is_503_with_a_message_when_the_index_folder_cannot_be_written(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder", encoding="utf-8")
    config = Site(tmp_path).config(reindex_token=TOKEN).replace(index_dir=blocker / "index")
    client = testing.TestClient(create_app(config))
    res = client.simulate_post("/v1/reindex", json={"mode": "update"}, headers=auth())
    assert res.status_code == 503, res.text
    assert "cannot be written" in res.json["description"]
    assert str(blocker) not in res.text
