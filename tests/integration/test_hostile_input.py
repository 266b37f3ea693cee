"""Issue 12: hostile input never reaches the firewall.

A corpus of hostile inputs (IPv6 zone suffixes with and without an embedded newline, newlines in
every string option, tabs, Unicode lookalikes, over-long names, an expiry beyond what xt_time
holds) is run against one lab host of each Docker series (20.10 and 28) with ``backend:
iptables`` and ``backend: nftables``. Each case takes its own baseline right before it acts
(every iptables variant and family with ``firewall_snapshot``, plus ``nft list ruleset`` inside
the host's namespace) and must fail with a message naming the option, change nothing and leave
every firewall byte-identical. A container whose compose label is hostile (from the engine
side) is refused the same way.
"""
from __future__ import annotations

import concurrent.futures
import dataclasses
import json

import pytest

import netfence_lab  # tests/lab is put on sys.path by conftest.py
from nf_helpers import wait_quiet

SERIES = ('20.10', '28')
BACKENDS = ('iptables', 'nftables')
INJECTION = ' -j RETURN\n-I INPUT 1 -m comment --comment INJECTED -j ACCEPT\n#'


@dataclasses.dataclass(frozen=True)
class Hostile:
    id: str
    args: dict
    msg: str  # must be in the module's failure message (it names the option)


CASES = (
    Hostile('allow-from-zone-newline', {'service': 'memcached', 'allow_from': ['fe80::1%1' + INJECTION]},
            'allow_from entry'),
    Hostile('allow-from-zone', {'service': 'memcached', 'allow_from': ['fe80::1%eth0']},
            "allow_from entry 'fe80::1%eth0' is not an IP address or CIDR: it contains a zone suffix"),
    Hostile('allow-from-zone-prefix', {'service': 'memcached', 'allow_from': ['fd00::1%1/64']},
            'allow_from entry'),
    Hostile('allow-from-newline', {'service': 'memcached', 'allow_from': ['10.0.0.1\n-I INPUT 1 -j ACCEPT']},
            'allow_from entry'),
    Hostile('allow-from-tab', {'service': 'memcached', 'allow_from': ['10.0.0.1\t']},
            "allow_from entry '10.0.0.1\\t' is not an IP address or CIDR: it contains a tab"),
    Hostile('allow-from-fullwidth-digits', {'service': 'memcached', 'allow_from': ['\uff11\uff10.0.0.1']},
            'allow_from entry'),
    Hostile('ports-newline', {'service': 'memcached', 'ports': ['11211\n-I INPUT 1 -j ACCEPT']}, 'ports entry'),
    Hostile('ports-short-newline', {'service': 'memcached', 'ports': ['80\n']}, 'it contains a newline'),
    Hostile('ports-proto-newline', {'service': 'memcached', 'ports': ['80/tcp\n#']}, 'ports entry'),
    Hostile('ports-fullwidth-digits', {'service': 'memcached', 'ports': ['\uff11\uff11\uff12\uff11\uff11']},
            'ports entry'),
    Hostile('verify-addresses-newline', {'service': 'memcached', 'verify': True,
                                         'verify_addresses': ['127.0.0.1\n-I INPUT 1 -j ACCEPT']},
            'verify_addresses entry'),
    Hostile('verify-addresses-zone', {'service': 'memcached', 'verify': True, 'verify_addresses': ['fe80::1%lo']},
            "verify_addresses entry 'fe80::1%lo' is not an IP address or host name"),
    Hostile('service-newline', {'service': 'memcached\n-I INPUT 1 -j ACCEPT'},
            "service 'memcached\\n-I INPUT 1 -j ACCEPT' is invalid: it contains a newline"),
    Hostile('service-tab', {'service': 'mem\tcached'}, "service 'mem\\tcached' is invalid: it contains a tab"),
    Hostile('service-cyrillic-a', {'service': 'memc\u0430ched'}, 'is invalid: it contains a non-ASCII character'),
    Hostile('service-too-long', {'service': 'm' * 129}, 'service'),
    Hostile('project-newline', {'service': 'memcached', 'project': 'lab\n-I INPUT 1 -j ACCEPT'},
            "project 'lab\\n-I INPUT 1 -j ACCEPT' is invalid: it contains a newline"),
    Hostile('containers-newline', {'containers': ['lab-memcached-1\n-I INPUT 1 -j ACCEPT']},
            "container 'lab-memcached-1\\n-I INPUT 1 -j ACCEPT' is invalid: it contains a newline"),
    Hostile('labels-value-newline', {'labels': {'com.docker.compose.service': 'memcached\n-I INPUT 1 -j ACCEPT'},
                                     'name': 'mc'}, 'labels: label com.docker.compose.service: value'),
    Hostile('labels-key-newline', {'labels': {'com.docker.compose.service\n-I': 'memcached'}, 'name': 'mc'},
            'labels: label key'),
    Hostile('labels-value-lookalike', {'labels': {'com.docker.compose.service': 'memc\u0430ched'}, 'name': 'mc'},
            'labels: label com.docker.compose.service: value'),
    Hostile('name-newline', {'service': 'memcached', 'name': 'mc\n-I INPUT 1 -j ACCEPT'},
            "blackout name 'mc\\n-I INPUT 1 -j ACCEPT' is invalid: it contains a newline"),
    Hostile('name-too-long', {'service': 'memcached', 'name': 'n' * 50},
            'is too long (50 > 49 characters: the rule tag must fit the 127 bytes of an nft comment)'),
    Hostile('project-service-too-long', {'service': 'memcached', 'project': 'p' * 45},
            'blackout name'),
    Hostile('expires-2040', {'service': 'memcached', 'expires': '2040-01-01T00:00:00Z'},
            'expires 2040-01-01T00:00:00Z is too far in the future'),
    Hostile('expires-newline', {'service': 'memcached', 'expires': '30m\n-I INPUT 1 -j ACCEPT'}, 'expires'),
)


def snapshot(host, firewall_snapshot) -> dict[str, list[str]]:
    """Every iptables variant and family, and the whole nft ruleset (stateless: no counter values),
    of the host's namespace."""
    out = firewall_snapshot(host)
    res = netfence_lab.host_exec(host, ['nft', '--stateless', 'list', 'ruleset'], check=False)
    out['nft ruleset'] = res.stdout.splitlines() if res.returncode == 0 else [f'! nft failed: {res.stderr}']
    return out


def run_cases(host, run_module, firewall_snapshot) -> dict[tuple[str, str], dict]:
    """Every case with every backend on ``host``, one after the other, each between its own two snapshots."""
    records = {}
    for backend in BACKENDS:
        for case in CASES:
            before = snapshot(host, firewall_snapshot)
            result = run_module(host, 'blackout', args=dict(case.args, backend=backend))
            after = snapshot(host, firewall_snapshot)
            records[(backend, case.id)] = {'result': dict(result), 'before': before, 'after': after}
    return records


@pytest.fixture(scope='module')
def hostile_runs(host_of_series, run_module, firewall_snapshot, netfence_rules):
    """{(series, backend, case id): record}; the hosts run in parallel, the cases of a host in sequence."""
    hosts = {}
    for series in SERIES:
        try:
            hosts[series] = host_of_series(series)
        except pytest.skip.Exception:
            continue
    for lab_host in hosts.values():
        wait_quiet(lab_host, netfence_rules)
    with concurrent.futures.ThreadPoolExecutor(max_workers=len(hosts) or 1) as pool:
        futures = {series: pool.submit(run_cases, h, run_module, firewall_snapshot) for series, h in hosts.items()}
        return {(series, backend, case_id): record
                for series, future in futures.items()
                for (backend, case_id), record in future.result().items()}


@pytest.mark.parametrize('backend', BACKENDS)
@pytest.mark.parametrize('series', SERIES)
@pytest.mark.parametrize('case', CASES, ids=lambda c: c.id)
def test_hostile_input_fails_clearly_and_every_firewall_is_identical(hostile_runs, series, backend, case):
    record = hostile_runs.get((series, backend, case.id))
    if record is None:
        pytest.skip(f'the lab has no Docker {series} host')
    result = record['result']
    assert result.get('failed') is True, f'did not fail: {result}'
    assert case.msg in result.get('msg', ''), result.get('msg')
    assert not result.get('changed'), result
    assert 'Traceback' not in json.dumps(result)
    assert 'INJECTED' not in json.dumps(record['after'])
    assert record['after'] == record['before'], f'{case.id} with backend {backend} changed a firewall'


HOSTILE_LABEL = 'memcached\n-I INPUT 1 -m comment --comment INJECTED -j ACCEPT'


@pytest.mark.parametrize('backend', BACKENDS)
@pytest.mark.parametrize('series', SERIES)
def test_hostile_engine_label_is_refused(host_of_series, run_module, firewall_snapshot, netfence_rules,
                                         series, backend):
    """A container (created through the engine API, as anyone with the socket can) whose compose
    service label holds a newline: the engine answer is refused, naming the container; nothing changes."""
    host = host_of_series(series)
    wait_quiet(host, netfence_rules)
    client = host.client(timeout=30)
    name = 'nftest-hostile-label'
    try:
        for old in client.containers.list(all=True, filters={'name': f'^/{name}$'}):
            old.remove(force=True)
        client.containers.run(netfence_lab.IMAGE, netfence_lab.SLEEP_CMD, name=name, detach=True,
                              labels={'com.docker.compose.service': HOSTILE_LABEL,
                                      'com.docker.compose.project': 'lab'})
        before = snapshot(host, firewall_snapshot)
        result = run_module(host, 'blackout', args={'service': 'memcached', 'backend': backend})
        after = snapshot(host, firewall_snapshot)
    finally:
        for old in client.containers.list(all=True, filters={'name': f'^/{name}$'}):
            old.remove(force=True)
        client.close()
    assert result.get('failed') is True, result
    msg = result.get('msg', '')
    assert 'engine answer refused' in msg and f'label com.docker.compose.service of container {name}' in msg, msg
    assert not result.get('changed')
    assert after == before
