# -*- coding: utf-8 -*-
# Copyright (c) 2026, netfence.docker contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The managers behind the blackout modules: lookup → plan → diff → apply (docs/design.md)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import ipaddress
import os
import re
import shlex
import typing as t

from ansible_collections.netfence.docker.plugins.module_utils._docker_api import (
    COMPOSE_SERVICE_LABEL,
    Container,
    DockerApiError,
    EngineClient,
    containers_from_api,
    select,
    validate_container_ref,
    validate_label,
    validate_name,
)
from ansible_collections.netfence.docker.plugins.module_utils._host_addresses import (
    HostAddressError,
    host_addresses,
)
from ansible_collections.netfence.docker.plugins.module_utils._iptables import (
    BINARY_NAMES,
    ExistingRule,
    Firewall,
    FirewallError,
    diff,
    netfence_rules,
    parse_save,
    restore_payload,
)
from ansible_collections.netfence.docker.plugins.module_utils._planner import (
    FAMILIES,
    LOOPBACK,
    Options,
    PlanError,
    Rule,
    blackout_name,
    container_addresses,
    describe,
    host_address_cidrs,
    host_network,
    plan,
    utc,
)

COMMON_ARGUMENT_SPEC: dict[str, dict[str, t.Any]] = {
    'docker_host': {'type': 'str'},
}

BLACKOUT_ARGUMENT_SPEC: dict[str, dict[str, t.Any]] = dict(
    COMMON_ARGUMENT_SPEC,
    service={'type': 'str'},
    project={'type': 'str'},
    containers={'type': 'list', 'elements': 'str'},
    labels={'type': 'dict'},
    name={'type': 'str'},
    state={'type': 'str', 'choices': ['present', 'absent'], 'default': 'present'},
    missing={'type': 'str', 'choices': ['fail', 'ignore'], 'default': 'fail'},
    expires={'type': 'str'},
    direction={'type': 'str', 'choices': ['inbound', 'both'], 'default': 'inbound'},
    ports={'type': 'list', 'elements': 'str'},
    allow_from={'type': 'list', 'elements': 'str'},
    reject_with={'type': 'str', 'choices': ['reset', 'icmp', 'drop'], 'default': 'reset'},
)

INFO_ARGUMENT_SPEC: dict[str, dict[str, t.Any]] = dict(
    COMMON_ARGUMENT_SPEC,
    name={'type': 'str'},
)

_DURATION_RE = re.compile(r'(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?')
_ABSOLUTE_RE = re.compile(r'(\d{4})-(\d{2})-(\d{2})[T ](\d{2}):(\d{2})(?::(\d{2}))?(Z|[+-]00:?00)?')
MAX_DURATION = dt.timedelta(days=366)


class BlackoutError(Exception):
    """A failure to report with fail_json; ``details`` go into the result."""

    def __init__(self, msg: str, **details: t.Any) -> None:
        super().__init__(msg)
        self.details = details


def parse_expires(value: str | None) -> dt.timedelta | dt.datetime | None:
    """'90s', '30m', '2h', '1d', '1h30m' → timedelta; '2026-11-27T18:00:00Z' → aware UTC datetime."""
    if value is None or str(value).strip() == '':
        return None
    text = str(value).strip()
    m = _DURATION_RE.fullmatch(text)
    if m and any(m.groups()):
        days, hours, minutes, seconds = (int(g or 0) for g in m.groups())
        delta = dt.timedelta(days=days, hours=hours, minutes=minutes, seconds=seconds)
        if delta.total_seconds() < 1:
            raise BlackoutError('expires %r is zero: give a positive duration' % text)
        if delta > MAX_DURATION:
            raise BlackoutError('expires %r is longer than a year; leave expires out for a blackout without end'
                                % text)
        return delta
    m = _ABSOLUTE_RE.fullmatch(text)
    if m:
        if m.group(7) is None:
            raise BlackoutError('expires %r has no time zone: write it in UTC with a trailing Z, '
                                'e.g. 2026-11-27T18:00:00Z' % text)
        try:
            return dt.datetime(*(int(g or 0) for g in m.groups()[:6]), tzinfo=dt.timezone.utc)
        except ValueError as exc:
            raise BlackoutError('expires %r is not a valid time: %s' % (text, exc)) from None
    raise BlackoutError('expires %r is neither a duration (90s, 30m, 2h, 1d, 1h30m) nor a UTC time '
                        '(2026-11-27T18:00:00Z)' % text)


def iso(value: dt.datetime | None) -> str | None:
    """UTC ISO 8601 with a trailing Z, or None."""
    return utc(value).strftime('%Y-%m-%dT%H:%M:%SZ') if value is not None else None


def container_result(container: Container) -> dict[str, t.Any]:
    """What the modules return about one container."""
    return {
        'name': container.name,
        'id': container.id,
        'state': container.state,
        'networks': {n.name: {'ipv4': n.ipv4, 'ipv6': n.ipv6} for n in container.networks},
        'ports': [{'container_port': p.container_port, 'proto': p.proto, 'host_ip': p.host_ip,
                   'host_port': p.host_port} for p in container.ports],
    }


def by_family(rules: t.Iterable[Rule | ExistingRule]) -> dict[str, list[str]]:
    """{'ipv4': [lines], 'ipv6': [lines]} in the given order."""
    out: dict[str, list[str]] = {family: [] for family in FAMILIES}
    for rule in rules:
        out[rule.family].append(rule.line)
    return out


def rule_address(rule: ExistingRule) -> str | None:
    """The single address a saved netfence rule pins (-s for outbound/reply paths, else -d)."""
    opt = '-s' if rule.tag.path in ('outbound', 'reply') else '-d'
    tokens = shlex.split(rule.spec)
    for i, tok in enumerate(tokens[:-1]):
        if tok == opt and (i == 0 or tokens[i - 1] != '!'):
            return tokens[i + 1]
    return None


class _HostManager:
    """What both modules share: running commands, the firewall and the engine."""

    def __init__(self, module: t.Any, now: dt.datetime | None = None) -> None:
        self.module = module
        self.params = module.params
        self.now = utc(now or dt.datetime.now(dt.timezone.utc))
        self.firewall = Firewall(self._run, self._binaries())
        self._containers: list[Container] | None = None
        self._host_addresses: dict[str, list[str]] | None = None

    def _run(self, argv: list[str], data: str | None) -> tuple[int, str, str]:
        rc, out, err = self.module.run_command(argv, data=data, binary_data=True,
                                               environ_update={'LANG': 'C', 'LC_ALL': 'C'})
        return rc, out, err

    def _binaries(self) -> dict[str, str | None]:
        found = {}
        for name in BINARY_NAMES:
            found[name] = self.module.get_bin_path(name, required=False, opt_dirs=['/usr/sbin', '/sbin'])
        if not (found.get('iptables-save') or found.get('iptables-nft-save') or found.get('iptables-legacy-save')):
            raise BlackoutError('iptables-save was not found on the target: install the iptables package')
        return found

    def host_addresses(self) -> dict[str, list[str]]:
        """The host's own addresses per family (for containers on the host network), cached."""
        if self._host_addresses is None:
            ip = self.module.get_bin_path('ip', required=False, opt_dirs=['/usr/sbin', '/sbin'])
            try:
                self._host_addresses = host_addresses(self._run, ip)
            except HostAddressError as exc:
                raise BlackoutError(str(exc)) from None
        return self._host_addresses

    def engine(self) -> EngineClient:
        host = self.params.get('docker_host') or os.environ.get('DOCKER_HOST') or None
        try:
            return EngineClient(host)
        except ValueError as exc:
            raise BlackoutError('docker_host: %s' % exc) from None

    def containers(self) -> list[Container]:
        """Every container of the engine (one GET /containers/json?all=1), cached."""
        if self._containers is None:
            try:
                self._containers = containers_from_api(self.engine().list_containers())
            except (DockerApiError, ValueError) as exc:
                raise BlackoutError(str(exc)) from None
        return self._containers

    def read_firewall(self) -> tuple[t.Any, list[ExistingRule]]:
        """(detection, every netfence rule on the host)."""
        try:
            detection = self.firewall.detect()
            existing: list[ExistingRule] = []
            for family in detection.chains.families:
                existing += netfence_rules(parse_save(self.firewall.save(family)), family)
        except FirewallError as exc:
            raise BlackoutError(str(exc)) from None
        return detection, existing

    @staticmethod
    def firewall_result(detection: t.Any) -> dict[str, t.Any]:
        chains = detection.chains
        return {
            'variant': detection.variant,
            'families': list(chains.families),
            'forward_chain': {f: chains.forward.get(f) for f in chains.families},
            'notes': list(detection.notes),
        }


class BlackoutManager(_HostManager):
    """netfence.docker.blackout: one run = one diff, applied in one transaction per family."""

    def name(self) -> str:
        p = self.params
        try:
            if p['service'] is not None:
                validate_name(p['service'], 'service')
            if p['project'] is not None:
                validate_name(p['project'], 'project')
            refs = p['containers']
            if refs is not None:
                if not refs:
                    raise ValueError('containers must name at least one container')
                for ref in refs:
                    validate_container_ref(ref)
            if p['labels'] is not None:
                if not p['labels']:
                    raise ValueError('labels must hold at least one label')
                for key, value in p['labels'].items():
                    validate_label(key, value)
                if not p['name']:
                    raise ValueError('name is required with labels: it names the blackout in its rules')
            return blackout_name(service=p['service'], project=p['project'], names=refs, name=p['name'])
        except (ValueError, PlanError) as exc:
            raise BlackoutError(str(exc)) from None

    def options(self) -> tuple[Options, t.Any]:
        p = self.params
        expires = parse_expires(p['expires'])
        try:
            options = Options.build(direction=p['direction'], reject_with=p['reject_with'],
                                    ports=p['ports'] or (), allow_from=p['allow_from'] or ())
        except PlanError as exc:
            raise BlackoutError(str(exc)) from None
        return options, expires

    def selected(self, name: str) -> list[Container]:
        """The running containers to black out; a clear error for anything unusable."""
        p = self.params
        matched = select(self.containers(), service=p['service'], project=p['project'],
                         names=p['containers'], labels=p['labels'])
        if p['containers']:
            unknown = [ref for ref in p['containers']
                       if not select(matched, names=[ref])]
            if unknown and p['missing'] == 'fail':
                raise BlackoutError('no such container: %s' % ', '.join(unknown), blackout=name)
            stopped = [c for c in matched if not c.running]
            if stopped:
                raise BlackoutError('container %s is not running (state: %s): start it, or leave it out'
                                    % (stopped[0].name, stopped[0].state), blackout=name)
        running = [c for c in matched if c.running]
        for container in matched:
            if not container.running:
                self.module.warn('container %s of blackout %s is not running (state: %s) and is not covered; '
                                 'run the blackout again once it is started' % (container.name, name, container.state))
        for container in running:
            mode = container.network_mode
            if host_network(container):
                if not p['ports']:
                    raise BlackoutError('container %s uses the host network: give ports: to say which of its ports '
                                        'to cut' % container.name, blackout=name)
                if p['direction'] == 'both':
                    raise BlackoutError('container %s uses the host network: its own connections are the host\'s, '
                                        'so direction both is not possible; use direction inbound'
                                        % container.name, blackout=name)
                continue
            if mode == 'none' or mode.startswith('container:'):
                raise BlackoutError(
                    'container %s uses network mode %r and has no address of its own, so it cannot be blacked '
                    'out by address; stop it instead, or black out the container whose network it shares'
                    % (container.name, mode), blackout=name)
            if not any(container_addresses(container, f) for f in FAMILIES):
                raise BlackoutError('container %s has no IP address on any network (networks: %s); nothing to '
                                    'block' % (container.name, ', '.join(n.name for n in container.networks) or
                                               'none'), blackout=name)
        if not running and p['missing'] == 'fail':
            what = ('service %s' % p['service'] + (' in project %s' % p['project'] if p['project'] else '')
                    if p['service'] else 'the selected containers')
            raise BlackoutError('no running container matches %s on this host (set missing=ignore to accept that)'
                                % what, blackout=name)
        return running

    def run(self) -> dict[str, t.Any]:
        p = self.params
        name = self.name()
        options, expires = self.options()
        present = p['state'] == 'present'
        containers: list[Container] = self.selected(name) if present else []
        detection, existing = self.read_firewall()
        mine = [r for r in existing if r.tag.bo == name and not r.expired(self.now)]
        desired: tuple[Rule, ...] = ()
        since = deadline = None
        if containers:
            since = min(r.tag.since for r in mine) if mine else self.now
            if isinstance(expires, dt.timedelta):
                deadline = utc(since + expires)
                if deadline <= self.now:  # the running blackout is older than asked: start afresh
                    since, deadline = self.now, utc(self.now + expires)
            elif isinstance(expires, dt.datetime):
                deadline = expires
                if deadline <= self.now:
                    raise BlackoutError('expires %s is in the past (now %s)' % (iso(deadline), iso(self.now)),
                                        blackout=name)
            try:
                desired = plan(name, containers, dataclasses.replace(options, expires=deadline),
                               since, detection.chains,
                               self.host_addresses() if any(host_network(c) for c in containers) else None)
            except PlanError as exc:
                raise BlackoutError(str(exc), blackout=name) from None
        to_add, to_remove = diff(existing, desired, name, self.now)
        changed = bool(to_add or to_remove)
        if changed and not self.module.check_mode:
            try:
                for family in detection.chains.families:
                    self.firewall.apply(family, restore_payload(to_add, to_remove, family))
            except FirewallError as exc:
                raise BlackoutError(str(exc), blackout=name) from None
        before = by_family(r for r in existing if r.tag.bo == name)
        after = by_family(desired)
        result: dict[str, t.Any] = {
            'changed': changed,
            'blackout': name,
            'containers': [container_result(c) for c in containers],
            'covered': describe(desired, containers),
            'rules': after,
            'added': by_family(to_add),
            'removed': by_family(to_remove),
            'since': iso(since),
            'expires': iso(deadline),
            'firewall': self.firewall_result(detection),
        }
        if self.module._diff:  # pylint: disable=protected-access
            result['diff'] = {
                'before_header': 'netfence rules of %s' % name,
                'after_header': 'netfence rules of %s' % name,
                'before': ''.join('%s: %s\n' % (f, line) for f in FAMILIES for line in before[f]),
                'after': ''.join('%s: %s\n' % (f, line) for f in FAMILIES for line in after[f]),
            }
        return result


class InfoManager(_HostManager):
    """netfence.docker.blackout_info: every blackout on the host, compared with the containers."""

    def run(self) -> dict[str, t.Any]:
        wanted = self.params.get('name')
        detection, existing = self.read_firewall()
        docker: dict[str, t.Any] = {'reachable': True, 'error': None}
        try:
            containers = self.containers()
        except BlackoutError as exc:
            containers = []
            docker = {'reachable': False, 'error': str(exc)}
        names = sorted({r.tag.bo for r in existing if wanted is None or r.tag.bo == wanted})
        blackouts = [self.blackout(n, [r for r in existing if r.tag.bo == n], containers, detection,
                                   bool(docker['reachable'])) for n in names]
        return {'blackouts': blackouts, 'firewall': self.firewall_result(detection), 'docker': docker}

    def blackout(self, name: str, rules: list[ExistingRule], containers: list[Container], detection: t.Any,
                 docker_ok: bool) -> dict[str, t.Any]:
        since = min(r.tag.since for r in rules)
        stops = [r.datestop for r in rules if r.datestop is not None]
        expires = min(stops) if stops else None
        by_id = {c.short_id: c for c in containers if c.running}
        # Addresses each rule was made for, per container id.
        ruled: dict[str, set[str]] = {}
        paths: dict[str, set[str]] = {}
        cnames: dict[str, str] = {}
        # Containers on the host network: the host's addresses their rules cover, and the chains.
        hostnet: dict[str, set[str]] = {}
        hostnet_chains: dict[str, set[str]] = {}
        for rule in rules:
            cnames[rule.tag.cid] = rule.tag.ct
            addr = rule_address(rule)
            if rule.tag.path == 'loopback' or addr is None:
                continue
            if rule.tag.path == 'hostnet':
                if addr not in LOOPBACK.values():
                    hostnet.setdefault(rule.tag.cid, set()).add(addr)
                    hostnet_chains.setdefault(addr, set()).add(rule.chain)
                continue
            ruled.setdefault(rule.tag.cid, set()).add(addr)
            paths.setdefault(addr, set()).add(rule.tag.path)
        owner = {a: c for c in containers if c.running for f in FAMILIES for a in container_addresses(c, f)}
        stale: dict[str, list[str]] = {}
        taken: dict[str, str] = {}
        for cid, addrs in sorted(ruled.items()):
            current = set()
            if cid in by_id:
                current = {a for f in FAMILIES for a in container_addresses(by_id[cid], f)}
            for addr in sorted(addrs - current) if docker_ok else ():
                stale.setdefault(cnames[cid], []).append(addr.split('/')[0])
                holder = owner.get(addr)
                if holder is not None and holder.short_id != cid:
                    taken[addr.split('/')[0]] = holder.name
        service_members = self.members(name, containers, set(ruled) | set(hostnet))
        local = self.local_cidrs(detection) if docker_ok and (hostnet or any(
            host_network(c) for c in service_members)) else None
        for cid, addrs in sorted(hostnet.items()):
            current = local if local is not None and cid in by_id and host_network(by_id[cid]) else set()
            for addr in sorted(addrs - current) if local is not None else ():
                stale.setdefault(cnames[cid], []).append(addr.split('/')[0])
        covered = set(owner_addr for addrs in ruled.values() for owner_addr in addrs)
        uncovered: dict[str, list[str]] = {}
        for container in service_members:
            if host_network(container):
                for addr in sorted((local or set()) - hostnet.get(container.short_id, set())):
                    uncovered.setdefault(container.name, []).append(addr.split('/')[0])
                continue
            for family in FAMILIES:
                if family not in detection.chains.families:
                    continue
                for addr in container_addresses(container, family):
                    if addr not in covered:
                        uncovered.setdefault(container.name, []).append(addr.split('/')[0])
        missing_paths: dict[str, list[str]] = {}
        for addr, seen in sorted(paths.items()):
            family = 'ipv6' if ':' in addr else 'ipv4'
            expected = {'host'}
            if detection.chains.forward.get(family):
                expected.add('forward')
            if 'outbound' in seen:
                expected |= {'outbound', 'reply'}
            elif 'reply' in seen:  # inbound with reject_with=reset resets the service's side too
                expected.add('reply')
            lost = sorted(expected - seen)
            if lost:
                missing_paths[addr.split('/')[0]] = lost
        for addr, chains in sorted(hostnet_chains.items()):
            if chains != {'INPUT', 'OUTPUT'}:  # hostnet rules: INPUT and OUTPUT per host address
                missing_paths[addr.split('/')[0]] = ['hostnet']
        if expires is not None and expires <= self.now:
            state = 'expired'
        elif missing_paths:
            state = 'broken'
        elif stale or uncovered:
            state = 'drifted'
        else:
            state = 'active'
        return {
            'name': name,
            'state': state,
            'since': iso(since),
            'expires': iso(expires),
            'containers': [{'name': cnames[cid], 'id': cid,
                            'addresses': sorted(a.split('/')[0] for a in ruled.get(cid, set()) | hostnet.get(cid, set()))}
                           for cid in sorted(cnames, key=lambda c: (cnames[c], c))],
            'paths': sorted({r.tag.path for r in rules}),
            'rules': by_family(rules),
            'drift': {'stale': stale, 'uncovered': uncovered, 'taken': taken},
            'missing_paths': missing_paths,
        }

    def local_cidrs(self, detection: t.Any) -> set[str] | None:
        """The host's own addresses as single-address CIDRs (families in use), None if unreadable."""
        try:
            found = self.host_addresses()
        except BlackoutError as exc:
            self.module.warn('drift of blackouts of containers on the host network not checked: %s' % exc)
            return None
        return {a for f in detection.chains.families for a in host_address_cidrs(found.get(f, ()), f)}

    @staticmethod
    def members(name: str, containers: list[Container], tagged_ids: set[str]) -> list[Container]:
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


def valid_address(value: str) -> bool:
    """True for a single IPv4/IPv6 address (no prefix)."""
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True
