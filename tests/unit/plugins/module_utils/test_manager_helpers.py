# -*- coding: utf-8 -*-
# Copyright (c) 2026, netfence.docker contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Small pure helpers of _manager."""

from __future__ import annotations

import pytest

from ansible_collections.netfence.docker.plugins.module_utils._manager import all_held

HOLDING = {('ip', 'filter', 'INPUT'), ('ip', 'filter', 'OUTPUT'), ('ip6', 'filter', 'OUTPUT')}


@pytest.mark.parametrize('created, expected', [
    ([], True),
    ([['ip', 'filter', 'INPUT']], True),
    ([['ip', 'filter', 'INPUT'], ['ip6', 'filter', None], ['ip6', 'filter', 'OUTPUT']], True),
    ([['ip6', 'filter', 'INPUT']], False),           # a recorded chain without a rule of ours
    ([['ip6', 'nat', None]], False),                 # a recorded table without any
    ([['ip', 'filter', 'INPUT'], ['ip', 'filter', 'FORWARD']], False),
])
def test_all_held(created, expected):
    assert all_held(created, HOLDING) is expected
