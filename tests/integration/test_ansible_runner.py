# -*- coding: utf-8 -*-
# Copyright (c) 2026, netfence.docker contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The fleet playbooks run the way AWX / Automation Platform runs a job: through ansible-runner.

AWX hands ansible-runner a private data directory (inventory/, env/, project/) and the job
template's survey answers as extra vars (strings), inside an execution environment that carries
the collection. Here: project/ holds the playbooks as a project checkout does (without the
checkout link: the collection comes, as in the EE, from a `collections_path` where the built
tarball is installed), inventory/ the lab's inventory, env/envvars the settings. Asserts on what
AWX reads (the runner's status, rc and per-host events in artifacts/) and on real traffic: the
lab's memcached refused during the blackout and answering after the restore.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
sys.path.insert(0, str(ROOT / 'tests' / 'lab'))

import netfence_lab  # noqa: E402  pylint: disable=wrong-import-position,import-error

ansible_runner = pytest.importorskip('ansible_runner')
pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason='the lab needs root')

SERVICE = 'memcached'
# A survey's answers: every value a string, as AWX passes them.
SURVEY = {'service': SERVICE, 'duration': '30m', 'batch': '1', 'reason': 'AWX job template drill'}


@pytest.fixture(scope='module')
def private_data_dir(lab, inventory, tmp_path_factory):  # pylint: disable=redefined-outer-name,unused-argument
    """inventory/hosts, env/envvars, project/ (the playbooks) and an installed collection."""
    base = tmp_path_factory.mktemp('runner')
    work = base / 'collection'
    work.mkdir()
    subprocess.run([str(BIN / 'ansible-galaxy'), 'collection', 'build', '--output-path', str(work), str(ROOT)],
                   check=True, capture_output=True, cwd=str(work))
    installed = base / 'ee-collections'
    subprocess.run([str(BIN / 'ansible-galaxy'), 'collection', 'install', '-p', str(installed),
                    str(next(work.glob('netfence-docker-*.tar.gz')))], check=True, capture_output=True, cwd=str(work))
    pdd = base / 'pdd'
    (pdd / 'inventory').mkdir(parents=True)
    shutil.copy(inventory, pdd / 'inventory' / 'hosts')
    project = pdd / 'project'
    project.mkdir()
    for name in ('blackout.yml', 'restore.yml', 'status.yml'):
        shutil.copy(ROOT / 'playbooks' / name, project / name)
    shutil.copytree(ROOT / 'playbooks' / 'vars', project / 'vars')
    (pdd / 'env').mkdir()
    envvars = {
        'ANSIBLE_COLLECTIONS_PATH': str(installed),
        'ANSIBLE_HOST_KEY_CHECKING': 'False',
        'ANSIBLE_PIPELINING': 'True',
        'ANSIBLE_RETRY_FILES_ENABLED': 'False',
        'ANSIBLE_DEPRECATION_WARNINGS': 'False',
        # ansible-playbook of the toolchain, as the EE has its own on PATH.
        'PATH': f'{BIN}{os.pathsep}{os.environ.get("PATH", "")}',
    }
    (pdd / 'env' / 'envvars').write_text(json.dumps(envvars), encoding='utf-8')
    return pdd


@pytest.fixture(scope='module')
def host(lab):  # pylint: disable=redefined-outer-name
    return lab[0]


def _job(pdd, playbook, host, ident, **extravars):  # pylint: disable=redefined-outer-name
    """One job: ansible_runner.run as AWX calls it; returns the Runner."""
    runner = ansible_runner.run(private_data_dir=str(pdd), playbook=playbook, ident=ident, limit=host.name,
                                extravars=dict(SURVEY, **extravars), quiet=True, timeout=600)
    return runner


def _ok_events(runner, host):  # pylint: disable=redefined-outer-name
    """{task name: event_data} of the host's runner_on_ok events."""
    return {e['event_data']['task']: e['event_data'] for e in runner.events
            if e['event'] == 'runner_on_ok' and e['event_data'].get('host') == host.name}


def _cut_problems(host, cut):  # pylint: disable=redefined-outer-name
    results = netfence_lab.probe(host, service=SERVICE)
    problems = [] if results else [f'no {SERVICE} container on {host.name}']
    for name, cells in sorted(results.items()):
        for path, outcome in sorted(cells.items()):
            if outcome in ('n/a', '-') or path == 'egress':  # its own outgoing connections stay open
                continue
            if cut != (outcome != 'ok'):
                problems.append(f'{name} {path}: {outcome}')
    return problems + ([netfence_lab.render_table(results)] if problems else [])


def _assert_artifacts(runner, pdd, ident):  # pylint: disable=redefined-outer-name
    """What AWX reads back: status and rc files, the job events on disk."""
    artifacts = pdd / 'artifacts' / ident
    assert (artifacts / 'status').read_text(encoding='utf-8').strip() == 'successful'
    assert (artifacts / 'rc').read_text(encoding='utf-8').strip() == '0'
    assert list((artifacts / 'job_events').glob('*.json'))
    assert runner.status == 'successful' and runner.rc == 0, runner.stdout.read()[-4000:]


def test_blackout_status_restore_as_awx_jobs(private_data_dir, host):  # pylint: disable=redefined-outer-name
    pdd = private_data_dir
    assert not _cut_problems(host, cut=False), 'memcached must answer before the job'
    try:
        run = _job(pdd, 'blackout.yml', host, 'blackout')
        stdout = run.stdout.read()
        _assert_artifacts(run, pdd, 'blackout')
        ok = _ok_events(run, host)
        assert ok['Set the blackout of the service to present']['res']['changed'], sorted(ok)
        report = ok['Report the blackout across the fleet']['res']['msg']
        assert report[0].startswith(f'Blackout of {SERVICE} in place'), report
        assert f'Blackout of {SERVICE} in place' in stdout, stdout[-3000:]
        assert not _cut_problems(host, cut=True)

        run = _job(pdd, 'status.yml', host, 'status-during')
        _assert_artifacts(run, pdd, 'status-during')
        status = _ok_events(run, host)['Record the fleet status']['res']['ansible_facts']['netfence_status']
        row = status['hosts'][host.name]
        assert row['state'] == 'active' and row['rules'] > 0 and row['expires'], row
        assert 'active' in run.stdout.read()
    finally:
        run = _job(pdd, 'restore.yml', host, 'restore')
    stdout = run.stdout.read()
    _assert_artifacts(run, pdd, 'restore')
    assert any(data['res'].get('changed') for data in _ok_events(run, host).values())
    assert f'Blackout of {SERVICE} lifted on every host' in stdout and f'restored: {host.name}' in stdout, \
        stdout[-3000:]
    assert not _cut_problems(host, cut=False)

    run = _job(pdd, 'status.yml', host, 'status-after')
    _assert_artifacts(run, pdd, 'status-after')
    row = _ok_events(run, host)['Record the fleet status']['res']['ansible_facts']['netfence_status']['hosts'][host.name]
    assert row['state'] == 'none' and row['rules'] == 0, row


def test_a_failing_job_is_reported_failed(private_data_dir, host):  # pylint: disable=redefined-outer-name
    """A survey without a service: the job fails (AWX shows it failed), nothing changes."""
    run = _job(private_data_dir, 'blackout.yml', host, 'no-service', service='')
    assert run.status == 'failed' and run.rc != 0
    assert any(e['event'] == 'runner_on_failed' for e in run.events)
    assert '-e service=NAME' in run.stdout.read()
    assert not _cut_problems(host, cut=False)
