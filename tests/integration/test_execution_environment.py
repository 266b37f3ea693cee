# -*- coding: utf-8 -*-
# Copyright (c) 2026, netfence.docker contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The execution environment of execution-environment.yml: ``ansible-builder create`` makes a
build context that carries the built collection tarball and community.docker, and the
collection declares no dependency of its own (meta/execution-environment.yml).

The image itself is not built: no container registry (nor Galaxy) is reachable here.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
VERSION = yaml.safe_load((ROOT / 'galaxy.yml').read_text(encoding='utf-8'))['version']
TARBALL = f'netfence-docker-{VERSION}.tar.gz'

pytestmark = pytest.mark.skipif(not (BIN / 'ansible-builder').exists(),
                                reason='ansible-builder is not installed next to this Python')


def _run(argv, **kwargs):
    env = dict(os.environ, ANSIBLE_NOCOLOR='1', **kwargs.pop('env', {}))
    proc = subprocess.run([str(a) for a in argv], capture_output=True, text=True, env=env, check=False,
                          timeout=300, **kwargs)
    assert proc.returncode == 0, f'{argv} failed:\n{proc.stdout}\n{proc.stderr}'
    return proc


@pytest.fixture(scope='module')
def context(tmp_path_factory):
    """A copy of execution-environment.yml next to build/ee/<tarball>, and its build context."""
    work = tmp_path_factory.mktemp('ee')
    (work / 'build' / 'ee').mkdir(parents=True)
    _run([BIN / 'ansible-galaxy', 'collection', 'build', '--output-path', work / 'build' / 'ee', ROOT], cwd=work)
    shutil.copy(ROOT / 'execution-environment.yml', work / 'execution-environment.yml')
    _run([BIN / 'ansible-builder', 'create', '-f', work / 'execution-environment.yml', '-c', work / 'context'],
         cwd=work)
    return work


def test_definition_pins_match_the_toolchain():
    definition = yaml.safe_load((ROOT / 'execution-environment.yml').read_text(encoding='utf-8'))
    assert definition['version'] == 3
    pins = dict(line.split('==', 1) for line in (ROOT / 'requirements-dev.txt').read_text(encoding='utf-8').splitlines()
                if '==' in line and not line.startswith('#'))
    deps = definition['dependencies']
    assert deps['ansible_core']['package_pip'] == f'ansible-core=={pins["ansible-core"]}'
    assert deps['ansible_runner']['package_pip'] == f'ansible-runner=={pins["ansible-runner"]}'
    names = [c['name'] for c in deps['galaxy']['collections']]
    assert f'collections/{TARBALL}' in names, (names, 'the tarball name follows galaxy.yml version')
    bundled = json.loads((Path(sys.prefix).glob('lib/python3*/site-packages/ansible_collections/community/docker/'
                                                'MANIFEST.json').__next__()).read_text(encoding='utf-8'))
    docker = next(c for c in deps['galaxy']['collections'] if c['name'] == 'community.docker')
    assert docker['version'] == f'=={bundled["collection_info"]["version"]}', \
        'community.docker as the pinned `ansible` package bundles it (what the tests ran with)'


def test_context_carries_the_collection_tarball(context):
    built = context / 'build' / 'ee' / TARBALL
    copied = context / 'context' / '_build' / 'collections' / TARBALL
    assert copied.is_file(), sorted(str(p.relative_to(context)) for p in (context / 'context').rglob('*'))
    assert copied.read_bytes() == built.read_bytes()
    with tarfile.open(copied) as tar:
        manifest = json.load(tar.extractfile('MANIFEST.json'))
        names = tar.getnames()
    assert manifest['collection_info']['namespace'] == 'netfence'
    assert manifest['collection_info']['name'] == 'docker'
    assert 'plugins/modules/blackout.py' in names and 'meta/execution-environment.yml' in names


def test_context_requirements_and_containerfile(context):
    ctx = context / 'context'
    requirements = yaml.safe_load((ctx / '_build' / 'requirements.yml').read_text(encoding='utf-8'))
    assert {'name': f'collections/{TARBALL}', 'type': 'file'} in requirements['collections']
    assert any(c['name'] == 'community.docker' for c in requirements['collections'])
    # Named after the container runtime ansible-builder finds: Containerfile (podman) or
    # Dockerfile (docker, the only one on the project's machines); the same content.
    found = [ctx / n for n in ('Containerfile', 'Dockerfile') if (ctx / n).exists()]
    assert len(found) == 1, sorted(p.name for p in ctx.iterdir())
    containerfile = found[0].read_text(encoding='utf-8')
    for needed in ('registry.fedoraproject.org/fedora:42', 'COPY _build /build', 'WORKDIR /build',
                   'ansible-galaxy collection install', 'ansible-core==2.21.5', 'ansible-runner==2.4.3',
                   'python3-pip', 'LABEL ansible-execution-environment=true'):
        assert needed in containerfile, needed
    bindep = (ctx / '_build' / 'bindep.txt').read_text(encoding='utf-8')
    assert 'openssh-clients' in bindep


def test_collection_declares_no_python_or_system_dependency(context):
    colls = context / 'installed'
    _run([BIN / 'ansible-galaxy', 'collection', 'install', '-p', colls, context / 'build' / 'ee' / TARBALL],
         cwd=context)
    out = _run([BIN / 'ansible-builder', 'introspect', colls], cwd=context).stdout
    data = yaml.safe_load(out[out.index('python:') if 'python:' in out else 0:]) or {}
    assert not data.get('python'), out
    assert not data.get('system'), out
