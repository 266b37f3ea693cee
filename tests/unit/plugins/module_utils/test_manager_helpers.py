# -*- coding: utf-8 -*-
# Copyright (c) 2026, netfence.docker contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Small pure helpers of _manager."""

from __future__ import annotations

import pytest

from ansible_collections.netfence.docker.plugins.module_utils._manager import all_held, run_argv

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


def test_run_argv_passes_stdin_environment_and_exit_code():
    script = 'cat; echo " LANG=$LANG TZ=$TZ" ; echo oops >&2; exit 3'
    assert run_argv(['sh', '-c', script], '*filter\nCOMMIT', {'LANG': 'C', 'TZ': 'UTC'}) == (
        3, '*filter\nCOMMIT LANG=C TZ=UTC\n', 'oops\n')


def test_run_argv_without_data_reads_nothing_from_stdin():
    assert run_argv(['sh', '-c', 'cat; echo done'], None, {}) == (0, 'done\n', '')


def test_run_argv_a_command_that_cannot_start_is_rc_127():
    rc, out, err = run_argv(['/nonexistent/netfence-no-such-binary'], None, {})
    assert (rc, out) == (127, '') and err.startswith('/nonexistent/netfence-no-such-binary: ')
