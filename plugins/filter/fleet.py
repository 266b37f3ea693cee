# -*- coding: utf-8 -*-
# Copyright (c) 2026, netfence.docker contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The fleet reports of playbooks/blackout.yml and restore.yml (filters fleet_blackout, fleet_restore).

Each host's outcome is read from its host variables: the module's registered result
(``_netfence_result``: skipped when the host was not attempted, unreachable when it could not be
reached) and the fact the playbook's rescue sets on a failure (``_netfence_blackout_run`` /
``_netfence_restore_failure``), plus ``_netfence_rollback`` once blackout.yml rolled a host back.
In Python rather than Jinja: the report is evaluated once per run on the controller, and a large
Jinja template costs as much as a task (about 30 ms) each time it is rendered.
"""

from __future__ import annotations

import re
import typing as t

_SPACE = re.compile(r'\s+')


def _var(hostvars: t.Any, host: str, name: str) -> t.Any:
    """hostvars[host][name], or None when the host or the variable is not there."""
    try:
        values = hostvars[host]
    except KeyError:
        return None
    try:
        return values[name] if name in values else None
    except KeyError:
        return None


def _reason(result: t.Mapping[str, t.Any], default: str) -> str:
    return _SPACE.sub(' ', str(result.get('msg') or default)).strip()


def _count(rules: t.Any) -> int:
    return sum(len(rules.get(family) or ()) for family in ('ipv4', 'ipv6')) if isinstance(rules, t.Mapping) else 0


def host_lines(host: str, res: t.Mapping[str, t.Any], state: str, check_mode: bool = False) -> list[str]:
    """The host's line (status, containers, rules, expiry, port check) and its addresses."""
    names = [c.get('name') for c in res.get('containers') or ()]
    removed = _count(res.get('removed'))
    if state == 'absent':
        status = 'restored' if removed else 'no blackout here'
    else:
        status = 'blacked out' if names else 'not running here'
    verify = res.get('verify')
    line = '%s: %s%s; rules: %d in place, %d added, %d removed%s; verify: %s%s' % (
        host, status, ' (%s)' % ', '.join(names) if names else '', _count(res.get('rules')),
        _count(res.get('added')), removed, ', expires %s' % res['expires'] if res.get('expires') else '',
        verify.get('summary') if isinstance(verify, t.Mapping) else 'skipped', ' [check mode]' if check_mode else '')
    out = [line]
    lifted = res.get('lifted')
    if isinstance(lifted, t.Mapping):  # restore.yml -e all=true: what the panic button removed
        out.append('  lifted: ' + (', '.join('%s (%d rules%s)' % (name, (v or {}).get('rules') or 0,
                                                                  '' if (v or {}).get('rules') else ', record only')
                                             for name, v in sorted(lifted.items())) or 'nothing'))
    if state == 'present':
        addresses = ['%s %s (%s)' % (c.get('name'), addr, net)
                     for c in res.get('containers') or ()
                     for net, found in (c.get('networks') or {}).items()
                     for addr in (found.get('ipv4'), found.get('ipv6')) if addr]
        if addresses:
            out.append('  addresses: ' + ', '.join(addresses))
    return out


def fleet_blackout(hosts: t.Sequence[str], hostvars: t.Any, service: str, partial_ok: bool = False,
                   check_mode: bool = False) -> dict[str, t.Any]:
    """The outcome of blackout.yml across ``hosts`` (ansible_play_hosts_all).

    ``accepted``: the blackout stands (complete, or partial with partial_ok); otherwise every host
    in ``rollback`` is to be rolled back. ``lines``: the report; ``message``: the failure message
    (it names the hosts rolled back, once their ``_netfence_rollback`` facts are set).
    """
    failed: dict[str, str] = {}
    unreachable: dict[str, str] = {}
    blacked_out: list[str] = []
    not_running: list[str] = []
    not_attempted: list[str] = []
    unchanged: list[str] = []
    rollback: list[str] = []
    details: list[str] = []
    for host in hosts:
        run = _var(hostvars, host, '_netfence_blackout_run')
        res = _var(hostvars, host, '_netfence_result') or {'skipped': True}
        if isinstance(run, t.Mapping):  # a failed task (the rescue): rolled back whatever it did
            failed[host] = str(run.get('reason') or 'failed')
            rollback.append(host)
        elif res.get('unreachable'):
            unreachable[host] = _reason(res, 'the host could not be reached')
        elif res.get('skipped'):
            not_attempted.append(host)
        else:
            if res.get('containers'):
                blacked_out.append(host)
                if not res.get('changed'):
                    unchanged.append(host)
            else:
                not_running.append(host)
            if res.get('changed'):
                rollback.append(host)
            details += host_lines(host, res, 'present', check_mode)
    complete = not (failed or unreachable or not_attempted)
    nowhere = complete and not blacked_out  # most likely a typo in the service name
    accepted = (complete and not nowhere) or (bool(partial_ok) and bool(blacked_out))
    if nowhere:
        lines = ['Blackout of %s FAILED: the service runs no container on any host.' % service]
    elif complete:
        lines = ['Blackout of %s in place on every host where it runs (%d of %d).'
                 % (service, len(blacked_out), len(hosts))]
    elif accepted:
        lines = ['PARTIAL blackout of %s (accepted with partial_ok): not every host is blacked out.' % service]
    else:
        lines = ['Blackout of %s FAILED: rolling back every host this run changed (all or nothing): %s.'
                 % (service, ', '.join(rollback) or 'none')]
    if not nowhere:
        lines.append('%s%s%s' % ('blacked out: ' if accepted else 'blacked out before the rollback: ',
                                 ', '.join(blacked_out) or 'none',
                                 ' (already before this run: %s)' % ', '.join(unchanged) if unchanged else ''))
    lines += details
    if not_running:
        lines.append('not running here: ' + ', '.join(not_running))
    lines += ['FAILED %s: %s' % item for item in failed.items()]
    lines += ['UNREACHABLE %s: %s' % item for item in unreachable.items()]
    if not_attempted:
        lines.append('not attempted (an earlier batch failed): ' + ', '.join(not_attempted))
    report = {'service': service, 'accepted': accepted, 'complete': complete, 'nowhere': nowhere,
              'failed': failed, 'unreachable': unreachable, 'blacked_out': blacked_out, 'not_running': not_running,
              'not_attempted': not_attempted, 'unchanged': unchanged, 'rollback': rollback, 'lines': lines}
    report['message'] = '' if accepted else _blackout_failure(report, hosts, hostvars, bool(partial_ok))
    return report


def _blackout_failure(report: dict[str, t.Any], hosts: t.Sequence[str], hostvars: t.Any, partial_ok: bool) -> str:
    service = report['service']
    if report['nowhere']:
        return ('Blackout of %s failed: no container of it runs on any of the %d host(s) (%s); nothing was blacked '
                'out. Check the service name (a container name or a compose service) and -e project=.'
                % (service, len(hosts), ', '.join(hosts)))
    bad = []
    # Hosts that failed for the same reason (such as an input the module rejects) share one entry.
    for reason in dict.fromkeys(report['failed'].values()):
        bad.append('%s (%s)' % (', '.join(h for h, r in report['failed'].items() if r == reason), reason))
    bad += ['%s (unreachable, %s)' % item for item in report['unreachable'].items()]
    done = [h for h in report['rollback'] if (_var(hostvars, h, '_netfence_rollback') or {}).get('ok')]
    left = [h for h in report['rollback'] if h not in done]
    text = 'Blackout of %s failed on %d host(s): %s. All or nothing: rolled back %s.' % (
        service, len(report['failed']) + len(report['unreachable']), '; '.join(bad), ', '.join(done) or 'no host')
    if left:
        text += (' ROLLBACK FAILED on %s: the blackout may still be in place there (it lifts itself at its expiry, '
                 'if one was set); run playbooks/restore.yml against them.' % ', '.join(left))
    else:
        text += ' No host is left blacked out by this run.'
    if report['not_attempted']:
        text += ' Not attempted: %s.' % ', '.join(report['not_attempted'])
    if partial_ok:
        text += ' partial_ok=true was given, but the blackout landed on no host.'
    elif report['blacked_out']:
        text += ' Re-run with -e partial_ok=true to keep a partial blackout instead.'
    return text


def fleet_restore(hosts: t.Sequence[str], hostvars: t.Any, service: str, check_mode: bool = False,
                  all_blackouts: bool = False) -> dict[str, t.Any]:
    """The outcome of restore.yml across ``hosts``: ``complete``, ``lines`` and ``message``.

    ``all_blackouts``: restore.yml -e all=true (the panic button), every blackout whatever its name.
    """
    if all_blackouts:
        service = 'every netfence blackout'
    failed: dict[str, str] = {}
    unreachable: dict[str, str] = {}
    restored: list[str] = []
    nothing_to_do: list[str] = []
    details: list[str] = []
    for host in hosts:
        bad = _var(hostvars, host, '_netfence_restore_failure')
        res = _var(hostvars, host, '_netfence_result')
        if isinstance(bad, t.Mapping):
            failed[host] = str(bad.get('reason') or 'failed')
        elif not isinstance(res, t.Mapping) or res.get('skipped'):
            failed[host] = 'did not run'
        elif res.get('unreachable'):
            unreachable[host] = _reason(res, 'the host could not be reached')
        else:
            (restored if _count(res.get('removed')) else nothing_to_do).append(host)
            details += host_lines(host, res, 'absent', check_mode)
    complete = not (failed or unreachable)
    lines = [('Every netfence blackout lifted on every host (%d).' % len(hosts) if all_blackouts else
              'Blackout of %s lifted on every host (%d).' % (service, len(hosts))) if complete
             else 'Restore of %s FAILED on some hosts.' % service,
             'restored: ' + (', '.join(restored) or 'none')] + details
    if nothing_to_do:
        lines.append('no blackout to lift: ' + ', '.join(nothing_to_do))
    lines += ['FAILED %s: %s' % item for item in failed.items()]
    lines += ['UNREACHABLE %s: %s' % item for item in unreachable.items()]
    bad = ['%s (%s)' % item for item in failed.items()]
    bad += ['%s (unreachable, %s)' % item for item in unreachable.items()]
    message = '' if complete else (
        'Restore of %s failed on %d host(s): %s. Restored: %s. Re-run against the failed hosts (--limit); a blackout '
        'made with a duration also lifts itself at its expiry.' % (service, len(bad), '; '.join(bad),
                                                                   ', '.join(restored) or 'none'))
    return {'service': service, 'complete': complete, 'failed': failed, 'unreachable': unreachable,
            'restored': restored, 'nothing_to_do': nothing_to_do, 'lines': lines, 'message': message}


class FilterModule:
    """The fleet reports of the collection's playbooks."""

    def filters(self) -> dict[str, t.Callable[..., t.Any]]:
        return {'fleet_blackout': fleet_blackout, 'fleet_restore': fleet_restore}
