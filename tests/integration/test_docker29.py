"""Docker 29 specifics (issue 18), on the lab's Docker 29 hosts: h4 (iptables backend, Docker's
default) and h5 (``--firewall-backend=nftables``) in the default lab.

Docker 29 is a static build carried beside the checkout (../shared/docker29, see tests/lab/README.md);
without it these tests are skipped, saying so. The blackout cycle itself (every path cut, held
connections cut, second run unchanged, restore identical) runs on both flavours in test_blackout.py
(``docker29`` and ``docker29+nft-backend``). Here:

- 29 has no DOCKER-ISOLATION chains (20.10 and 28 have them); the iptables flavour keeps DOCKER-USER;
- ``backend: auto`` follows the engine's ``GET /info`` ``FirewallBackend.Driver``: iptables on h4,
  nftables on h5 (no DOCKER-USER there);
- with the nftables backend Docker's ``docker-bridges`` tables sit next to our ``inet netfence`` table,
  whose base chains come before Docker's accepting ``filter-FORWARD`` chain;
- an engine restart with the nftables backend (Docker rebuilds its tables) keeps our table, and the
  blackout still refuses traffic.
"""
from __future__ import annotations

import json
import os

import pytest

import netfence_lab  # tests/lab is put on sys.path by conftest.py
from nf_helpers import SERIES_29, check_ok, held_host

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason='the lab needs root')

SERVICE = 'memcached'
REPLICAS = ('lab-memcached-1', 'lab-memcached-2')
BYSTANDER = 'lab-bystander-1'


def restore(host, run_module) -> None:
    for name in (SERVICE,):
        run_module(host, 'blackout', service=name, state='absent')


@pytest.fixture(scope='module', params=SERIES_29, ids=lambda s: f'docker{s}')
def host(request, host_of_series, run_module, netfence_rules):
    """Each Docker 29 flavour; left without any rule of ours."""
    yield from held_host(host_of_series(request.param), netfence_rules, lambda h: restore(h, run_module))


@pytest.fixture()
def nft_host(host):
    if not host.has('nft-backend'):
        pytest.skip('needs the nftables firewall backend')
    return host


def iptables_save(host) -> str:
    return '\n'.join(netfence_lab.host_exec(host, [tool], check=False).stdout
                     for tool in ('iptables-nft-save', 'ip6tables-nft-save', 'iptables-legacy-save',
                                  'ip6tables-legacy-save'))


def nft_chains(host) -> list[dict]:
    """Base chains of every nft table in the host's namespace: {family, table, name, hook, prio}."""
    res = netfence_lab.host_exec(host, ['nft', '-j', 'list', 'chains'])
    return [o['chain'] for o in json.loads(res.stdout)['nftables'] if 'chain' in o and o['chain'].get('hook')]


def nft_tables(host) -> list[str]:
    res = netfence_lab.host_exec(host, ['nft', 'list', 'tables'])
    return sorted(line.split(None, 1)[1] for line in res.stdout.splitlines() if line.startswith('table '))


def engine_info(host) -> dict:
    client = host.client(timeout=10)
    try:
        return client.info()
    finally:
        client.close()


def cut_problems(host, expect_cut: bool) -> list[str]:
    probe = netfence_lab.probe(host, service='all')
    problems = []
    for name, cells in probe.items():
        for path, outcome in cells.items():
            want_cut = expect_cut and name in REPLICAS and path != 'egress'
            if want_cut != (outcome != 'ok'):
                problems.append(f'{name} {path}: {outcome}')
    return problems + ([netfence_lab.render_table(probe)] if problems else [])


def test_engine_is_29(host):
    info = engine_info(host)
    assert info['ServerVersion'].startswith('29.'), info['ServerVersion']
    driver = (info.get('FirewallBackend') or {}).get('Driver', '')
    assert driver.startswith('nftables' if host.has('nft-backend') else 'iptables'), info.get('FirewallBackend')


def test_no_isolation_chains(host):
    saved = iptables_save(host)
    assert 'DOCKER-ISOLATION' not in saved, saved
    if host.has('nft-backend'):
        assert ':DOCKER-USER' not in saved and '-N DOCKER-USER' not in saved
        assert {'ip docker-bridges', 'ip6 docker-bridges'} <= set(nft_tables(host))
    else:
        assert ':DOCKER-USER' in saved


def test_auto_backend_follows_the_engine(host, run_module):
    """The module's ``backend: auto`` reads /info: nftables on the nftables-backend host, iptables else."""
    res = run_module(host, 'blackout', service=SERVICE, check=True)
    check_ok(res, 'check-mode blackout')
    fw = res['firewall']
    if host.has('nft-backend'):
        assert fw['backend'] == 'nftables', fw
        assert 'FirewallBackend.Driver nftables' in fw['backend_reason'], fw
        assert all(line.startswith('nft inet netfence ') for f in ('ipv4', 'ipv6') for line in res['added'][f])
    else:
        assert fw['backend'] == 'iptables', fw
        assert fw['forward_chain'].get('ipv4') == 'DOCKER-USER', fw
    assert 'inet netfence' not in nft_tables(host)  # check mode changed nothing


def test_our_table_next_to_dockers_and_before_its_accept(nft_host, run_module):
    host = nft_host
    assert 'inet netfence' not in nft_tables(host)
    try:
        check_ok(run_module(host, 'blackout', service=SERVICE), 'blackout')
        tables = nft_tables(host)
        assert {'ip docker-bridges', 'ip6 docker-bridges', 'inet netfence'} <= set(tables), tables
        chains = nft_chains(host)
        ours = {c['hook']: c['prio'] for c in chains if (c['family'], c['table']) == ('inet', 'netfence')}
        docker = [c for c in chains if c['table'] == 'docker-bridges' and c.get('type', 'filter') == 'filter'
                  and c['hook'] in ours]
        assert 'forward' in ours and any(c['hook'] == 'forward' for c in docker), (ours, docker)
        late = [(c['family'], c['name'], c['hook'], c['prio'], ours[c['hook']]) for c in docker
                if not ours[c['hook']] < c['prio']]
        assert not late, f'our chains do not come before Docker\'s: {late}'
        problems = cut_problems(host, expect_cut=True)
        assert not problems, '\n'.join(problems)
    finally:
        check_ok(run_module(host, 'blackout', service=SERVICE, state='absent'), 'restore')
    assert 'inet netfence' not in nft_tables(host)
    problems = cut_problems(host, expect_cut=False)
    assert not problems, '\n'.join(problems)


def test_engine_restart_keeps_our_table_and_the_blackout(nft_host, run_module):
    host = nft_host
    try:
        check_ok(run_module(host, 'blackout', service=SERVICE), 'blackout')
        table_before = netfence_lab.host_exec(host, ['nft', '-s', 'list', 'table', 'inet', 'netfence']).stdout
        old_pid = netfence_lab._read_pid(os.path.join(host.run_dir, 'dockerd.spawn.pid'))  # pylint: disable=protected-access
        new_pid = netfence_lab.restart_engine(host)
        assert new_pid and new_pid != old_pid
        assert {'ip docker-bridges', 'ip6 docker-bridges'} <= set(nft_tables(host))  # Docker rebuilt its own
        table_after = netfence_lab.host_exec(host, ['nft', '-s', 'list', 'table', 'inet', 'netfence'], check=False)
        assert table_after.returncode == 0, 'the engine restart removed table inet netfence'
        assert table_after.stdout == table_before
        problems = cut_problems(host, expect_cut=True)
        assert not problems, 'blackout no longer refuses after the engine restart:\n' + '\n'.join(problems)
        info = run_module(host, 'blackout_info', name=SERVICE)
        check_ok(info, 'blackout_info')
        assert [b['state'] for b in info['blackouts']] == ['active'], info['blackouts']
    finally:
        check_ok(run_module(host, 'blackout', service=SERVICE, state='absent'), 'restore')
    problems = cut_problems(host, expect_cut=False)
    assert not problems, '\n'.join(problems)


def test_info_on_a_host_without_blackout(host, run_module):
    """blackout_info on a clean host reports nothing (and its backend)."""
    info = run_module(host, 'blackout_info')
    check_ok(info, 'blackout_info')
    assert info['blackouts'] == [], info['blackouts']
