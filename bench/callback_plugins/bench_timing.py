# Copyright (c) 2026, netfence.docker contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Record task and per-host runner times (wall clock, time.time()) for bench/run.py.

Enabled by bench/run.py only (ANSIBLE_CALLBACKS_ENABLED=bench_timing, ANSIBLE_CALLBACK_PLUGINS
pointing here); writes JSON lines to $NETFENCE_BENCH_TIMING:
    {"event": "task_start", "t": ..., "task": name, "action": module, "check_mode": bool or null}
    {"event": "runner_start" | "ok" | "failed" | "skipped" | "unreachable", ..., "host": h}
"""

from __future__ import annotations

import json
import os
import time

from ansible.plugins.callback import CallbackBase

DOCUMENTATION = '''
name: bench_timing
type: aggregate
short_description: wall-clock task timings for the netfence benchmark
description: Writes task start and per-host result times as JSON lines to $NETFENCE_BENCH_TIMING.
requirements: [enabled in configuration]
'''


class CallbackModule(CallbackBase):
    """Timestamps for bench/run.py."""

    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = 'aggregate'
    CALLBACK_NAME = 'bench_timing'
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self) -> None:
        super().__init__()
        path = os.environ.get('NETFENCE_BENCH_TIMING')
        self._out = open(path, 'a', encoding='utf-8') if path else None  # pylint: disable=consider-using-with

    def _emit(self, event: str, task=None, host=None) -> None:
        if self._out is None:
            return
        record = {'event': event, 't': time.time()}
        if task is not None:
            record['task'] = task.get_name()
            record['action'] = task.action
            record['check_mode'] = task.check_mode if isinstance(task.check_mode, bool) else None
        if host is not None:
            record['host'] = host.get_name()
        self._out.write(json.dumps(record) + '\n')
        self._out.flush()

    def v2_playbook_on_task_start(self, task, is_conditional):
        self._emit('task_start', task)

    def v2_runner_on_start(self, host, task):
        self._emit('runner_start', task, host)

    def v2_runner_on_ok(self, result):
        self._emit('ok', result._task, result._host)  # pylint: disable=protected-access

    def v2_runner_on_failed(self, result, ignore_errors=False):
        self._emit('failed', result._task, result._host)  # pylint: disable=protected-access

    def v2_runner_on_skipped(self, result):
        self._emit('skipped', result._task, result._host)  # pylint: disable=protected-access

    def v2_runner_on_unreachable(self, result):
        self._emit('unreachable', result._task, result._host)  # pylint: disable=protected-access

    def v2_playbook_on_stats(self, stats):
        if self._out is not None:
            self._out.close()
            self._out = None
