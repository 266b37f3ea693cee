# -*- coding: utf-8 -*-
# Copyright (c) 2026, netfence.docker contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Issue #17 in the fleet filters: WHO and WHY in the status table, the panic button's report,
reason / requested_by in the controller-side input check."""

from __future__ import annotations

from ansible_collections.netfence.docker.plugins.filter.fleet import (
    blackout_input_error,
    fleet_restore,
    fleet_status,
)

NONE = {'ipv4': [], 'ipv6': []}


def test_status_table_shows_who_and_why():
    bo = {'name': 'memcached', 'state': 'active', 'since': '2026-11-27T12:00:00Z', 'expires': '2026-11-27T13:00:00Z',
          'containers': [{'name': 'mc-1', 'id': 'a1', 'addresses': ['172.18.0.2']}], 'paths': ['forward'],
          'rules': {'ipv4': ['-A DOCKER-USER a'], 'ipv6': []}, 'drift': {}, 'drift_checked': True,
          'requested_by': 'alice', 'reason': 'deploy 42 (CHANGE-1)'}
    plain = dict(bo, requested_by=None, reason=None)
    hostvars = {'h1': {'_netfence_info': {'blackouts': [bo], 'docker': {'reachable': True}}},
                'h2': {'_netfence_info': {'blackouts': [plain], 'docker': {'reachable': True}}},
                'h3': {'_netfence_info': {'blackouts': [], 'docker': {'reachable': True}}}}
    status = fleet_status(['h1', 'h2', 'h3'], hostvars, 'memcached')
    assert status['hosts']['h1']['blackouts'][0]['requested_by'] == 'alice'
    assert status['hosts']['h1']['blackouts'][0]['reason'] == 'deploy 42 (CHANGE-1)'
    header, h1, h2, h3 = status['lines'][1:5]
    assert header.split()[-3:] == ['WHO', 'WHY', 'DRIFT']
    assert ' alice  deploy 42 (CHANGE-1)  -' in h1, h1
    assert h2.split()[-3:] == ['-', '-', '-'] and h3.split()[-3:] == ['-', '-', '-']


def test_panic_button_report_names_what_each_host_lifted():
    lifted = {'h1': {'lab/memcached': {'rules': 22}},
              'h2': {'bystander': {'rules': 8}, 'memcached': {'rules': 22}},
              'h3': {}}
    hostvars = {h: {'_netfence_result': {'changed': bool(v), 'outcome': 'restored' if v else 'nothing_to_restore',
                                         'all': True, 'lifted': v, 'containers': [], 'rules': NONE, 'added': NONE,
                                         'removed': {'ipv4': ['x'] * sum(b['rules'] for b in v.values()), 'ipv6': []},
                                         'expires': None}}
                for h, v in lifted.items()}
    report = fleet_restore(['h1', 'h2', 'h3'], hostvars, '', all_blackouts=True)
    assert report['complete'] is True
    assert report['lines'][0] == 'Every netfence blackout lifted on every host (3).'
    assert '  lifted: lab/memcached (22 rules)' in report['lines']
    assert '  lifted: bystander (8 rules), memcached (22 rules)' in report['lines']
    assert '  lifted: nothing' in report['lines']
    failed = fleet_restore(['h1'], {'h1': {'_netfence_restore_failure': {'reason': 'boom'}}}, '', all_blackouts=True)
    assert failed['complete'] is False and failed['message'].startswith('Restore of every netfence blackout failed')


def test_input_check_covers_reason_and_requested_by():
    good = {'service': 'memcached', 'state': 'present', 'reason': 'deploy 42', 'requested_by': 'alice@example.com'}
    assert blackout_input_error(good) == ''
    assert blackout_input_error(dict(good, reason='a\nb')).startswith(
        'Invalid input: reason must be one line of printable text')
    assert blackout_input_error(dict(good, requested_by='bob smith')).startswith(
        "Invalid input: requested_by 'bob smith' is not a user name")
