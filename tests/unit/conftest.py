# -*- coding: utf-8 -*-
# Copyright (c) 2025, netfence.docker contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Make ``ansible_collections.netfence.docker`` importable for plain ``pytest tests/unit``.

Under ansible-test (or a checkout already at ansible_collections/netfence/docker) nothing is
done; otherwise a temporary ansible_collections/netfence/docker symlink to the checkout is put
on sys.path.
"""

from __future__ import annotations

import atexit
import os
import shutil
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _setup() -> None:
    parts = ROOT.split(os.sep)
    if parts[-3:] == ['ansible_collections', 'netfence', 'docker']:
        base = os.sep.join(parts[:-3]) or os.sep
        if base not in sys.path:
            sys.path.insert(0, base)
        return
    base = tempfile.mkdtemp(prefix='netfence-coll-')
    atexit.register(shutil.rmtree, base, True)
    os.makedirs(os.path.join(base, 'ansible_collections', 'netfence'))
    os.symlink(ROOT, os.path.join(base, 'ansible_collections', 'netfence', 'docker'))
    sys.path.insert(0, base)
    for name in list(sys.modules):
        if name == 'ansible_collections' or name.startswith('ansible_collections.netfence'):
            del sys.modules[name]


try:
    import ansible_collections.netfence.docker.plugins.module_utils._planner  # noqa: F401  pylint: disable=unused-import
except ImportError:
    _setup()


try:
    import pytest
except ImportError:  # pragma: no cover
    pytest = None

if pytest is not None:
    @pytest.fixture(autouse=True)
    def _netfence_state_file(tmp_path, monkeypatch):
        """The blackout module's state record goes to a per-test file, never /var/lib/netfence."""
        monkeypatch.setenv('NETFENCE_STATE_FILE', str(tmp_path / 'netfence-state' / 'blackouts.json'))
