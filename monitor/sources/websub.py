"""WebSub (W3C Recommendation, 2018): pure pieces of the subscriber side.

A feed that advertises a hub (``<link rel="hub">`` in the document or a ``Link`` header) can push
new content instead of waiting for the next poll. The subscriber asks the hub (a form POST with
``hub.mode=subscribe``, the topic, its callback URL, a lease and a secret); the hub checks the
subscriber's intent with a GET to the callback carrying a challenge, which the subscriber echoes;
then the hub POSTs each new version of the feed to the callback, signed with the secret
(``X-Hub-Signature: sha256=<hex HMAC of the body>``). Content whose signature does not verify is
acknowledged and ignored, as the Recommendation requires. Subscriptions are renewed before their
lease ends; polling continues at the longest interval as a safety net.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from datetime import datetime, timedelta
from urllib.parse import quote

from monitor.sources.parsing import FeedHints
from monitor.store.tables import SubscriptionRow

LEASE = timedelta(days=10)
"""The lease asked of hubs (they may grant another)."""
RETRY_REQUEST = timedelta(hours=1)
"""A request the hub has not verified in this time is made again."""
RENEW_BEFORE = timedelta(days=2)
"""A lease is renewed at the first poll this close to its end: the safety-net polls come about
daily (max_interval), so a two-day window always holds one."""
_ALGORITHMS = {
    "sha1": hashlib.sha1,
    "sha256": hashlib.sha256,
    "sha384": hashlib.sha384,
    "sha512": hashlib.sha512,
}
"""The signature methods WebSub allows."""


def discover(
    hints: FeedHints, links: Mapping[str, str], fetched_url: str
) -> tuple[str, str] | None:
    """(hub, topic) when the feed advertises a hub: Link headers first, then the document; the
    topic is the feed's self URL, else the URL it was fetched from."""
    hub = links.get("hub") or hints.hub
    if not hub or not hub.startswith(("http://", "https://")):
        return None
    topic = links.get("self") or hints.self_url or fetched_url
    return hub, topic


def callback_url(public_url: str, source_id: str) -> str:
    return f"{public_url}/websub/{quote(source_id, safe='')}"


def needs_request(row: SubscriptionRow | None, hub: str, topic: str, now: datetime) -> bool:
    """Whether to (re)subscribe: no subscription, a new hub or topic, a failed request or one the
    hub never verified within an hour, or a lease that ends within RENEW_BEFORE."""
    if row is None or row.hub != hub or row.topic != topic:
        return True
    if row.state == "requested":
        return row.requested_at is None or now - row.requested_at > RETRY_REQUEST
    if row.state == "active":
        return row.lease_until is None or row.lease_until - now < RENEW_BEFORE
    if row.state == "failed":
        return row.requested_at is None or now - row.requested_at > RETRY_REQUEST
    return False  # denied: the hub said no; a new hub or topic asks again


def subscribed(row: SubscriptionRow | None, now: datetime) -> bool:
    return (
        row is not None
        and row.state == "active"
        and row.lease_until is not None
        and row.lease_until > now
    )


def signature_valid(secret: str, body: bytes, header: str | None) -> bool:
    """Whether ``header`` (``method=hexdigest``) is the HMAC of ``body`` with ``secret``."""
    if not header or "=" not in header:
        return False
    method, _, digest = header.partition("=")
    algorithm = _ALGORITHMS.get(method.strip().lower())
    if algorithm is None:
        return False
    expected = hmac.new(secret.encode("utf-8"), body, algorithm).hexdigest()
    return hmac.compare_digest(expected, digest.strip().lower())
