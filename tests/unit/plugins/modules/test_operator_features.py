# -*- coding: utf-8 -*-
# Copyright (c) 2026, netfence.docker contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Issue #17 in the modules: who and why (reason, requested_by), renewal, the panic button (all)."""

from __future__ import annotations

import json
import os

import pytest

from ansible_collections.netfence.docker.plugins.module_utils import _audit
from ansible_collections.netfence.docker.plugins.modules import blackout, blackout_info

FOREIGN = ('DOCKER-USER', '-d 172.18.0.2/32 -p tcp --dport 22 -j ACCEPT')


@pytest.fixture
def syslog_lines(monkeypatch):
    """Every (priority, line) the modules write to syslog, and the ident they open it with."""
    written = []

    class FakeSyslog:
        LOG_PID = 1
        LOG_USER = 8
        LOG_NOTICE = 5

        @staticmethod
        def openlog(ident, option, facility):
            written.append(('open', ident))

        @staticmethod
        def syslog(priority, line):
            written.append((priority, line))

        @staticmethod
        def closelog():
            pass

    monkeypatch.setattr(_audit, 'syslog', FakeSyslog)
    return written


def logged(written):
    return [line for prio, line in written if prio != 'open']


def run_ok(run_module, main, args, check=False):
    result = run_module(main, args, check=check)
    assert not result.get('failed'), result.get('msg')
    return result


def info_of(run_module, name):
    found = {b['name']: b for b in run_ok(run_module, blackout_info.main, {})['blackouts']}
    return found.get(name)


def state_record():
    with open(os.environ['NETFENCE_STATE_FILE'], encoding='utf-8') as handle:
        data = json.load(handle)
    (section,) = data['hosts'].values()
    return section['blackouts']


# --- audit ---------------------------------------------------------------------------------

@pytest.mark.parametrize('args, msg', [
    ({'reason': 'two\nlines'}, 'reason must be one line of printable text'),
    ({'reason': 'tab\there'}, 'reason must be one line of printable text'),
    ({'reason': 'bell\x07'}, 'reason must be one line of printable text'),
    ({'reason': 'x' * 201}, 'reason is 201 characters long; at most 200'),
    ({'reason': ' padded'}, 'starts or ends with a space'),
    ({'requested_by': 'alice bob'}, 'is not a user name'),
    ({'requested_by': '-alice'}, 'is not a user name'),
    ({'requested_by': 'a' * 65}, 'is not a user name'),
    ({'requested_by': 'evil\nuser'}, 'is not a user name'),
])
def test_bad_audit_fields_fail_before_anything_changes(fake_host, run_module, syslog_lines, args, msg):
    firewall, _engine = fake_host
    before = firewall.snapshot()
    result = run_module(blackout.main, dict(args, service='memcached'))
    assert result['failed'] is True and msg in result['msg'], result['msg']
    assert firewall.snapshot() == before and firewall.restores == []
    assert logged(syslog_lines) == []


def test_good_audit_fields_pass():
    assert _audit.validate_reason('deploy 2026.12.02 (CHANGE-1234): café, 50% "canary"') is not None
    assert len(_audit.validate_reason('é' * 200)) == 200
    for name in ('alice', 'a.b-c_d', 'alice@example.com', 'svc+ci', 'A' * 64):
        assert _audit.validate_requested_by(name) == name
    assert _audit.validate_reason('') is None and _audit.validate_requested_by('') is None


def test_who_and_why_recorded_returned_logged(fake_host, run_module, syslog_lines):
    result = run_ok(run_module, blackout.main, {'service': 'memcached', 'expires': '1h', 'reason': 'deploy "42"', 'requested_by': 'alice'})
    assert result['reason'] == 'deploy "42"' and result['requested_by'] == 'alice'
    assert result['audit']['event'] == 'blackout'
    entry = state_record()['memcached']
    assert entry['reason'] == 'deploy "42"' and entry['requested_by'] == 'alice'
    found = info_of(run_module, 'memcached')
    assert found['reason'] == 'deploy "42"' and found['requested_by'] == 'alice' and found['state'] == 'active'
    assert ('open', 'netfence') in syslog_lines
    (line,) = logged(syslog_lines)
    assert line.startswith('blackout memcached by=alice reason="deploy \\"42\\"" expires=2026-11-27T13:00:00Z added=')
    assert result['audit']['logged'] == line


def test_same_run_logs_nothing_and_a_run_without_reason_keeps_it(fake_host, run_module, syslog_lines):
    firewall, _engine = fake_host
    run_ok(run_module, blackout.main, {'service': 'memcached', 'reason': 'window', 'requested_by': 'alice'})
    n = len(firewall.restores)
    again = run_ok(run_module, blackout.main, {'service': 'memcached', 'reason': 'window', 'requested_by': 'alice'})
    bare = run_ok(run_module, blackout.main, {'service': 'memcached'})
    assert again['changed'] is False and bare['changed'] is False and len(firewall.restores) == n
    assert bare['reason'] == 'window' and bare['requested_by'] == 'alice' and bare['audit']['event'] is None
    assert len(logged(syslog_lines)) == 1
    assert state_record()['memcached']['reason'] == 'window'


def test_new_reason_is_a_renewal_without_touching_the_rules(fake_host, run_module, syslog_lines):
    firewall, _engine = fake_host
    run_ok(run_module, blackout.main, {'service': 'memcached', 'reason': 'window', 'requested_by': 'alice'})
    rules = firewall.rules('ipv4')
    n = len(firewall.restores)
    renewed = run_ok(run_module, blackout.main, {'service': 'memcached', 'reason': 'window, longer', 'requested_by': 'bob'})
    assert renewed['changed'] is True and renewed['audit']['event'] == 'renewal'
    assert len(firewall.restores) == n and firewall.rules('ipv4') == rules
    assert info_of(run_module, 'memcached')['reason'] == 'window, longer'
    assert logged(syslog_lines)[-1].startswith('renewal memcached by=bob reason="window, longer"')


def test_check_mode_reports_a_new_reason_and_writes_nothing(fake_host, run_module, syslog_lines):
    run_ok(run_module, blackout.main, {'service': 'memcached', 'reason': 'window'})
    result = run_ok(run_module, blackout.main, {'service': 'memcached', 'reason': 'other'}, check=True)
    assert result['changed'] is True and result['audit'] == {'event': 'renewal', 'logged': None}
    assert state_record()['memcached']['reason'] == 'window' and len(logged(syslog_lines)) == 1


def test_repair_and_restore_are_logged(fake_host, run_module, syslog_lines):
    firewall, _engine = fake_host
    run_ok(run_module, blackout.main, {'service': 'memcached', 'reason': 'window', 'requested_by': 'alice'})
    firewall.tables['ipv4']['rules'] = [r for r in firewall.tables['ipv4']['rules'] if r[0] != 'OUTPUT']
    repaired = run_ok(run_module, blackout.main, {'service': 'memcached', 'requested_by': 'cron'})
    assert repaired['changed'] is True and repaired['audit']['event'] == 'repair'
    # The record keeps who made it; the log line names who repaired it.
    assert repaired['reason'] == 'window' and repaired['requested_by'] == 'alice'
    assert repaired['audit']['logged'].startswith('repair memcached by=cron reason="window"')
    restored = run_ok(run_module, blackout.main, {'service': 'memcached', 'state': 'absent', 'reason': 'done', 'requested_by': 'alice'})
    assert restored['audit']['event'] == 'restore'
    events = [line.split()[0] for line in logged(syslog_lines)]
    assert events == ['blackout', 'repair', 'restore'], logged(syslog_lines)
    assert logged(syslog_lines)[-1].startswith('restore memcached by=alice reason="done"')
    assert 'memcached' not in state_record()


# --- renewal -------------------------------------------------------------------------------

def test_renewal_swaps_the_expiry_in_one_transaction_per_family(fake_host, run_module, syslog_lines):
    firewall, _engine = fake_host
    first = run_ok(run_module, blackout.main, {'service': 'memcached', 'expires': '1h'})
    old = firewall.rules('ipv4') + firewall.rules('ipv6')
    n = len(firewall.restores)
    renewed = run_ok(run_module, blackout.main, {'service': 'memcached', 'expires': '3h', 'reason': 'overrun'})
    assert renewed['changed'] is True and renewed['audit']['event'] == 'renewal'
    assert renewed['since'] == first['since'] and renewed['expires'] == '2026-11-27T15:00:00Z'
    payloads = {argv[0].rsplit('/', 1)[1]: payload for argv, payload in firewall.restores[n:]}
    assert sorted(payloads) == ['ip6tables-nft-restore', 'iptables-nft-restore'], payloads  # one per family
    for family, payload in zip(('ipv6', 'ipv4'), sorted(payloads.values())):
        # One table, one COMMIT: every deletion and insertion lands at once (iptables-restore is atomic).
        assert payload.count('*filter') == 1 and payload.count('COMMIT') == 1, payload
        body = payload.splitlines()
        deletes = [line for line in body if line.startswith('-D ')]
        inserts = [line for line in body if line.startswith('-I ')]
        assert deletes and len(deletes) == len(inserts), payload
        assert all('--datestop 2026-11-27T13:00:00' in line for line in deletes)
        assert all('--datestop 2026-11-27T15:00:00' in line for line in inserts)
    assert len(old) == sum(p.count('\n-D ') for p in payloads.values())
    assert info_of(run_module, 'memcached')['expires'] == '2026-11-27T15:00:00Z'
    assert 'previous_expires=2026-11-27T13:00:00Z' in logged(syslog_lines)[-1]


# --- the panic button ----------------------------------------------------------------------

def test_all_lifts_every_blackout_and_nothing_else(fake_host, run_module, syslog_lines):
    firewall, _engine = fake_host
    firewall.tables['ipv4']['rules'].insert(0, FOREIGN)
    before = firewall.snapshot()
    run_ok(run_module, blackout.main, {'service': 'memcached', 'reason': 'a', 'requested_by': 'alice'})
    run_ok(run_module, blackout.main, {'service': 'bystander', 'expires': '2h'})
    run_ok(run_module, blackout.main, {'containers': ['lab-client-front'], 'name': 'drill-7'})
    counts = {}
    for line in firewall.rules('ipv4') + firewall.rules('ipv6'):
        name = line.split('netfence bo=')[1].split()[0]
        counts[name] = counts.get(name, 0) + 1
    assert sorted(counts) == ['bystander', 'drill-7', 'memcached']
    result = run_ok(run_module, blackout.main, {'state': 'absent', 'all': True, 'reason': 'incident', 'requested_by': 'oncall'})
    assert result['changed'] is True and result['all'] is True
    assert {n: v['rules'] for n, v in result['lifted'].items()} == counts
    assert result['lifted']['memcached']['reason'] == 'a' and result['lifted']['bystander']['expires']
    assert firewall.snapshot() == before  # the foreign rule stays, where it was
    assert state_record() == {}
    assert info_of(run_module, 'memcached') is None
    assert [line.split()[:2] for line in logged(syslog_lines)[-3:]] == [
        ['restore', 'bystander'], ['restore', 'drill-7'], ['restore', 'memcached']]
    assert all('by=oncall reason="incident"' in line and 'all=true' in line for line in logged(syslog_lines)[-3:])
    again = run_ok(run_module, blackout.main, {'state': 'absent', 'all': True})
    assert again['changed'] is False and again['lifted'] == {}


def test_all_lifts_a_recorded_blackout_whose_rules_were_flushed(fake_host, run_module, syslog_lines):
    firewall, _engine = fake_host
    run_ok(run_module, blackout.main, {'service': 'memcached'})
    for family in ('ipv4', 'ipv6'):
        firewall.tables[family]['rules'] = [r for r in firewall.tables[family]['rules'] if 'netfence' not in r[1]]
    result = run_ok(run_module, blackout.main, {'state': 'absent', 'all': True})
    assert result['changed'] is True and result['lifted']['memcached']['rules'] == 0
    assert result['lifted']['memcached']['recorded'] is True and state_record() == {}


def test_all_in_check_mode_changes_nothing(fake_host, run_module, syslog_lines):
    firewall, _engine = fake_host
    run_ok(run_module, blackout.main, {'service': 'memcached'})
    before = firewall.snapshot()
    result = run_ok(run_module, blackout.main, {'state': 'absent', 'all': True}, check=True)
    assert result['changed'] is True and result['lifted']['memcached']['rules'] > 0
    assert firewall.snapshot() == before and 'memcached' in state_record()
    assert len(logged(syslog_lines)) == 1


@pytest.mark.parametrize('args, msg', [
    ({'all': True, 'service': 'memcached', 'state': 'absent'}, 'all is mutually exclusive with service'),
    ({'all': True, 'name': 'x', 'state': 'absent'}, 'all is mutually exclusive with name'),
    ({'all': True}, 'all: true is only for state: absent'),
    ({'all': False}, 'one of the following is required: service, containers, labels'),
])
def test_all_refuses_selectors_and_state_present(fake_host, run_module, args, msg):
    firewall, _engine = fake_host
    run_ok(run_module, blackout.main, {'service': 'memcached'})
    before = firewall.snapshot()
    result = run_module(blackout.main, args)
    assert result['failed'] is True and msg in result['msg'], result['msg']
    assert firewall.snapshot() == before
