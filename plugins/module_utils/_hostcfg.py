# -*- coding: utf-8 -*-
# Copyright (c) 2026, netfence.docker contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Host configuration: which firewall backend, and which families' bridged traffic bypasses iptables.

- Backend: ``auto`` follows the engine (GET /info → FirewallBackend.Driver: Docker 29's
  ``nftables`` has no DOCKER-USER chain), else iptables; ``nftables`` / ``iptables`` by choice.
- Bridged peers: where ``net.bridge.bridge-nf-call-iptables`` (``…-ip6tables`` for IPv6) is not
  1 in the target's network namespace, frames between containers of one bridge never reach
  iptables or the inet hooks; ``table bridge netfence`` (see _nft.py) cuts them. No sysctl is
  changed.

The state record is _state.py; the cleanup of what iptables-nft created is in _nft.py.
"""

from __future__ import annotations

import typing as t

from ansible_collections.netfence.docker.plugins.module_utils._planner import FAMILIES

BRNF_SYSCTL = {'ipv4': '/proc/sys/net/bridge/bridge-nf-call-iptables',
               'ipv6': '/proc/sys/net/bridge/bridge-nf-call-ip6tables'}


def read_text(path: str) -> str | None:
    try:
        with open(path, encoding='ascii') as handle:
            return handle.read().strip()
    except (OSError, ValueError):
        return None


def brnf() -> dict[str, str | None]:
    """bridge-nf-call-ip(6)tables of this network namespace: '1', '0', or None (br_netfilter not loaded)."""
    return {family: read_text(path) for family, path in BRNF_SYSCTL.items()}


def bridge_families(values: t.Mapping[str, str | None]) -> list[str]:
    """Families whose bridged traffic bypasses iptables (sysctl not 1, or absent)."""
    return [f for f in FAMILIES if values.get(f) != '1']


def choose_backend(option: str, engine_backend: str | None) -> tuple[str, str]:
    """(backend, why) from the module option and the engine's report."""
    if option in ('iptables', 'nftables'):
        return option, 'option backend=%s' % option
    if engine_backend == 'nftables':
        return 'nftables', 'the engine reports FirewallBackend.Driver nftables'
    return 'iptables', 'the engine reports FirewallBackend.Driver %s' % (engine_backend or 'iptables (not reported)')
