"""Logging, configured once by the entry point. Tokens are scrubbed from every record."""

from __future__ import annotations

import logging
import re

_SECRET = re.compile(r"\b(xox[abposr]-[A-Za-z0-9-]+|xapp-[A-Za-z0-9-]+)")


class RedactSecrets(logging.Filter):
    """Belt and braces: settings keep secrets in SecretStr, but a library may echo a token."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = _SECRET.sub(lambda m: m.group(1)[:5] + "…redacted", message)
        if redacted != message:
            record.msg, record.args = redacted, None
        return True


def configure_logging(level: str = "INFO") -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(RedactSecrets())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # APScheduler logs every job run at INFO; our own logs say what matters.
    logging.getLogger("apscheduler").setLevel(logging.WARNING)
