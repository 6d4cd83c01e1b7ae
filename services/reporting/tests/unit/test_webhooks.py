"""The webhooks' pure rules, the signature checked by the Standard Webhooks library."""

from __future__ import annotations

import random
from datetime import UTC, datetime

import pytest
from reporting.feed.delivery import TargetRefused, check_target
from reporting.feed.webhooks import new_secret, refused_address, retry_delay, signature, signature_header
from standardwebhooks.webhooks import Webhook


def test_signatures_are_what_the_standard_webhooks_library_verifies() -> None:
    first, second = new_secret(), new_secret()
    assert first.startswith("whsec_") and first != second
    stamp = int(datetime.now(UTC).timestamp())
    body = b'{"type":"fr.anct.ti.site.updated.v1","data":{"name":"Port fluvial d\'Arles"}}'
    headers = {"webhook-id": "evt-1", "webhook-timestamp": str(stamp), "webhook-signature": signature_header([first, second], "evt-1", stamp, body)}
    assert Webhook(first).verify(body, headers) == Webhook(second).verify(body, headers)
    assert signature(first, "evt-1", stamp, body) == Webhook(first).sign("evt-1", datetime.fromtimestamp(stamp, UTC), body.decode())
    with pytest.raises(Exception, match="signature"):
        Webhook(new_secret()).verify(body, headers)
    with pytest.raises(Exception, match="signature"):
        Webhook(first).verify(body + b" ", headers)


def test_retries_back_off_exponentially_with_jitter_up_to_the_cap() -> None:
    rng = random.Random(4)
    for failures, full in ((1, 1.0), (2, 2.0), (4, 8.0), (30, 60.0)):
        delays = [retry_delay(failures, base_s=1.0, cap_s=60.0, rng=rng) for _ in range(200)]
        assert all(full / 2 <= d <= full for d in delays) and max(delays) - min(delays) > full / 4


@pytest.mark.parametrize(
    ("address", "refused"),
    [("127.0.0.1", "loopback"), ("::1", "loopback"), ("10.1.2.3", "private"), ("192.168.1.1", "private"), ("169.254.169.254", "link-local"),
     ("::ffff:127.0.0.1", "loopback"), ("0.0.0.0", "unspecified"),  # noqa: S104 - an address refused, nothing bound
     ("8.8.8.8", None), ("2001:4860:4860::8888", None)],
)
def test_private_and_loopback_targets_are_named(address: str, refused: str | None) -> None:
    reason = refused_address(address)
    assert reason is None if refused is None else reason == f"{address} is a {refused} address"


async def test_a_target_is_an_http_url_the_rule_allows() -> None:
    # IP literals only: nothing here is resolved, nothing is sent
    for url in ("ftp://127.0.0.1/x", "http:///x", "https://user:pw@127.0.0.1/"):
        with pytest.raises(TargetRefused):
            await check_target(url, "any")
    for url in ("http://127.0.0.1:9/hook", "http://[::1]:9/hook", "http://localhost:9/hook", "http://127.8.0.1/"):
        await check_target(url, "loopback")
    for url in ("http://127.0.0.1:9/hook", "http://[::1]:9/hook", "http://[::ffff:127.0.0.1]/"):
        with pytest.raises(TargetRefused, match="loopback address; only public"):
            await check_target(url, "public")
    for url in ("http://192.0.2.1/hook", "http://10.0.0.1/", "http://example.org/"):
        with pytest.raises(TargetRefused, match="only loopback targets"):
            await check_target(url, "loopback")
    with pytest.raises(TargetRefused, match="private address; only public"):
        await check_target("http://10.0.0.1/", "public")
    await check_target("http://192.0.2.1/hook", "any")
