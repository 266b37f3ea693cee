"""The built collection installs, holds only what a user needs, and its docs and playbooks load."""
from __future__ import annotations

import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def _run(argv, **kwargs):
    env = dict(os.environ, ANSIBLE_NOCOLOR='1', **kwargs.pop('env', {}))
    proc = subprocess.run([str(a) for a in argv], capture_output=True, text=True, env=env, check=False, **kwargs)
    assert proc.returncode == 0, f'{argv} failed:\n{proc.stdout}\n{proc.stderr}'
    return proc


@pytest.fixture(scope='module')
def installed(tmp_path_factory):
    work = tmp_path_factory.mktemp('galaxy')
    _run([BIN / 'ansible-galaxy', 'collection', 'build', '--output-path', work, ROOT], cwd=work)
    tarball = next(work.glob('netfence-docker-*.tar.gz'))
    dest = work / 'collections'
    _run([BIN / 'ansible-galaxy', 'collection', 'install', '-p', dest, tarball], cwd=work)
    return tarball, dest


def test_tarball_holds_only_what_users_need(installed):
    tarball, _dest = installed
    with tarfile.open(tarball) as tar:
        names = [m.name for m in tar.getmembers() if m.isfile() or m.issym()]
    for needed in ('README.md', 'meta/runtime.yml', 'plugins/modules/blackout.py', 'plugins/modules/blackout_info.py',
                   'plugins/module_utils/_planner.py', 'roles/blackout/tasks/main.yml',
                   'roles/blackout/meta/argument_specs.yml', 'playbooks/blackout.yml', 'playbooks/restore.yml',
                   'playbooks/status.yml', 'playbooks/drain.yml', 'changelogs/changelog.yaml'):
        assert needed in names
    dev_only = ('tests', 'bench', 'tools', 'docs', 'build', '.ci', '.ansible', 'extensions')
    unwanted = [n for n in names if n.split('/')[0] in dev_only or n.startswith('playbooks/collections')
                or n.endswith('.pyc') or n == 'Makefile']
    assert unwanted == []
    assert not [m for m in tarfile.open(tarball).getmembers() if m.issym()], 'no symlinks in the tarball'


def test_module_docs_render(installed):
    _tarball, dest = installed
    env = {'ANSIBLE_COLLECTIONS_PATH': str(dest)}
    for module in ('netfence.docker.blackout', 'netfence.docker.blackout_info'):
        out = _run([BIN / 'ansible-doc', module], env=env).stdout
        assert 'OPTIONS' in out and 'RETURN VALUES' in out and 'EXAMPLES' in out
    role = _run([BIN / 'ansible-doc', '-t', 'role', 'netfence.docker.blackout'], env=env).stdout
    assert 'netfence_service' in role


def test_collection_playbooks_load_after_install(installed, tmp_path):
    _tarball, dest = installed
    inventory = tmp_path / 'hosts.ini'
    inventory.write_text('[lab]\nsomehost ansible_connection=local\n', encoding='utf-8')
    env = {'ANSIBLE_COLLECTIONS_PATH': str(dest)}
    for playbook in ('netfence.docker.blackout', 'netfence.docker.restore', 'netfence.docker.status',
                     'netfence.docker.drain'):
        _run([BIN / 'ansible-playbook', '-i', inventory, playbook, '--syntax-check', '-e', 'service=memcached'],
             env=env, cwd=tmp_path)
