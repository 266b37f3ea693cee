# -*- coding: utf-8 -*-
# Copyright (c) 2026, netfence.docker contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""netfence.docker.blackout main() with a fake firewall (run_command) and a fake engine."""

from __future__ import annotations

import errno
import json
import re

import pytest

from ansible_collections.netfence.docker.plugins.module_utils import _docker_api, _verify
from ansible_collections.netfence.docker.plugins.modules.blackout import main

EMPTY = {'ipv4': [], 'ipv6': []}


def lines(result, key='added'):
    return result[key]['ipv4'] + result[key]['ipv6']


# --- argument validation: fails before touching the engine or the firewall -------------------

@pytest.mark.parametrize('args, msg', [
    ({}, 'one of the following is required: service, containers, labels'),
    ({'service': 'memcached', 'containers': ['x']}, 'parameters are mutually exclusive: service|containers|labels'),
    ({'project': 'lab', 'containers': ['x']}, "missing parameter(s) required by 'project': service"),
    ({'service': ''}, 'service must be a non-empty string'),
    ({'service': 'mem;cached'}, "service 'mem;cached' is invalid: it contains forbidden character(s) ;"),
    ({'service': '$(id)'}, 'forbidden character(s) $ ( )'),
    ({'service': '"memcached"'}, 'forbidden character(s) "'),
    ({'service': "'memcached'"}, "forbidden character(s) '"),
    ({'service': 'mem cached'}, 'it contains whitespace'),
    ({'service': 'mem\ncached'}, 'it contains a newline'),
    ({'service': 'memcached', 'project': 'a b'}, "project 'a b' is invalid"),
    ({'containers': []}, 'containers must name at least one container'),
    ({'containers': ['ok', 'x`id`']}, "container 'x`id`' is invalid"),
    ({'labels': {'com.docker.compose.service': 'memcached'}}, 'name is required with labels'),
    ({'labels': {}, 'name': 'x'}, 'labels must hold at least one label'),
    ({'labels': {'k': 'v;rm'}, 'name': 'x'}, "label k: value 'v;rm' contains forbidden"),
    ({'labels': {'k ey': 'v'}, 'name': 'x'}, "label key 'k ey' is invalid"),
    ({'service': 'memcached', 'name': 'a b'}, "blackout name 'a b' is invalid"),
    ({'service': 'memcached', 'state': 'gone'}, 'value of state must be one of: present, absent, got: gone'),
    ({'service': 'memcached', 'missing': 'maybe'}, 'value of missing must be one of: fail, ignore'),
    ({'service': 'memcached', 'reject_with': 'bogus'}, 'value of reject_with must be one of: reset, icmp, drop'),
    ({'service': 'memcached', 'direction': 'out'}, 'value of direction must be one of: inbound, both'),
    ({'service': 'memcached', 'expires': 'soon'}, "expires 'soon' is neither a duration"),
    ({'service': 'memcached', 'expires': '2030-01-01T00:00:00'}, 'has no time zone'),
    ({'service': 'memcached', 'expires': '0s'}, "expires '0s' is zero"),
    ({'service': 'memcached', 'expires': '367d'}, 'is longer than a year'),
    ({'service': 'memcached', 'expires': '2026-02-30T00:00:00Z'}, 'is not a valid time'),
    ({'service': 'memcached', 'ports': ['11211/icmp']}, "port protocol 'icmp' is not supported"),
    ({'service': 'memcached', 'ports': ['x']}, "ports entry 'x' is invalid"),
    ({'service': 'memcached', 'ports': ['0']}, 'out of range 1-65535'),
    ({'service': 'memcached', 'allow_from': ['10.0.0.0/33']}, "allow_from entry '10.0.0.0/33' is not an IP"),
    ({'service': 'memcached', 'allow_from': ['::/0']}, 'would allow everyone'),
    ({'service': 'memcached', 'docker_host': 'http://h:2375'}, "docker_host 'http://h:2375' is not supported"),
    ({'service': 'memcached', 'docker_host': 'unix://relative.sock'}, 'the unix socket path must be absolute'),
    ({'service': 'memcached', 'verify': True, 'verify_addresses': ['10.0.0.0/24']},
     "verify_addresses entry '10.0.0.0/24' is not an IP address or host name"),
    ({'service': 'memcached', 'verify': True, 'verify_addresses': ['']}, 'verify_addresses entry must be a non-empty'),
    ({'service': 'memcached', 'verify': 'maybe'}, "argument 'verify' is of type"),
    ({'service': 'memcached', 'bogus_option': 1}, 'Unsupported parameters for'),  # (basic.py) here
])
def test_bad_arguments_fail_before_anything_runs(fake_host, run_module, args, msg):
    firewall, engine = fake_host
    result = run_module(main, args)
    assert result['failed'] is True
    assert msg in result['msg']
    assert not result.get('changed')
    assert firewall.calls == [] and engine.hosts == []


def test_docker_host_error_is_not_prefixed_twice(fake_host, run_module):
    result = run_module(main, {'service': 'memcached', 'docker_host': 'ftp://x'})
    assert result['msg'].startswith("docker_host 'ftp://x' is not supported")


# --- engine and host problems -----------------------------------------------------------------

def test_unknown_service_fails_and_missing_ignore_does_nothing(fake_host, run_module):
    firewall, _engine = fake_host
    result = run_module(main, {'service': 'nosuch'})
    assert result['failed'] is True
    assert 'no running container matches service nosuch on this host (set missing=ignore' in result['msg']
    result = run_module(main, {'service': 'nosuch', 'missing': 'ignore'})
    assert not result.get('failed') and result['changed'] is False
    assert result['added'] == result['removed'] == EMPTY
    assert firewall.restores == []


def test_engine_permission_denied(fake_host, run_module, monkeypatch):
    """The real EngineClient over a unix socket the user may not open (EACCES)."""
    firewall, engine = fake_host
    engine.real = True

    def connect(self):
        raise PermissionError(errno.EACCES, 'Permission denied')

    monkeypatch.setattr(_docker_api._UnixHTTPConnection, 'connect', connect)  # pylint: disable=protected-access
    result = run_module(main, {'service': 'memcached', 'docker_host': 'unix:///run/docker.sock'})
    assert result['failed'] is True
    assert result['msg'] == ('permission denied on the Docker socket /run/docker.sock: run the task with '
                             'become: true, or add the remote user to the docker group')
    assert firewall.restores == []


@pytest.mark.parametrize('error, msg', [
    (_docker_api.DockerApiError('Docker engine unreachable at unix:///x.sock: socket /x.sock does not exist.'),
     'Docker engine unreachable at unix:///x.sock'),
])
def test_engine_errors_are_reported(fake_host, run_module, error, msg):
    firewall, engine = fake_host
    engine.error = error
    result = run_module(main, {'service': 'memcached'})
    assert result['failed'] is True and msg in result['msg']
    assert firewall.restores == []


def test_firewall_permission_denied_says_become(fake_host, run_module):
    firewall, _engine = fake_host
    firewall.deny = True
    result = run_module(main, {'service': 'memcached', 'state': 'absent'})
    assert result['failed'] is True
    assert result['msg'].startswith('permission denied reading the firewall: iptables needs root, run the task '
                                    'with become: true')
    assert 'DOCKER-USER chain not found' not in result['msg']


def test_restore_failure_is_reported_with_stderr(fake_host, run_module):
    firewall, _engine = fake_host
    firewall.fail_restore = 'iptables-restore: line 3 failed: Bad rule'
    before = firewall.snapshot()
    result = run_module(main, {'service': 'memcached'})
    assert result['failed'] is True and 'line 3 failed: Bad rule' in result['msg']
    assert firewall.snapshot() == before


@pytest.mark.parametrize('extra, args, msg', [
    (('stopped-1', 'e5', None, None, (), 'exited'), {'containers': ['stopped-1']},
     'container stopped-1 is not running (state: exited): start it, or leave it out'),
    (('stopped-1', 'e5', 'stopped', None, (), 'created'), {'service': 'stopped'},
     'no running container matches service stopped on this host'),
    (('exporter', 'e6', None, {'host': None}, (), 'running', 'host'), {'service': 'exporter'},
     'container exporter uses the host network: give ports: to say which of its ports to cut'),
    (('isolated', 'e7', None, {'none': None}, (), 'running', 'none'), {'containers': ['isolated']},
     "container isolated uses network mode 'none'"),
    (('sidecar', 'e8', None, {}, (), 'running', 'container:' + 'a1' * 32), {'service': 'sidecar'},
     "container sidecar uses network mode 'container:a1a1"),
    (('noaddr', 'e9', None, {'lab_front': ''}), {'service': 'noaddr'},
     'container noaddr has no IP address on any network (networks: lab_front)'),
], ids=['exited', 'created', 'net-host', 'net-none', 'net-container', 'no-address'])
def test_unusable_containers_fail_and_change_nothing(fake_host, run_module, make_container, extra, args, msg):
    firewall, engine = fake_host
    engine.containers.append(make_container(*extra))
    before = firewall.snapshot()
    result = run_module(main, args)
    assert result['failed'] is True
    assert msg in result['msg']
    assert firewall.restores == [] and firewall.snapshot() == before


def test_unknown_container_ref(fake_host, run_module):
    result = run_module(main, {'containers': ['lab-memcached-1', 'ghost']})
    assert result['failed'] is True and result['msg'] == 'no such container: ghost'


def test_stopped_replica_is_warned_about_not_fatal(fake_host, run_module, make_container):
    _firewall, engine = fake_host
    engine.containers.append(make_container('lab-memcached-3', 'f6', 'memcached', state='exited'))
    result = run_module(main, {'service': 'memcached'})
    assert result['changed'] is True
    assert [c['name'] for c in result['containers']] == ['lab-memcached-1', 'lab-memcached-2']
    # ansible-core 2.19 returns warnings as WarningSummary dicts
    assert 'container lab-memcached-3 of blackout memcached is not running (state: exited)' in \
        json.dumps(result['warnings'])


def test_expires_in_the_past_fails(fake_host, run_module):
    firewall, _engine = fake_host
    result = run_module(main, {'service': 'memcached', 'expires': '2026-11-27T11:59:59Z'})
    assert result['failed'] is True
    assert result['msg'] == 'expires 2026-11-27T11:59:59Z is in the past (now 2026-11-27T12:00:00Z)'
    assert firewall.restores == []


# --- check mode, diff, idempotence, restore ---------------------------------------------------

def test_check_mode_writes_nothing_and_predicts_the_run(fake_host, run_module):
    firewall, _engine = fake_host
    before = firewall.snapshot()
    check = run_module(main, {'service': 'memcached'}, check=True, diff=True)
    assert firewall.restores == [] and firewall.snapshot() == before
    assert not any(a[0].endswith('-restore') for a in firewall.calls)
    assert check['changed'] is True and lines(check)
    real = run_module(main, {'service': 'memcached'}, diff=True)
    assert len(firewall.restores) == 2  # one transaction per family
    for key in ('changed', 'added', 'removed', 'rules', 'since', 'diff', 'covered'):
        assert check[key] == real[key], key
    assert firewall.rules('ipv4') and set(firewall.rules('ipv4')) == set(real['rules']['ipv4'])
    assert set(firewall.rules('ipv6')) == set(real['rules']['ipv6'])


def test_rules_cover_both_replicas_every_address_and_loopback(fake_host, run_module):
    result = run_module(main, {'service': 'memcached'})
    v4 = result['rules']['ipv4']
    for addr in ('172.18.0.2', '172.19.0.2', '172.18.0.3'):
        assert any(line.startswith('-A DOCKER-USER -d %s/32 -p tcp' % addr) for line in v4), addr
        assert any(line.startswith('-A OUTPUT -d %s/32 -p tcp' % addr) for line in v4), addr
    assert not any('172.18.0.4' in line for line in v4)  # the bystander
    for family, loop in (('ipv4', '127.0.0.1/32'), ('ipv6', '::1/128')):
        ports = sorted(int(m) for line in result['rules'][family]
                       for m in re.findall(r'-d %s -p tcp -m tcp --dport (\d+)' % re.escape(loop), line))
        assert ports == [11211, 11212], family
    for line in lines(result, 'rules'):
        assert re.search(r' -[ds] (\d+\.\d+\.\d+\.\d+/32|[0-9a-f:]+/128) ', line), line
        assert '"netfence bo=memcached ct=lab-memcached-' in line
        assert 'since=20261127T120000Z' in line
    assert [c['name'] for c in result['covered']] == ['lab-memcached-1', 'lab-memcached-2']


def test_second_run_changes_nothing(fake_host, run_module):
    firewall, _engine = fake_host
    first = run_module(main, {'service': 'memcached'})
    state = firewall.snapshot()
    n = len(firewall.restores)
    for check in (False, True):
        again = run_module(main, {'service': 'memcached'}, check=check, diff=True)
        assert again['changed'] is False
        assert again['added'] == again['removed'] == EMPTY
        assert again['rules'] == first['rules'] and again['since'] == first['since']
        assert again['diff']['before'] == again['diff']['after']
    assert len(firewall.restores) == n and firewall.snapshot() == state


def test_diff_mode_before_and_after(fake_host, run_module):
    firewall, _engine = fake_host
    bl = run_module(main, {'service': 'memcached'}, diff=True)
    assert bl['diff']['before'] == ''
    after = bl['diff']['after'].splitlines()
    assert sorted(after) == sorted(['ipv4: ' + x for x in bl['rules']['ipv4']] +
                                   ['ipv6: ' + x for x in bl['rules']['ipv6']])
    assert bl['diff']['before_header'] == bl['diff']['after_header'] == 'netfence rules of memcached'
    check = run_module(main, {'service': 'memcached', 'state': 'absent'}, check=True, diff=True)
    assert firewall.rules('ipv4')
    restore = run_module(main, {'service': 'memcached', 'state': 'absent'}, diff=True)
    assert check['diff'] == restore['diff']
    assert restore['diff']['before'] == bl['diff']['after'] and restore['diff']['after'] == ''
    assert no_diff_without_flag(run_module)


def no_diff_without_flag(run_module):
    return 'diff' not in run_module(main, {'service': 'memcached'})


def test_restore_removes_only_this_blackout(fake_host, run_module):
    firewall, _engine = fake_host
    foreign = ('OUTPUT', '-d 10.9.9.9/32 -m comment --comment "netfence-lab not a tag" -j DROP')
    firewall.tables['ipv4']['rules'].insert(0, foreign)
    original = firewall.snapshot()
    run_module(main, {'service': 'bystander'})
    with_bystander = firewall.snapshot()
    bl = run_module(main, {'service': 'memcached'})
    check = run_module(main, {'service': 'memcached', 'state': 'absent'}, check=True)
    restore = run_module(main, {'service': 'memcached', 'state': 'absent'})
    assert check['removed'] == restore['removed'] and check['changed'] is True and restore['changed'] is True
    assert sorted(lines(restore, 'removed')) == sorted(lines(bl, 'added'))
    assert firewall.snapshot() == with_bystander
    again = run_module(main, {'service': 'memcached', 'state': 'absent'})
    assert again['changed'] is False
    run_module(main, {'service': 'bystander', 'state': 'absent'})
    assert firewall.snapshot() == original


def test_restore_needs_no_engine_and_finds_rules_of_gone_containers(fake_host, run_module):
    firewall, engine = fake_host
    run_module(main, {'service': 'memcached'})
    engine.containers = []
    engine.error = _docker_api.DockerApiError('engine gone')
    restore = run_module(main, {'service': 'memcached', 'state': 'absent'})
    assert restore['changed'] is True and not restore.get('failed')
    assert firewall.rules('ipv4') == [] and firewall.rules('ipv6') == []


def test_missing_ignore_removes_leftover_rules(fake_host, run_module):
    firewall, engine = fake_host
    run_module(main, {'service': 'memcached'})
    engine.containers = [c for c in engine.containers if 'memcached' not in c['Names'][0]]
    result = run_module(main, {'service': 'memcached', 'missing': 'ignore'})
    assert result['changed'] is True and lines(result, 'removed') and result['rules'] == EMPTY
    assert firewall.rules('ipv4') == []


def test_address_change_is_repaired(fake_host, run_module):
    firewall, engine = fake_host
    first = run_module(main, {'service': 'memcached'})
    engine.containers[1]['NetworkSettings']['Networks']['lab_front']['IPAddress'] = '172.18.0.33'
    second = run_module(main, {'service': 'memcached'})
    assert second['changed'] is True and second['since'] == first['since']
    # rules kept but out of the planned order are re-inserted (removed and added): look at the rest
    gone = set(lines(second, 'removed')) - set(lines(second, 'added'))
    new = set(lines(second, 'added')) - set(lines(second, 'removed'))
    assert gone and all('172.18.0.3/32' in line for line in gone)
    assert new and all('172.18.0.33/32' in line for line in new)
    assert not any('172.18.0.3/32' in line for line in firewall.rules('ipv4'))


def test_expires_is_kernel_enforced_and_reported(fake_host, run_module):
    result = run_module(main, {'service': 'memcached', 'expires': '1h30m'})
    assert result['since'] == '2026-11-27T12:00:00Z' and result['expires'] == '2026-11-27T13:30:00Z'
    for line in lines(result, 'rules'):
        assert '-m time --datestop 2026-11-27T13:30:00' in line, line


def test_reads_do_not_create_legacy_tables(fake_host, run_module):
    """iptables-legacy-save -t filter instantiates the legacy filter table: reads never use -t."""
    firewall, _engine = fake_host
    run_module(main, {'service': 'memcached'}, check=True)
    run_module(main, {'service': 'memcached'})
    run_module(main, {'service': 'memcached', 'state': 'absent'})
    assert any('-legacy-save' in argv[0] for argv in firewall.calls)
    assert firewall.legacy_reads_with_table() == []


def test_commands_are_argv_lists_without_shell(fake_host, run_module):
    firewall, _engine = fake_host
    run_module(main, {'service': 'memcached'})
    for argv in firewall.calls:
        assert argv[0].startswith('/usr/sbin/') and 'sh' not in argv[0].rsplit('/', 1)[1].split('-')


# --- verify: the module checks the published ports from the host ---------------------------

@pytest.fixture
def ports(monkeypatch):
    """The published ports as the module's connections see them: {(host, port): connected}
    (default: refused), and every connection attempted."""
    state = {'answer': {}, 'tried': []}

    def attempt(host, port, connect_timeout):
        state['tried'].append((host, port))
        return (True, 'connected') if state['answer'].get((host, port)) else (False, 'Connection refused')

    monkeypatch.setattr(_verify, 'attempt', attempt)
    monkeypatch.setattr(_verify, 'listening_tcp6', lambda port: True)
    monkeypatch.setattr(_verify, 'TIMEOUT', {'refused': 0.0, 'open': 0.0})
    return state


def test_verify_after_a_blackout(fake_host, run_module, ports):
    result = run_module(main, {'service': 'memcached', 'verify': True, 'verify_addresses': ['10.0.0.2']})
    assert result['changed'] is True and not result.get('failed')
    assert result['verify']['state'] == 'ok'
    assert sorted(set(ports['tried'])) == sorted((h, p) for h in ('127.0.0.1', '::1', '10.0.0.2')
                                                 for p in (11211, 11212))
    assert result['verify']['summary'] == ('refused: 10.0.0.2:11211 10.0.0.2:11212 127.0.0.1:11211 127.0.0.1:11212 '
                                           '[::1]:11211 [::1]:11212')


def test_verify_failure_names_the_port_and_keeps_the_change(fake_host, run_module, ports):
    firewall, _engine = fake_host
    ports['answer'][('127.0.0.1', 11212)] = True
    result = run_module(main, {'service': 'memcached', 'verify': True})
    assert result['failed'] is True and result['changed'] is True
    assert result['msg'] == ('127.0.0.1:11212 (lab-memcached-2) still accept connections after the blackout '
                             '(connected)')
    assert result['verify']['state'] == 'failed'
    assert set(firewall.rules('ipv4')) == set(result['rules']['ipv4'])


def test_verify_after_a_restore_looks_the_containers_up(fake_host, run_module, ports):
    run_module(main, {'service': 'memcached'})
    ports['answer'].update({(h, p): True for h in ('127.0.0.1', '::1') for p in (11211, 11212)})
    result = run_module(main, {'service': 'memcached', 'state': 'absent', 'verify': True})
    assert result['changed'] is True and result['verify']['state'] == 'ok'
    assert result['verify']['summary'].startswith('answering: 127.0.0.1:11211 127.0.0.1:11212')
    assert [c['name'] for c in result['containers']] == ['lab-memcached-1', 'lab-memcached-2']
    ports['answer'][('127.0.0.1', 11211)] = False
    result = run_module(main, {'service': 'memcached', 'state': 'absent', 'verify': True})
    assert result['failed'] is True and result['changed'] is False
    assert result['msg'] == '127.0.0.1:11211 (lab-memcached-1) do not answer after the restore (Connection refused)'


def test_verify_after_a_restore_without_the_engine_is_skipped(fake_host, run_module, ports):
    firewall, engine = fake_host
    run_module(main, {'service': 'memcached'})
    engine.error = _docker_api.DockerApiError('Docker engine unreachable at unix:///x.sock')
    result = run_module(main, {'service': 'memcached', 'state': 'absent', 'verify': True})
    assert result['changed'] is True and not result.get('failed')
    assert result['verify']['state'] == 'skipped'
    assert result['verify']['summary'] == ('skipped: the Docker engine could not be queried: Docker engine '
                                           'unreachable at unix:///x.sock')
    assert firewall.rules('ipv4') == [] and ports['tried'] == []


def test_verify_after_a_restore_names_another_blackout_that_keeps_the_ports_closed(fake_host, run_module, ports):
    run_module(main, {'service': 'memcached'})
    run_module(main, {'service': 'memcached', 'project': 'lab'})
    result = run_module(main, {'service': 'memcached', 'state': 'absent', 'verify': True})
    assert result['changed'] is True and not result.get('failed')
    assert result['verify']['state'] == 'skipped'
    assert result['verify']['summary'] == ('skipped: the containers are still blacked out by lab/memcached '
                                           '(restore it with the matching project)')


def test_verify_is_skipped_in_check_mode(fake_host, run_module, ports):
    result = run_module(main, {'service': 'memcached', 'verify': True}, check=True)
    assert result['verify'] == {'state': 'skipped', 'expect': 'refused', 'results': [], 'summary': 'skipped: check mode'}
    assert ports['tried'] == []
