# Copyright (c) 2026, netfence.docker contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Probe every path to the lab's services on every lab host and check the expected outcome.

    probe_check.py cut    memcached: every path to both replicas cut on every host, except the
                          replicas' own outbound connections (egress); bystander: all open
    probe_check.py open   every path to every service open on every host

Uses the lab's Python API (tests/lab/netfence_lab.py; NETFENCE_LAB selects the instance). Prints
the probe tables and one JSON line {"ok": ..., "problems": [...]}; exits 1 on a mismatch.
"""

from __future__ import annotations

import json
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
sys.path.insert(0, os.path.join(ROOT, 'tests', 'lab'))

import netfence_lab  # noqa: E402  pylint: disable=wrong-import-position,import-error

REPLICAS = ('lab-memcached-1', 'lab-memcached-2')
SKIP = ('n/a', '-')


def problems_on(host, expect):
    """Return (table text, list of problems) for one lab host."""
    found = []
    results = netfence_lab.probe(host, service='all')
    missing = [name for name in REPLICAS + ('lab-bystander-1',) if name not in results]
    if missing:
        found.append(f'{host.name}: containers not found: {missing}')
    for name, cells in sorted(results.items()):
        for path, outcome in sorted(cells.items()):
            if outcome in SKIP:
                continue
            cut_expected = expect == 'cut' and name in REPLICAS and path != 'egress'
            if cut_expected and outcome == 'ok':
                found.append(f'{host.name} {name} {path}: still open')
            elif not cut_expected and outcome != 'ok':
                found.append(f'{host.name} {name} {path}: {outcome}, expected ok')
    table = f'### {host.name} (Docker {host.series})\n' + netfence_lab.render_table(results)
    return table, found


def main(argv):
    """Entry point."""
    if len(argv) != 2 or argv[1] not in ('cut', 'open'):
        sys.stderr.write(__doc__)
        return 2
    hosts = netfence_lab.lab_hosts()
    problems = [] if len(hosts) >= 3 else [f'the lab has {len(hosts)} hosts, expected at least 3']
    for host in hosts:
        table, found = problems_on(host, argv[1])
        print(table)
        problems.extend(found)
    print(json.dumps({'ok': not problems, 'expect': argv[1], 'hosts': [h.name for h in hosts],
                      'problems': problems}))
    return 1 if problems else 0


if __name__ == '__main__':
    sys.exit(main(sys.argv))
