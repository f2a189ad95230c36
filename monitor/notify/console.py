"""``console://``: an Apprise notification that prints each alert to standard output.

Registering the schema with Apprise (rather than printing beside it) makes console alerts take the
same path as e-mail, Slack and Telegram: rendered for the channel's format, sent through
``Apprise.async_notify``, failures reported the same way. Importing this module registers the
schema; :mod:`monitor.notify.channels` imports it.

The plugin declares plain text, so Apprise hands it the text rendering untouched (control
characters, terminal escapes included, were already removed by the renderer).
"""

from __future__ import annotations

import sys
import threading
import warnings

from apprise import NotifyFormat
from apprise.decorators import notify

SCHEMA = "console"

# Apprise calls plugins from its worker threads; one alert's lines must not interleave with
# another's when two console channels send at once.
_write_lock = threading.Lock()


def print_alert(body: str, title: str, *args: object, **kwargs: object) -> bool:
    """Write the title line, the body and a blank line to ``sys.stdout``, then flush.

    ``sys.stdout`` is looked up on every call, so a replaced stream (pytest's capsys, a pipe set
    up by a parent process) receives the output.
    """
    text = f"{title}\n{body}\n\n" if title else f"{body}\n\n"
    with _write_lock:
        out = sys.stdout
        out.write(text)
        out.flush()
    return True


# Registering looks the schema up, which makes Apprise import all of its plugins. Its e-mail plugin
# imports the stdlib module imghdr (for PGPy; Apprise shims it on 3.13+, where it is gone), and on
# Python 3.11-3.12 that import warns "'imghdr' is deprecated". Under warnings-as-errors (our test
# suite) that would abort Apprise's plugin loading half-way in whichever test imports us first, so
# exactly that warning is ignored, here only.
with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message="'imghdr' is deprecated", category=DeprecationWarning)
    # Called, not used as "@notify(...)": Apprise's decorator is unannotated, and a decorator mypy
    # cannot see through would make print_alert untyped too.
    notify(on=SCHEMA, name="Console", body_format=NotifyFormat.TEXT)(  # type: ignore[no-untyped-call]
        print_alert
    )
