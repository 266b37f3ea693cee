"""What the ``hold`` tests (tests/integration/test_hold.py) and the benchmark's section 7
(bench/run.py) share: recreating or adding a replica of the lab's memcached service, tight
probers that time the cut of the new container, the watcher's processes and pid file, and
putting the deployment back.

A prober is a Python process started (in a network namespace) *before* the container starts:
it says ``ready`` and waits for ``ADDR PORT`` on its stdin, then connects in a loop (0.2 s
timeout, 5 ms apart), one timestamped line per attempt, until 5 attempts in a row are refused
or its time is up.
"""
from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import subprocess
import sys
import time

import netfence_lab

MEMCACHED = ('lab-memcached-1', 'lab-memcached-2')
TAKER = 'nf-hold-taker'
PORTS = {'lab-memcached-1': 11211, 'lab-memcached-2': 11212, 'lab-memcached-3': 11213}

PROBER = r'''
import socket, sys, time
print('ready', flush=True)
addr, port = sys.stdin.readline().split()   # started before the container: no start-up delay
port, until = int(port), time.time() + float(sys.argv[1])
refused = 0
while time.time() < until and refused < 5:
    s = socket.socket(socket.AF_INET6 if ':' in addr else socket.AF_INET)
    s.settimeout(0.2)
    t = time.time()
    try:
        s.connect((addr, port)); out = 'ok'; refused = 0
    except ConnectionRefusedError:
        out = 'refused'; refused += 1
    except OSError as exc:
        out = type(exc).__name__; refused = 0
    finally:
        s.close()
    print('%.4f %s' % (t, out), flush=True)
    time.sleep(0.005)
'''


# --------------------------------------------------------------------------- probers

def start_prober(netns: str | None, seconds: float) -> subprocess.Popen:
    """A prober in ``netns`` (None: this process's namespace), ready: waiting for ``addr port``
    on its stdin (give it with :func:`aim`)."""
    argv = [sys.executable, '-I', '-c', PROBER, str(seconds)]
    if netns is not None:
        argv = ['nsenter', f'--net={netns}'] + argv
    proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    if proc.stdout.readline().strip() != 'ready':
        proc.kill()
        proc.wait()
        raise RuntimeError(f'a prober in {netns or "this namespace"} did not start')
    return proc


def aim(proc: subprocess.Popen, addr: str, port: int) -> None:
    proc.stdin.write('%s %d\n' % (addr, port))
    proc.stdin.flush()


def first_refused(proc: subprocess.Popen) -> tuple[float | None, bool]:
    """(time of the first refusal after which every attempt was refused, whether an attempt was
    ever served: the prober may only have started after the cut)."""
    out, _err = proc.communicate(timeout=30)
    rows = [line.split() for line in out.splitlines() if line.strip()]
    first = None
    served = False
    for stamp, outcome in rows:
        if outcome == 'refused':
            first = float(stamp) if first is None else first
        else:
            first = None
            served = served or outcome == 'ok'
    return first, served


def kill_probers(probers) -> None:
    for proc in probers:
        if proc.poll() is None:
            proc.kill()
        proc.wait()


# --------------------------------------------------------------------------- containers

def epoch(text: str) -> float:
    """Docker's StartedAt (RFC 3339, nanoseconds) → epoch seconds."""
    main, _dot, frac = text.rstrip('Z').partition('.')
    base = dt.datetime.strptime(main, '%Y-%m-%dT%H:%M:%S').replace(tzinfo=dt.timezone.utc).timestamp()
    return base + float('0.' + (frac or '0'))


def address(client, name: str, network: str = 'lab_front') -> str:
    cont = client.containers.get(name)
    return cont.attrs['NetworkSettings']['Networks'][network]['IPAddress']


def labels_of(client, name: str) -> dict:
    return dict(client.containers.get(name).attrs['Config']['Labels'])


def client_netns(client, name: str = 'lab-client-front') -> str:
    return f'/proc/{client.containers.get(name).attrs["State"]["Pid"]}/ns/net'


def running(client, name: str) -> bool:
    try:
        return client.containers.get(name).attrs['State']['Running']
    except Exception:  # pylint: disable=broad-except
        return False


def run_memcached(client, name: str, number: int, port: int, template: dict):
    """A memcached container ``name`` of the service whose compose labels are ``template``."""
    labels = dict(template, **{'com.docker.compose.container-number': str(number)})
    return client.containers.run(netfence_lab.IMAGE, netfence_lab.MEMCACHED_CMD, name=name, hostname=name,
                                 network='lab_front', labels=labels, ports={'11211/tcp': port}, detach=True)


def recreate_with_new_address(client, name: str = 'lab-memcached-2', port: int = 11212) -> tuple[str, str]:
    """docker rm -f NAME; another container (TAKER) takes its address; NAME again, same compose labels."""
    labels = labels_of(client, name)
    old = address(client, name)
    client.containers.get(name).remove(force=True)
    client.containers.run(netfence_lab.IMAGE, netfence_lab.MEMCACHED_CMD, name=TAKER, hostname=TAKER,
                          network='lab_front', detach=True,
                          labels={'com.docker.compose.project': netfence_lab.PROJECT,
                                  'com.docker.compose.service': 'holdtaker', netfence_lab.ROLE_LABEL: 'service'})
    run_memcached(client, name, int(labels.get('com.docker.compose.container-number', '2')), port, labels)
    new = address(client, name)
    if new == old:
        raise AssertionError(f'{name} got its old address {old} back')
    return old, new


def scale_up(client, name: str = 'lab-memcached-3', number: int = 3, port: int = 11213) -> None:
    """A new replica of lab-memcached-2's service (its compose labels, the next number)."""
    run_memcached(client, name, number, port, labels_of(client, 'lab-memcached-2'))


def put_back(host, client, before: dict) -> None:
    """The deployment as the lab made it (``before``: {name: address}): same containers on the same
    addresses (the engine gives the lowest free address: the extra containers go, the moved replica
    is created again); the lab's own deploy only when that fails (new networks: the firewall then
    differs)."""
    for extra in (TAKER, 'lab-memcached-3'):
        with contextlib.suppress(Exception):
            client.containers.get(extra).remove(force=True)
    for name, addr in sorted(before.items()):
        if running(client, name) and address(client, name) == addr:
            continue
        if name != 'lab-memcached-2':
            break  # not one recreate_with_new_address moves: the lab deploys again below
        labels = labels_of(client, name)
        client.containers.get(name).remove(force=True)
        run_memcached(client, name, int(labels['com.docker.compose.container-number']), PORTS[name], labels)
    now = {name: address(client, name) if running(client, name) else None for name in before}
    if now != before:
        netfence_lab._deploy(host)  # pylint: disable=protected-access


# --------------------------------------------------------------------------- the watcher

def watchers(host) -> list[int]:
    """Pids of hold watchers (comm netfence-hold) in the host's network namespace."""
    want = os.stat(host.netns_path).st_ino
    found = []
    for entry in os.listdir('/proc'):
        if not entry.isdigit():
            continue
        try:
            with open(f'/proc/{entry}/comm', encoding='utf-8') as handle:
                if handle.read().strip() != 'netfence-hold':
                    continue
            if os.stat(f'/proc/{entry}/ns/net').st_ino == want:
                found.append(int(entry))
        except OSError:
            continue
    return sorted(found)


def hold_files(host) -> list[str]:
    folder = os.path.join(host.lib_dir, 'netfence-state', 'hold')
    return sorted(os.listdir(folder)) if os.path.isdir(folder) else []


def pid_file_data(host) -> dict:
    """The one watcher's pid file (its ``last`` re-apply: ``at``, ``message``, ``lag_ms``)."""
    (name,) = [f for f in hold_files(host) if f.endswith('.pid')]
    with open(os.path.join(host.lib_dir, 'netfence-state', 'hold', name), encoding='utf-8') as handle:
        return json.load(handle)


# --------------------------------------------------------------------------- the probe matrix

def expect(results: dict, cut: tuple[str, ...]) -> dict:
    """{'container path': 'outcome (want …)'} for every path of the lab's probe matrix that is not
    refused for a container of ``cut`` (egress aside) or not served for any other."""
    bad = {}
    for name, cells in results.items():
        for path, outcome in cells.items():
            want = 'refused' if name in cut and path != 'egress' else 'ok'
            if outcome != want:
                bad[f'{name} {path}'] = f'{outcome} (want {want})'
    return bad


def probe_until_cut(host, cut: tuple[str, ...], seconds: float) -> dict:
    """The lab's probe matrix, read again until ``expect(matrix, cut)`` finds nothing (every path of
    the ``cut`` containers refused, every other container served) or ``seconds`` passed: the last
    matrix read."""
    deadline = time.monotonic() + seconds
    while True:
        every = netfence_lab.probe(host, service='all')
        if not expect(every, cut) or time.monotonic() > deadline:
            return every
        time.sleep(0.2)
