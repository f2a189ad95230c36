"""E-mail messages (.eml) -> one Article.

The title is the Subject, the author the From header as written (display name and address), the
date the Date header in UTC. The body is the message's text/plain body, else its text/html body as
text (``EmailMessage.get_body`` decides which part that is, skipping attachments). The URL is the
``X-Original-URL`` or ``Content-Base`` header when one holds an http(s) URL (newsletter tools set
them), else None; the GUID is the Message-ID.

Mail in the wild is often malformed. A header the stdlib cannot parse is used as raw text, and a
part in an unknown charset is decoded by guessing (``decode_text``), so one bad header or charset
does not lose the message. A message with neither a subject nor body text raises DocumentError.
"""

from __future__ import annotations

import email.errors
import email.policy
from email.message import EmailMessage, Message
from email.parser import BytesParser

from monitor.documents.dates import parse_date
from monitor.documents.decode import decode_text
from monitor.documents.html import html_to_text
from monitor.documents.urls import web_url
from monitor.errors import DocumentError
from monitor.models import Article

# What the stdlib's header and MIME parsers raise on malformed mail instead of registering a
# defect: IndexError for "From: a@" or "Message-ID: <", AttributeError for other garbled addresses
# (both found by fuzzing), LookupError for an unknown charset.
_MAIL_ERRORS = (
    email.errors.MessageError,
    LookupError,
    ValueError,
    TypeError,
    AttributeError,
    UnicodeError,
)


def parse_eml(data: bytes) -> list[Article]:
    """Parse one RFC 5322 message into one Article (see the module docstring)."""
    message = BytesParser(policy=email.policy.default).parsebytes(data)
    assert isinstance(message, EmailMessage)  # policy.default builds EmailMessage
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
