"""E-mail messages (.eml) -> one Article.

The title is the Subject, the author the From header as written (display name and address), the
date the Date header in UTC. The body is the message's text/plain body, else its text/html body as
text (``EmailMessage.get_body`` decides which part that is, skipping attachments). The URL is the
``X-Original-URL`` or ``Content-Base`` header when one holds an http(s) URL (newsletter tools set
them), else None; the GUID is the Message-ID.

Mail in the wild is often malformed. A header the stdlib cannot parse is used as raw text, and a
part in an unknown charset is decoded by guessing (``decode_text``), so one bad header or charset
does not lose the message. A message with neither a subject nor body text raises DocumentError.

Nesting is limited: a message whose parts (multiparts, attached messages) nest more than
``MAX_DEPTH`` levels deep raises DocumentError. The stdlib parser recurses once per level, and takes
time quadratic in the depth; unchecked, a crafted 40 kB message costs it seconds and then fails
with RecursionError at a depth that depends on the caller's stack. Now every message up to
``MAX_DEPTH`` levels is read, and every deeper one refused early, whoever calls.
"""

from __future__ import annotations

import email.errors
import email.policy
from collections.abc import Iterator
from email.feedparser import BytesFeedParser
from email.message import EmailMessage, Message

from monitor.documents.dates import parse_date
from monitor.documents.decode import decode_text
from monitor.documents.html import html_to_text
from monitor.documents.urls import web_url
from monitor.errors import DocumentError
from monitor.models import Article

MAX_DEPTH = 100
"""The deepest nesting of parts read; real mail nests a handful of levels."""

# Bytes fed to the parser between two depth checks: at ~30 bytes a level, a few dozen levels.
_CHUNK = 1024
_TOO_DEEP = f"e-mail parts nested more than {MAX_DEPTH} levels deep"

# What the stdlib's header and MIME parsers raise on malformed mail instead of registering a
# defect: IndexError for "From: a@" or "Message-ID: <", AttributeError for other garbled addresses
# (both found by fuzzing), LookupError for an unknown charset, RecursionError for comments nested
# a thousand deep ("From: ((((...))))": the header parser recurses once per parenthesis).
_MAIL_ERRORS = (
    email.errors.MessageError,
    LookupError,
    ValueError,
    TypeError,
    AttributeError,
    UnicodeError,
    RecursionError,
)


def parse_eml(data: bytes) -> list[Article]:
    """Parse one RFC 5322 message into one Article (see the module docstring)."""
    message = _parse(data)
    if _depth(message) > MAX_DEPTH:
        raise DocumentError(_TOO_DEEP)
    title = " ".join((_header(message, "subject") or "").split())
    body = _body(message)
    if not title and not body:
        raise DocumentError("e-mail has neither a subject nor a text body")
    return [
        Article(
            title=title,
            body=body,
            url=web_url(_header(message, "x-original-url"))
            or web_url(_header(message, "content-base")),
            author=_header(message, "from"),
            published=parse_date(_header(message, "date")),
            guid=_header(message, "message-id"),
        )
    ]


def _parse(data: bytes) -> EmailMessage:
    """The message in ``data``, parsed a chunk at a time so deep nesting is refused early."""
    parser = BytesFeedParser(policy=email.policy.default)
    try:
        for start in range(0, len(data), _CHUNK):
            parser.feed(data[start : start + _CHUNK])
            # The parser's stack of open (sub)messages, the root first. A private attribute: were
            # it gone, _depth and the RecursionError below would still refuse the message, later.
            if len(getattr(parser, "_msgstack", ())) > MAX_DEPTH + 1:
                raise DocumentError(_TOO_DEEP)
        message = parser.close()
    except RecursionError:
        # A Content-Type with comments nested a thousand deep: its header parser recurses too.
        # (So would the parts, were the check above blind.)
        raise DocumentError("document nested too deeply") from None
    assert isinstance(message, EmailMessage)  # policy.default builds EmailMessage
    return message


def _depth(message: Message) -> int:
    """How deeply the parts of ``message`` nest (0: no parts; 1: parts with none of their own).

    Found without recursion, so not with ``Message.walk``; it stops counting past MAX_DEPTH.
    """
    deepest = 0
    pending: list[tuple[Message, int]] = [(message, 0)]
    while pending:
        part, depth = pending.pop()
        deepest = max(deepest, depth)
        if deepest > MAX_DEPTH:
            break
        pending.extend((child, depth + 1) for child in _children(part))
    return deepest


def _children(part: Message) -> Iterator[Message]:
    # A multipart's parts, or the message a message/rfc822 part wraps: both are a list payload.
    payload = part.get_payload() if part.is_multipart() else None
    if isinstance(payload, list):
        yield from (child for child in payload if isinstance(child, Message))


def _header(message: Message, name: str) -> str | None:
    """A header's decoded value, else its raw value when it cannot be parsed, else None."""
    try:
        value = message.get(name)
        text = None if value is None else str(value)
    except _MAIL_ERRORS:
        raw = next((v for k, v in message.raw_items() if k.lower() == name), None)
        text = None if raw is None else str(raw)
    if text is None:
        return None
    return " ".join(text.split()) or None


def _body(message: EmailMessage) -> str:
    try:
        part = message.get_body(preferencelist=("plain", "html"))
    except _MAIL_ERRORS:
        return ""
    if not isinstance(part, EmailMessage):
        return ""
    try:
        content = part.get_content()
    except _MAIL_ERRORS:
        # An unknown or lying charset: guess from the bytes, as for any text file.
        payload = part.get_payload(decode=True)
        content = decode_text(payload) if isinstance(payload, bytes) else ""
    if not isinstance(content, str):
        return ""
    if part.get_content_subtype() == "html":
        return html_to_text(content)
    lines = content.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    return "\n".join(line.rstrip() for line in lines).strip("\n")
