"""service/middleware.py's per-request shortcuts: each gives what the general code it skips
gives (``ipaddress`` for addresses, ``uuid.uuid4`` for request ids), and one search request
looks the served generation up once for the ETag, the cache key and the metrics."""

from __future__ import annotations

import ipaddress
import re
import uuid

import falcon
import pytest
from falcon import testing
from hypothesis import given
from hypothesis import strategies as st

from service.app import create_app
from service.middleware import REQUEST_ID_HEADER, client_address, new_request_id, truncate_address

from .conftest import CORPUS, api_settings


def reference_truncate(addr: str | None) -> str:
    """truncate_address as it was before its IPv4 shortcut: ``ipaddress`` for everything."""
    if not addr:
        return "-"
    try:
        ip = ipaddress.ip_address(addr.split("%", 1)[0])
    except ValueError:
        return "-"
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    prefix = 24 if ip.version == 4 else 48
    return str(ipaddress.ip_network(f"{ip}/{prefix}", strict=False).network_address)


def reference_client(peer: str | None, forwarded: str | None) -> str | None:
    """client_address as it was before its shortcuts."""
    if forwarded and peer:
        try:
            from_proxy = ipaddress.ip_address(peer.split("%", 1)[0]).is_loopback
            last = forwarded.split(",")[-1].strip()
            if from_proxy:
                ipaddress.ip_address(last.split("%", 1)[0])
                return last
        except ValueError:
            pass
    return peer


# Octets as a socket or a proxy writes them, and as an attacker might: leading zeros, values
# past 255, non-ASCII digits, signs and spaces.
octet = st.one_of(
    st.integers(0, 255).map(str),
    st.integers(0, 999).map(str),
    st.integers(0, 255).map(lambda n: f"0{n}"),
    st.sampled_from(["", "+1", " 1", "1 ", "١", "²", "00", "-0", "0x1", "256", "1000"]),
)
dotted = st.lists(octet, min_size=3, max_size=5).map(".".join)


@given(dotted)
def test_truncating_any_dotted_address_gives_what_ipaddress_gives(addr):
    assert truncate_address(addr) == reference_truncate(addr)


@pytest.mark.parametrize("addr", [
    "0.0.0.0", "255.255.255.255", "10.1.2.3", "127.0.0.1", "01.2.3.4", "1.2.3.04", "1.2.3", "1.2.3.4.5",
    "1.2.3.4 ", "1.2.3.4%eth0", "::ffff:10.1.2.3", "2001:db8::1", "fe80::1%eth0", "", None, "unix:/x.sock",
])
def test_truncating_edge_addresses_gives_what_ipaddress_gives(addr):
    assert truncate_address(addr) == reference_truncate(addr)


@pytest.mark.parametrize("peer", ["127.0.0.1", "127.8.9.10", "::1", "10.0.0.1", "128.0.0.1", "1.2.3.04", None])
@pytest.mark.parametrize("forwarded", [
    None, "", "203.0.113.9", "198.51.100.1, 203.0.113.9", "203.0.113.09", "999.1.1.1", "2001:db8::7",
    "not an address", "203.0.113.9 ",
])
def test_the_client_behind_the_local_proxy_is_the_one_ipaddress_would_accept(peer, forwarded):
    headers = {"X-Forwarded-For": forwarded} if forwarded is not None else {}
    environ = testing.create_environ(headers=headers)
    if peer is None:
        environ.pop("REMOTE_ADDR", None)
    else:
        environ["REMOTE_ADDR"] = peer
    req = falcon.Request(environ)
    assert client_address(req) == reference_client(req.remote_addr, forwarded)


def test_a_new_request_id_is_a_random_version_4_uuid_in_hex():
    ids = {new_request_id() for _ in range(200)}
    assert len(ids) == 200
    for rid in ids:
        assert re.fullmatch(r"[0-9a-f]{32}", rid)
        parsed = uuid.UUID(hex=rid)
        assert parsed.version == 4 and parsed.variant == uuid.RFC_4122 and parsed.hex == rid


def test_a_request_without_an_id_gets_a_uuid4(client):
    rid = client.simulate_get("/healthz").headers[REQUEST_ID_HEADER.lower()]
    assert uuid.UUID(hex=rid).version == 4


def test_a_search_looks_up_the_served_generation_once_for_etag_cache_key_and_metrics(make_client):
    client = make_client(cache_size=0)
    generations = client.app.engine.generations
    calls = []
    real = generations.current

    def counted():
        calls.append(1)
        return real()

    generations.current = counted
    res = client.simulate_get("/v1/search", params={"q": "how long is psychoanalysis"})
    assert res.status_code == 200 and res.headers["etag"].startswith('W/"')
    # One for the ETag (reused by the cache key and the metrics), one inside Engine.search.
    assert len(calls) == 2


def test_without_an_index_the_etag_is_skipped_and_search_is_still_503(tmp_path):
    client = testing.TestClient(create_app(api_settings(CORPUS, tmp_path / "none")))
    res = client.simulate_get("/v1/search", params={"q": "therapy"})
    assert res.status_code == 503 and "etag" not in res.headers
