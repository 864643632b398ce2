"""What the tools that drive other programs (the OCI CLI, pulumi, ssh) share."""

from __future__ import annotations

import json


def cli_error(stderr: str) -> str:
    """The OCI CLI's error in one line: a service error's code, message and request id (it prints them as JSON
    after `ServiceError:`), else its last line that says something."""
    _, marker, rest = stderr.partition("ServiceError:")
    if marker:
        try:
            error = json.loads(rest)
            return f"{error.get('code')}: {error.get('message')} (opc-request-id {error.get('opc-request-id')})"
        except json.JSONDecodeError:
            pass
    lines = [line.strip() for line in stderr.splitlines() if line.strip() not in ("", "{", "}")]
    return lines[-1] if lines else "no message"
