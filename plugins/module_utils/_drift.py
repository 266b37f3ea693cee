# -*- coding: utf-8 -*-
# Copyright (c) 2026, netfence.docker contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Drift of one blackout: its rules compared with the containers and the host's addresses.

Pure (no host, no engine): ``assess`` takes what blackout_info read and returns an
``Assessment``. States, worst first: ``expired`` (deadline passed), ``broken`` (rules missing on
some path, or a whole address family of a covered container without rules: a partial blackout,
never ``active``), ``drifted`` (stale addresses, possibly now held by another container, or
replicas of the service without rules), ``active``.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import typing as t

from ansible_collections.netfence.docker.plugins.module_utils._docker_api import (
    COMPOSE_SERVICE_LABEL,
    Container,
    select,
)
from ansible_collections.netfence.docker.plugins.module_utils._planner import (
    FAMILIES,
    LOOPBACK,
    container_addresses,
    host_network,
)


@dataclasses.dataclass(frozen=True)
class RuleFact:
    """What drift needs of one rule of the blackout."""

    cid: str                 # short id of the container the rule was made for
    container: str           # its name, as tagged
    path: str                # forward, host, loopback, outbound, reply, hostnet
    address: str | None      # the single address the rule pins (CIDR), None when none
    chain: str
    datestop: dt.datetime | None = None


@dataclasses.dataclass(frozen=True)
class HostView:
    """The host: address families with Docker chains, their forward chains, its own addresses."""

    families: tuple[str, ...] = FAMILIES
    forward: t.Mapping[str, str | None] = dataclasses.field(default_factory=dict)
    local: frozenset[str] | None = None   # the host's addresses (CIDRs); None: not read


@dataclasses.dataclass(frozen=True)
class Stale:
    """An address with rules that the container they were made for no longer has."""

    container: str
    address: str
    taken_by: str | None     # the container holding it now: the rules cut it (collateral)


@dataclasses.dataclass(frozen=True)
class Uncovered:
    """A running container of the service with addresses no rule covers."""

    container: str
    addresses: tuple[str, ...]
    replica: bool            # True: no rule at all was made for this container (a new replica)


@dataclasses.dataclass
class Assessment:
    """The verdict on one blackout."""

    state: str
    expires: dt.datetime | None
    checked: bool
    stale: list[Stale] = dataclasses.field(default_factory=list)
    uncovered: list[Uncovered] = dataclasses.field(default_factory=list)
    partial: dict[str, list[str]] = dataclasses.field(default_factory=dict)   # container -> addresses
    missing_paths: dict[str, list[str]] = dataclasses.field(default_factory=dict)

    def drift(self) -> dict[str, t.Any]:
        """The module's ``drift`` result: stale and uncovered per container, taken per address."""
        stale: dict[str, list[str]] = {}
        for item in self.stale:
            stale.setdefault(item.container, []).append(item.address)
        return {'stale': stale,
                'uncovered': {u.container: list(u.addresses) for u in self.uncovered},
                'taken': {s.address: s.taken_by for s in self.stale if s.taken_by}}

    def collateral(self) -> list[dict[str, str]]:
        """Containers outside the blackout that its stale rules cut."""
        return [{'address': s.address, 'rule_for': s.container, 'taken_by': s.taken_by}
                for s in self.stale if s.taken_by]

    def uncovered_replicas(self) -> list[dict[str, t.Any]]:
        return [{'container': u.container, 'addresses': list(u.addresses), 'new_replica': u.replica}
                for u in self.uncovered]


def _bare(addr: str) -> str:
    return addr.split('/', maxsplit=1)[0]


def _family(addr: str) -> str:
    return 'ipv6' if ':' in addr else 'ipv4'


def members(name: str, containers: t.Sequence[Container], tagged_ids: t.AbstractSet[str]) -> list[Container]:
    """The running containers that belong to blackout ``name`` now.

    A service blackout (``svc`` or ``project/svc``) is matched like the module matches it;
    other blackouts (explicit containers, labels) by the containers named in their tags.
    """
    running = [c for c in containers if c.running]
    project, _sep, service = name.rpartition('/')
    if ',' not in name and service:
        matched = select(running, service=service, project=project or None)
        if matched or any(c.labels.get(COMPOSE_SERVICE_LABEL) == service for c in containers):
            return matched
    return [c for c in running if c.short_id in tagged_ids]


def ruled(rules: t.Iterable[RuleFact]) -> tuple[dict[str, set[str]], dict[str, set[str]], dict[str, set[str]]]:
    """(addresses per container id, hostnet addresses per container id, paths per address)."""
    by_cid: dict[str, set[str]] = {}
    hostnet: dict[str, set[str]] = {}
    paths: dict[str, set[str]] = {}
    for rule in rules:
        if rule.path == 'loopback' or rule.address is None:
            continue
        if rule.path == 'hostnet':
            if rule.address not in LOOPBACK.values():
                hostnet.setdefault(rule.cid, set()).add(rule.address)
            continue
        by_cid.setdefault(rule.cid, set()).add(rule.address)
        paths.setdefault(rule.address, set()).add(rule.path)
    return by_cid, hostnet, paths


def stale_addresses(rules: t.Sequence[RuleFact], containers: t.Sequence[Container],
                    local: t.AbstractSet[str] | None) -> list[Stale]:
    """Addresses with rules that their container (same id) no longer has, and who holds them now."""
    names = {r.cid: r.container for r in rules}
    by_cid, hostnet, _paths = ruled(rules)
    running = {c.short_id: c for c in containers if c.running}
    owner = {a: c for c in running.values() for f in FAMILIES for a in container_addresses(c, f)}
    out: list[Stale] = []
    for cid, addrs in sorted(by_cid.items()):
        own = running.get(cid)
        current = {a for f in FAMILIES for a in container_addresses(own, f)} if own else set()
        for addr in sorted(addrs - current):
            holder = owner.get(addr)
            taken = holder.name if holder is not None and holder.short_id != cid else None
            out.append(Stale(names[cid], _bare(addr), taken))
    for cid, addrs in sorted(hostnet.items()) if local is not None else ():
        own = running.get(cid)
        current = set(local) if own is not None and host_network(own) else set()
        out += [Stale(names[cid], _bare(addr), None) for addr in sorted(addrs - current)]
    return out


def uncovered(rules: t.Sequence[RuleFact], service: t.Sequence[Container], host: HostView) -> list[Uncovered]:
    """Running containers of the service with addresses that no rule covers."""
    by_cid, hostnet, _paths = ruled(rules)
    covered = {a for addrs in by_cid.values() for a in addrs}
    out: list[Uncovered] = []
    for container in service:
        if host_network(container):
            missing = sorted(set(host.local or ()) - hostnet.get(container.short_id, set()))
            tagged = container.short_id in hostnet
        else:
            missing = [a for f in FAMILIES if f in host.families
                       for a in container_addresses(container, f) if a not in covered]
            tagged = container.short_id in by_cid
        if missing:
            out.append(Uncovered(container.name, tuple(_bare(a) for a in missing), not tagged))
    return out


def partial(rules: t.Sequence[RuleFact], service: t.Sequence[Container], host: HostView) -> dict[str, list[str]]:
    """Covered containers with a whole address family without rules (one family's change landed,
    the other's did not): the blackout is broken, not drifted."""
    by_cid, _hostnet, _paths = ruled(rules)
    out: dict[str, list[str]] = {}
    for container in service:
        addrs = by_cid.get(container.short_id)
        if not addrs or host_network(container):
            continue
        for family in host.families:
            current = container_addresses(container, family)
            if current and not any(_family(a) == family for a in addrs):
                out.setdefault(container.name, []).extend(_bare(a) for a in current)
    return out


def missing_paths(rules: t.Sequence[RuleFact], host: HostView) -> dict[str, list[str]]:
    """Per address with rules, the paths expected but without one (something flushed a chain)."""
    _by_cid, _hostnet, paths = ruled(rules)
    out: dict[str, list[str]] = {}
    for addr, seen in sorted(paths.items()):
        expected = {'host'}
        if host.forward.get(_family(addr)):
            expected.add('forward')
        if 'outbound' in seen:
            expected |= {'outbound', 'reply'}
        elif 'reply' in seen:  # inbound with reject_with=reset resets the service's side too
            expected.add('reply')
        lost = sorted(expected - seen)
        if lost:
            out[_bare(addr)] = lost
    chains: dict[str, set[str]] = {}
    for rule in rules:
        if rule.path == 'hostnet' and rule.address and rule.address not in LOOPBACK.values():
            chains.setdefault(rule.address, set()).add(rule.chain)
    for addr, seen_chains in sorted(chains.items()):
        if seen_chains != {'INPUT', 'OUTPUT'}:  # hostnet rules: INPUT and OUTPUT per host address
            out[_bare(addr)] = ['hostnet']
    return out


def assess(name: str, rules: t.Sequence[RuleFact], containers: t.Sequence[Container], host: HostView,
           now: dt.datetime, docker_ok: bool = True) -> Assessment:
    """The state of blackout ``name`` from its rules, the engine's containers and the host.

    ``docker_ok`` False (the engine did not answer): no drift can be seen (``checked`` False).
    """
    stops = [r.datestop for r in rules if r.datestop is not None]
    expires = min(stops) if stops else None
    found = Assessment(state='active', expires=expires, checked=docker_ok, missing_paths=missing_paths(rules, host))
    if docker_ok:
        tagged = {r.cid for r in rules}
        service = members(name, containers, tagged)
        found.stale = stale_addresses(rules, containers, host.local)
        found.uncovered = uncovered(rules, service, host)
        found.partial = partial(rules, service, host)
    if expires is not None and expires <= now:
        found.state = 'expired'
    elif found.missing_paths or found.partial:
        found.state = 'broken'
    elif found.stale or found.uncovered:
        found.state = 'drifted'
    return found
