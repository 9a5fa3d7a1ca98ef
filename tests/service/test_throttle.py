"""The reindex-authentication throttle (``service.throttle``) alone and through the app: failed
attempts per client network are refused with 429 and ``Retry-After`` after a burst, the right
token included, and the right token works again once the bucket refilled."""

from __future__ import annotations

import pytest

from service import throttle
from service.throttle import CAPACITY, REFILL_SECONDS, FailureThrottle

from .conftest import TOKEN


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def auth(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


def test_a_network_may_fail_capacity_times_then_waits_for_a_refill():
    clock = Clock()
    t = FailureThrottle(capacity=3, refill_seconds=6, clock=clock)
    for _ in range(3):
        assert t.retry_after("10.0.0.0") is None
        t.failed("10.0.0.0")
    assert t.retry_after("10.0.0.0") == 6
    assert t.retry_after("10.0.1.0") is None  # another network is not affected
    clock.now += 4
    assert t.retry_after("10.0.0.0") == 2
    clock.now += 2
    assert t.retry_after("10.0.0.0") is None
    t.failed("10.0.0.0")  # the refilled attempt spent: wait a whole period again
    assert t.retry_after("10.0.0.0") == 6


def test_the_bucket_never_holds_more_than_its_capacity_after_a_long_quiet_time():
    clock = Clock()
    t = FailureThrottle(capacity=2, refill_seconds=1, clock=clock)
    t.failed("a")
    clock.now += 3600
    t.failed("a")
    t.failed("a")
    assert t.retry_after("a") == 1


def test_the_throttle_forgets_the_least_recently_seen_networks_beyond_its_bound():
    t = FailureThrottle(capacity=1, refill_seconds=60, max_keys=2, clock=Clock())
    for key in ("a", "b", "c"):
        t.failed(key)
    assert t.retry_after("a") is None  # forgotten: memory stays bounded
    assert t.retry_after("b") == 60 and t.retry_after("c") == 60


@pytest.fixture
def clock(monkeypatch) -> Clock:
    c = Clock()
    monkeypatch.setattr(throttle, "monotonic", c)
    return c


def test_wrong_tokens_get_429_with_retry_after_after_the_burst_and_the_right_token_works_later(
    make_client, clock
):
    client = make_client(reindex_token=TOKEN)
    job = "/v1/reindex/" + "0" * 32
    statuses = [client.simulate_get(job, headers=auth(f"guess-{i}")).status_code for i in range(CAPACITY)]
    assert statuses == [401] * CAPACITY

    # Both routes share the throttle, and the right token is refused too while it is empty.
    for res in (client.simulate_post("/v1/reindex", json={}, headers=auth("another-guess")),
                client.simulate_get(job, headers=auth(TOKEN))):
        assert res.status_code == 429
        assert res.headers["retry-after"] == str(int(REFILL_SECONDS))
        assert set(res.json) == {"title", "description"}

    clock.now += REFILL_SECONDS
    res = client.simulate_get(job, headers=auth(TOKEN))
    assert res.status_code == 404 and "No reindex job" in res.json["description"]  # authorized


def test_successful_authentications_cost_nothing(make_client, clock):
    client = make_client(reindex_token=TOKEN)
    job = "/v1/reindex/" + "0" * 32
    for _ in range(CAPACITY * 3):
        assert client.simulate_get(job, headers=auth(TOKEN)).status_code == 404


def test_the_throttle_keys_on_the_truncated_network_so_neighbours_share_it(make_client, clock):
    client = make_client(reindex_token=TOKEN)
    job = "/v1/reindex/" + "0" * 32
    for i in range(CAPACITY):
        assert client.simulate_get(job, headers=auth("x"), remote_addr=f"203.0.113.{i + 1}").status_code == 401
    assert client.simulate_get(job, headers=auth(TOKEN), remote_addr="203.0.113.200").status_code == 429
    assert client.simulate_get(job, headers=auth(TOKEN), remote_addr="198.51.100.7").status_code == 404
    assert list(throttle.throttle_for(client.app.jobs)._buckets) == ["203.0.113.0"]  # never a full IP


def test_behind_the_local_proxy_each_visitor_has_a_bucket_of_its_own(make_client):
    client = make_client(reindex_token=TOKEN)
    attacker, editor = {"X-Forwarded-For": "203.0.113.5"}, {"X-Forwarded-For": "198.51.100.7"}
    statuses = [client.simulate_get("/v1/reindex/" + "0" * 32, headers={**auth("wrong"), **attacker}).status_code
                for _ in range(CAPACITY + 5)]
    assert statuses[-1] == 429
    res = client.simulate_get("/v1/reindex/" + "0" * 32, headers={**auth(TOKEN), **editor})
    assert res.status_code == 404  # authorised: the job simply does not exist


def test_a_forwarded_address_from_a_remote_peer_is_not_trusted(make_client):
    client = make_client(reindex_token=TOKEN)
    remote = {"remote_addr": "192.0.2.10"}
    for i in range(CAPACITY + 5):
        res = client.simulate_get("/v1/reindex/" + "0" * 32, headers={**auth("wrong"), "X-Forwarded-For": f"10.0.{i}.1"},
                                  **remote)
    assert res.status_code == 429  # rotating the header does not give a remote peer new buckets
