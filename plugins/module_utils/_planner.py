# -*- coding: utf-8 -*-
# Copyright (c) 2025, netfence.docker contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Plan the exact, deterministic iptables rules of a blackout (see docs/design.md)."""

from __future__ import annotations

import datetime as dt
import hashlib
import ipaddress
import re
import typing as t
from dataclasses import dataclass, field

from ansible_collections.netfence.docker.plugins.module_utils import _validate
from ansible_collections.netfence.docker.plugins.module_utils._docker_api import Container

FAMILIES = ('ipv4', 'ipv6')
PATHS = ('forward', 'host', 'loopback', 'outbound', 'reply', 'hostnet')
DIRECTIONS = ('inbound', 'both')
REJECT_WITH = ('reset', 'icmp', 'drop')
PROTOS = ('tcp', 'udp')
TABLE = 'filter'
HOST_CHAIN = 'OUTPUT'
INPUT_CHAIN = 'INPUT'
MAX_COMMENT = 255
NFT_MAX_COMMENT = 127  # nft rejects comments of 128 bytes and more
SINCE_FORMAT = '%Y%m%dT%H%M%SZ'
DATESTOP_FORMAT = '%Y-%m-%dT%H:%M:%S'
LOOPBACK = {'ipv4': '127.0.0.1/32', 'ipv6': '::1/128'}
_LOOPBACK_BINDS = {'ipv4': ('', '0.0.0.0', '127.0.0.1'), 'ipv6': ('::', '::1')}
_ICMP_UNREACH = {'ipv4': 'icmp-port-unreachable', 'ipv6': 'icmp6-port-unreachable'}
_SINGLE = {'ipv4': '/32', 'ipv6': '/128'}

# Parsing accepts names of up to 100 characters (rules of earlier versions can still be read and
# removed); new blackouts are limited to MAX_NAME_LENGTH, see below.
BLACKOUT_NAME_PATTERN = r'[A-Za-z0-9][A-Za-z0-9_.,/-]{0,99}'
LEGACY_MAX_NAME_LENGTH = 100
_CT_PATTERN = r'[a-zA-Z0-9][a-zA-Z0-9_.-]{0,127}'
_TAG_FORMAT = 'netfence bo=%s ct=%s id=%s since=%s p=%s h=%s'
_TAG_RE = re.compile(
    r'netfence bo=(?P<bo>%s) ct=(?P<ct>%s) id=(?P<cid>[0-9a-f]{12}) since=(?P<since>[0-9]{8}T[0-9]{6}Z)'
    r' p=(?P<path>%s) h=(?P<h>[0-9a-f]{8})' % (BLACKOUT_NAME_PATTERN, _CT_PATTERN, '|'.join(PATHS)))
# The longest blackout name whose tag fits every backend: the nft comment limit (127 bytes) minus
# the tag's fixed text with the longest path, a 12-hex id, a 16-character since, an 8-hex hash and
# a container name shortened to its minimum of one character (make_tag shortens ct, never bo).
MAX_NAME_LENGTH = NFT_MAX_COMMENT - len(_TAG_FORMAT % ('', 'c', 'x' * 12, 'x' * 16, max(PATHS, key=len), 'x' * 8))


class PlanError(ValueError):
    """The requested blackout cannot be planned."""


def utc(value: dt.datetime) -> dt.datetime:
    """Aware UTC datetime at second resolution (naive values are taken as UTC)."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.timezone.utc)
    return value.astimezone(dt.timezone.utc).replace(microsecond=0)


# ---------------------------------------------------------------------------
# Names and tags
# ---------------------------------------------------------------------------

def validate_blackout_name(name: t.Any, limit: int = MAX_NAME_LENGTH) -> str:
    """Check the blackout name charset and length (design.md): at most ``limit`` characters
    (MAX_NAME_LENGTH: its longest tag fits the nft comment, the tightest backend)."""
    if not isinstance(name, str) or not name:
        raise PlanError('blackout name must be a non-empty string')
    if len(name) > limit:
        raise PlanError('blackout name %r is too long (%d > %d characters: the rule tag must fit the 127 bytes '
                        'of an nft comment); give a shorter name' % (name[:40] + '...', len(name), limit))
    if not re.fullmatch(BLACKOUT_NAME_PATTERN, name):
        raise PlanError('blackout name %r is invalid: it contains %s; allowed are letters, digits and _ . , / - '
                        '(starting with a letter or digit, max %d characters)'
                        % (name, _validate.describe_bad(name), limit))
    return name


def blackout_name(
    *,
    service: str | None = None,
    project: str | None = None,
    names: t.Iterable[str] | None = None,
    name: str | None = None,
    limit: int = MAX_NAME_LENGTH,
) -> str:
    """Derive the blackout name: name, else project/service or service, else sorted names joined by ','."""
    if name:
        return validate_blackout_name(name, limit)
    if service:
        return validate_blackout_name('%s/%s' % (project, service) if project else service, limit)
    names = sorted(set(names or ()))
    if names:
        try:
            return validate_blackout_name(','.join(names), limit)
        except PlanError as exc:
            raise PlanError('%s; with containers, give the blackout a name: (name option)' % exc) from None
    raise PlanError('name is required when selecting containers by labels')


@dataclass(frozen=True)
class Tag:
    """The rule comment: ``netfence bo=… ct=… id=… since=… p=… h=…``."""

    bo: str
    ct: str
    cid: str
    since: dt.datetime
    path: str
    h: str

    def render(self) -> str:
        # Validated once per tag (its fields are immutable): identities render every tag many times.
        text = self.__dict__.get('_rendered')
        if text is None:
            text = _TAG_FORMAT % (
                self.bo, self.ct, self.cid, utc(self.since).strftime(SINCE_FORMAT), self.path, self.h)
            if len(text) > MAX_COMMENT or parse_tag(text) != self:
                raise PlanError('cannot render a valid rule tag from %r' % (self,))
            object.__setattr__(self, '_rendered', text)  # not a field: eq, hash, repr, replace ignore it
        return text


def parse_tag(comment: t.Any) -> Tag | None:
    """Parse a comment as a netfence tag; anything not exactly in the format gives None."""
    if not isinstance(comment, str) or len(comment) > MAX_COMMENT:
        return None
    m = _TAG_RE.fullmatch(comment)
    if not m:
        return None
    text = m.group('since')  # 8 digits T 6 digits Z (the regex): what strptime(SINCE_FORMAT) reads
    try:
        since = dt.datetime(int(text[0:4]), int(text[4:6]), int(text[6:8]), int(text[9:11]), int(text[11:13]),
                            int(text[13:15]), tzinfo=dt.timezone.utc)
    except ValueError:
        return None
    return Tag(bo=m.group('bo'), ct=m.group('ct'), cid=m.group('cid'), since=since,
               path=m.group('path'), h=m.group('h'))


def make_tag(name: str, container: Container, since: dt.datetime, path: str, key: t.Sequence[str],
             limit: int = MAX_COMMENT) -> Tag:
    """The tag of one rule: ``h`` hashes ``key`` (family, table, chain, rule text), the blackout
    and the container id; the container name (informational, the id is authoritative) is
    shortened so that the comment fits ``limit``."""
    cid = container.short_id
    digest = hashlib.sha1('|'.join(tuple(key) + (name, cid)).encode('utf-8')).hexdigest()[:8]
    ct = container.name
    overflow = len(_TAG_FORMAT % (name, ct, cid, 'x' * 16, path, digest)) - limit
    if overflow > 0:
        if overflow >= len(ct):
            raise PlanError('blackout name %r is too long for a rule comment (%d characters)' % (name, limit))
        ct = ct[:len(ct) - overflow]
    return Tag(bo=name, ct=ct, cid=cid, since=utc(since), path=path, h=digest)


def quote_arg(value: str) -> str:
    """Quote like xtables_save_string (iptables-save / iptables-restore)."""
    if value and re.fullmatch(r'[A-Za-z0-9_-]+', value):
        return value
    return '"%s"' % re.sub(r'(["\\\'])', r'\\\1', value)


# ---------------------------------------------------------------------------
# Options and host description
# ---------------------------------------------------------------------------

def parse_port(value: t.Any) -> tuple[int, str]:
    """80, '80', '80/tcp', '53/udp' or (53, 'udp') -> (port, proto); strict (_validate.port)."""
    try:
        return _validate.port(value, 'ports entry')
    except _validate.ValidationError as exc:
        raise PlanError(str(exc)) from None


def normalise_cidr(value: t.Any) -> str:
    """'10.0.0.1' -> '10.0.0.1/32', host bits cleared; reject /0, zones, whitespace (_validate.cidr)."""
    try:
        return _validate.cidr(value, 'allow_from entry')
    except _validate.ValidationError as exc:
        raise PlanError(str(exc)) from None


def _cidr_family(cidr: str) -> str:
    return 'ipv6' if ':' in cidr else 'ipv4'


@dataclass(frozen=True)
class Options:
    """Validated, normalised blackout options (use Options.build for loose input)."""

    direction: str = 'inbound'
    reject_with: str = 'reset'
    ports: tuple[tuple[int, str], ...] = ()
    allow_from: tuple[str, ...] = ()
    loopback: bool = True
    expires: dt.datetime | None = None

    def __post_init__(self) -> None:
        if self.direction not in DIRECTIONS:
            raise PlanError('direction must be one of %s, got %r' % (', '.join(DIRECTIONS), self.direction))
        if self.reject_with not in REJECT_WITH:
            raise PlanError('reject_with must be one of %s, got %r' % (', '.join(REJECT_WITH), self.reject_with))
        if tuple(sorted(set(parse_port(p) for p in self.ports))) != self.ports:
            raise PlanError('ports must be sorted unique (port, proto) tuples; use Options.build')
        if tuple(sorted(set(normalise_cidr(c) for c in self.allow_from),
                        key=lambda c: (_cidr_family(c), ipaddress.ip_network(c)))) != self.allow_from:
            raise PlanError('allow_from must be sorted unique normalised CIDRs; use Options.build')
        if self.expires is not None and self.expires != utc(self.expires):
            raise PlanError('expires must be an aware UTC datetime without microseconds; use Options.build')

    @classmethod
    def build(
        cls,
        direction: str = 'inbound',
        reject_with: str = 'reset',
        ports: t.Iterable[t.Any] = (),
        allow_from: t.Iterable[t.Any] = (),
        loopback: bool = True,
        expires: dt.datetime | None = None,
    ) -> Options:
        cidrs = {normalise_cidr(c) for c in allow_from or ()}
        return cls(
            direction=direction,
            reject_with=reject_with,
            ports=tuple(sorted({parse_port(p) for p in ports or ()})),
            allow_from=tuple(sorted(cidrs, key=lambda c: (_cidr_family(c), ipaddress.ip_network(c)))),
            loopback=bool(loopback),
            expires=utc(expires) if expires is not None else None,
        )

    def cidrs(self, family: str) -> tuple[str, ...]:
        return tuple(c for c in self.allow_from if _cidr_family(c) == family)


def expires_after(since: dt.datetime, seconds: int | float) -> dt.datetime:
    """Absolute expiry for a duration counted from ``since`` (design.md)."""
    return utc(utc(since) + dt.timedelta(seconds=int(seconds)))


@dataclass(frozen=True)
class Chains:
    """What the host offers: forward chain per family (None = no forward rules) and usable families."""

    forward: dict[str, str | None] = field(
        default_factory=lambda: {'ipv4': 'DOCKER-USER', 'ipv6': 'DOCKER-USER'}, hash=False)
    families: tuple[str, ...] = FAMILIES


# ---------------------------------------------------------------------------
# Rules
# ---------------------------------------------------------------------------

class IptablesRuleText:
    """What a planned and a saved iptables rule share: identity (the differ compares these, never the
    rest of the text) and the iptables-save line."""

    family: str
    table: str
    chain: str
    spec: str
    tag: Tag

    @property
    def identity(self) -> tuple[str, str, str, str]:
        return (self.family, self.table, self.chain, self.tag.render())

    @property
    def line(self) -> str:
        return '-A %s %s' % (self.chain, self.spec)

    @property
    def addr_family(self) -> str:
        """'ipv4' / 'ipv6', as for nft rules (whose ``family`` is the table's: inet, bridge)."""
        return self.family


@dataclass(frozen=True)
class Rule(IptablesRuleText):
    """One planned rule; ``spec`` excludes ``-A CHAIN`` and includes the comment."""

    family: str
    table: str
    chain: str
    spec: str
    tag: Tag
    path: str
    address: str


def _except_from(cidrs: t.Sequence[str], side: str) -> dict[str, t.Any]:
    """Match arguments that leave allow_from's networks out of a rule of a built-in chain (which
    cannot RETURN: that would apply the chain's policy): one network negated (``! -s``/``! -d``),
    several as ``-m iprange ! --src-range``/``--dst-range``; none: nothing."""
    if len(cidrs) == 1:
        return {side: cidrs[0], side + '_neg': True}
    if cidrs:
        return {'ranges': cidrs, 'range_opt': '--%s-range' % side}
    return {}


def _neg(negate: bool, opt: str, value: str) -> list[str]:
    return (['!'] if negate else []) + [opt, value]


def _match_tokens(
    *,
    src: str | None = None,
    src_neg: bool = False,
    dst: str | None = None,
    dst_neg: bool = False,
    proto: str | None = None,
    proto_neg: bool = False,
    port: int | None = None,
    port_opt: str = '--dport',
    ranges: tuple[str, ...] = (),
    range_opt: str = '--src-range',
    ctdir: str | None = None,
    expires: dt.datetime | None = None,
    no_rst: bool = False,
) -> list[str]:
    """Tokens in canonical iptables-save order (without comment and target).

    ``no_rst`` (TCP only): ``! --tcp-flags RST RST``, for rules on the service's reply direction:
    the reset our own REJECT in OUTPUT sends to a client on this host comes from the service's
    address in the reply direction of the connection; a REJECT there would swallow it (no reset
    is ever sent for a reset) and the client would hang instead of being refused.
    """
    tokens: list[str] = []
    if src:
        tokens += _neg(src_neg, '-s', src)
    if dst:
        tokens += _neg(dst_neg, '-d', dst)
    if proto:
        tokens += _neg(proto_neg, '-p', proto)
    if port is not None:
        tokens += ['-m', t.cast(str, proto), port_opt, str(port)]
    if no_rst and proto == 'tcp' and not proto_neg:
        tokens += ([] if port is not None else ['-m', 'tcp']) + ['!', '--tcp-flags', 'RST', 'RST']
    for cidr in ranges:
        net = ipaddress.ip_network(cidr)
        tokens += ['-m', 'iprange', '!', range_opt,
                   '%s-%s' % (net.network_address.compressed, net.broadcast_address.compressed)]
    if ctdir:
        tokens += ['-m', 'conntrack', '--ctdir', ctdir]
    if expires is not None:
        tokens += ['-m', 'time', '--datestop', utc(expires).strftime(DATESTOP_FORMAT)]
    return tokens


def ordered_containers(containers: t.Iterable[Container]) -> list[Container]:
    """Each container once, by name then id: the order rules are planned in."""
    unique = {c.id: c for c in containers}
    return sorted(unique.values(), key=lambda c: (c.name, c.id))


class PlannerBase:
    """What the iptables and nft planners share: the blackout's name, options and start, and its
    rules in planning order, each identity once."""

    def __init__(self, name: str, options: Options, since: dt.datetime) -> None:
        self.name = validate_blackout_name(name)
        self.options = options
        self.since = utc(since)
        self.rules: list[t.Any] = []
        self.seen: set[tuple[str, str, str, str]] = set()

    def keep(self, rule: t.Any) -> None:
        """Append ``rule`` unless a rule of the same identity is planned already."""
        if rule.identity not in self.seen:
            self.seen.add(rule.identity)
            self.rules.append(rule)


class _Planner(PlannerBase):

    def targets(self, family: str, proto: str | None) -> list[str]:
        if self.options.reject_with == 'drop':
            return ['-j', 'DROP']
        if self.options.reject_with == 'reset' and proto == 'tcp':
            return ['-j', 'REJECT', '--reject-with', 'tcp-reset']
        return ['-j', 'REJECT', '--reject-with', _ICMP_UNREACH[family]]

    def add(self, family: str, chain: str, path: str, container: Container, address: str,
            matches: list[str], target: list[str]) -> None:
        body = ' '.join(matches + target)
        tag = make_tag(self.name, container, self.since, path, (family, TABLE, chain, body))
        spec = ' '.join(matches + ['-m', 'comment', '--comment', quote_arg(tag.render())] + target)
        rule = Rule(family=family, table=TABLE, chain=chain, spec=spec, tag=tag, path=path, address=address)
        _check_single_address(rule, matches)
        self.keep(rule)

    def rejects(self, family: str, chain: str, path: str, container: Container, address: str,
                port_opt: str | None, **match: t.Any) -> None:
        """Reject set for one chain/path: per port, or tcp-reset + non-tcp, or a single rule."""
        if self.options.ports and port_opt:
            for port, proto in self.options.ports:
                self.add(family, chain, path, container, address,
                         _match_tokens(proto=proto, port=port, port_opt=port_opt, **match),
                         self.targets(family, proto))
        elif self.options.reject_with == 'reset':
            self.add(family, chain, path, container, address,
                     _match_tokens(proto='tcp', **match), self.targets(family, 'tcp'))
            self.add(family, chain, path, container, address,
                     _match_tokens(proto='tcp', proto_neg=True, **match), self.targets(family, None))
        else:
            self.add(family, chain, path, container, address, _match_tokens(**match), self.targets(family, None))

    def address(self, family: str, forward: str | None, container: Container, addr: str) -> None:
        opts = self.options
        cidrs = opts.cidrs(family)
        exp = opts.expires
        # Host chains cannot RETURN (it would apply the built-in chain's policy): negate instead.
        host_neg = _except_from(cidrs, 'src')
        input_neg = _except_from(cidrs, 'dst')
        resets = opts.direction != 'both' and opts.reject_with == 'reset'
        if forward:
            for cidr in cidrs:
                self.add(family, forward, 'forward', container, addr,
                         _match_tokens(src=cidr, dst=addr, ctdir='ORIGINAL', expires=exp), ['-j', 'RETURN'])
            if resets:
                self.reply_resets(family, forward, container, addr, input_neg)
            self.rejects(family, forward, 'forward', container, addr, '--dport',
                         dst=addr, ctdir='ORIGINAL', expires=exp)
        self.rejects(family, HOST_CHAIN, 'host', container, addr, '--dport',
                     dst=addr, ctdir='ORIGINAL', expires=exp, **host_neg)
        if opts.direction != 'both':
            if resets:
                self.reply_resets(family, INPUT_CHAIN, container, addr, input_neg)
            return
        if forward:
            # No ctdir: allowed peers keep both their own and the replies to their connections.
            for cidr in cidrs:
                self.add(family, forward, 'outbound', container, addr,
                         _match_tokens(src=addr, dst=cidr, expires=exp), ['-j', 'RETURN'])
            self.rejects(family, forward, 'outbound', container, addr, None,
                         src=addr, ctdir='ORIGINAL', expires=exp)
        self.rejects(family, INPUT_CHAIN, 'outbound', container, addr, None,
                     src=addr, ctdir='ORIGINAL', expires=exp, **input_neg)
        if forward:
            self.rejects(family, forward, 'reply', container, addr, '--sport',
                         src=addr, ctdir='REPLY', expires=exp, no_rst=True)
        self.rejects(family, INPUT_CHAIN, 'reply', container, addr, '--sport',
                     src=addr, ctdir='REPLY', expires=exp, no_rst=True, **input_neg)

    def reply_resets(self, family: str, chain: str, container: Container, addr: str,
                     neg: dict[str, t.Any]) -> None:
        """Inbound, reject_with=reset: reset the service's side of cut TCP connections.

        Reply-direction TCP from the service (``-s A --ctdir REPLY``) gets a reset back, so the
        service frees a connection the blackout cut as soon as it sends on it. Allowed peers keep
        their connections (``! -d S``, or an iprange for several). These rules match only
        reply-direction packets *from* A, disjoint from the ORIGINAL-direction rules *to* A, so
        their place in the chain (first for the address) changes nothing but keeps later
        changes plain inserts at the top.
        """
        tcp_ports = [p for p, proto in self.options.ports if proto == 'tcp']
        if self.options.ports and not tcp_ports:
            return
        for port in tcp_ports or [None]:
            self.add(family, chain, 'reply', container, addr,
                     _match_tokens(src=addr, proto='tcp', port=port, port_opt='--sport', ctdir='REPLY',
                                   expires=self.options.expires, no_rst=True, **neg),
                     self.targets(family, 'tcp'))

    def loopback(self, family: str, containers: list[Container]) -> None:
        opts = self.options
        neg = _except_from(opts.cidrs(family), 'src')
        addr = LOOPBACK[family]
        done: set[int] = set()
        for container in containers:
            for port in sorted(container.ports, key=lambda p: (p.host_port, p.container_port, p.host_ip)):
                if port.proto != 'tcp' or port.host_ip not in _LOOPBACK_BINDS[family] or port.host_port in done:
                    continue
                if opts.ports and (port.container_port, 'tcp') not in opts.ports:
                    continue
                done.add(port.host_port)
                # A TCP reset even with reject_with=icmp: an ICMPv6 error for a SYN sent by this
                # host is only a soft error for the first SYN (refused after ~1 s, on retransmit).
                self.add(family, HOST_CHAIN, 'loopback', container, addr,
                         _match_tokens(dst=addr, proto='tcp', port=port.host_port, ctdir='ORIGINAL',
                                       expires=opts.expires, **neg),
                         self.targets(family, 'tcp') if opts.reject_with == 'drop'
                         else ['-j', 'REJECT', '--reject-with', 'tcp-reset'])

    def hostnet(self, family: str, container: Container, host_addresses: t.Sequence[str]) -> None:
        """A container on the host network: its ports on the host's own addresses.

        INPUT, per address of the host (other machines, containers through a bridge's gateway):
        ``-d H -p P --dport N CT T C -j REJECT``; OUTPUT (the host itself), the same to the
        loopback address and to every address of the host. Path ``hostnet``.
        """
        opts = self.options
        if not opts.ports:
            raise PlanError('container %s uses the host network: give ports: to say which of its ports to cut'
                            % container.name)
        if opts.direction == 'both':
            raise PlanError('container %s uses the host network: its own connections are the host\'s and cannot '
                            'be told apart, so direction both is not possible; use direction inbound'
                            % container.name)
        neg = _except_from(opts.cidrs(family), 'src')
        for chain, addresses in ((INPUT_CHAIN, tuple(host_addresses)),
                                 (HOST_CHAIN, (LOOPBACK[family],) + tuple(host_addresses))):
            for addr in addresses:
                self.rejects(family, chain, 'hostnet', container, addr, '--dport',
                             dst=addr, ctdir='ORIGINAL', expires=opts.expires, **neg)


def _check_single_address(rule: Rule, matches: list[str]) -> None:
    """Every rule must pin one address: -d A (or -s A for outbound/reply), never negated."""
    opt = '-s' if rule.path in ('outbound', 'reply') else '-d'
    ok = False
    for i, tok in enumerate(matches[:-1]):
        if tok == opt and (i == 0 or matches[i - 1] != '!'):
            ok = matches[i + 1] == rule.address and rule.address.endswith(_SINGLE[rule.family])
    if not ok:
        raise PlanError('internal error: rule without a single-address %s: %s' % (opt, rule.line))


def container_addresses(container: Container, family: str) -> list[str]:
    """Unique single-address CIDRs of a container, networks by name."""
    result: list[str] = []
    for net in sorted(container.networks, key=lambda n: n.name):
        addr = net.ipv4 if family == 'ipv4' else net.ipv6
        if addr:
            cidr = _validate.address(addr, 'container %s address' % container.name,
                                     4 if family == 'ipv4' else 6) + _SINGLE[family]
            if cidr not in result:
                result.append(cidr)
    return result


def host_network(container: Container) -> bool:
    """True for a container on the host's network stack (network mode host)."""
    return container.network_mode == 'host'


def host_address_cidrs(addresses: t.Iterable[str], family: str) -> tuple[str, ...]:
    """The host's own addresses of ``family`` as sorted unique single-address CIDRs, no loopback."""
    found = set()
    for value in addresses:
        text = value.split('/', 1)[0] if isinstance(value, str) else value
        addr = ipaddress.ip_address(_validate.address(text, 'host address'))
        if ('ipv6' if addr.version == 6 else 'ipv4') == family and not addr.is_loopback:
            found.add(addr)
    return tuple(a.compressed + _SINGLE[family] for a in sorted(found))


def plan(
    name: str,
    containers: t.Iterable[Container],
    options: Options,
    since: dt.datetime,
    chains: Chains,
    host_addresses: t.Mapping[str, t.Iterable[str]] | None = None,
) -> tuple[Rule, ...]:
    """The exact ordered rule list for a blackout (order = order in each chain).

    ``host_addresses`` ({family: addresses of the host}) is needed for containers on the host
    network only.
    """
    ordered = ordered_containers(containers)
    planner = _Planner(name, options, since)
    if host_addresses is None and any(host_network(c) for c in ordered):
        raise PlanError('internal error: the host\'s addresses are needed for a container on the host network')
    for family in FAMILIES:
        if family not in chains.families:
            continue
        forward = chains.forward.get(family)
        for container in ordered:
            if host_network(container):
                planner.hostnet(family, container,
                                host_address_cidrs(t.cast(t.Mapping, host_addresses).get(family, ()), family))
                continue
            for addr in container_addresses(container, family):
                planner.address(family, forward, container, addr)
        if options.loopback:
            planner.loopback(family, ordered)
    return tuple(planner.rules)


def _iptables_loopback_port(rule: t.Any) -> int | None:
    """The published port an iptables rule covers on loopback (loopback path, host network on ::1/127.0.0.1)."""
    if rule.path == 'loopback' or (rule.path == 'hostnet' and rule.address in LOOPBACK.values()):
        return int(rule.spec.split('--dport ', 1)[1].split(' ', 1)[0])
    return None


def describe(rules: t.Iterable[t.Any], containers: t.Iterable[Container] = (),
             loopback_port: t.Callable[[t.Any], int | None] = _iptables_loopback_port) -> list[dict[str, t.Any]]:
    """Per container: addresses, paths and loopback ports covered (module return value).

    ``loopback_port(rule)``: the port a rule covers on loopback, else None (iptables rules by default;
    _nft.describe passes its own)."""
    names = {c.short_id: c.name for c in containers}
    result: dict[str, dict[str, t.Any]] = {}
    for rule in rules:
        entry = result.setdefault(rule.tag.cid, {
            'name': names.get(rule.tag.cid, rule.tag.ct), 'id': rule.tag.cid,
            'addresses': [], 'paths': [], 'loopback_ports': [], 'rules': 0})
        entry['rules'] += 1
        if rule.path not in entry['paths']:
            entry['paths'].append(rule.path)
        port = loopback_port(rule)
        if port is not None:
            if port not in entry['loopback_ports']:
                entry['loopback_ports'].append(port)
        elif rule.address.split('/')[0] not in entry['addresses']:
            entry['addresses'].append(rule.address.split('/')[0])
    for entry in result.values():
        entry['paths'] = [p for p in PATHS if p in entry['paths']]
        entry['loopback_ports'].sort()
    return sorted(result.values(), key=lambda e: (e['name'], e['id']))
