# -*- coding: utf-8 -*-
# Copyright (c) 2025, netfence.docker contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Shared inputs for the planner golden tests (regenerate: NETFENCE_UPDATE_GOLDEN=1 pytest ...)."""

from __future__ import annotations

import datetime as dt
import itertools

from ansible_collections.netfence.docker.plugins.module_utils._docker_api import Container, Network, PublishedPort
from ansible_collections.netfence.docker.plugins.module_utils._planner import Chains, Options, plan

SINCE = dt.datetime(2025, 6, 1, 12, 0, 0, tzinfo=dt.timezone.utc)
EXPIRES = dt.datetime(2025, 6, 1, 14, 30, 0, tzinfo=dt.timezone.utc)
WEB = Container(
    id='0123456789ab' + 'cd' * 26, name='web-1', state='running',
    labels={'com.docker.compose.service': 'web'}, network_mode='app',
    networks=(Network('app', '172.18.0.2', 'fd00::2'),),
    ports=(PublishedPort(80, 'tcp', '0.0.0.0', 8080), PublishedPort(80, 'tcp', '::', 8080)),
)
CHAINS = Chains(forward={'ipv4': 'DOCKER-USER', 'ipv6': 'DOCKER-USER'}, families=('ipv4', 'ipv6'))

AXES = {
    'direction': ('inbound', 'both'),
    'reject_with': ('reset', 'icmp', 'drop'),
    'ports': ((), ('80/tcp', '53/udp')),
    'allow_from': ((), ('10.0.0.0/8', 'fd00:1::/64'), ('10.0.0.0/8', '192.168.0.0/16')),
    'loopback': (True, False),
    'expires': (None, EXPIRES),
}


def combinations():
    keys = list(AXES)
    for values in itertools.product(*(AXES[k] for k in keys)):
        yield dict(zip(keys, values))


def combo_id(kwargs) -> str:
    return 'dir=%s rw=%s ports=%s allow=%s lo=%s exp=%s' % (
        kwargs['direction'], kwargs['reject_with'], ','.join(kwargs['ports']) or '-',
        ','.join(kwargs['allow_from']) or '-', 'y' if kwargs['loopback'] else 'n',
        'y' if kwargs['expires'] else 'n')


def render_all() -> str:
    out = []
    for kwargs in combinations():
        out.append('## ' + combo_id(kwargs))
        for rule in plan('web', [WEB], Options.build(**kwargs), SINCE, CHAINS):
            out.append('%s %s' % (rule.family, rule.line))
    return '\n'.join(out) + '\n'
