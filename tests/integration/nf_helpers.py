"""Small assertions shared by the integration tests (importable: pytest puts this folder on sys.path)."""
from __future__ import annotations

import re

_BO_RE = re.compile(r'"netfence bo=(\S+) ')


def blackout_of(line: str) -> str | None:
    """The blackout name in a saved rule line's netfence tag, or None for a foreign rule."""
    m = _BO_RE.search(line)
    return m.group(1) if m else None


def check_ok(result: dict, what: str) -> None:
    """Fail with the module's message (and the tail of ansible's stderr) unless the run succeeded."""
    assert not result.get('failed') and not result.get('unreachable'), \
        f'{what} failed: {result.get("msg")}\n{getattr(result, "stderr", "")[-2000:]}'
