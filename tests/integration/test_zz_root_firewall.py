"""The machine's own firewall is never touched: every rule lives inside a lab namespace.

`make test` snapshots the root namespace's firewall before anything runs and passes the file in
NETFENCE_ROOT_FW_BEFORE; this module is collected last (its name) and compares. Without the
variable it compares against the snapshot taken when this pytest session started.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ROOTFW = ROOT / 'tools' / 'rootfw.py'

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason='needs root to read the firewall')


@pytest.fixture(scope='session')
def before_snapshot(tmp_path_factory):
    path = os.environ.get('NETFENCE_ROOT_FW_BEFORE')
    if path:
        return path
    # pytest collects this module last, but the session fixture below is requested early by
    # conftest; fall back to a snapshot taken now.
    snap = tmp_path_factory.mktemp('rootfw') / 'before'
    subprocess.run([sys.executable, str(ROOTFW), 'snapshot', str(snap)], check=True)
    return str(snap)


def test_root_namespace_firewall_unchanged(before_snapshot):
    proc = subprocess.run([sys.executable, str(ROOTFW), 'diff', before_snapshot],
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 0, 'root namespace firewall changed:\n' + proc.stdout + proc.stderr
