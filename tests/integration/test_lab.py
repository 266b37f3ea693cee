"""The test lab itself: hosts, engines, SSH and the traffic probe (no netfence rules)."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

LAB_DIR = Path(__file__).resolve().parents[1] / 'lab'
sys.path.insert(0, str(LAB_DIR))

import netfence_lab  # noqa: E402  pylint: disable=wrong-import-position

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason='the lab needs root')

SERVICE_CONTAINERS = ('lab-memcached-1', 'lab-memcached-2', 'lab-bystander-1')


@pytest.fixture(scope='session')
def lab_hosts():
    """Bring the lab up (a no-op when it is already up and healthy)."""
    return netfence_lab.up()


def _ssh(host, command):
    return subprocess.run(
        ['ssh', '-i', netfence_lab.SSH_KEY, '-o', 'StrictHostKeyChecking=no',
         '-o', 'UserKnownHostsFile=/dev/null', '-o', 'LogLevel=ERROR', '-o', 'BatchMode=yes',
         '-o', 'ConnectTimeout=5', f'root@{host.addr}', command],
        capture_output=True, text=True, timeout=60, check=False)


def test_fresh_lab_every_path_open(lab_hosts):
    for host in lab_hosts:
        results = netfence_lab.probe(host, service='all')
        assert sorted(results) == sorted(SERVICE_CONTAINERS), host.name
        expected_paths = {'external', 'localhost4', 'localhost6', 'own_addr',
                          'peer:lab_front', 'egress'}
        for name, cells in results.items():
            paths = expected_paths | ({'peer:lab_back'} if name == 'lab-memcached-1' else set())
            assert set(cells) == paths, (host.name, name)
            bad = {p: o for p, o in cells.items() if o != 'ok'}
            assert not bad, f'{host.name} {name}: {bad}\n{netfence_lab.render_table(results)}'


def test_both_docker_versions_over_ssh(lab_hosts):
    versions = {}
    for host in lab_hosts:
        res = _ssh(host, "docker version -f '{{.Server.Version}}'")
        assert res.returncode == 0, res.stderr
        versions[host.name] = res.stdout.strip()
        assert versions[host.name].startswith(host.series + '.'), versions
    majors = {v.split('.')[0] for v in versions.values()}
    assert {'20', '28'} <= majors, versions
    if netfence_lab.docker29_available():  # the default lab adds h4 and h5 (nftables backend)
        assert '29' in majors, versions


def test_ssh_session_acts_on_its_host(lab_hosts):
    for host in lab_hosts:
        # Docker 29's nftables backend has no DOCKER-USER: its rules are in table ip docker-bridges.
        firewall = 'nft list tables' if host.has('nft-backend') else 'iptables -S DOCKER-USER'
        res = _ssh(host, f'ip -4 -o addr show dev eth0; {firewall}; '
                         "docker ps --format '{{.Names}}'")
        assert res.returncode == 0, res.stderr
        assert host.addr in res.stdout
        assert ('table ip docker-bridges' if host.has('nft-backend') else '-N DOCKER-USER') in res.stdout
        assert 'lab-memcached-1' in res.stdout


def test_inventory_lists_every_host(lab_hosts):
    text = Path(netfence_lab.inventory_path()).read_text(encoding='utf-8')
    for host in lab_hosts:
        assert f'{host.name} ansible_host={host.addr} ' in text
        assert f'netfence_lab_netns={host.netns}' in text
    assert f'ansible_ssh_private_key_file={netfence_lab.SSH_KEY}' in text


def test_held_connection_sees_reset_within_a_second(lab_hosts):
    host = lab_hosts[0]
    services, _clients = netfence_lab.service_containers(host, 'memcached')
    attrs = next(a for a in services if a['Name'] == '/lab-memcached-2')
    addr = attrs['NetworkSettings']['Networks']['lab_front']['IPAddress']
    rule = ['DOCKER-USER', '-d', f'{addr}/32', '-p', 'tcp', '-m', 'conntrack', '--ctdir',
            'ORIGINAL', '-m', 'comment', '--comment', 'netfence-lab test_lab',
            '-j', 'REJECT', '--reject-with', 'tcp-reset']
    with netfence_lab.hold_connection(host, 'lab-memcached-2', 'peer:lab_front') as conn:
        assert conn.established, conn.initial
        assert conn.exchange()['outcome'] == 'ok'
        netfence_lab.host_exec(host, ['iptables', '-w', '-I'] + rule)
        try:
            res = conn.exchange(timeout=2.0)
            assert res['outcome'] in ('reset', 'closed'), res
            assert res['elapsed'] < 1.0, res
            assert netfence_lab.probe(host, paths=['peer:lab_front'])['lab-memcached-2'] == {
                'peer:lab_front': 'refused'}
        finally:
            netfence_lab.host_exec(host, ['iptables', '-w', '-D'] + rule)
    assert netfence_lab.probe(host, paths=['peer:lab_front'])['lab-memcached-2'] == {
        'peer:lab_front': 'ok'}
