# -*- coding: utf-8 -*-
# Copyright (c) 2026, netfence.docker contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Who and why: the ``reason`` and ``requested_by`` of a blackout (issue #17).

Both are module options of netfence.docker.blackout, recorded with the blackout in the host's
state record (``/var/lib/netfence/blackouts.json``, see _state.py) and written to the host's
log (stdlib ``syslog``, ident ``netfence``) on every event that changes a blackout:

- ``blackout``: a blackout that was not in place (no live rule of its name) now is;
- ``renewal``: its expiry, reason or requester changed (the rules are swapped in one transaction
  per family, see docs/runbook.md "Renewal");
- ``repair``: rules of it were missing or made for old addresses and were put back;
- ``restore``: its rules were removed (``state: absent``, also ``all: true``, the panic button).

A run that changes nothing logs nothing. A run without ``reason`` / ``requested_by`` keeps the
recorded ones (a repair by a cron job does not erase who made the blackout and why).
"""

from __future__ import annotations

import datetime as dt
import re
import typing as t

try:
    import syslog
except ImportError:  # pragma: no cover - not on a POSIX target
    syslog = None  # type: ignore[assignment]

AUDIT_ARGUMENT_SPEC: dict[str, dict[str, t.Any]] = {
    'reason': {'type': 'str'},
    'requested_by': {'type': 'str'},
}

REASON_MAX = 200
REQUESTED_BY_MAX = 64
# A user name as AWX, LDAP or a CI system spells it: letters, digits and _ . @ + - (an e-mail
# address fits), starting with a letter or digit.
_REQUESTED_BY_RE = re.compile(r'[A-Za-z0-9][A-Za-z0-9_.@+-]{0,%d}' % (REQUESTED_BY_MAX - 1))
IDENT = 'netfence'
FIELDS = ('reason', 'requested_by')


class AuditError(ValueError):
    """An invalid ``reason`` or ``requested_by``."""


def validate_reason(value: t.Any) -> str | None:
    """The reason, or None when not given; printable text, no control character, ≤ 200 characters."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise AuditError('reason must be a string, got %s' % type(value).__name__)
    if value == '':
        return None
    if len(value) > REASON_MAX:
        raise AuditError('reason is %d characters long; at most %d' % (len(value), REASON_MAX))
    bad = [ch for ch in value if not ch.isprintable()]
    if bad:
        raise AuditError('reason must be one line of printable text: it holds %r (control characters, '
                         'newlines and tabs are refused)' % bad[0])
    if value.strip() != value:
        raise AuditError('reason %r starts or ends with a space' % value)
    return value


def validate_requested_by(value: t.Any) -> str | None:
    """The requester, or None when not given; a user name of letters, digits and ``_.@+-``, ≤ 64."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise AuditError('requested_by must be a string, got %s' % type(value).__name__)
    if value == '':
        return None
    if not _REQUESTED_BY_RE.fullmatch(value):
        raise AuditError('requested_by %r is not a user name: letters, digits and _ . @ + -, starting with a '
                         'letter or digit, at most %d characters' % (value[:80], REQUESTED_BY_MAX))
    return value


def from_params(params: t.Mapping[str, t.Any]) -> dict[str, str | None]:
    """{'reason': …, 'requested_by': …} of the module's parameters, validated (AuditError)."""
    return {'reason': validate_reason(params.get('reason')),
            'requested_by': validate_requested_by(params.get('requested_by'))}


def merged(previous: t.Mapping[str, t.Any] | None, given: t.Mapping[str, t.Any],
           renewing: bool = False) -> dict[str, str | None]:
    """The audit fields to record for a blackout that has rules after the run.

    ``reason``: the given one, else the recorded one. ``requested_by``: who made the blackout or
    last renewed it (new expiry or new reason, ``renewing`` for the expiry); a repair or a run that
    changes nothing does not replace it (the log line of a repair names whoever ran it).
    """
    previous = previous or {}
    reason = given.get('reason') or previous.get('reason') or None
    new = not previous or renewing or reason != previous.get('reason')
    by = (given.get('requested_by') or previous.get('requested_by')) if new else \
        (previous.get('requested_by') or given.get('requested_by'))
    return {'reason': reason, 'requested_by': by or None}


def changed(entry: t.Mapping[str, t.Any], previous: t.Mapping[str, t.Any] | None) -> bool:
    """True when the recorded reason or requester differs from ``previous``."""
    return previous is not None and any(entry.get(f) != previous.get(f) for f in FIELDS)


def expiry_before(mine: t.Sequence[t.Any]) -> str | None:
    """The expiry of a blackout's live rules before the run (ISO 8601 UTC), None when none."""
    stops = [r.datestop for r in mine if getattr(r, 'datestop', None) is not None]
    return _iso(min(stops)) if stops else None


def expiry_changed(mine: t.Sequence[t.Any], deadline: t.Any) -> bool:
    """True when a blackout in place (``mine``: its live rules) gets another expiry."""
    return bool(mine) and expiry_before(mine) != _iso(deadline)


def event(present: bool, had_rules: bool, rules_changed: bool, expiry_changed: bool, audit_changed: bool,
          removed: bool) -> str | None:
    """What a run did to one blackout: blackout, renewal, repair, restore, or None (nothing)."""
    if not present:
        return 'restore' if removed else None
    if not had_rules:
        return 'blackout' if rules_changed else None
    if expiry_changed or audit_changed:
        return 'renewal'
    return 'repair' if rules_changed else None


def _quote(value: str | None) -> str:
    if value is None:
        return '-'
    return '"%s"' % value.replace('\\', '\\\\').replace('"', '\\"')


def message(evt: str, name: str, fields: t.Mapping[str, t.Any]) -> str:
    """One syslog line: ``blackout memcached by=alice reason="deploy 42" expires=… rules=12``."""
    parts = ['%s %s' % (evt, name), 'by=%s' % (fields.get('requested_by') or '-'),
             'reason=%s' % _quote(fields.get('reason'))]
    for key in ('since', 'expires', 'previous_expires', 'rules', 'added', 'removed', 'all'):
        if fields.get(key) is not None:
            parts.append('%s=%s' % (key, fields[key]))
    return ' '.join(parts)


def log_line(evt: str, name: str, fields: t.Mapping[str, t.Any]) -> str:
    """Write the event to the host's log (ident netfence, facility user); returns the line."""
    line = message(evt, name, fields)
    if syslog is not None:
        try:
            syslog.openlog(IDENT, syslog.LOG_PID, syslog.LOG_USER)
            syslog.syslog(syslog.LOG_NOTICE, line)
            syslog.closelog()
        except (OSError, ValueError):  # pragma: no cover - no log socket: the record still has it
            pass
    return line


def _iso(value: t.Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        return value
    return value.astimezone(dt.timezone.utc).strftime('%Y-%m-%dT%H:%M:%SZ')


def run_result(name: str, present: bool, fields: t.Mapping[str, t.Any], given: t.Mapping[str, t.Any],
               mine: t.Sequence[t.Any], deadline: t.Any, added: t.Sequence[t.Any], removed: t.Sequence[t.Any],
               previous: t.Mapping[str, t.Any] | None, log: bool = True) -> dict[str, t.Any]:
    """The audit keys of the module's result for one blackout, and its syslog line (``log``).

    ``present``: the blackout has rules after the run; ``fields``: the audit fields recorded (for a
    restore, the given ones); ``given``: those of this run; ``mine``: its live rules before the
    run; ``added`` / ``removed``: its rules added and removed by the run; ``previous``: its state
    record entry before the run.
    """
    evt = event(present, bool(mine), bool(added or removed), expiry_changed(mine, deadline),
                changed(fields, previous) if present else False, bool(removed))
    line = None
    if evt is not None and log:
        info: dict[str, t.Any] = {'requested_by': given.get('requested_by') or fields.get('requested_by'),
                                  'reason': fields.get('reason'),
                                  'expires': _iso(deadline) if present else None,
                                  'added': len(added), 'removed': len(removed)}
        if evt == 'renewal':
            info['previous_expires'] = expiry_before(mine) or 'none'
        line = log_line(evt, name, info)
    return {'reason': fields.get('reason'), 'requested_by': fields.get('requested_by'),
            'audit': {'event': evt, 'logged': line}}
