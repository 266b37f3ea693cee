# -*- coding: utf-8 -*-
# Copyright (c) 2026, netfence.docker contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The fleet report filters of the blackout and restore playbooks."""

from __future__ import annotations

import pytest

from ansible_collections.netfence.docker.plugins.filter.fleet import (
    FilterModule,
    blackout_input_error,
    fleet_blackout,
    fleet_restore,
    fleet_status,
    host_report,
)

RULES = {'ipv4': ['-A DOCKER-USER a', '-A OUTPUT b'], 'ipv6': ['-A OUTPUT c']}
NONE = {'ipv4': [], 'ipv6': []}
MC1 = {'name': 'mc-1', 'networks': {'front': {'ipv4': '172.18.0.2', 'ipv6': 'fd00::2'}}}


def result(changed=True, containers=(MC1,), rules=None, added=None, removed=None, **extra):
    return dict({'changed': changed, 'containers': list(containers), 'rules': RULES if rules is None else rules,
                 'added': RULES if added is None and changed else (added or NONE),
                 'removed': NONE if removed is None else removed,
                 'expires': None, 'verify': {'summary': 'refused: 127.0.0.1:11211'}}, **extra)


def test_every_host_blacked_out():
    hostvars = {'h1': {'_netfence_result': result()}, 'h2': {'_netfence_result': result(changed=False)}}
    report = fleet_blackout(['h1', 'h2'], hostvars, 'memcached')
    assert report['accepted'] and report['complete'] and not report['nowhere']
    assert report['rollback'] == ['h1'] and report['unchanged'] == ['h2'] and report['message'] == ''
    assert report['lines'] == [
        'Blackout of memcached in place on every host where it runs (2 of 2).',
        'blacked out: h1, h2 (already before this run: h2)',
        'h1: blacked out (mc-1); rules: 3 in place, 3 added, 0 removed; verify: refused: 127.0.0.1:11211',
        '  addresses: mc-1 172.18.0.2 (front), mc-1 fd00::2 (front)',
        'h2: blacked out (mc-1); rules: 3 in place, 0 added, 0 removed; verify: refused: 127.0.0.1:11211',
        '  addresses: mc-1 172.18.0.2 (front), mc-1 fd00::2 (front)',
    ]


def test_a_service_that_runs_nowhere_fails():
    hostvars = {'h1': {'_netfence_result': result(changed=False, containers=(), rules=NONE)}}
    report = fleet_blackout(['h1'], hostvars, 'memcache')
    assert report['nowhere'] and not report['accepted'] and report['not_running'] == ['h1']
    assert report['lines'][0] == 'Blackout of memcache FAILED: the service runs no container on any host.'
    assert report['message'].startswith('Blackout of memcache failed: no container of it runs on any of the 1 host(s)')


PRIOR_NONE = {'name': 'memcached', 'rules': [], 'record': None}
PRIOR_ONE = {'name': 'memcached', 'rules': ['ipv4 filter DOCKER-USER netfence bo=memcached ...'] * 4, 'record': {}}


def test_failures_put_changed_hosts_back_to_their_prior():
    hostvars = {
        'h1': {'_netfence_result': result(prior=PRIOR_NONE), '_netfence_rollback': {'ok': True, 'outcome': 'rolled_back'}},
        # Failed after its change and could not put it back itself: rolled back by the playbook.
        'h2': {'_netfence_blackout_run': {'reason': 'engine down', 'changed': True, 'prior': PRIOR_ONE,
                                          'expires': '2026-11-27T13:00:00Z'},
               '_netfence_rollback': {'ok': False, 'reason': 'unreachable: ssh timed out'}},
        'h3': {'_netfence_result': {'unreachable': True, 'msg': 'ssh:\n timed out'}},
        'h4': {'_netfence_result': {'skipped': True}},
        'h5': {},
        # Failed, the module put it back itself (changed false): not rolled back twice.
        'h6': {'_netfence_blackout_run': {'reason': 'verify failed', 'changed': False, 'prior': PRIOR_ONE}},
    }
    report = fleet_blackout(['h1', 'h2', 'h3', 'h4', 'h5', 'h6'], hostvars, 'memcached')
    assert not report['accepted'] and not report['complete']
    assert report['failed'] == {'h2': 'engine down', 'h6': 'verify failed'}
    assert report['unreachable'] == {'h3': 'ssh: timed out'}
    assert report['not_attempted'] == ['h4', 'h5'] and report['rollback'] == ['h1', 'h2']
    assert report['priors'] == {'h1': PRIOR_NONE, 'h2': PRIOR_ONE}
    assert report['unknown'] == {'h2': 'unreachable: ssh timed out'}
    assert report['lines'][0] == ('Blackout of memcached FAILED: putting every host this run changed back as it was '
                                  'before the run (all or nothing): h1, h2.')
    assert 'FAILED h2: engine down' in report['lines'] and 'UNREACHABLE h3: ssh: timed out' in report['lines']
    assert report['message'] == (
        'Blackout of memcached failed on 3 host(s): h2 (engine down); h6 (verify failed); h3 (unreachable, ssh: '
        'timed out). All or nothing: put back as before this run: h1 (no blackout, as before). STATE UNKNOWN on h2: '
        'may still be blacked out until 2026-11-27T13:00:00Z (h2); re-run blackout.yml or restore.yml against it '
        'once reachable. h2: unreachable: ssh timed out. Not attempted: h4, h5. Re-run with -e partial_ok=true to '
        'keep a partial blackout instead.')
    assert 'No host is left' not in report['message']


def test_a_rerun_that_fails_puts_the_earlier_blackout_back_not_lifts_it():
    hostvars = {
        'h1': {'_netfence_result': result(prior=PRIOR_ONE), '_netfence_rollback': {'ok': True, 'outcome': 'rolled_back'}},
        'h2': {'_netfence_blackout_run': {'reason': 'engine hung', 'changed': False, 'prior': None}},
    }
    report = fleet_blackout(['h1', 'h2'], hostvars, 'memcached')
    assert report['rollback'] == ['h1'] and report['priors']['h1'] == PRIOR_ONE
    assert 'put back as before this run: h1 (its blackout memcached as before (4 rules))' in report['message']
    assert report['message'].count('No host is left changed by this run.') == 1


def test_a_changed_host_without_prior_is_state_unknown():
    hostvars = {'h1': {'_netfence_result': result()}, 'h2': {'_netfence_blackout_run': {'reason': 'x'}}}
    report = fleet_blackout(['h1', 'h2'], hostvars, 'memcached')
    assert report['unknown'] == {'h1': 'no prior snapshot to roll back to'}
    assert 'STATE UNKNOWN on h1: may still be blacked out until never (h1)' in report['message']


def test_hosts_failing_for_one_reason_share_it_and_get_no_partial_ok_hint():
    run = {'reason': 'bad direction', 'changed': False}
    hostvars = {h: {'_netfence_blackout_run': run} for h in ('h1', 'h2')}
    report = fleet_blackout(['h1', 'h2'], hostvars, 'memcached')
    assert report['rollback'] == []
    assert report['message'] == ('Blackout of memcached failed on 2 host(s): h1, h2 (bad direction). All or '
                                 'nothing: put back as before this run: no host was changed. No host is left changed '
                                 'by this run.')


@pytest.mark.parametrize('landed, accepted', [(True, True), (False, False)])
def test_partial_ok(landed, accepted):
    hostvars = {'h1': {'_netfence_result': result() if landed else result(changed=False, containers=(), rules=NONE)},
                'h2': {'_netfence_blackout_run': {'ok': False, 'unreachable': False, 'rollback': True,
                                                  'reason': 'engine down'}}}
    report = fleet_blackout(['h1', 'h2'], hostvars, 'memcached', partial_ok=True)
    assert report['accepted'] is accepted
    if accepted:
        assert report['lines'][0].startswith('PARTIAL blackout of memcached') and report['message'] == ''
    else:
        assert report['message'].endswith('partial_ok=true was given, but the blackout landed on no host.')


def test_check_mode_is_marked():
    report = fleet_blackout(['h1'], {'h1': {'_netfence_result': result()}}, 'memcached', check_mode=True)
    assert report['lines'][2].endswith(' [check mode]')


def test_restore():
    hostvars = {
        'h1': {'_netfence_result': result(containers=(), rules=NONE, added=NONE, removed=RULES,
                                          verify={'summary': 'answering: 127.0.0.1:11211'})},
        'h2': {'_netfence_result': result(changed=False, containers=(), rules=NONE, removed=NONE)},
    }
    report = fleet_restore(['h1', 'h2'], hostvars, 'memcached')
    assert report['complete'] and report['message'] == ''
    assert report['lines'] == [
        'Blackout of memcached lifted where it was in place (1 of 2 hosts).', 'restored: h1',
        'nothing to restore: h2',
        'h1: restored; rules: 0 in place, 0 added, 3 removed; verify: answering: 127.0.0.1:11211',
        'h2: nothing to restore; rules: 0 in place, 0 added, 0 removed; verify: refused: 127.0.0.1:11211']
    hostvars['h2'] = {'_netfence_restore_failure': {'reason': 'Set the blackout: boom'}}
    hostvars['h3'] = {'_netfence_result': {'unreachable': True, 'msg': 'no route'}}
    report = fleet_restore(['h1', 'h2', 'h3'], hostvars, 'memcached')
    assert not report['complete'] and report['lines'][0] == 'Restore of memcached FAILED on some hosts.'
    assert report['message'] == ('Restore of memcached failed on 2 host(s): h2 (Set the blackout: boom); h3 '
                                 '(unreachable, no route). Restored: h1. Re-run against the failed hosts (--limit); '
                                 'a blackout made with a duration also lifts itself at its expiry.')


def test_restore_that_finds_nothing_is_not_lifted_and_names_the_covering_blackout():
    covered = {'summary': 'skipped: the containers are still blacked out by memcached (restore it with the '
                          'matching project)'}
    hostvars = {h: {'_netfence_result': result(changed=False, containers=(), rules=NONE, removed=NONE,
                                               verify=covered)} for h in ('h1', 'h2')}
    hostvars['h2']['_netfence_result']['outcome'] = 'nothing_to_restore'
    hostvars['h2']['_netfence_result']['still_blacked_out_by'] = ['memcached']
    report = fleet_restore(['h1', 'h2'], hostvars, 'lab/memcached')
    assert report['complete'] and report['restored'] == [] and report['nothing_to_do'] == ['h1', 'h2']
    assert report['lines'][:4] == [
        'Nothing to restore: no blackout lab/memcached on any host (2).', 'restored: none',
        'nothing to restore: h1, h2',
        'still blacked out by memcached on h1, h2 (restore it with its own -e project=)']
    assert not any('lifted' in line for line in report['lines'])
    assert report['lines'][4].startswith('h1: nothing to restore, still blacked out by memcached;')


def test_host_report_is_the_fleet_line():
    assert host_report(result(), 'memcached')[0] == (
        'memcached: blacked out (mc-1); rules: 3 in place, 3 added, 0 removed; verify: refused: 127.0.0.1:11211')
    assert host_report({'unreachable': True, 'msg': 'gone'}, 'memcached') == ['memcached: unreachable: gone']


def test_blackout_input_error():
    good = {'service': 'memcached', 'state': 'present', 'direction': 'inbound', 'expires': '1h',
            'ports': ['11211/tcp'], 'allow_from': ['10.0.0.0/8'], 'reject_with': 'reset'}
    assert blackout_input_error(good) == ''
    assert blackout_input_error(dict(good, direction='sideways')) == (
        'Invalid input: value of direction must be one of: inbound, both, got: sideways')
    assert blackout_input_error(dict(good, expires='soon')).startswith("Invalid input: expires 'soon' is neither")
    assert blackout_input_error(dict(good, ports=['11211/tcpx'])).startswith('Invalid input: ports entry: port protocol')
    assert blackout_input_error(dict(good, service='mem cached')).startswith("Invalid input: service 'mem cached'")
    assert blackout_input_error(dict(good, allow_from=['10.0.0.300/8'])).startswith('Invalid input:')


def test_filters_are_registered():
    assert set(FilterModule().filters()) == {'fleet_blackout', 'fleet_restore', 'fleet_status', 'host_report',
                                             'blackout_input_error'}


def _mc(name, addr):
    return {'name': name, 'id': name * 2, 'state': 'running', 'networks': {'lab_front': {'ipv4': addr, 'ipv6': None}},
            'ports': []}


def test_fleet_status_tells_collateral_and_uncovered():
    drifted = {
        'name': 'memcached', 'state': 'drifted', 'since': '2026-11-27T12:00:00Z', 'expires': None,
        'containers': [{'name': 'lab-memcached-1', 'id': 'a1', 'addresses': ['172.18.0.2']},
                       {'name': 'lab-memcached-2', 'id': 'b2', 'addresses': ['172.18.0.3']}],
        'members': [_mc('lab-memcached-1', '172.18.0.2'), _mc('lab-memcached-2', '172.18.0.9')],
        'paths': ['forward', 'host'], 'rules': RULES,
        'drift': {'stale': {'lab-memcached-2': ['172.18.0.3']}, 'uncovered': {'lab-memcached-2': ['172.18.0.9']},
                  'taken': {'172.18.0.3': 'lab-bystander-1'}},
        'collateral': [{'address': '172.18.0.3', 'rule_for': 'lab-memcached-2', 'taken_by': 'lab-bystander-1'}],
        'uncovered_replicas': [{'container': 'lab-memcached-2', 'addresses': ['172.18.0.9'], 'new_replica': True}],
        'partial': {}, 'drift_checked': True, 'missing_paths': {}, 'missing_rules': 0}
    service = {'name': 'memcached', 'project': None, 'checked': True,
               'containers': [_mc('lab-memcached-1', '172.18.0.2'), _mc('lab-memcached-2', '172.18.0.9')]}
    hostvars = {
        'h1': {'_netfence_info': {'blackouts': [drifted], 'service': service, 'docker': {'reachable': True}}},
        'h2': {'_netfence_info': {'blackouts': [], 'service': service, 'docker': {'reachable': True}}},
        'h3': {'_netfence_info': {'unreachable': True, 'msg': 'Task failed: ssh: no route'}},
    }
    status = fleet_status(['h1', 'h2', 'h3'], hostvars, 'memcached')
    assert status['summary'] == {'drifted': ['h1'], 'none': ['h2'], 'unreachable': ['h3']}
    assert status['errors'] == {'h3': 'ssh: no route'}
    h1 = status['hosts']['h1']
    assert h1['state'] == 'drifted' and h1['blacked_out'] == ['lab-memcached-1', 'lab-memcached-2']
    assert h1['addresses'] == ['172.18.0.2', '172.18.0.9'] and h1['rules'] == 3
    assert h1['blackouts'][0]['collateral'][0]['taken_by'] == 'lab-bystander-1'
    lines = status['lines']
    assert lines[0] == 'memcached on 3 host(s): drifted=1 none=1 unreachable=1'
    assert lines[1].split() == ['HOST', 'SERVICE', 'STATE', 'CONTAINERS', 'ADDRESSES', 'RULES', 'SINCE', 'EXPIRES',
                                'WHO', 'WHY', 'DRIFT']
    row = lines[2]
    assert row.split()[:7] == ['h1', 'memcached', 'drifted', 'lab-memcached-1,lab-memcached-2', '172.18.0.2,172.18.0.9',
                               '3', '2026-11-27T12:00:00Z']
    assert row.endswith('collateral: 172.18.0.3 now lab-bystander-1 (rules made for lab-memcached-2); '
                        'uncovered replica: lab-memcached-2 172.18.0.9')
    assert lines[3].split()[:3] == ['h2', 'memcached', 'none'] and lines[4].split()[:4] == ['h3', 'memcached',
                                                                                            'unreachable', '?']
    assert lines[5] == 'h3: ssh: no route'
