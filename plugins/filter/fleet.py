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


def _prior_rules(prior: t.Any) -> int:
    return len(prior.get('rules') or ()) if isinstance(prior, t.Mapping) else 0


def restore_outcome(res: t.Mapping[str, t.Any]) -> str:
    """'restored' or 'nothing_to_restore' (the module's ``outcome``; from ``removed`` before it had one)."""
    outcome = res.get('outcome')
    if outcome in ('restored', 'nothing_to_restore'):
        return str(outcome)
    return 'restored' if _count(res.get('removed')) else 'nothing_to_restore'


_COVERING = re.compile(r'still blacked out by (.+?) \(restore')


def still_blacked_out_by(res: t.Mapping[str, t.Any]) -> list[str]:
    """Other blackouts that still cover the containers after a restore: the module's key (the containers
    of the rules it removed), else its port check (the containers it looked up)."""
    found = res.get('still_blacked_out_by')
    if isinstance(found, (list, tuple)) and found:
        return [str(x) for x in found]
    verify = res.get('verify')
    m = _COVERING.search(str(verify.get('summary') or '')) if isinstance(verify, t.Mapping) else None
    return [x.strip() for x in m.group(1).split(',')] if m else []


def host_lines(host: str, res: t.Mapping[str, t.Any], state: str, check_mode: bool = False) -> list[str]:
    """The host's line (status, containers, rules, expiry, port check) and its addresses.

    The one renderer of a host's outcome: the fleet reports and the role's per-host summary
    (filter ``host_report``) use it.
    """
    names = [c.get('name') for c in res.get('containers') or ()]
    removed = _count(res.get('removed'))
    if state == 'absent':
        status = 'restored' if restore_outcome(res) == 'restored' else 'nothing to restore'
        covering = still_blacked_out_by(res)
        if covering:
            status += ', still blacked out by ' + ', '.join(covering)
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


def host_report(res: t.Any, label: str, state: str = 'present', check_mode: bool = False) -> list[str]:
    """The role's per-host summary: the fleet report's lines for one result (or its unreachable line)."""
    if not isinstance(res, t.Mapping):
        return ['%s: no result' % label]
    if res.get('unreachable'):
        return ['%s: unreachable: %s' % (label, _reason(res, 'the host could not be reached'))]
    return host_lines(label, res, state, check_mode)


def _blackout_host(host: str, hostvars: t.Any) -> dict[str, t.Any]:
    """One host's outcome of play 1: kind (failed, unreachable, not_attempted, done), and what to undo."""
    run = _var(hostvars, host, '_netfence_blackout_run')
    res = _var(hostvars, host, '_netfence_result') or {'skipped': True}
    if isinstance(run, t.Mapping):  # a failed task (the rescue): undo only what the module left changed
        changed = bool(run.get('changed'))
        return {'kind': 'failed', 'reason': str(run.get('reason') or 'failed'), 'changed': changed,
                'prior': run.get('prior'), 'expires': run.get('expires'), 'res': None}
    if res.get('unreachable'):
        return {'kind': 'unreachable', 'reason': _reason(res, 'the host could not be reached'), 'changed': False}
    if res.get('skipped'):
        return {'kind': 'not_attempted', 'changed': False}
    return {'kind': 'done', 'changed': bool(res.get('changed')), 'prior': res.get('prior'),
            'expires': res.get('expires'), 'res': res}


def fleet_blackout(hosts: t.Sequence[str], hostvars: t.Any, service: str, partial_ok: bool = False,
                   check_mode: bool = False) -> dict[str, t.Any]:
    """The outcome of blackout.yml across ``hosts`` (ansible_play_hosts_all).

    ``accepted``: the blackout stands (complete, or partial with partial_ok); otherwise every host
    in ``rollback`` is to be put back as before this run: ``priors[host]`` is its snapshot (the
    module's ``prior``) for the module's ``rollback`` option. A host whose module failed but left
    nothing changed (it compensates itself) is not rolled back again. ``lines``: the report;
    ``message``: the failure message (complete once the ``_netfence_rollback`` facts are set).
    """
    failed: dict[str, str] = {}
    unreachable: dict[str, str] = {}
    blacked_out: list[str] = []
    not_running: list[str] = []
    not_attempted: list[str] = []
    unchanged: list[str] = []
    rollback: list[str] = []
    priors: dict[str, t.Any] = {}
    expires: dict[str, t.Any] = {}
    details: list[str] = []
    for host in hosts:
        out = _blackout_host(host, hostvars)
        if out['kind'] == 'failed':
            failed[host] = out['reason']
        elif out['kind'] == 'unreachable':
            unreachable[host] = out['reason']
        elif out['kind'] == 'not_attempted':
            not_attempted.append(host)
        else:
            res = out['res']
            (blacked_out if res.get('containers') else not_running).append(host)
            if res.get('containers') and not out['changed']:
                unchanged.append(host)
            details += host_lines(host, res, 'present', check_mode)
        if out['changed'] and not check_mode:
            rollback.append(host)
            priors[host] = out.get('prior')
            expires[host] = out.get('expires')
    complete = not (failed or unreachable or not_attempted)
    nowhere = complete and not blacked_out  # most likely a typo in the service name
    accepted = (complete and not nowhere) or (bool(partial_ok) and bool(blacked_out))
    report = {'service': service, 'accepted': accepted, 'complete': complete, 'nowhere': nowhere,
              'failed': failed, 'unreachable': unreachable, 'blacked_out': blacked_out, 'not_running': not_running,
              'not_attempted': not_attempted, 'unchanged': unchanged, 'rollback': rollback, 'priors': priors,
              'expires': expires}
    report['lines'] = _blackout_lines(report, len(hosts), details)
    report['message'] = '' if accepted else _blackout_failure(report, hosts, hostvars, bool(partial_ok))
    report['unknown'] = _unknown(report, hostvars) if not accepted else {}
    return report


def _blackout_lines(report: dict[str, t.Any], count: int, details: list[str]) -> list[str]:
    """The report of blackout.yml: the verdict, the hosts blacked out, a line per host, the failures."""
    service, accepted = report['service'], report['accepted']
    if report['nowhere']:
        lines = ['Blackout of %s FAILED: the service runs no container on any host.' % service]
    elif report['complete']:
        lines = ['Blackout of %s in place on every host where it runs (%d of %d).'
                 % (service, len(report['blacked_out']), count)]
    elif accepted:
        lines = ['PARTIAL blackout of %s (accepted with partial_ok): not every host is blacked out.' % service]
    else:
        lines = ['Blackout of %s FAILED: putting every host this run changed back as it was before the run '
                 '(all or nothing): %s.' % (service, ', '.join(report['rollback']) or 'none')]
    if not report['nowhere']:
        lines.append('%s%s%s' % ('blacked out: ' if accepted else 'blacked out before the rollback: ',
                                 ', '.join(report['blacked_out']) or 'none',
                                 ' (already before this run: %s)' % ', '.join(report['unchanged'])
                                 if report['unchanged'] else ''))
    lines += details
    if report['not_running']:
        lines.append('not running here: ' + ', '.join(report['not_running']))
    lines += ['FAILED %s: %s' % item for item in report['failed'].items()]
    lines += ['UNREACHABLE %s: %s' % item for item in report['unreachable'].items()]
    if report['not_attempted']:
        lines.append('not attempted (an earlier batch failed): ' + ', '.join(report['not_attempted']))
    return lines


def _unknown(report: dict[str, t.Any], hostvars: t.Any) -> dict[str, str]:
    """Hosts changed by this run whose rollback did not succeed (or has not run): host -> why."""
    out: dict[str, str] = {}
    for host in report['rollback']:
        done = _var(hostvars, host, '_netfence_rollback')
        if not isinstance(done, t.Mapping):
            out[host] = 'not rolled back' if report['priors'].get(host) else 'no prior snapshot to roll back to'
        elif not done.get('ok'):
            out[host] = str(done.get('reason') or 'rollback failed')
    return out


def _put_back(host: str, report: dict[str, t.Any], hostvars: t.Any) -> str:
    done = _var(hostvars, host, '_netfence_rollback') or {}
    prior = report['priors'].get(host)
    before = ('its blackout %s as before (%d rules)' % (prior.get('name'), _prior_rules(prior))
              if _prior_rules(prior) else 'no blackout, as before')
    return '%s (%s%s)' % (host, before, ', unchanged' if done.get('outcome') == 'unchanged' else '')


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
    unknown = _unknown(report, hostvars)
    done = [h for h in report['rollback'] if h not in unknown]
    text = 'Blackout of %s failed on %d host(s): %s. All or nothing: put back as before this run: %s.' % (
        service, len(report['failed']) + len(report['unreachable']), '; '.join(bad),
        ', '.join(_put_back(h, report, hostvars) for h in done) or 'no host was changed')
    if unknown:
        text += ' STATE UNKNOWN on %s: may still be blacked out until %s; re-run blackout.yml or restore.yml ' \
                'against %s once reachable.' % (
                    ', '.join(unknown), ', '.join('%s (%s)' % (report['expires'].get(h) or 'never', h) for h in unknown),
                    'it' if len(unknown) == 1 else 'them')
        text += ' ' + '; '.join('%s: %s' % item for item in unknown.items()) + '.'
    else:
        text += ' No host is left changed by this run.'
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

    Per host ``restored`` or ``nothing to restore`` (different outcomes), and the other blackouts
    that still cover the service's containers (``covering``: blackout -> hosts).
    ``all_blackouts``: restore.yml -e all=true (the panic button), every blackout whatever its name.
    """
    if all_blackouts:
        service = 'every netfence blackout'
    failed: dict[str, str] = {}
    unreachable: dict[str, str] = {}
    restored: list[str] = []
    nothing_to_do: list[str] = []
    covering: dict[str, list[str]] = {}
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
            (restored if restore_outcome(res) == 'restored' else nothing_to_do).append(host)
            for name in still_blacked_out_by(res):
                covering.setdefault(name, []).append(host)
            details += host_lines(host, res, 'absent', check_mode)
    complete = not (failed or unreachable)
    if not complete:
        head = 'Restore of %s FAILED on some hosts.' % service
    elif all_blackouts:
        head = 'Every netfence blackout lifted on every host (%d).' % len(hosts)
    elif not restored:
        head = 'Nothing to restore: no blackout %s on any host (%d).' % (service, len(hosts))
    elif nothing_to_do:
        head = 'Blackout of %s lifted where it was in place (%d of %d hosts).' % (service, len(restored), len(hosts))
    else:
        head = 'Blackout of %s lifted on every host (%d).' % (service, len(hosts))
    lines = [head, 'restored: ' + (', '.join(restored) or 'none')]
    if nothing_to_do:
        lines.append('nothing to restore: ' + ', '.join(nothing_to_do))
    lines += ['still blacked out by %s on %s (restore it with its own -e project=)' % (name, ', '.join(on))
              for name, on in covering.items()]
    lines += details
    lines += ['FAILED %s: %s' % item for item in failed.items()]
    lines += ['UNREACHABLE %s: %s' % item for item in unreachable.items()]
    bad = ['%s (%s)' % item for item in failed.items()]
    bad += ['%s (unreachable, %s)' % item for item in unreachable.items()]
    message = '' if complete else (
        'Restore of %s failed on %d host(s): %s. Restored: %s. Re-run against the failed hosts (--limit); a blackout '
        'made with a duration also lifts itself at its expiry.' % (service, len(bad), '; '.join(bad),
                                                                   ', '.join(restored) or 'none'))
    return {'service': service, 'complete': complete, 'failed': failed, 'unreachable': unreachable,
            'restored': restored, 'nothing_to_do': nothing_to_do, 'covering': covering, 'lines': lines,
            'message': message}


_SEVERITY = ('none', 'active', 'expired', 'drifted', 'broken', 'error', 'unreachable')
_COLUMNS = ('host', 'service', 'state', 'containers', 'addresses', 'rules', 'since', 'expires', 'who', 'why', 'drift')


def _addresses(containers: t.Iterable[t.Mapping[str, t.Any]]) -> list[str]:
    return [addr for c in containers for found in (c.get('networks') or {}).values()
            for addr in (found.get('ipv4'), found.get('ipv6')) if addr]


def drift_text(blackout: t.Mapping[str, t.Any]) -> str:
    """One cell: what the rules cut that is not the service (collateral), what of it they miss."""
    parts = ['collateral: %s now %s (rules made for %s)' % (c['address'], c['taken_by'], c['rule_for'])
             for c in blackout.get('collateral') or ()]
    taken = {c['address'] for c in blackout.get('collateral') or ()}
    for name, addrs in sorted(((blackout.get('drift') or {}).get('stale') or {}).items()):
        left = [a for a in addrs if a not in taken]
        if left:
            parts.append('stale: %s %s' % (name, ','.join(left)))
    parts += ['uncovered%s: %s %s' % (' replica' if u.get('new_replica') else '', u['container'],
                                      ','.join(u['addresses']))
              for u in blackout.get('uncovered_replicas') or ()]
    parts += ['partial: %s %s' % (name, ','.join(addrs)) for name, addrs in sorted((blackout.get('partial') or {}).items())]
    parts += ['missing: %s %s' % (addr, '/'.join(paths))
              for addr, paths in sorted((blackout.get('missing_paths') or {}).items())]
    if blackout.get('missing_rules'):
        parts.append('%d recorded rules missing' % blackout['missing_rules'])
    if blackout.get('drift_checked') is False and blackout.get('state') == 'active':
        parts.append('not checked (engine down)')
    return '; '.join(parts) or '-'


def _status_blackout(b: t.Mapping[str, t.Any]) -> dict[str, t.Any]:
    members = b.get('members')
    return {'name': b['name'], 'state': b.get('state'),
            'containers': [c['name'] for c in b.get('containers') or ()],
            'addresses': [a for c in b.get('containers') or () for a in c.get('addresses') or ()],
            'members': None if members is None else [c['name'] for c in members],
            'member_addresses': None if members is None else _addresses(members),
            'rules': _count(b.get('rules')), 'paths': list(b.get('paths') or ()),
            'since': b.get('since'), 'expires': b.get('expires'), 'drift': b.get('drift') or {},
            'collateral': list(b.get('collateral') or ()), 'uncovered': list(b.get('uncovered_replicas') or ()),
            'drift_text': drift_text(b),
            # who asked for it and why (blackout_info from the state record; issue #17)
            'requested_by': b.get('requested_by'), 'reason': b.get('reason')}


def _status_host(info: t.Any) -> dict[str, t.Any]:
    """One host's row of netfence_status from its blackout_info result."""
    info = info if isinstance(info, t.Mapping) else {}
    service = info.get('service') if isinstance(info.get('service'), t.Mapping) else {}
    running = service.get('containers') if service.get('checked', True) and 'containers' in service else None
    bos = [_status_blackout(b) for b in info.get('blackouts') or ()]
    error = None
    if info.get('unreachable'):
        state = 'unreachable'
        error = _reason(info, 'unreachable').replace('Task failed: ', '')
    elif 'blackouts' not in info:
        state = 'error'
        error = _reason(info, 'no result')
    else:
        ranks = [_SEVERITY.index(b['state']) if b['state'] in _SEVERITY else _SEVERITY.index('broken') for b in bos]
        state = _SEVERITY[max(ranks + [0])]
    docker = info.get('docker') or {}
    note = None
    if error is None and running is None:
        note = 'Docker engine not reachable, running containers unknown: ' + _SPACE.sub(' ', str(docker.get('error') or ''))
    return {'state': state, 'error': error, 'note': note, 'running': running is not None,
            'containers': [c['name'] for c in running or ()], 'addresses': _addresses(running or ()),
            'blackouts': bos, 'blacked_out': sorted({n for b in bos for n in b['containers']}),
            'rules': sum(b['rules'] for b in bos),
            'since': min([b['since'] for b in bos if b['since']] or [None]),
            'expires': min([b['expires'] for b in bos if b['expires']] or [None]),
            'docker': docker}


def _status_rows(host: str, row: t.Mapping[str, t.Any], name: str) -> list[dict[str, str]]:
    def joined(values: t.Any) -> str:
        return '?' if values is None else (','.join(values) or '-')
    if not row['blackouts'] or row['state'] in ('unreachable', 'error'):
        return [{'host': host, 'service': name, 'state': row['state'],
                 'containers': joined(row['containers'] if row['running'] else None),
                 'addresses': joined(row['addresses'] if row['running'] else None),
                 'rules': str(row['rules']), 'since': row['since'] or '-', 'expires': row['expires'] or '-',
                 'drift': '-', 'who': '-', 'why': '-'}]
    # The service's containers and addresses as they are now (not the addresses the rules were made
    # for: after drift those may belong to another container, which the drift column names).
    return [{'host': host, 'service': b['name'], 'state': b['state'],
             'containers': joined(b['members'] if b['members'] is not None else b['containers']),
             'addresses': joined(b['member_addresses'] if b['members'] is not None else b['addresses']),
             'rules': str(b['rules']), 'since': b['since'] or '-', 'expires': b['expires'] or '-',
             'drift': b['drift_text'], 'who': b['requested_by'] or '-', 'why': b['reason'] or '-'}
            for b in row['blackouts']]


def table(rows: t.Sequence[t.Mapping[str, str]], columns: t.Sequence[str] = _COLUMNS) -> list[str]:
    """Left-aligned columns, upper-case header, two spaces apart."""
    width = {c: max([len(c)] + [len(r[c]) for r in rows]) for c in columns}
    return ['  '.join(c.upper().ljust(width[c]) for c in columns).rstrip()] + \
        ['  '.join(r[c].ljust(width[c]) for c in columns).rstrip() for r in rows]


def fleet_status(hosts: t.Sequence[str], hostvars: t.Any, service: str, project: str = '') -> dict[str, t.Any]:
    """netfence_status of status.yml from each host's ``_netfence_info`` (blackout_info with service):
    ``hosts`` (per host state, containers, addresses, blackouts with drift), ``summary`` (state ->
    hosts), ``lines`` (the table and a line per host that could not be read or whose engine is down)."""
    name = '%s/%s' % (project, service) if project else service
    status: dict[str, t.Any] = {'service': service, 'project': project or None, 'blackout': name,
                                'hosts': {}, 'summary': {}}
    rows: list[dict[str, str]] = []
    for host in hosts:
        row = _status_host(_var(hostvars, host, '_netfence_info'))
        status['hosts'][host] = row
        status['summary'].setdefault(row['state'], []).append(host)
        rows += _status_rows(host, row, name)
    counts = ' '.join('%s=%d' % (k, len(v)) for k, v in status['summary'].items())
    lines = ['%s on %d host(s): %s' % (name, len(hosts), counts)] + table(rows)
    lines += ['%s: %s' % (h, r['error'] or r['note']) for h, r in status['hosts'].items() if r['error'] or r['note']]
    status['lines'] = lines
    status['errors'] = {h: r['error'] for h, r in status['hosts'].items() if r['error']}
    return status


def blackout_input_error(params: t.Mapping[str, t.Any]) -> str:
    """'' when the blackout module would accept ``params`` (its options), else its message.

    Run once on the controller before any host is touched: the module's own argument spec and
    checks (names, expiry, ports, allow_from, direction, reject_with), imported from module_utils.
    """
    # pylint: disable-next=import-outside-toplevel
    from ansible.module_utils.common.arg_spec import ArgumentSpecValidator
    # pylint: disable-next=import-outside-toplevel
    from ansible_collections.netfence.docker.plugins.module_utils._manager import (
        BLACKOUT_ARGUMENT_SPEC, BlackoutError, BlackoutManager)
    given = {k: v for k, v in dict(params).items() if v is not None}
    validator = ArgumentSpecValidator(BLACKOUT_ARGUMENT_SPEC, mutually_exclusive=[('service', 'containers', 'labels')],
                                      required_one_of=[('service', 'containers', 'labels')],
                                      required_by={'project': 'service'})
    result = validator.validate(given)
    if result.error_messages:
        return 'Invalid input: ' + '; '.join(str(m) for m in result.error_messages)
    manager = BlackoutManager.__new__(BlackoutManager)  # only its input checks: no host, no module
    manager.params = result.validated_parameters
    try:
        manager.name()
        manager.options()
        manager.audit_given()
    except BlackoutError as exc:
        return 'Invalid input: %s' % exc
    return ''


class FilterModule:
    """The fleet reports of the collection's playbooks."""

    def filters(self) -> dict[str, t.Callable[..., t.Any]]:
        return {'fleet_blackout': fleet_blackout, 'fleet_restore': fleet_restore, 'fleet_status': fleet_status,
                'host_report': host_report, 'blackout_input_error': blackout_input_error}
