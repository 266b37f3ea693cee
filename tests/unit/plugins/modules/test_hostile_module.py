# -*- coding: utf-8 -*-
# Copyright (c) 2026, netfence.docker contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Issue 12 at module level: hostile user input and hostile engine answers fail cleanly before any
payload is written; the state directory and record are not a foothold."""

from __future__ import annotations

import datetime as dt
import json
import os

import pytest

from ansible_collections.netfence.docker.plugins.module_utils import _iptables, _validate
from ansible_collections.netfence.docker.plugins.modules import blackout, blackout_info

INJECTION = ' -j RETURN\n-I INPUT 1 -m comment --comment INJECTED -j ACCEPT\n#'


def _warnings(result):
    return json.dumps(result.get('warnings', []))


@pytest.mark.parametrize('args, msg', [
    ({'service': 'memcached', 'allow_from': ['fe80::1%1' + INJECTION]}, "allow_from entry 'fe80::1%1 -j RETURN"),
    ({'service': 'memcached', 'allow_from': ['fe80::1%eth0']}, 'it contains a zone suffix'),
    ({'service': 'memcached', 'ports': ['11211\n-I INPUT 1 -j ACCEPT']}, "ports entry '11211\\n-I INPUT"),
    ({'service': 'memcached', 'verify': True, 'verify_addresses': ['::1\n-I']}, 'verify_addresses entry'),
    ({'service': 'memcached', 'project': 'lab\n-I'}, "project 'lab\\n-I' is invalid: it contains a newline"),
    ({'service': 'memc\u0430ched'}, 'a non-ASCII character'),
    ({'labels': {'com.docker.compose.service': 'mem\tcached'}, 'name': 'mc'}, 'labels: label'),
    ({'service': 'memcached', 'name': 'n' * 50}, 'is too long (50 > 49 characters'),
    ({'service': 'memcached', 'expires': '2040-01-01T00:00:00Z'}, 'expires 2040-01-01T00:00:00Z is too far'),
])
def test_hostile_user_input_fails_before_any_payload(fake_host, run_module, args, msg):
    firewall, _engine = fake_host
    before = firewall.snapshot()
    result = run_module(blackout.main, args)
    assert result['failed'] is True and msg in result['msg'], result['msg']
    assert firewall.restores == [] and firewall.snapshot() == before


def test_a_duration_ending_after_2038_is_refused(fake_host, run_module, clock):
    firewall, _engine = fake_host
    clock(dt.datetime(2038, 1, 18, 12, 0, 0, tzinfo=dt.timezone.utc))
    result = run_module(blackout.main, {'service': 'memcached', 'expires': '1d'})
    assert result['failed'] is True and 'expires 2038-01-19T12:00:00Z is too far in the future' in result['msg']
    assert firewall.restores == []


@pytest.mark.parametrize('where, value, msg', [
    ('name', 'lab-memcached-1\n-I INPUT 1 -j ACCEPT', 'name of container a1a1a1a1a1a1'),
    ('ipv4', '172.18.0.2\n-I INPUT 1 -j ACCEPT', 'IPAddress on network lab_front of container lab-memcached-1'),
    ('ipv6', 'fe80::1%1' + INJECTION, 'GlobalIPv6Address on network lab_front of container lab-memcached-1'),
    ('ipv6', 'fd00::2%eth0', 'zone suffix'),
    ('host_ip', '0.0.0.0\n-I', 'IP in Ports of container lab-memcached-1'),
    ('label', 'memcached\n-I INPUT 1 -j ACCEPT', 'label com.docker.compose.service of container lab-memcached-1'),
])
def test_hostile_engine_answer_is_refused_naming_the_container(fake_host, run_module, where, value, msg):
    firewall, engine = fake_host
    raw = engine.containers[0]
    if where == 'name':
        raw['Names'] = ['/' + value]
    elif where == 'ipv4':
        raw['NetworkSettings']['Networks']['lab_front']['IPAddress'] = value
    elif where == 'ipv6':
        raw['NetworkSettings']['Networks']['lab_front']['GlobalIPv6Address'] = value
    elif where == 'host_ip':
        raw['Ports'][0]['IP'] = value
    else:
        raw['Labels']['com.docker.compose.service'] = value
    result = run_module(blackout.main, {'service': 'memcached'})
    assert result['failed'] is True
    assert result['msg'].startswith('engine answer refused: ') and msg in result['msg'], result['msg']
    assert firewall.restores == []


def test_a_render_error_in_one_family_writes_nothing(fake_host, run_module, monkeypatch):
    """Every payload is rendered before the first is written: a refused IPv6 line keeps IPv4 untouched."""
    firewall, engine = fake_host
    engine.containers[0]['NetworkSettings']['Networks']['lab_front']['GlobalIPv6Address'] = 'fd00::2'
    real = _iptables.restore_payload

    def payload(to_add, to_remove, family):
        if family == 'ipv6':
            raise _validate.RenderError('token refused')
        return real(to_add, to_remove, family)

    monkeypatch.setattr(_iptables, "restore_payload", payload)
    result = run_module(blackout.main, {'service': 'memcached'})
    assert result['failed'] is True and 'internal error, nothing was written: token refused' in result['msg']
    assert firewall.restores == []


def test_restore_accepts_the_longer_names_of_earlier_versions(fake_host, run_module):
    result = run_module(blackout.main, {'service': 'memcached', 'name': 'n' * 100, 'state': 'absent'})
    assert not result.get('failed'), result.get('msg')
    result = run_module(blackout.main, {'service': 'memcached', 'name': 'n' * 101, 'state': 'absent'})
    assert result['failed'] is True


# --------------------------------------------------------------------------- the state record

@pytest.fixture
def state_dir(tmp_path, monkeypatch):
    folder = tmp_path / 'state'
    monkeypatch.setenv('NETFENCE_STATE_FILE', str(folder / 'blackouts.json'))
    return folder


def test_check_mode_and_blackout_info_create_nothing(fake_host, run_module, state_dir):
    result = run_module(blackout.main, {'service': 'memcached'}, check=True)
    assert result['changed'] is True and not state_dir.exists()
    result = run_module(blackout_info.main, {})
    assert not result.get('failed'), result.get('msg')
    assert not state_dir.exists()
    run_module(blackout.main, {'service': 'memcached'})
    assert sorted(os.listdir(state_dir)) == ['blackouts.json', 'blackouts.json.lock', 'host.lock']
    assert os.stat(state_dir).st_mode & 0o777 == 0o700
    assert os.stat(state_dir / 'blackouts.json').st_mode & 0o777 == 0o600


def test_corrupt_record_is_kept_aside_with_a_warning(fake_host, run_module, state_dir):
    state_dir.mkdir(mode=0o700)
    (state_dir / 'blackouts.json').write_text('{"version": 2, "hosts": {', encoding='utf-8')
    os.chmod(state_dir / 'blackouts.json', 0o600)
    info = run_module(blackout_info.main, {})
    assert 'is corrupt (not valid JSON' in _warnings(info)
    assert sorted(os.listdir(state_dir)) == ['blackouts.json']  # a read leaves it as it is
    result = run_module(blackout.main, {'service': 'memcached'})
    assert not result.get('failed'), result.get('msg')
    assert 'was corrupt (not valid JSON' in _warnings(result) and 'kept aside as' in _warnings(result)
    files = sorted(os.listdir(state_dir))
    aside = [f for f in files if f.startswith('blackouts.json.corrupt-')]
    assert len(aside) == 1 and aside[0].endswith('Z')
    assert (state_dir / aside[0]).read_text(encoding='utf-8') == '{"version": 2, "hosts": {'
    assert json.loads((state_dir / 'blackouts.json').read_text(encoding='utf-8'))['version'] == 2


def test_symlinked_state_directory_is_not_followed(fake_host, run_module, state_dir, tmp_path):
    """The host lock lives in the state directory: a symlinked one is refused before any change."""
    firewall, _engine = fake_host
    target = tmp_path / 'elsewhere'
    target.mkdir(mode=0o700)
    state_dir.symlink_to(target)
    result = run_module(blackout.main, {'service': 'memcached'})
    assert result['failed'] is True and 'is a symbolic link: refusing to follow it' in result['msg'], result['msg']
    assert firewall.restores == []
    assert os.listdir(target) == []
    info = run_module(blackout_info.main, {})
    assert 'is a symbolic link' in _warnings(info)


def test_symlinked_record_and_lock_are_not_followed(fake_host, run_module, state_dir, tmp_path):
    state_dir.mkdir(mode=0o700)
    victim = tmp_path / 'victim'
    victim.write_text('precious\n', encoding='utf-8')
    (state_dir / 'blackouts.json.lock').symlink_to(victim)
    result = run_module(blackout.main, {'service': 'memcached'})
    assert 'lock file %s is a symbolic link' % (state_dir / 'blackouts.json.lock') in _warnings(result)
    os.unlink(state_dir / 'blackouts.json.lock')
    (state_dir / 'blackouts.json').symlink_to(victim)
    result = run_module(blackout.main, {'service': 'memcached', 'state': 'absent'})
    assert 'state file %s is a symbolic link' % (state_dir / 'blackouts.json') in _warnings(result)
    assert victim.read_text(encoding='utf-8') == 'precious\n'


@pytest.mark.parametrize('mode', [0o770, 0o707, 0o777])
def test_group_or_world_writable_state_directory_is_refused(fake_host, run_module, state_dir, mode):
    firewall, _engine = fake_host
    state_dir.mkdir()
    os.chmod(state_dir, mode)
    result = run_module(blackout.main, {'service': 'memcached'})
    assert result['failed'] is True, result
    assert 'is group- or world-writable (mode %04o): refusing to use it' % mode in result['msg']
    assert firewall.restores == []
    assert os.listdir(state_dir) == []


def test_writable_record_is_refused(fake_host, run_module, state_dir):
    state_dir.mkdir(mode=0o700)
    (state_dir / 'blackouts.json').write_text('{"version": 2, "hosts": {}}', encoding='utf-8')
    os.chmod(state_dir / 'blackouts.json', 0o666)
    result = run_module(blackout_info.main, {})
    assert 'state file %s is group- or world-writable' % (state_dir / 'blackouts.json') in _warnings(result)


@pytest.mark.parametrize('value', ['30m\n', ' 30m', '\uff13\uff10m', '30m\n-I INPUT 1 -j ACCEPT', '2030-01-01\t00:00:00Z'])
def test_expires_is_strict(fake_host, run_module, value):
    firewall, _engine = fake_host
    result = run_module(blackout.main, {'service': 'memcached', 'expires': value})
    assert result['failed'] is True and result['msg'].startswith('expires '), result['msg']
    assert firewall.restores == []


def test_expires_with_a_space_between_date_and_time_still_works(fake_host, run_module):
    result = run_module(blackout.main, {'service': 'memcached', 'expires': '2026-11-27 18:00:00Z'})
    assert not result.get('failed'), result.get('msg')
    assert result['expires'] == '2026-11-27T18:00:00Z'


def test_blackout_info_name_is_strict(fake_host, run_module):
    result = run_module(blackout_info.main, {'name': 'memcached\n-I'})
    assert result['failed'] is True and "blackout name 'memcached\\n-I' is invalid" in result['msg']
