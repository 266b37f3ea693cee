# -*- coding: utf-8 -*-
# Copyright (c) 2026, netfence.docker contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Runs you can trust (#11): all or nothing per host, one writer per host, restore wherever the
rules are, ``prior`` / ``rollback`` / ``outcome``. Fake firewall and engine from conftest."""

from __future__ import annotations

import copy
import os

import pytest

from ansible_collections.netfence.docker.plugins.module_utils import _lock
from ansible_collections.netfence.docker.plugins.modules.blackout import main


def fail_v6_restore(firewall, monkeypatch, stderr='ip6tables-restore: Permission denied (read-only stand-in)'):
    """ip6tables-restore fails, everything else works."""
    real = firewall.run

    def run(argv, data=None):
        if os.path.basename(str(argv[0])).startswith('ip6tables') and str(argv[0]).endswith('restore'):
            firewall.calls.append([str(a) for a in argv])
            return 1, '', stderr
        return real(argv, data)

    monkeypatch.setattr(firewall, 'run', run)


def held_lock(tmp_path, blackout='other'):
    lock = _lock.HostLock(str(tmp_path / 'host.lock'), 0, blackout)
    lock.acquire()
    return lock


# --- outcome and prior ------------------------------------------------------------------------

def test_outcomes_and_prior_through_a_blackout_and_its_restore(fake_host, run_module):
    firewall, _engine = fake_host
    first = run_module(main, {'service': 'memcached'})
    assert first['outcome'] == 'applied' and first['changed'] is True
    assert first['prior'] == {'name': 'memcached', 'rules': [], 'record': None}
    again = run_module(main, {'service': 'memcached'})
    assert again['outcome'] == 'unchanged' and again['changed'] is False
    prior = again['prior']
    assert prior['record']['since'] == first['since']
    saved = [line for line in firewall.save('ipv4').splitlines() if 'netfence bo=' in line]
    assert ['-A %s %s' % (r['chain'], r['spec']) for r in prior['rules'] if r['family'] == 'ipv4'] == saved
    assert {(r['backend'], r['variant'], r['table']) for r in prior['rules']} == {('iptables', 'nft', 'filter')}
    restore = run_module(main, {'service': 'memcached', 'state': 'absent'})
    assert restore['outcome'] == 'restored' and restore['changed'] is True
    assert restore['prior'] == prior and restore['still_blacked_out_by'] == []
    nothing = run_module(main, {'service': 'memcached', 'state': 'absent'})
    assert nothing['outcome'] == 'nothing_to_restore' and nothing['changed'] is False
    assert nothing['prior'] == {'name': 'memcached', 'rules': [], 'record': None}


def test_restore_names_the_blackout_that_still_covers_the_containers(fake_host, run_module):
    run_module(main, {'service': 'memcached'})
    run_module(main, {'containers': ['lab-memcached-1'], 'name': 'drill'})
    restore = run_module(main, {'service': 'memcached', 'state': 'absent'})
    assert restore['outcome'] == 'restored' and restore['still_blacked_out_by'] == ['drill']


def test_check_mode_reports_the_outcome_and_writes_nothing(fake_host, run_module):
    firewall, _engine = fake_host
    before = firewall.snapshot()
    check = run_module(main, {'service': 'memcached'}, check=True)
    assert check['outcome'] == 'applied' and check['changes'] and firewall.snapshot() == before


# --- all or nothing ---------------------------------------------------------------------------

@pytest.mark.parametrize('second', [None, {'expires': '1h'}, {'expires': '1h', 'reject_with': 'icmp'}])
def test_v6_failing_after_v4_compensates_v4(fake_host, run_module, monkeypatch, second):
    firewall, _engine = fake_host
    firewall.tables['ipv4']['rules'][1:1] = [('OUTPUT', '-d 10.9.9.9/32 -j DROP'),
                                             ('DOCKER-USER', '-s 10.1.1.1/32 -j RETURN')]
    if second is not None:  # a blackout in place, changed by the failing run (removals re-inserted)
        run_module(main, {'service': 'memcached'})
    before = firewall.snapshot()
    fail_v6_restore(firewall, monkeypatch)
    result = run_module(main, dict({'service': 'memcached'}, **(second or {})))
    assert result['failed'] is True and 'read-only stand-in' in result['msg']
    assert firewall.snapshot() == before
    assert [c['backend'] for c in result['compensated']] == ['iptables nft ipv4']
    assert result['compensated'][0]['added'] and result['failed_backend'] == 'iptables nft ipv6'
    assert result['outcome'] == 'rolled_back' and result['changed'] is False and result['not_compensated'] == []
    assert result['prior']['name'] == 'memcached'


def test_failed_compensation_is_reported(fake_host, run_module, monkeypatch):
    firewall, _engine = fake_host
    real = firewall.run
    count = {'v4': 0}

    def run(argv, data=None):
        base = os.path.basename(str(argv[0]))
        if base.endswith('restore'):
            if base.startswith('ip6'):
                return 1, '', 'v6 broken'
            count['v4'] += 1
            if count['v4'] > 1:
                return 1, '', 'v4 broken too'
        return real(argv, data)

    monkeypatch.setattr(firewall, 'run', run)
    result = run_module(main, {'service': 'memcached'})
    assert result['failed'] is True and 'COMPENSATION FAILED' in result['msg']
    assert result['outcome'] == 'applied' and result['changed'] is True
    assert result['not_compensated'][0]['error'].endswith('v4 broken too')


# --- one writer per host ----------------------------------------------------------------------

def test_a_held_lock_fails_the_run_naming_the_holder(fake_host, run_module, tmp_path):
    firewall, _engine = fake_host
    before = firewall.snapshot()
    lock = held_lock(tmp_path, 'drill')
    try:
        result = run_module(main, {'service': 'memcached', 'lock_timeout': 0})
    finally:
        lock.release()
    assert result['failed'] is True and 'holds the host lock' in result['msg']
    assert 'pid %d (blackout drill' % os.getpid() in result['msg'] and result['holder']['blackout'] == 'drill'
    assert firewall.snapshot() == before and firewall.restores == []
    assert run_module(main, {'service': 'memcached'})['outcome'] == 'applied'


def test_host_lock_waits_then_gives_up(tmp_path):
    clock = [0.0]
    held = _lock.HostLock(str(tmp_path / 'host.lock'), 5, 'a')
    with held:
        waiting = _lock.HostLock(str(tmp_path / 'host.lock'), 0.2, 'b')
        with pytest.raises(_lock.LockTimeout) as info:
            waiting.acquire()
        assert info.value.holder['blackout'] == 'a'
    with _lock.HostLock(str(tmp_path / 'host.lock'), 0, 'b', clock=lambda: clock[0]) as lock:
        assert lock.remaining() == 1.0
    assert (tmp_path / 'host.lock').read_text() == ''


def test_restore_waits_are_bounded(fake_host, run_module):
    firewall, _engine = fake_host
    run_module(main, {'service': 'memcached', 'lock_timeout': 20})
    argv = firewall.restores[-1][0]
    assert argv[1:3] == ['--noflush', '-w'] and 1 <= int(argv[3]) <= 20


# --- restore wherever the rules are -----------------------------------------------------------

def test_restore_without_docker_user_removes_output_and_input_rules(fake_host, run_module):
    firewall, _engine = fake_host
    run_module(main, {'service': 'memcached', 'direction': 'both'})
    table = firewall.tables['ipv4']
    table['rules'] = [r for r in table['rules'] if r[0] != 'DOCKER-USER' and '-j DOCKER-USER' not in r[1]]
    del table['chains']['DOCKER-USER']
    assert any(r.startswith('-A OUTPUT') for r in firewall.rules('ipv4'))
    assert any(r.startswith('-A INPUT') for r in firewall.rules('ipv4'))
    restore = run_module(main, {'service': 'memcached', 'state': 'absent'})
    assert restore['outcome'] == 'restored' and restore['changed'] is True
    assert firewall.rules('ipv4') == [] and firewall.rules('ipv6') == []


# --- rollback ---------------------------------------------------------------------------------

def test_prior_and_rollback_round_trip(fake_host, run_module):
    firewall, _engine = fake_host
    run_module(main, {'service': 'memcached', 'expires': '1h'})
    after_first = firewall.snapshot()
    second = run_module(main, {'service': 'memcached', 'reject_with': 'icmp', 'direction': 'both'})
    assert second['changed'] is True and firewall.snapshot() != after_first
    rolled = run_module(main, {'rollback': second['prior']})
    assert rolled['outcome'] == 'rolled_back' and rolled['changed'] is True
    assert firewall.snapshot() == after_first
    assert rolled['prior']['rules'] != second['prior']['rules']
    again = run_module(main, {'rollback': second['prior']})
    assert again['outcome'] == 'unchanged' and again['changed'] is False
    assert run_module(main, {'service': 'memcached', 'expires': '1h'})['outcome'] == 'unchanged'


def test_rollback_to_an_empty_snapshot_removes_the_blackout(fake_host, run_module):
    firewall, _engine = fake_host
    original = firewall.snapshot()
    first = run_module(main, {'service': 'memcached'})
    rolled = run_module(main, {'rollback': first['prior']})
    assert rolled['outcome'] == 'rolled_back' and firewall.snapshot() == original
    assert run_module(main, {'service': 'memcached', 'state': 'absent'})['outcome'] == 'nothing_to_restore'


def _inbound(prior):
    return next(r for r in prior['rules'] if '-d 172.18.0.2/32 ' in r['spec'])


def _prior(run_module):
    run_module(main, {'service': 'memcached'})
    return run_module(main, {'service': 'memcached'})['prior']


@pytest.mark.parametrize('mutate, msg', [
    (lambda p: p.update(name='other'), 'not a netfence rule of blackout other'),
    (lambda p: _inbound(p).update(spec=_inbound(p)['spec'].replace('-d 172.18.0.2/32', '-d 172.18.0.0/16')),
     'single-address destination'),
    (lambda p: _inbound(p).update(spec=_inbound(p)['spec'].replace('-d 172.18.0.2/32 ', '')),
     'single-address destination'),
    (lambda p: _inbound(p).update(spec=_inbound(p)['spec'].replace('-d 172.18.0.2/32', '-d 172.18.0.2%eth0/32')),
     'single-address destination'),
    (lambda p: p['rules'][0].update(spec=p['rules'][0]['spec'] + '\n-F'), 'one-line spec'),
    (lambda p: p['rules'][0].update(chain='OUT PUT'), 'one-line spec'),
    (lambda p: p['rules'][0].update(table='nat'), 'table filter'),
    (lambda p: p['rules'][0].update(variant='bogus'), 'variant nft/legacy'),
    (lambda p: p['rules'][0].update(backend='pf'), 'no backend iptables or nft'),
    (lambda p: p['rules'].append({'backend': 'nft', 'nfamily': 'inet', 'chain': 'forward',
                                  'text': 'ip daddr 10.0.0.0/8 drop comment "x"'}), 'not a netfence rule'),
    (lambda p: p.update(rules='all'), 'rules (a list)'),
    (lambda p: p.update(record=[]), 'record (a dict or null)'),
])
def test_rollback_rejects_a_bad_snapshot_before_writing(fake_host, run_module, mutate, msg):
    firewall, _engine = fake_host
    prior = copy.deepcopy(_prior(run_module))
    run_module(main, {'service': 'memcached', 'state': 'absent'})
    before, restores = firewall.snapshot(), len(firewall.restores)
    mutate(prior)
    result = run_module(main, {'rollback': prior})
    assert result['failed'] is True and msg in result['msg'], result['msg']
    assert firewall.snapshot() == before and len(firewall.restores) == restores


def test_rollback_excludes_the_blackout_options(fake_host, run_module):
    result = run_module(main, {'rollback': {'name': 'x', 'rules': [], 'record': None}, 'service': 'memcached'})
    assert result['failed'] is True and 'mutually exclusive' in result['msg']


def test_rollback_restores_the_record(fake_host, run_module):
    first = run_module(main, {'service': 'memcached', 'expires': '1h'})
    second = run_module(main, {'service': 'memcached'})
    assert second['prior']['record']['expires'] == first['expires']
    run_module(main, {'rollback': second['prior']})
    third = run_module(main, {'service': 'memcached', 'state': 'absent'}, check=True)
    assert third['prior']['record'] == second['prior']['record']


def test_a_failure_after_the_read_carries_prior(fake_host, run_module, make_container):
    _firewall, engine = fake_host
    run_module(main, {'service': 'memcached'})
    result = run_module(main, {'service': 'memcached', 'expires': '2020-01-01T00:00:00Z'})
    assert result['failed'] is True and 'in the past' in result['msg']
    assert result['prior']['name'] == 'memcached' and result['prior']['rules']


def test_restore_of_a_blackout_whose_rules_were_flushed_clears_its_record(fake_host, run_module):
    firewall, _engine = fake_host
    original = firewall.snapshot()
    run_module(main, {'service': 'memcached'})
    for family in ('ipv4', 'ipv6'):
        table = firewall.tables[family]
        table['rules'] = [r for r in table['rules'] if 'netfence bo=' not in r[1]]
    assert firewall.snapshot() == original
    restore = run_module(main, {'service': 'memcached', 'state': 'absent'})
    assert restore['outcome'] == 'restored' and restore['changed'] is True and restore['prior']['rules'] == []
    again = run_module(main, {'service': 'memcached', 'state': 'absent'})
    assert again['outcome'] == 'nothing_to_restore' and again['changed'] is False


def test_the_host_lock_is_not_taken_through_a_symlink(tmp_path):
    (tmp_path / 'elsewhere').write_text('')
    (tmp_path / 'host.lock').symlink_to(tmp_path / 'elsewhere')
    with pytest.raises(OSError):
        _lock.HostLock(str(tmp_path / 'host.lock'), 0, 'a').acquire()


def test_a_lock_that_cannot_be_opened_says_become(fake_host, run_module, monkeypatch):
    def denied(self):
        raise PermissionError(13, 'Permission denied')

    monkeypatch.setattr(_lock.HostLock, 'acquire', denied)
    result = run_module(main, {'service': 'memcached', 'state': 'absent'})
    assert result['failed'] is True and 'run the task with become: true' in result['msg']


def test_an_nft_table_failing_after_both_iptables_families_compensates_them_last_first(fake_host, run_module,
                                                                                       monkeypatch):
    """br_netfilter off: the bridge table comes after iptables v4 and v6; its nft -f fails."""
    from ansible.module_utils import basic  # pylint: disable=import-outside-toplevel
    from ansible_collections.netfence.docker.plugins.module_utils import (  # pylint: disable=import-outside-toplevel
        _hostcfg)
    firewall, _engine = fake_host
    real_run, real_bin = firewall.run, basic.AnsibleModule.get_bin_path
    order = []

    def run(argv, data=None):
        argv = [str(a) for a in argv]
        if argv[0] != '/usr/sbin/nft':
            if argv[0].endswith('restore'):
                order.append(os.path.basename(argv[0]))
            return real_run(argv, data)
        firewall.calls.append(argv)
        if argv[1:] == ['-j', 'list', 'chains']:
            return 0, '{"nftables": []}', ''
        if argv[1:3] == ['-f', '-']:
            order.append('nft -f')
            return 1, '', 'Error: Could not process rule: Operation not permitted'
        return 1, '', 'Error: No such file or directory'

    monkeypatch.setattr(firewall, 'run', run)
    monkeypatch.setattr(basic.AnsibleModule, 'get_bin_path',
                        lambda self, arg, required=False, opt_dirs=None: '/usr/sbin/nft' if arg == 'nft'
                        else real_bin(self, arg, required, opt_dirs))
    monkeypatch.setattr(_hostcfg, 'brnf', lambda: {'ipv4': '0', 'ipv6': '0'})
    before = firewall.snapshot()
    result = run_module(main, {'service': 'memcached'})
    assert result['failed'] is True and 'Operation not permitted' in result['msg']
    assert result['failed_backend'] == 'nft bridge'
    assert [c['backend'] for c in result['compensated']] == ['iptables nft ipv6', 'iptables nft ipv4']
    assert order == ['iptables-nft-restore', 'ip6tables-nft-restore', 'nft -f',
                     'ip6tables-nft-restore', 'iptables-nft-restore']
    assert firewall.snapshot() == before
