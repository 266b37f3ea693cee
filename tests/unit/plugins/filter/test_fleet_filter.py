# -*- coding: utf-8 -*-
# Copyright (c) 2026, netfence.docker contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The fleet report filters of the blackout and restore playbooks."""

from __future__ import annotations

import pytest

from ansible_collections.netfence.docker.plugins.filter.fleet import FilterModule, fleet_blackout, fleet_restore

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


def test_failures_roll_back_and_the_message_names_each_host():
    hostvars = {
        'h1': {'_netfence_result': result(), '_netfence_rollback': {'ok': True}},
        'h2': {'_netfence_blackout_run': {'ok': False, 'unreachable': False, 'rollback': True, 'reason': 'engine down'},
               '_netfence_rollback': {'ok': False, 'reason': 'x'}},
        'h3': {'_netfence_result': {'unreachable': True, 'msg': 'ssh:\n timed out'}},
        'h4': {'_netfence_result': {'skipped': True}},
        'h5': {},
    }
    report = fleet_blackout(['h1', 'h2', 'h3', 'h4', 'h5'], hostvars, 'memcached')
    assert not report['accepted'] and not report['complete']
    assert report['failed'] == {'h2': 'engine down'} and report['unreachable'] == {'h3': 'ssh: timed out'}
    assert report['not_attempted'] == ['h4', 'h5'] and report['rollback'] == ['h1', 'h2']
    assert report['lines'][0] == ('Blackout of memcached FAILED: rolling back every host this run changed (all or '
                                  'nothing): h1, h2.')
    assert 'FAILED h2: engine down' in report['lines'] and 'UNREACHABLE h3: ssh: timed out' in report['lines']
    assert report['message'] == (
        'Blackout of memcached failed on 2 host(s): h2 (engine down); h3 (unreachable, ssh: timed out). All or '
        'nothing: rolled back h1. ROLLBACK FAILED on h2: the blackout may still be in place there (it lifts itself '
        'at its expiry, if one was set); run playbooks/restore.yml against them. Not attempted: h4, h5. Re-run with '
        '-e partial_ok=true to keep a partial blackout instead.')


def test_hosts_failing_for_one_reason_share_it_and_get_no_partial_ok_hint():
    run = {'ok': False, 'unreachable': False, 'rollback': True, 'reason': 'bad direction'}
    hostvars = {h: {'_netfence_blackout_run': run, '_netfence_rollback': {'ok': True}} for h in ('h1', 'h2')}
    report = fleet_blackout(['h1', 'h2'], hostvars, 'memcached')
    assert report['message'] == ('Blackout of memcached failed on 2 host(s): h1, h2 (bad direction). All or '
                                 'nothing: rolled back h1, h2. No host is left blacked out by this run.')


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
        'Blackout of memcached lifted on every host (2).', 'restored: h1',
        'h1: restored; rules: 0 in place, 0 added, 3 removed; verify: answering: 127.0.0.1:11211',
        'h2: no blackout here; rules: 0 in place, 0 added, 0 removed; verify: refused: 127.0.0.1:11211',
        'no blackout to lift: h2']
    hostvars['h2'] = {'_netfence_restore_failure': {'reason': 'Set the blackout: boom'}}
    hostvars['h3'] = {'_netfence_result': {'unreachable': True, 'msg': 'no route'}}
    report = fleet_restore(['h1', 'h2', 'h3'], hostvars, 'memcached')
    assert not report['complete'] and report['lines'][0] == 'Restore of memcached FAILED on some hosts.'
    assert report['message'] == ('Restore of memcached failed on 2 host(s): h2 (Set the blackout: boom); h3 '
                                 '(unreachable, no route). Restored: h1. Re-run against the failed hosts (--limit); '
                                 'a blackout made with a duration also lifts itself at its expiry.')


def test_filters_are_registered():
    assert set(FilterModule().filters()) == {'fleet_blackout', 'fleet_restore'}
