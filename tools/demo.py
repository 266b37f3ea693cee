"""`make demo`: the lab's traffic matrix before, during and after a blackout of memcached.

Brings the lab up (idempotent; with ../shared/docker29 beside the checkout it has two Docker 29
hosts, one with Docker's nftables firewall backend), prints the probe matrix of every host, runs
playbooks/blackout.yml -e service=memcached over SSH against the lab inventory, prints the
matrix again, runs playbooks/restore.yml, prints it a third time, and checks that no netfence
rule is left on any host. Exit status 1 when a matrix is not what the blackout promises.
"""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / 'tests' / 'lab'))

import netfence_lab  # noqa: E402  pylint: disable=wrong-import-position

SERVICE = 'memcached'


def matrices(hosts: list) -> dict:
    """{host name: {container: {path: outcome}}} for the service and the bystander."""
    return {h.name: netfence_lab.probe(h, service='all') for h in hosts}


def show(title: str, hosts: list, results: dict) -> None:
    print(f'\n## {title}\n')
    for host in hosts:
        backend = ', nftables firewall backend' if host.has('nft-backend') else ''
        print(f'### {host.name} ({host.addr}, Docker {host.series}{backend})')
        print(netfence_lab.render_table(results[host.name]))


def playbook(name: str, inventory: str) -> float:
    """Run playbooks/<name> against the lab; return its wall time."""
    # The playbooks find the checkout's collection through the link tools/link-checkout makes.
    subprocess.run(['sh', str(ROOT / 'tools' / 'link-checkout')], check=True)
    env = dict(os.environ, ANSIBLE_HOST_KEY_CHECKING='False', ANSIBLE_NOCOLOR='1')
    argv = [os.path.join(os.path.dirname(sys.executable), 'ansible-playbook'), '-i', inventory,
            str(ROOT / 'playbooks' / name), '-e', f'service={SERVICE}']
    print(f'\n$ ansible-playbook -i {inventory} playbooks/{name} -e service={SERVICE}')
    start = time.monotonic()
    proc = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, check=False)
    elapsed = time.monotonic() - start
    recap = proc.stdout[proc.stdout.find('PLAY RECAP'):] if 'PLAY RECAP' in proc.stdout else proc.stdout
    print(recap.rstrip())
    if proc.returncode != 0:
        print(proc.stdout[-4000:], proc.stderr[-4000:], sep='\n')
        raise SystemExit(f'demo: {name} failed (rc={proc.returncode})')
    print(f'({elapsed:.1f} s)')
    return elapsed


def check(results: dict, cut: bool) -> list[str]:
    """Problems: for cut=True every path to the service must fail and the rest work."""
    problems = []
    for host, containers in results.items():
        for container, paths in containers.items():
            is_service = container.startswith(f'lab-{SERVICE}-')
            for path, outcome in paths.items():
                want_ok = not (cut and is_service) or path == 'egress'
                if want_ok != (outcome == 'ok'):
                    problems.append(f'{host} {container} {path}: {outcome}')
    return problems


def leftover_rules(hosts: list) -> int:
    count = 0
    for host in hosts:
        for save in ('iptables-save', 'ip6tables-save'):
            out = netfence_lab.host_exec(host, [save]).stdout
            count += sum('netfence' in line for line in out.splitlines() if line.startswith('-A'))
        # Docker 29 with its nftables backend: the blackout lives in our table inet netfence.
        res = netfence_lab.host_exec(host, ['nft', 'list', 'table', 'inet', 'netfence'], check=False)
        count += sum('"netfence bo=' in line for line in res.stdout.splitlines()) if res.returncode == 0 else 0
    return count


def main() -> int:
    hosts = netfence_lab.up()
    inventory = netfence_lab.inventory_path()
    print(f'# netfence.docker demo: black out `{SERVICE}` on {len(hosts)} lab hosts '
          f"({', '.join(f'{h.name}=Docker {h.series}' + (' nftables' if h.has('nft-backend') else '') for h in hosts)})")
    if not netfence_lab.docker29_available(say=False):
        print('(Docker 29 not available here: no ../shared/docker29 beside the checkout; the lab runs without it)')
    print('Paths: external = another machine -> host:published port; localhost4/6 = 127.0.0.1 / [::1] on '
          'the host (docker-proxy); own_addr = the host to its own address (nat OUTPUT); peer:<net> = a '
          'container on that network -> the service; egress = the service\'s own outgoing connection.')
    before = matrices(hosts)
    show('Before', hosts, before)
    playbook('blackout.yml', inventory)
    during = matrices(hosts)
    show('Blacked out (every path to both replicas cut, the bystander and egress untouched)', hosts, during)
    playbook('restore.yml', inventory)
    after = matrices(hosts)
    show('Restored', hosts, after)
    problems = check(before, cut=False) + check(during, cut=True) + check(after, cut=False)
    left = leftover_rules(hosts)
    print(f'\nnetfence rules left on the lab hosts after restore: {left}')
    if problems or left:
        print('demo: unexpected outcomes:\n  ' + '\n  '.join(problems))
        return 1
    print('demo: every path cut during the blackout, every path back after restore.')
    return 0


if __name__ == '__main__':
    sys.exit(main())
