# -*- coding: utf-8 -*-
# Copyright (c) 2026, netfence.docker contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""netfence.docker.blackout_info main() with a fake firewall (run_command) and a fake engine."""

from __future__ import annotations

import datetime as dt

from ansible_collections.netfence.docker.plugins.module_utils import _docker_api, _manager
from ansible_collections.netfence.docker.plugins.modules import blackout, blackout_info


def info(run_module, **args):
    result = run_module(blackout_info.main, args)
    assert not result.get('failed'), result.get('msg')
    assert result['changed'] is False
    return result


def by_name(result):
    return {b['name']: b for b in result['blackouts']}


def test_nothing_to_report(fake_host, run_module):
    result = info(run_module)
    assert result['blackouts'] == []
    assert result['docker']['reachable'] is True and result['docker']['error'] is None
    assert result['firewall']['variant'] == 'nft'


def test_active_blackout_is_reported_in_full(fake_host, run_module):
    firewall, _engine = fake_host
    bl = run_module(blackout.main, {'service': 'memcached'})
    n = len(firewall.restores)
    found = by_name(info(run_module))
    assert sorted(found) == ['memcached']
    memcached = found['memcached']
    assert memcached['state'] == 'active'
    assert memcached['since'] == bl['since'] == '2026-11-27T12:00:00Z'
    assert memcached['expires'] is None
    assert memcached['containers'] == [
        {'name': 'lab-memcached-1', 'id': 'a1' * 6, 'addresses': ['172.18.0.2', '172.19.0.2']},
        {'name': 'lab-memcached-2', 'id': 'b2' * 6, 'addresses': ['172.18.0.3']},
    ]
    assert {'forward', 'host', 'loopback'} <= set(memcached['paths'])
    for family in ('ipv4', 'ipv6'):
        assert sorted(memcached['rules'][family]) == sorted(bl['rules'][family])
    assert memcached['drift'] == {'stale': {}, 'uncovered': {}, 'taken': {}}
    assert memcached['missing_paths'] == {}
    assert len(firewall.restores) == n  # info never writes


def test_name_filter(fake_host, run_module):
    run_module(blackout.main, {'service': 'memcached'})
    run_module(blackout.main, {'service': 'bystander'})
    assert sorted(by_name(info(run_module))) == ['bystander', 'memcached']
    assert sorted(by_name(info(run_module, name='bystander'))) == ['bystander']
    assert info(run_module, name='nothing')['blackouts'] == []


def test_expires_is_reported_and_expired_state(fake_host, run_module, clock):
    run_module(blackout.main, {'service': 'memcached', 'expires': '2h'})
    found = by_name(info(run_module))['memcached']
    assert found['state'] == 'active' and found['expires'] == '2026-11-27T14:00:00Z'
    clock(dt.datetime(2026, 11, 27, 14, 0, 1, tzinfo=dt.timezone.utc))
    assert by_name(info(run_module))['memcached']['state'] == 'expired'


def test_lost_rule_is_broken_and_rerun_repairs_it(fake_host, run_module):
    firewall, _engine = fake_host
    bl = run_module(blackout.main, {'service': 'memcached'})
    rules = firewall.tables['ipv4']['rules']
    lost = next(r for r in rules if r[0] == 'OUTPUT' and r[1].startswith('-d 172.18.0.3/32 -p tcp'))
    rules.remove(lost)
    found = by_name(info(run_module))['memcached']
    assert found['state'] == 'broken'
    assert found['missing_paths'] == {'172.18.0.3': ['host']}
    repair = run_module(blackout.main, {'service': 'memcached'})
    assert repair['changed'] is True and repair['since'] == bl['since']
    # rules of the chain that would end up out of the planned order are re-inserted too
    net_added = set(repair['added']['ipv4']) - set(repair['removed']['ipv4'])
    assert net_added == {'-A %s %s' % lost}
    assert set(repair['removed']['ipv4']) <= set(bl['rules']['ipv4'])
    assert sorted(firewall.rules('ipv4')) == sorted(bl['rules']['ipv4'])
    assert by_name(info(run_module))['memcached']['state'] == 'active'


def test_new_address_is_drift(fake_host, run_module):
    _firewall, engine = fake_host
    run_module(blackout.main, {'service': 'memcached'})
    engine.containers[1]['NetworkSettings']['Networks']['lab_front']['IPAddress'] = '172.18.0.33'
    found = by_name(info(run_module))['memcached']
    assert found['state'] == 'drifted'
    assert found['drift']['stale'] == {'lab-memcached-2': ['172.18.0.3']}
    assert found['drift']['uncovered'] == {'lab-memcached-2': ['172.18.0.33']}


def test_service_option_selects_its_blackouts_and_returns_its_containers(fake_host, run_module):
    _firewall, engine = fake_host
    run_module(blackout.main, {'service': 'memcached'})
    run_module(blackout.main, {'service': 'bystander'})
    result = info(run_module, service='memcached')
    assert sorted(by_name(result)) == ['memcached']
    assert [c['name'] for c in result['service']['containers']] == ['lab-memcached-1', 'lab-memcached-2']
    assert result['service']['checked'] is True
    assert [c['name'] for c in by_name(result)['memcached']['members']] == ['lab-memcached-1', 'lab-memcached-2']
    assert info(run_module, service='memcached', project='other')['blackouts'] == []
    engine.containers[1]['NetworkSettings']['Networks']['lab_front']['IPAddress'] = '172.18.0.33'
    found = by_name(info(run_module, service='memcached'))['memcached']
    assert found['uncovered_replicas'] == [{'container': 'lab-memcached-2', 'addresses': ['172.18.0.33'],
                                            'new_replica': False}]
    assert found['collateral'] == []


def test_service_without_any_blackout_still_lists_its_containers(fake_host, run_module):
    result = info(run_module, service='memcached')
    assert result['blackouts'] == []
    assert [c['name'] for c in result['service']['containers']] == ['lab-memcached-1', 'lab-memcached-2']


def test_engine_unreachable_still_lists_blackouts(fake_host, run_module):
    _firewall, engine = fake_host
    run_module(blackout.main, {'service': 'memcached'})
    engine.error = _docker_api.DockerApiError('Docker engine unreachable at unix:///var/run/docker.sock: gone')
    result = info(run_module)
    assert result['docker']['reachable'] is False and 'unreachable' in result['docker']['error']
    assert by_name(result)['memcached']['state'] == 'active'


def test_info_reads_without_side_effects(fake_host, run_module):
    firewall, _engine = fake_host
    before = firewall.snapshot()
    info(run_module)
    assert firewall.snapshot() == before
    assert firewall.restores == []
    assert firewall.legacy_reads_with_table() == []
    assert all(not argv[0].endswith('-restore') for argv in firewall.calls)


def test_info_permission_denied_says_become(fake_host, run_module):
    firewall, _engine = fake_host
    firewall.deny = True
    result = run_module(blackout_info.main, {})
    assert result['failed'] is True
    assert 'permission denied reading the firewall: iptables needs root' in result['msg']


def _without_docker_user(firewall):
    """A host whose iptables hold none of Docker's chains (Docker's nftables backend, or no Docker)."""
    for family in ('ipv4', 'ipv6'):
        firewall.tables[family]['chains'].pop('DOCKER-USER', None)
        firewall.tables[family]['rules'] = [r for r in firewall.tables[family]['rules'] if 'DOCKER-USER' not in r]


def test_no_docker_user_on_an_nftables_engine_reports_nothing(fake_host, run_module, monkeypatch):
    """Docker 29 with --firewall-backend=nftables has no DOCKER-USER by design: nothing to report."""
    firewall, _engine = fake_host
    _without_docker_user(firewall)
    monkeypatch.setattr(_manager._HostManager, 'engine_backend', lambda self: 'nftables')
    result = info(run_module)
    assert result['blackouts'] == []
    assert result['firewall']['variant'] is None and result['firewall']['backend'] == 'nftables'
    assert any('DOCKER-USER chain not found' in note for note in result['firewall']['notes'])


def test_no_docker_user_on_an_iptables_engine_fails_clearly(fake_host, run_module, monkeypatch):
    firewall, _engine = fake_host
    _without_docker_user(firewall)
    monkeypatch.setattr(_manager._HostManager, 'engine_backend', lambda self: 'iptables')
    result = run_module(blackout_info.main, {})
    assert result['failed'] is True and result['msg'].startswith('DOCKER-USER chain not found'), result['msg']
