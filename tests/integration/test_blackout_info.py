"""netfence.docker.blackout_info on real Docker 20.10 and 28 engines (issue 3).

On one lab host of each Docker series: nothing reported on a clean host, a blackout of memcached
(with expires) reported ``active`` with its containers, addresses, paths, since and expires, the
``name`` filter, nothing after the restore, and reading never changes the firewall. Expiry and
drift over time are in test_expiry_drift.py.
"""
from __future__ import annotations

import datetime as dt

import pytest
from nf_helpers import blackout_of, wait_quiet

SERIES = ('20.10', '28')
MEMCACHED = ('lab-memcached-1', 'lab-memcached-2')
MINE = ('memcached',)


def ok(result: dict, what: str) -> dict:
    assert not result.get('failed') and not result.get('unreachable'), f'{what}: {result.get("msg")}'
    return result


def named(result: dict) -> dict:
    return {b['name']: b for b in result['blackouts']}


@pytest.fixture(scope='module', params=SERIES, ids=lambda s: f'docker{s}')
def host(request, host_of_series, run_module, netfence_rules):
    lab_host = host_of_series(request.param)
    wait_quiet(lab_host, netfence_rules)
    yield lab_host
    for name in sorted({blackout_of(line) for _k, line in netfence_rules(lab_host)} & set(MINE)):
        run_module(lab_host, 'blackout', service=name, state='absent')
    assert not netfence_rules(lab_host)


@pytest.fixture(scope='module')
def cycle(host, run_module, firewall_snapshot):
    """info before, blackout with expires, info (all / by name / other name), restore, info."""
    out = {'fw_clean': firewall_snapshot(host)}
    out['before'] = ok(run_module(host, 'blackout_info'), 'info on a clean host')
    out['fw_after_info'] = firewall_snapshot(host)
    try:
        out['blackout'] = ok(run_module(host, 'blackout', service='memcached', expires='2h'), 'blackout')
        out['fw_blacked'] = firewall_snapshot(host)
        out['info'] = ok(run_module(host, 'blackout_info'), 'info')
        out['info_named'] = ok(run_module(host, 'blackout_info', name='memcached'), 'info name=memcached')
        out['info_other'] = ok(run_module(host, 'blackout_info', name='bystander'), 'info name=bystander')
        out['fw_after_infos'] = firewall_snapshot(host)
    finally:
        out['restore'] = run_module(host, 'blackout', service='memcached', state='absent')
    out['after'] = ok(run_module(host, 'blackout_info'), 'info after restore')
    return out


def test_clean_host_reports_nothing_and_reading_changes_nothing(cycle):
    assert cycle['before']['blackouts'] == []
    assert cycle['before']['changed'] is False
    assert cycle['before']['docker']['reachable'] is True
    assert cycle['fw_after_info'] == cycle['fw_clean']


def test_active_blackout_reported_with_containers_addresses_paths_since(cycle):
    bl, found = cycle['blackout'], named(cycle['info'])
    assert sorted(found) == ['memcached'], sorted(found)
    info = found['memcached']
    assert info['state'] == 'active', info
    assert info['since'] == bl['since']
    assert info['containers'] == [
        {'name': c['name'], 'id': c['id'][:12],
         'addresses': sorted(a for net in c['networks'].values() for a in (net['ipv4'], net['ipv6']) if a)}
        for c in sorted(bl['containers'], key=lambda c: c['name'])]
    assert [c['name'] for c in info['containers']] == list(MEMCACHED)
    assert {'forward', 'host', 'loopback'} <= set(info['paths'])
    for family in ('ipv4', 'ipv6'):
        assert sorted(info['rules'][family]) == sorted(bl['rules'][family]), family
    assert info['drift'] == {'stale': {}, 'uncovered': {}, 'taken': {}}
    assert info['missing_paths'] == {}
    assert cycle['fw_after_infos'] == cycle['fw_blacked']


def test_expires_reported(cycle):
    bl, info = cycle['blackout'], named(cycle['info'])['memcached']
    since = dt.datetime.strptime(bl['since'], '%Y-%m-%dT%H:%M:%SZ')
    assert bl['expires'] == (since + dt.timedelta(hours=2)).strftime('%Y-%m-%dT%H:%M:%SZ')
    assert info['expires'] == bl['expires']


def test_name_filter(cycle):
    assert named(cycle['info_named']) == named(cycle['info'])
    assert cycle['info_other']['blackouts'] == []


def test_nothing_reported_after_restore(cycle):
    assert ok(cycle['restore'], 'restore')['changed'] is True
    assert cycle['after']['blackouts'] == []
