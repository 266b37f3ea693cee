# -*- coding: utf-8 -*-
# Copyright (c) 2026, netfence.docker contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The panic button: ``state: absent`` + ``all: true`` lifts every netfence blackout on the host.

Whatever their names: every rule whose comment parses as a netfence tag, in every iptables
variant (nft and legacy) and family that holds one (not only the variant holding DOCKER-USER:
the engine may be down, or its backend nftables), the tagged rules of our nft tables (``table
inet netfence``, ``table bridge netfence``; a table left without rules goes in the same
transaction), and every blackout of the state record's section of this host. A rule without a
netfence tag is never removed (a foreign rule in our nft table keeps the table).

One ``<variant>-restore --noflush -w`` per variant and family, one ``nft -f`` for our tables.
The result lists per blackout the rules removed (``lifted``), and each lifted blackout is logged
(event ``restore``, ``all=true``).
"""

from __future__ import annotations

import typing as t

from ansible_collections.netfence.docker.plugins.module_utils import _audit, _nft, _state, _verify
from ansible_collections.netfence.docker.plugins.module_utils._iptables import (
    FirewallError,
    netfence_rules_in_save,
    restore_payload,
)
from ansible_collections.netfence.docker.plugins.module_utils._planner import FAMILIES

SELECTORS = ('service', 'project', 'containers', 'labels', 'name')


class PanicError(ValueError):
    """``all`` used with options it excludes."""


def validate(params: t.Mapping[str, t.Any]) -> None:
    """``all: true`` needs ``state: absent`` and no selector."""
    given = [k for k in SELECTORS if params.get(k) not in (None, '', [], {})]
    if given:
        raise PanicError('all is mutually exclusive with %s: it lifts every netfence blackout of the host, '
                         'whatever its name' % ', '.join(given))
    if params.get('state') != 'absent':
        raise PanicError('all: true is only for state: absent (it lifts every blackout); it cannot black out')


def read_iptables(manager: t.Any) -> list[tuple[tuple[str, str, str], list[t.Any]]]:
    """[((variant, family, restore binary), netfence rules)] of every variant and family holding one.

    Every iptables variant (nft, legacy) and family there is (Firewall.read_all: a variant that is
    not the detected one is read without ``-t``, which would load a legacy table), whether Docker's
    DOCKER-USER is there or not (the engine may be down, or its backend nftables).
    """
    try:
        manager.firewall.detect()
    except FirewallError:
        pass  # no DOCKER-USER anywhere: read_all still reads every variant
    try:
        saved, _notes = manager.firewall.read_all()
    except FirewallError as exc:
        raise _error(str(exc)) from None
    out = []
    for (variant, family), text in sorted(saved.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        rules = netfence_rules_in_save(text, family)
        commands = manager.firewall.variant_commands(variant, family)
        if rules and commands is not None:
            out.append(((variant, family, commands[1]), rules))
    return out


def _error(msg: str, **details: t.Any) -> Exception:
    from ansible_collections.netfence.docker.plugins.module_utils._manager import (  # pylint: disable=import-outside-toplevel
        BlackoutError)
    return BlackoutError(msg, **details)


def _count(rules: t.Iterable[t.Any], into: dict[str, dict[str, int]]) -> None:
    for rule in rules:
        family = rule.addr_family
        into.setdefault(rule.tag.bo, {'ipv4': 0, 'ipv6': 0})[family] += 1


def _lifted(name: str, counts: dict[str, dict[str, int]], recorded: dict[str, t.Any],
            removed_rules: list[t.Any]) -> dict[str, t.Any]:
    """What the result says of one lifted blackout: its rules per family, its record, its containers."""
    per = counts.get(name, {'ipv4': 0, 'ipv6': 0})
    entry = recorded.get(name) or {}
    return {'rules': per['ipv4'] + per['ipv6'], 'ipv4': per['ipv4'], 'ipv6': per['ipv6'],
            'recorded': name in recorded, 'since': entry.get('since'), 'expires': entry.get('expires'),
            'reason': entry.get('reason'), 'requested_by': entry.get('requested_by'),
            'containers': sorted({r.tag.ct for r in removed_rules if r.tag.bo == name})}


def lift_all(manager: t.Any, given: t.Mapping[str, t.Any]) -> tuple[dict[str, t.Any], list[t.Any]]:
    """Remove every netfence rule, nft rule and record entry of the host (under the host lock):
    (the module's result, the rules removed)."""
    module = manager.module
    iptables = read_iptables(manager)
    nft_all = manager.read_nft()
    nft_tagged = [r for r in nft_all if r.tag is not None]
    recorded = dict(manager.read_record_section()['blackouts'])
    counts: dict[str, dict[str, int]] = {}
    for _cmd, rules in iptables:
        _count(rules, counts)
    _count(nft_tagged, counts)
    names = sorted(set(counts) | set(recorded))
    removed_rules = [r for _cmd, rules in iptables for r in rules] + nft_tagged
    changed = bool(removed_rules or recorded)
    variants = sorted({'%s/%s' % (cmd[0], cmd[1]) for cmd, _rules in iptables})
    cleaned: list[str] = []
    if changed and not module.check_mode:
        for cmd, rules in iptables:
            try:
                manager.firewall.restore(cmd[2], restore_payload([], rules, cmd[1]), manager.wait_seconds())
            except FirewallError as exc:
                raise _error('%s (every blackout before it in this list was lifted: %s)' % (
                    exc, ', '.join('%s/%s' % (c[0], c[1]) for c, _r in iptables[:iptables.index((cmd, rules))])
                    or 'none')) from None
        if nft_tagged:
            try:
                manager.nft.apply(''.join(_nft.payload(f, nft_all, [], nft_tagged) for f in ('inet', 'bridge')))
            except _nft.NftError as exc:
                raise _error(str(exc)) from None
        cleaned = clear_record(manager)
    lifted = {name: _lifted(name, counts, recorded, removed_rules) for name in names}
    logged = []
    if not module.check_mode:
        for name in names:
            logged.append(_audit.log_line('restore', name, {
                'requested_by': given.get('requested_by'), 'reason': given.get('reason'), 'all': 'true',
                'removed': lifted[name]['rules'], 'since': lifted[name]['since']}))
    removed: dict[str, list[str]] = {f: [] for f in FAMILIES}
    for rule in removed_rules:
        removed[rule.addr_family].append(rule.line)
    result: dict[str, t.Any] = {
        'changed': changed, 'outcome': 'restored' if names else 'nothing_to_restore',
        'blackout': None, 'all': True, 'lifted': lifted,
        'containers': [], 'covered': [], 'rules': {f: [] for f in FAMILIES}, 'added': {f: [] for f in FAMILIES},
        'removed': removed, 'since': None, 'expires': None,
        'reason': given.get('reason'), 'requested_by': given.get('requested_by'),
        'audit': {'event': 'restore' if names else None, 'logged': logged},
        'firewall': {'variant': None, 'families': sorted({cmd[1] for cmd, _r in iptables}), 'forward_chain': {},
                     'notes': [], 'variants': variants, 'cleaned': cleaned,
                     'nft_tables': sorted({'%s %s' % (r.nfamily, r.table) for r in nft_tagged})},
    }
    return result, removed_rules


def finish(manager: t.Any, result: dict[str, t.Any], removed: list[t.Any]) -> dict[str, t.Any]:
    """With verify (outside the host lock): the containers named in the removed rules answer again."""
    if manager.params.get('verify'):
        result['verify'], checked = verify_open(manager, removed)
        result['containers'] = checked
        if result['verify']['state'] == 'failed':
            raise _error(_verify.failure(result['verify']), **result)
    return result


def clear_record(manager: t.Any) -> list[str]:
    """Empty the host's section of the state record; delete emptied iptables-nft chains we created."""
    cleaned: list[str] = []
    try:
        with manager.state_record() as record:
            state = record.find(_state.netns_id())
            before = repr(state)
            state['blackouts'] = {}
            if state['created'] and manager.nft.available:
                state['created'], cleaned = _nft.cleanup_created(
                    manager._run_utc, t.cast(str, manager.nft.nft), state['created'])  # pylint: disable=protected-access
            if repr(state) != before:
                record.save()
    except OSError as exc:
        manager.module.warn('could not write %s: %s' % (_state.state_path(), exc))
    return cleaned


def verify_open(manager: t.Any, removed: list[t.Any]) -> tuple[dict[str, t.Any], list[dict[str, t.Any]]]:
    """The published ports of the containers whose rules were removed answer again."""
    from ansible_collections.netfence.docker.plugins.module_utils._manager import (  # pylint: disable=import-outside-toplevel
        BlackoutError, container_result)
    if manager.module.check_mode:
        return {'state': 'skipped', 'expect': 'open', 'results': [], 'summary': 'skipped: check mode'}, []
    ids = sorted({r.tag.cid for r in removed})
    try:
        containers = [c for c in manager.containers() if c.running and c.short_id in ids] if ids else []
    except BlackoutError as exc:
        return {'state': 'skipped', 'expect': 'open', 'results': [],
                'summary': 'skipped: the Docker engine could not be queried: %s' % exc}, []
    outcome = _verify.check(_verify.targets(containers, (), manager.params.get('verify_addresses') or ()), 'open')
    outcome['summary'] = _verify.summary(outcome)
    outcome['state'] = 'ok' if outcome['ok'] else 'failed'
    return outcome, [container_result(c) for c in containers]
