# -*- coding: utf-8 -*-
# Copyright (c) 2026, netfence.docker contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The managers behind the blackout modules: lookup → plan → diff → apply (docs/design.md)."""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import errno
import datetime as dt
import math
import os
import re
import shlex
import subprocess
import typing as t

from ansible.module_utils.common.text.converters import to_native

from ansible_collections.netfence.docker.plugins.module_utils._docker_api import (
    Container,
    DockerApiError,
    EngineClient,
    containers_from_api,
    firewall_backend,
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
    DockerUserMissing,
    ExistingRule,
    Firewall,
    _datestop,
    FirewallError,
    netfence_rules_in_save,
    tag_of,
)
from ansible_collections.netfence.docker.plugins.module_utils import (
    _audit, _backends, _drift, _hostcfg, _lock, _nft, _state, _validate, _verify)
from ansible_collections.netfence.docker.plugins.module_utils._nft import (
    Nft,
    NftError,
    plan_bridge,
    plan_inet,
)
from ansible_collections.netfence.docker.plugins.module_utils._planner import (
    FAMILIES,
    LEGACY_MAX_NAME_LENGTH,
    MAX_NAME_LENGTH,
    Chains,
    LOOPBACK,
    Options,
    PlanError,
    blackout_name,
    parse_tag,
    container_addresses,
    validate_blackout_name,
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
    backend={'type': 'str', 'choices': ['auto', 'iptables', 'nftables'], 'default': 'auto'},
    verify={'type': 'bool', 'default': False},
    verify_addresses={'type': 'list', 'elements': 'str', 'default': []},
    lock_timeout={'type': 'int', 'default': 60},
    rollback={'type': 'dict'},
    hold={'type': 'bool', 'default': False},  # the watcher: _hold.py
    # who and why (_audit.py), and the panic button (_panic.py): issue #17
    all={'type': 'bool'},
    **_audit.AUDIT_ARGUMENT_SPEC,
)


INFO_ARGUMENT_SPEC: dict[str, dict[str, t.Any]] = dict(
    COMMON_ARGUMENT_SPEC,
    name={'type': 'str'},
    service={'type': 'str'},
    project={'type': 'str'},
)

_DURATION_RE = re.compile(r'(?:([0-9]+)d)?(?:([0-9]+)h)?(?:([0-9]+)m)?(?:([0-9]+)s)?')
_ABSOLUTE_RE = re.compile(r'([0-9]{4})-([0-9]{2})-([0-9]{2})T([0-9]{2}):([0-9]{2})(?::([0-9]{2}))?(Z|[+-]00:?00)?')
MAX_DURATION = dt.timedelta(days=366)


class BlackoutError(Exception):
    """A failure to report with fail_json; ``details`` go into the result."""

    def __init__(self, msg: str, **details: t.Any) -> None:
        super().__init__(msg)
        self.details = details


def parse_expires(value: str | None) -> dt.timedelta | dt.datetime | None:
    """'90s', '30m', '2h', '1d', '1h30m' → timedelta; '2026-11-27T18:00:00Z' → aware UTC datetime."""
    if value is None or value == '':
        return None
    try:
        text = _validate.time_text(value)
    except _validate.ValidationError as exc:
        raise BlackoutError(str(exc)) from None
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
            when = dt.datetime(*(int(g or 0) for g in m.groups()[:6]), tzinfo=dt.timezone.utc)
        except ValueError as exc:
            raise BlackoutError('expires %r is not a valid time: %s' % (text, exc)) from None
        try:
            return _validate.expiry(when)
        except _validate.ValidationError as exc:
            raise BlackoutError(str(exc)) from None
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


def run_argv(argv: list[str], data: str | None, env_update: dict[str, str]) -> tuple[int, str, str]:
    """Every command of the module: ``argv`` (a list, never a shell), ``data`` on its stdin (none:
    /dev/null), the environment updated; (rc, stdout, stderr) as text (surrogateescape, as Ansible's).

    Not ``AnsibleModule.run_command``: its read loop waits 1 s in ``select()`` with no pipe left
    when the command is reaped between its two ``poll()`` checks; ``make bench`` measured that on
    about a third of the module's runs (strace: ``poll([], 0, 1000)`` after the child's exit).
    A command that cannot be started: rc 127 and the reason on stderr.
    """
    try:
        proc = subprocess.run(argv, input=None if data is None else data.encode('utf-8'),  # pylint: disable=ansible-bad-function
                              stdin=subprocess.DEVNULL if data is None else None,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              env=dict(os.environ, **env_update), check=False)
    except OSError as exc:
        return 127, '', '%s: %s' % (argv[0] if argv else '(no command)', exc.strerror or exc)
    return (proc.returncode, to_native(proc.stdout, errors='surrogate_or_strict'),
            to_native(proc.stderr, errors='surrogate_or_strict'))


def chain_of(line: str) -> str:
    """The chain a rule line is in, as the diff groups them: ``-A DOCKER-USER ...`` → ``DOCKER-USER``,
    ``nft inet netfence output: ...`` → ``nft inet netfence output:`` (family and table included:
    the bridge and the inet table both have a ``forward`` chain)."""
    words = line.split()
    return ' '.join(words[:4]) if words[0] == 'nft' else words[1]


def diff_text(rules: t.Iterable[t.Any]) -> str:
    """The diff text of rules: family by family, chain by chain (``chain_of``), each chain's rules in
    the given order (stable), so rules read back from a chain print as they were planned."""
    grouped = by_family(sorted(rules, key=lambda r: chain_of(r.line)))
    return ''.join('%s: %s\n' % (f, line) for f in FAMILIES for line in grouped[f])


def by_family(rules: t.Iterable[t.Any]) -> dict[str, list[str]]:
    """{'ipv4': [lines], 'ipv6': [lines]} in the given order (nft rules by their address)."""
    out: dict[str, list[str]] = {family: [] for family in FAMILIES}
    for rule in rules:
        out[rule.addr_family].append(rule.line)
    return out


class _NftView:
    """What InfoManager.blackout needs of a detection on a host without Docker's iptables chains."""

    chains = Chains(forward={'ipv4': 'forward', 'ipv6': 'forward'}, families=FAMILIES)
    variant = None
    notes = ()


_NFT_VIEW = _NftView()


def rule_address(rule: t.Any) -> str | None:
    """The single address a saved netfence rule pins (-s for outbound/reply paths, else -d)."""
    if not isinstance(rule, ExistingRule):
        return rule.address
    opt = '-s' if rule.tag.path in ('outbound', 'reply') else '-d'
    tokens = shlex.split(rule.spec)
    for i, tok in enumerate(tokens[:-1]):
        if tok == opt and (i == 0 or tokens[i - 1] != '!'):
            return tokens[i + 1]
    return None


@dataclasses.dataclass
class Target:
    """What a run is to make of blackout ``name``: mode present / absent / rollback, and the rules."""

    name: str
    mode: str
    options: t.Any
    expires: t.Any
    containers: list[Container]
    backend: str
    backend_why: str
    desired: dict[tuple[str, str], list[t.Any]] = dataclasses.field(default_factory=dict)
    nft_desired: tuple[t.Any, ...] = ()
    record: dict[str, t.Any] | None = None
    since: dt.datetime | None = None
    deadline: dt.datetime | None = None
    audit: dict[str, t.Any] | None = None  # reason / requested_by to record (_audit.py)


@dataclasses.dataclass
class HostView:
    """The host as read under the lock: per (variant, family) the saved filter table and its netfence
    rules, every rule of our nft tables, the state record's entry of the blackout."""

    detection: t.Any
    why: str | None
    tables: dict[tuple[str, str], tuple[str, list[ExistingRule]]]
    nft: list[t.Any]
    notes: list[str]
    record: dict[str, t.Any] | None

    @property
    def existing(self) -> list[ExistingRule]:
        return [r for key in sorted(self.tables, key=lambda k: (k[1], k[0])) for r in self.tables[key][1]]


_CHAIN_NAME_RE = re.compile(r'[A-Za-z0-9_.-]{1,28}')


def _nft_tag_name(text: str) -> str | None:
    """The blackout named by the netfence comment ending an nft rule text, or None."""
    m = re.search(r' comment "(netfence bo=[^"\\]*)"$', text)
    tag = parse_tag(m.group(1)) if m else None
    return tag.bo if tag is not None else None


def snapshot_rule(name: str, item: t.Any) -> ExistingRule:
    """An iptables rule of a ``prior`` snapshot, validated (ValueError otherwise): a netfence rule of
    blackout ``name`` in filter, with a single-address destination (source for outbound paths)."""
    if not isinstance(item, dict) or item.get('family') not in FAMILIES or item.get('variant') not in ('nft', 'legacy'):
        raise ValueError('iptables rule needs family ipv4/ipv6 and variant nft/legacy: %r' % (item,))
    chain, spec = item.get('chain'), item.get('spec')
    if item.get('table', 'filter') != 'filter' or not isinstance(chain, str) or not _CHAIN_NAME_RE.fullmatch(chain) \
            or not isinstance(spec, str) or '\n' in spec or '\r' in spec:
        raise ValueError('iptables rule needs table filter, a chain and a one-line spec: %r' % (item,))
    tag = tag_of(spec)
    if tag is None or tag.bo != name:
        raise ValueError('not a netfence rule of blackout %s: -A %s %s' % (name, chain, spec))
    rule = ExistingRule(family=item['family'], table='filter', chain=chain, spec=spec, tag=tag, datestop=None)
    address = rule_address(rule)
    if address is None or not valid_address(address.split('/')[0]) or \
            address.split('/')[1:] not in ([], ['32'], ['128']):
        raise ValueError('rule without a single-address %s: -A %s %s' % (
            'source' if tag.path in ('outbound', 'reply') else 'destination', chain, spec))
    return ExistingRule(family=rule.family, table='filter', chain=chain, spec=spec, tag=tag,
                        datestop=_datestop(shlex.split(spec)) if '--datestop' in spec else None)


def snapshot_rules(name: str, items: list[t.Any]) -> tuple[dict[tuple[str, str], list[ExistingRule]], list[t.Any]]:
    """({(variant, family): iptables rules}, nft rules) of a ``prior`` snapshot's rules, validated."""
    desired: dict[tuple[str, str], list[ExistingRule]] = {}
    nft_rules: list[t.Any] = []
    for item in items:
        if isinstance(item, dict) and item.get('backend') == 'nft':
            nft_rules.append(_nft.snapshot_rule(str(item.get('nfamily')), str(item.get('chain')),
                                                str(item.get('text')), name))
        elif isinstance(item, dict) and item.get('backend') == 'iptables':
            desired.setdefault((item.get('variant'), item.get('family')), []).append(snapshot_rule(name, item))
        else:
            raise ValueError('rule with no backend iptables or nft: %r' % (item,))
    return desired, nft_rules


def all_held(created: list[list[t.Any]], holding: t.AbstractSet[tuple[str, str, str]]) -> bool:
    """True when every recorded chain ([nfam, table, chain]) holds a rule of ours, and every
    recorded table ([nfam, table, None]) a chain that does: none of them can be empty."""
    tables = {(nfam, table) for nfam, table, _chain in holding}
    return all((nfam, table, chain) in holding if chain is not None else (nfam, table) in tables
               for nfam, table, chain in created)


class _HostManager:
    """What both modules share: running commands, the firewall and the engine."""

    def __init__(self, module: t.Any, now: dt.datetime | None = None) -> None:
        self.module = module
        self.params = module.params
        self.now = utc(now or dt.datetime.now(dt.timezone.utc))
        self.firewall = Firewall(self._run, self._binaries())
        self.nft = Nft(self._run_utc, module.get_bin_path('nft', required=False, opt_dirs=['/usr/sbin', '/sbin']))
        self._containers: list[Container] | None = None
        self._info: dict[str, t.Any] | None = None
        self._host_addresses: dict[str, list[str]] | None = None

    def _run_utc(self, argv: list[str], data: str | None) -> tuple[int, str, str]:
        """nft with TZ=UTC: ``meta time`` values are written and listed in UTC."""
        return run_argv(self.bounded(argv), data, {'LANG': 'C', 'LC_ALL': 'C', 'TZ': 'UTC'})

    def engine_info(self) -> dict[str, t.Any]:
        if self._info is None:
            try:
                self._info = self.engine().info()
            except (DockerApiError, ValueError) as exc:
                raise BlackoutError(str(exc)) from None
        return self._info

    def read_nft(self) -> list[t.Any]:
        """Every rule of our inet and bridge tables (netfence-tagged or not)."""
        try:
            return self.nft.list_table('inet')[0] + self.nft.list_table('bridge')[0]
        except NftError as exc:
            raise BlackoutError(str(exc)) from None

    def read_record_section(self) -> dict[str, t.Any]:
        """This host's section of the state record, read only (nothing is created on disk)."""
        record = self.state_record(readonly=True)
        try:
            with record:
                state = record.find(_state.netns_id())
        except OSError as exc:
            self.module.warn('cannot read %s: %s' % (_state.state_path(), exc))
            state = record.section()
        for warning in record.warnings:
            self.module.warn(warning)
        return state

    def state_record(self, readonly: bool = False) -> _state.StateRecord:
        """The state record, section of this engine (DockerRootDir) when the engine answers."""
        try:
            root = self.engine_info().get('DockerRootDir')
        except BlackoutError:
            root = None
        return _state.StateRecord(_state.host_key(root if isinstance(root, str) else None), readonly=readonly)

    def engine_backend(self) -> str | None:
        """'iptables' / 'nftables' as the engine reports it; None when the engine does not answer."""
        try:
            return firewall_backend(self.engine_info())
        except BlackoutError:
            return None

    def _run(self, argv: list[str], data: str | None) -> tuple[int, str, str]:
        return run_argv(self.bounded(argv), data, {'LANG': 'C', 'LC_ALL': 'C'})

    def bounded(self, argv: list[str]) -> list[str]:
        """``argv`` under coreutils ``timeout`` (when the target has it): no command waits forever
        (run_argv has no timeout of its own). The bound: what is left of the lock budget, plus 30 s."""
        if not hasattr(self, '_timeout_bin'):
            self._timeout_bin = self.module.get_bin_path('timeout', required=False, opt_dirs=['/usr/bin', '/bin'])
        if not self._timeout_bin:
            return argv
        lock = getattr(self, 'lock', None)
        budget = int(math.ceil(lock.remaining())) if lock is not None else int(self.params.get('lock_timeout') or 60)
        return [self._timeout_bin, '-k', '5', str(budget + 30)] + list(argv)

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
            raise BlackoutError(str(exc)) from None

    def containers(self) -> list[Container]:
        """Every container of the engine (one GET /containers/json?all=1), cached."""
        if self._containers is None:
            try:
                self._containers = containers_from_api(self.engine().list_containers())
            except (DockerApiError, ValueError) as exc:
                raise BlackoutError(str(exc)) from None
        return self._containers

    def read_firewall_tolerant(self) -> tuple[t.Any, list[ExistingRule], str | None]:
        """(detection, every netfence rule on the host, None), or (None, [], why) when no iptables
        variant holds Docker's chains (DockerUserMissing); any other firewall error fails."""
        try:
            detection = self.firewall.detect()
            existing: list[ExistingRule] = []
            for family in detection.chains.families:
                existing += netfence_rules_in_save(self.firewall.save(family), family)
        except DockerUserMissing as exc:
            return None, [], str(exc)
        except FirewallError as exc:
            raise BlackoutError(str(exc)) from None
        return detection, existing, None

    @staticmethod
    def firewall_result(detection: t.Any, why: str | None = None) -> dict[str, t.Any]:
        if detection is None:
            return {'variant': None, 'families': [], 'forward_chain': {}, 'notes': [why] if why else []}
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
            # A restore also accepts the longer names of earlier versions, to remove their rules.
            limit = MAX_NAME_LENGTH if p['state'] == 'present' else LEGACY_MAX_NAME_LENGTH
            return blackout_name(service=p['service'], project=p['project'], names=refs, name=p['name'], limit=limit)
        except (ValueError, PlanError) as exc:
            raise BlackoutError(str(exc)) from None

    def options(self) -> tuple[Options, t.Any]:
        p = self.params
        for address in p['verify_addresses']:
            try:
                _validate.host(address, 'verify_addresses entry')
            except _validate.ValidationError as exc:
                raise BlackoutError(str(exc)) from None
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
        """validate → lock → read → plan → changes → (check mode stops) apply all or nothing → record."""
        given = self.audit_given()
        if self.params.get('all'):  # the panic button: every netfence blackout of the host
            return self.lift_all(given)
        target = self.target()
        with self.host_lock(target.name):
            view = self.read(target.name, target.mode == 'present' and target.backend == 'iptables')
            prior = self.prior(target.name, view)
            try:
                self.plan_target(target, view)
                changes = self.changes(target, view)
                target.audit = self.audit_fields(target, view, changes, given)
                cleaned: list[str] = []
                record_changed = False
                if not self.module.check_mode:
                    self.apply_all(target.name, changes, prior)
                    cleaned, record_changed = self.record(target, view, changes)
            except BlackoutError as exc:  # every failure once the firewall was read carries prior
                exc.details.setdefault('prior', prior)
                raise
        result = self.result(target, view, changes, prior, cleaned, record_changed)
        self.audit_result(target, view, changes, given, result)
        return self.finish(target, view, result)

    # -- who and why (_audit.py), the panic button (_panic.py): issue #17 ------------------------

    def audit_given(self) -> dict[str, str | None]:
        """The validated ``reason`` / ``requested_by`` of this run (None when not given)."""
        try:
            return _audit.from_params(self.params)
        except _audit.AuditError as exc:
            raise BlackoutError(str(exc)) from None

    def lift_all(self, given: dict[str, str | None]) -> dict[str, t.Any]:
        """``all: true``: every netfence blackout of the host, under the host lock; then the port check."""
        # Only the panic button needs _panic: other runs do not compile it (the payload is compiled on every run).
        from ansible_collections.netfence.docker.plugins.module_utils import _panic  # pylint: disable=import-outside-toplevel
        try:
            _panic.validate(self.params)
        except _panic.PanicError as exc:
            raise BlackoutError(str(exc)) from None
        with self.host_lock('all'):
            result, removed = _panic.lift_all(self, given)
        return _panic.finish(self, result, removed)

    def _mine(self, name: str, view: HostView) -> list[t.Any]:
        return [r for r in view.existing + [r for r in view.nft if r.tag is not None]
                if r.tag.bo == name and not r.expired(self.now)]

    def audit_fields(self, target: Target, view: HostView, changes: list[_backends.Change],
                     given: dict[str, str | None]) -> dict[str, t.Any] | None:
        """The reason / requested_by to record with a blackout that keeps rules; None otherwise."""
        if target.mode != 'present' or not any(c.planned for c in changes):
            return None
        return _audit.merged(view.record, given, _audit.expiry_changed(self._mine(target.name, view), target.deadline))

    def audit_result(self, target: Target, view: HostView, changes: list[_backends.Change],
                     given: dict[str, str | None], result: dict[str, t.Any]) -> None:
        """reason, requested_by and audit (event, the line logged) into ``result``; a new reason or
        requester alone is a change (a renewal: only the state record changes)."""
        name = target.name
        if target.mode == 'rollback':
            fields = {f: (target.record or {}).get(f) for f in _audit.FIELDS}
            line = _audit.log_line('rollback', name, dict(fields, requested_by=given.get('requested_by')))  \
                if result['changed'] and not self.module.check_mode else None
            result.update(fields, audit={'event': 'rollback' if result['changed'] else None, 'logged': line})
            return
        added = [r for c in changes for r in c.to_add]
        removed = [r for c in changes for r in c.to_remove if r.tag is not None and r.tag.bo == name]
        result.update(_audit.run_result(name, target.audit is not None, target.audit or given, given,
                                        self._mine(name, view), target.deadline, added, removed, view.record,
                                        log=not self.module.check_mode))
        if target.audit is not None and _audit.changed(target.audit, view.record) and not result['changed']:
            result['changed'] = True
            result['outcome'] = 'applied'

    def target(self) -> Target:
        """The validated inputs: what this run is to make of which blackout."""
        p = self.params
        if p.get('rollback') is not None:
            return self.rollback_target()
        if all(p.get(k) is None for k in ('service', 'containers', 'labels')):
            raise BlackoutError('one of the following is required: service, containers, labels, rollback (or all: '
                                'true with state: absent)')
        name = self.name()
        options, expires = self.options()
        mode = p['state']
        containers: list[Container] = self.selected(name) if mode == 'present' else []
        backend, why = _hostcfg.choose_backend(p['backend'], self.engine_backend() if mode == 'present' else None)
        return Target(name=name, mode=mode, options=options, expires=expires, containers=containers,
                      backend=backend, backend_why=why)

    def rollback_target(self) -> Target:
        """A ``rollback`` snapshot, every rule validated before anything is read or written."""
        snap = self.params['rollback']
        name = snap.get('name')
        rules, record = snap.get('rules'), snap.get('record')
        try:
            validate_name(name if isinstance(name, str) else '', 'rollback.name')
            if not isinstance(rules, list) or not (record is None or isinstance(record, dict)):
                raise ValueError('rollback needs rules (a list) and record (a dict or null), as in a prior result')
            desired, nft_desired = snapshot_rules(name, rules)
        except (ValueError, PlanError) as exc:
            raise BlackoutError('rollback: %s' % exc) from None
        backend = (record or {}).get('backend') or ('nftables' if any(r.nfamily == 'inet' for r in nft_desired)
                                                    else 'iptables')
        return Target(name=name, mode='rollback', options=None, expires=None, containers=[], backend=backend,
                      backend_why='rollback', desired=desired, nft_desired=tuple(nft_desired), record=record)

    def host_lock(self, name: str) -> t.ContextManager[t.Any]:
        """The host lock (bounded wait: lock_timeout); a LockTimeout becomes a BlackoutError. Check
        mode writes nothing, so it takes no lock (and creates nothing on disk)."""
        if self.module.check_mode:
            return contextlib.nullcontext()
        lock = _lock.HostLock(_lock.lock_path(_state.state_path()), self.params.get('lock_timeout') or 0, name)
        self.lock = lock
        try:
            lock.acquire()
        except _lock.LockTimeout as exc:
            raise BlackoutError(str(exc), blackout=name, holder=exc.holder, changed=False) from None
        except OSError as exc:
            hint = ': the module needs root, run the task with become: true' if exc.errno in (
                errno.EACCES, errno.EPERM, errno.EROFS) else ''
            raise BlackoutError('cannot take the host lock %s (%s)%s' % (lock.path, exc.strerror or exc, hint),
                                blackout=name) from None
        return lock

    def read(self, name: str, need_docker_user: bool) -> HostView:
        """Every netfence rule on the host: each iptables variant and family there is, our nft tables,
        the state record's entry of ``name``."""
        try:
            try:
                detection, why = self.firewall.detect(), None
            except FirewallError as exc:
                if need_docker_user or not isinstance(exc, DockerUserMissing):
                    raise
                detection, why = None, str(exc)
            saved, notes = self.firewall.read_all()
        except FirewallError as exc:
            raise BlackoutError(str(exc), blackout=name) from None
        tables = {key: (text, netfence_rules_in_save(text, key[1])) for key, text in saved.items()}
        entry = self.read_record_section()['blackouts'].get(name)
        return HostView(detection=detection, why=why, tables=tables, nft=self.read_nft(), notes=notes,
                        record=copy.deepcopy(entry))

    def prior(self, name: str, view: HostView) -> dict[str, t.Any]:
        """Blackout ``name`` on this host before this run: its rules in chain order, its record entry."""
        rules: list[dict[str, t.Any]] = []
        for (variant, family), (_text, found) in sorted(view.tables.items(), key=lambda kv: (kv[0][1], kv[0][0])):
            rules += [{'backend': 'iptables', 'family': family, 'variant': variant, 'table': r.table,
                       'chain': r.chain, 'spec': r.spec} for r in found if r.tag.bo == name]
        for nfamily in ('inet', 'bridge'):
            if not any(r.nfamily == nfamily and r.tag is not None and r.tag.bo == name for r in view.nft):
                continue
            try:
                listed = _nft.parse_listing(self.nft.list_text(nfamily))
            except NftError as exc:
                raise BlackoutError(str(exc), blackout=name) from None
            rules += [{'backend': 'nft', 'nfamily': nfamily, 'chain': chain, 'text': text}
                      for chain, text in listed if _nft_tag_name(text) == name]
        return {'name': name, 'rules': rules, 'record': copy.deepcopy(view.record)}

    def plan_target(self, target: Target, view: HostView) -> None:
        """The rules blackout ``target.name`` is to have (a rollback's are given already)."""
        if target.mode != 'present' or not target.containers:
            return
        mine = [r for r in view.existing + [r for r in view.nft if r.tag is not None]
                if r.tag.bo == target.name and not r.expired(self.now)]
        since = min(r.tag.since for r in mine) if mine else self.now
        deadline = None
        if isinstance(target.expires, dt.timedelta):
            deadline = utc(since + target.expires)
            if deadline <= self.now:  # the running blackout is older than asked: start afresh
                since, deadline = self.now, utc(self.now + target.expires)
        elif isinstance(target.expires, dt.datetime):
            deadline = target.expires
            if deadline <= self.now:
                raise BlackoutError('expires %s is in the past (now %s)' % (iso(deadline), iso(self.now)),
                                    blackout=target.name)
        target.since, target.deadline = since, deadline
        try:
            if deadline is not None:
                _validate.expiry(deadline)
            planned = dataclasses.replace(target.options, expires=deadline)
            target.nft_desired = self.plan_nft(target.name, target.containers, planned, since, target.backend)
            if target.backend == 'iptables':
                containers = target.containers
                host_addrs = self.host_addresses() if any(host_network(c) for c in containers) else None
                rules = plan(target.name, containers, planned, since, view.detection.chains, host_addrs)
                target.desired = {(view.detection.variant, f): [r for r in rules if r.family == f]
                                  for f in FAMILIES if any(r.family == f for r in rules)}
        except (PlanError, _validate.ValidationError) as exc:
            raise BlackoutError(str(exc), blackout=target.name) from None

    def changes(self, target: Target, view: HostView) -> list[_backends.Change]:
        """One Change per backend: every iptables variant/family read or wanted, then our nft tables."""
        for variant, family in target.desired:
            if (variant, family) not in view.tables and self.firewall.variant_commands(variant, family) is None:
                raise BlackoutError('rollback: iptables-%s for %s is not on this host' % (variant, family),
                                    blackout=target.name)
        hooks = {'wait': self.wait_seconds, 'created': self.created_chains, 'cleanup': self.cleanup_chains}
        return (_backends.iptables_changes(self.firewall, view.tables, target.desired, target.name, self.now, **hooks)
                + _backends.nft_changes(self.nft, view.nft, target.nft_desired, target.name, self.now))

    def wait_seconds(self) -> int:
        """``iptables-restore -w N``: what is left of the lock budget (lock_timeout)."""
        lock = getattr(self, 'lock', None)
        return int(math.ceil(lock.remaining())) if lock is not None else 60

    def created_chains(self, to_add: t.Sequence[t.Any]) -> list[list[t.Any]]:
        """iptables-nft base chains/tables the rules about to be inserted will create."""
        if not self.nft.available:
            return []
        return _nft.missing_base_chains(self._run_utc, t.cast(str, self.nft.nft),
                                        ((r.family, r.chain) for r in to_add), self.nft.last_chains)

    def cleanup_chains(self, created: list[list[t.Any]]) -> list[str]:
        return _nft.cleanup_created(self._run_utc, t.cast(str, self.nft.nft), created)[1]

    def apply_all(self, name: str, changes: list[_backends.Change], prior: dict[str, t.Any]) -> None:
        """Apply each change in order; when one fails, compensate the applied ones in reverse order
        and fail saying what was undone (the firewall is then as before the run). Every payload is
        rendered (and checked, RenderError) before anything is written."""
        try:
            for change in changes:
                if change.changed:
                    change.payload()
        except _validate.RenderError as exc:
            raise BlackoutError('internal error, nothing was written: %s' % exc, blackout=name, prior=prior) from None
        done: list[_backends.Change] = []
        for change in changes:
            if not change.changed:
                continue
            try:
                change.apply()
            except (FirewallError, NftError) as exc:
                undone, failed = self.compensate(done)
                why = str(exc) + ('' if not done else ' (undone: %s)' % ', '.join(d['backend'] for d in undone))
                if failed:
                    why += '; COMPENSATION FAILED for %s: the host is left half changed' % ', '.join(
                        f['backend'] for f in failed)
                raise BlackoutError(why, blackout=name, prior=prior, failed_backend=change.key, compensated=undone,
                                    not_compensated=failed, changed=bool(failed),
                                    outcome='applied' if failed else 'rolled_back') from None
            done.append(change)

    @staticmethod
    def compensate(done: list[_backends.Change]) -> tuple[list[dict[str, t.Any]], list[dict[str, t.Any]]]:
        """Undo the applied changes, last first: (undone, failed) descriptions."""
        undone, failed = [], []
        for change in reversed(done):
            try:
                change.compensate()
                undone.append(change.describe())
            except (FirewallError, NftError) as exc:
                failed.append(dict(change.describe(), error=str(exc)))
        return undone, failed

    def result(self, target: Target, view: HostView, changes: list[_backends.Change], prior: dict[str, t.Any],
               cleaned: list[str], record_changed: bool) -> dict[str, t.Any]:
        """What the module returns (before verify and diff)."""
        name = target.name
        ipt = [c for c in changes if isinstance(c, _backends.IptablesChange)]
        desired = [r for c in ipt for r in c.planned]
        nft_desired = [r for c in changes if isinstance(c, _backends.NftChange) for r in c.planned]
        added = [r for c in changes for r in c.to_add]
        removed = [r for c in changes for r in c.to_remove if r.tag is not None]
        changed = any(c.changed for c in changes) or record_changed
        result: dict[str, t.Any] = {
            'changed': changed,
            'outcome': self.outcome(target, changes, prior, changed),
            'blackout': name,
            'prior': prior,
            'containers': [container_result(c) for c in target.containers],
            'covered': describe(desired, target.containers) if target.mode == 'present' else [],
            'rules': by_family(desired + nft_desired),
            'added': by_family(added),
            'removed': by_family(removed),
            'since': iso(target.since),
            'expires': iso(target.deadline),
            'changes': [c.describe() for c in changes if c.changed],
            'firewall': self.firewall_result(view.detection, view.why),
        }
        if target.backend == 'nftables' and target.mode == 'present':
            result['covered'] = _nft.describe(nft_desired, target.containers)
        if target.mode == 'absent':
            ids = {r.tag.cid for r in removed if r.tag.bo == name}
            result['still_blacked_out_by'] = sorted({
                r.tag.bo for r in view.existing + [r for r in view.nft if r.tag is not None]
                if r.tag.bo != name and r.tag.cid in ids and not r.expired(self.now)})
        result['firewall']['notes'] += view.notes
        result['firewall'].update(backend=target.backend, backend_reason=target.backend_why,
                                  bridge=getattr(self, 'bridge_decision', {}), cleaned=cleaned)
        return result

    @staticmethod
    def outcome(target: Target, changes: list[_backends.Change], prior: dict[str, t.Any], changed: bool) -> str:
        """applied / unchanged (a blackout), restored / nothing_to_restore, rolled_back / unchanged."""
        if target.mode == 'present':
            return 'applied' if changed else 'unchanged'
        if target.mode == 'rollback':
            return 'rolled_back' if changed else 'unchanged'
        return 'restored' if prior['rules'] or prior['record'] is not None else 'nothing_to_restore'

    def finish(self, target: Target, view: HostView, result: dict[str, t.Any]) -> dict[str, t.Any]:
        """verify (outside the host lock) and the diff text."""
        name = target.name
        if self.params.get('verify') and target.mode != 'rollback':
            result['verify'], checked = self.verify(name, target.options,
                                                    target.containers if target.mode == 'present' else None,
                                                    view.existing + [r for r in view.nft if r.tag is not None])
            if target.mode == 'absent':  # the containers a restore looked up for its check
                result['containers'] = [container_result(c) for c in checked]
            if result['verify']['state'] == 'failed':
                raise BlackoutError(_verify.failure(result['verify']), **result)
        if self.module._diff:  # pylint: disable=protected-access
            # Chain by chain (stable: each chain's rules in their order in the chain), so the saved
            # order (before) and the planned order (after) print alike when nothing changes.
            # Our nft rules (nftables backend, bridge table) too: a kept rule prints as planned.
            planned = [r for rules in target.desired.values() for r in rules] + list(target.nft_desired)
            by_identity = {r.identity: r for r in planned}
            saved = [by_identity.get(r.identity, r) for r in view.existing + view.nft
                     if r.tag is not None and r.tag.bo == name]
            result['diff'] = {
                'before_header': 'netfence rules of %s' % name,
                'after_header': 'netfence rules of %s' % name,
                'before': diff_text(saved),
                'after': diff_text(planned),
            }
        return result

    def verify(self, name: str, options: Options, containers: list[Container] | None,
               rules: list[t.Any]) -> tuple[dict[str, t.Any], list[Container]]:
        """Connect to the service's published TCP ports from the host: refused after a blackout,
        answering after a restore. ``containers`` None (a restore): looked up, when the engine
        answers. Returns the outcome and the containers checked.
        """
        p = self.params
        expect = 'refused' if p['state'] == 'present' else 'open'
        if self.module.check_mode:
            return {'state': 'skipped', 'expect': expect, 'results': [], 'summary': 'skipped: check mode'}, \
                containers or []
        if containers is None:
            try:
                containers = [c for c in select(self.containers(), service=p['service'], project=p['project'],
                                                names=p['containers'], labels=p['labels']) if c.running]
            except BlackoutError as exc:
                why = 'skipped: the Docker engine could not be queried: %s' % exc
                return {'state': 'skipped', 'expect': expect, 'results': [], 'summary': why}, []
        outcome = _verify.check(_verify.targets(containers, options.ports, p['verify_addresses']), expect,
                                options.allow_from)
        outcome['summary'] = _verify.summary(outcome)
        outcome['state'] = 'ok' if outcome['ok'] else 'failed'
        ids = {c.short_id for c in containers}
        covering = sorted({r.tag.bo for r in rules
                           if r.tag.bo != name and r.tag.cid in ids and not r.expired(self.now)})
        if not outcome['ok'] and expect == 'open' and covering:
            # Another blackout of the same containers (e.g. project/service next to service) keeps
            # them closed: this restore did its job.
            outcome['state'] = 'skipped'
            outcome['summary'] = ('skipped: the containers are still blacked out by %s (restore %s with the '
                                  'matching project)' % (', '.join(covering), 'them' if len(covering) > 1 else 'it'))
        return outcome, containers

    def plan_nft(self, name: str, containers: list[Container], options: Options, since: dt.datetime,
                 backend: str) -> tuple[t.Any, ...]:
        """Rules of our nft tables: the inet table (nftables backend) and the bridge table."""
        rules: list[t.Any] = []
        if backend == 'nftables':
            if any(host_network(c) for c in containers):
                raise PlanError('containers on the host network need the iptables backend')
            if not self.nft.available:
                raise PlanError('backend nftables needs nft on the target: install the nftables package')
            rules += plan_inet(name, containers, options, since)
        sysctls = _hostcfg.brnf()
        families = [f for f in _hostcfg.bridge_families(sysctls)
                    if any(container_addresses(c, f) for c in containers)]
        decision: dict[str, t.Any] = {'bridge_nf_call': {'ipv4': sysctls['ipv4'], 'ipv6': sysctls['ipv6']},
                                      'families': families, 'table': None, 'mode': None}
        if families and not self.nft.available:
            decision['note'] = ('bridged traffic between containers bypasses the firewall here and nft is not '
                                'installed: peers on the same network are NOT cut')
            self.module.warn(decision['note'])
        elif families:
            caps = self.nft.bridge_caps()
            decision.update(table='bridge %s' % _nft.TABLE, mode=caps.mode, reject=caps.reject)
            rules += plan_bridge(name, containers, options, since, families, caps)
        self.bridge_decision = decision
        return tuple(rules)

    def record(self, target: Target, view: HostView, changes: list[_backends.Change]) -> tuple[list[str], bool]:
        """Update the state record under its lock: the blackout's entry, the iptables-nft chains the
        module created (deleted again once empty). Returns (cleaned, whether the entry changed)."""
        name = target.name
        if target.mode == 'rollback':
            entry = copy.deepcopy(target.record)
        else:
            rules = [r for c in changes for r in c.planned]
            entry = _state.record_entry(rules, iso(target.since), iso(target.deadline),
                                        target.backend) if rules else None
            if entry is not None and target.audit is not None:
                entry.update(target.audit)
        created = [e for c in changes if isinstance(c, _backends.IptablesChange) and c.applied for e in c.created]
        holding = _backends.holding_chains(changes)
        cleaned: list[str] = []
        record = self.state_record()
        changed = False
        try:
            with record:
                state = record.find(_state.netns_id())
                before = repr(state)
                changed = state['blackouts'].get(name) != entry and (view.record is not None or entry is not None)
                state['netns'] = _state.netns_id()
                if entry is not None:
                    state['blackouts'][name] = entry
                else:
                    state['blackouts'].pop(name, None)
                state['created'] += [c for c in created if c not in state['created']]
                detection = view.detection
                if state['created'] and not all_held(state['created'], holding) and self.nft.available and (
                        detection is None or detection.variant == 'nft'):
                    state['created'], cleaned = _nft.cleanup_created(
                        self._run_utc, t.cast(str, self.nft.nft), state['created'])
                if repr(state) != before:
                    record.save()
        except OSError as exc:
            self.module.warn('could not write %s: %s' % (_state.state_path(), exc))
        for warning in record.warnings:
            self.module.warn(warning)
        # A blackout's own entry follows its rules; a restore or a rollback that only changes the
        # record (its rules were flushed by someone else) did change the host's state.
        return cleaned, changed and target.mode != 'present'


class InfoManager(_HostManager):
    """netfence.docker.blackout_info: every blackout on the host, compared with the containers."""

    def wanted(self, name: str) -> bool:
        """Whether blackout ``name`` is asked for (option name; else service, with or without project)."""
        p = self.params
        if p.get('name'):
            return name == p['name']
        if p.get('service'):
            if p.get('project'):
                return name == '%s/%s' % (p['project'], p['service'])
            return name.rpartition('/')[2] == p['service']
        return True

    def service(self, containers: list[Container], docker: dict[str, t.Any]) -> dict[str, t.Any] | None:
        """The running containers of option service (and project) now; None without the option."""
        p = self.params
        if not p.get('service'):
            return None
        try:
            for value, what in ((p['service'], 'service'), (p.get('project'), 'project')):
                if value is not None:
                    validate_name(value, what)
        except ValueError as exc:
            raise BlackoutError(str(exc)) from None
        running = [c for c in select(containers, service=p['service'], project=p.get('project')) if c.running]
        return {'name': p['service'], 'project': p.get('project'), 'checked': bool(docker['reachable']),
                'containers': [container_result(c) for c in running]}

    def run(self) -> dict[str, t.Any]:
        wanted = self.params.get('name')
        if wanted is not None:
            try:
                validate_blackout_name(wanted, LEGACY_MAX_NAME_LENGTH)
            except PlanError as exc:
                raise BlackoutError(str(exc)) from None
        detection, existing, fw_why = self.read_firewall_tolerant()
        nft_rules = [r for r in self.read_nft() if r.tag is not None]
        state = self.read_record_section()
        # No DOCKER-USER is only an error where the engine uses iptables: with Docker's nftables
        # firewall backend there is none by design, and a host without blackout reports nothing.
        if (detection is None and not nft_rules and not state['blackouts'] and not self.params.get('service')
                and self.engine_backend() != 'nftables'):
            raise BlackoutError(t.cast(str, fw_why))
        existing = list(existing) + nft_rules
        detection_view = detection if detection is not None else _NFT_VIEW
        docker: dict[str, t.Any] = {'reachable': True, 'error': None}
        try:
            containers = self.containers()
        except BlackoutError as exc:
            containers = []
            docker = {'reachable': False, 'error': str(exc)}
        names = sorted(n for n in {r.tag.bo for r in existing} | set(state['blackouts']) if self.wanted(n))
        blackouts = []
        for n in names:
            rules = [r for r in existing if r.tag.bo == n]
            entry = state['blackouts'].get(n)
            if rules:
                report = self.blackout(n, rules, containers, detection_view, bool(docker['reachable']))
            else:
                report = self.flushed(n, entry or {})
            report['members'] = [container_result(c) for c in _drift.members(
                n, containers, {r.tag.cid for r in rules})] if docker['reachable'] else None
            blackouts.append(self.with_record(report, entry, rules))
        firewall = self.firewall_result(detection, fw_why)
        firewall.update(backend=self.engine_backend() if docker['reachable'] else None,
                        bridge_nf_call=_hostcfg.brnf(),
                        nft_tables=sorted({'%s %s' % (r.nfamily, r.table) for r in nft_rules}))
        result = {'blackouts': blackouts, 'firewall': firewall, 'docker': docker}
        service = self.service(containers, docker)
        if service is not None:
            result['service'] = service
        return result

    def flushed(self, name: str, entry: dict[str, t.Any]) -> dict[str, t.Any]:
        """A recorded blackout none of whose rules is left on the host."""
        expires = entry.get('expires')
        expired = bool(expires) and expires <= iso(self.now)
        return {'name': name, 'state': 'expired' if expired else 'broken', 'since': entry.get('since'),
                'expires': expires, 'containers': [], 'paths': [], 'rules': by_family([]),
                'drift': {'stale': {}, 'uncovered': {}, 'taken': {}}, 'collateral': [], 'uncovered_replicas': [],
                'partial': {}, 'drift_checked': False, 'missing_paths': {}}

    def with_record(self, report: dict[str, t.Any], entry: dict[str, t.Any] | None,
                    rules: list[t.Any]) -> dict[str, t.Any]:
        """Compare with the state record: rules it lists that are gone make the blackout broken."""
        report['backend'] = (entry or {}).get('backend') or (
            'nftables' if any(getattr(r, 'nfamily', None) == 'inet' for r in rules) else 'iptables')
        report['recorded'] = entry is not None
        report.update({f: (entry or {}).get(f) for f in _audit.FIELDS})
        report['missing_rules'] = 0
        if entry is None or report['state'] == 'expired':
            return report
        lost = _state.missing_rules(entry, (r.identity for r in rules))
        if lost:
            report['state'] = 'broken'
            report['missing_rules'] = len(lost)
            for item in lost:
                addr = str(item.get('address', '')).split('/', maxsplit=1)[0]
                paths = set(report['missing_paths'].get(addr, [])) | {item.get('path')}
                report['missing_paths'][addr] = sorted(p for p in paths if p)
        return report

    def blackout(self, name: str, rules: list[ExistingRule], containers: list[Container], detection: t.Any,
                 docker_ok: bool) -> dict[str, t.Any]:
        """One blackout found on the host, assessed against the containers (plugins/module_utils/_drift.py)."""
        facts = [_drift.RuleFact(cid=r.tag.cid, container=r.tag.ct, path=r.tag.path, address=rule_address(r),
                                 chain=r.chain, datestop=r.datestop) for r in rules]
        tagged = {f.cid for f in facts}
        hostnet = any(f.path == 'hostnet' for f in facts)
        local = self.local_cidrs(detection) if docker_ok and (hostnet or any(
            host_network(c) for c in _drift.members(name, containers, tagged))) else None
        host = _drift.HostView(families=tuple(detection.chains.families), forward=dict(detection.chains.forward),
                               local=frozenset(local) if local is not None else None)
        found = _drift.assess(name, facts, containers, host, self.now, docker_ok)
        names = {f.cid: f.container for f in facts}
        addresses: dict[str, set[str]] = {}
        for fact in facts:
            if fact.address and fact.path != 'loopback' and fact.address not in LOOPBACK.values():
                addresses.setdefault(fact.cid, set()).add(fact.address.split('/')[0])
        return {
            'name': name,
            'state': found.state,
            'since': iso(min(r.tag.since for r in rules)),
            'expires': iso(found.expires),
            'containers': [{'name': names[cid], 'id': cid, 'addresses': sorted(addresses.get(cid, set()))}
                           for cid in sorted(names, key=lambda c: (names[c], c))],
            'paths': sorted({r.tag.path for r in rules}),
            'rules': by_family(rules),
            'drift': found.drift(),
            'collateral': found.collateral(),
            'uncovered_replicas': found.uncovered_replicas(),
            'partial': found.partial,
            # False when the engine did not answer: no drift could be seen, 'active' is then unproven.
            'drift_checked': found.checked,
            'missing_paths': found.missing_paths,
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
        """The running containers that belong to blackout ``name`` now (_drift.members)."""
        return _drift.members(name, containers, tagged_ids)


def valid_address(value: str) -> bool:
    """True for a single IPv4/IPv6 address (no prefix): the strict parser (no zone, whitespace,
    control or non-ASCII characters)."""
    try:
        _validate.address(value, 'address')
    except _validate.ValidationError:
        return False
    return True
