# -*- coding: utf-8 -*-
# Copyright (c) 2026, netfence.docker contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Strict parsers, one per kind of value, for user input and for what the engine and the host report.

Every value that can end up in a firewall payload, a rule comment or a message passes one of
these first: ASCII only where the kernel reads it, no whitespace or control characters, no IPv6
zone suffix (``fe80::1%eth0``: Python's ``ipaddress`` keeps whatever follows the ``%``, newlines
included), explicit length limits. A bad value raises ``ValidationError`` (a ``ValueError``) with
a message naming the option (or the engine field) and the value.

``RenderError`` is different: it is raised by the payload renderers (``_iptables.restore_payload``,
``_nft.payload``) when a token they are about to write is outside its closed character set.
Validated input cannot produce that, so it is a programming error; it aborts before anything is
written.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import re
import typing as t

# Textual limits: the longest IPv6 address (IPv4-mapped, uncompressed) is 45 characters, plus /128.
MAX_ADDRESS = 45
MAX_CIDR = MAX_ADDRESS + 4
MAX_DOCKER_NAME = 128
MAX_LABEL = 255
MAX_HOSTNAME = 253
MAX_NETWORK_MODE = 256
# xt_time (iptables -m time --datestop) stores seconds in a signed 32-bit value: it refuses later times.
XT_TIME_MAX = dt.datetime(2038, 1, 19, 3, 14, 7, tzinfo=dt.timezone.utc)

_ADDRESS_CHARS = re.compile(r'[0-9A-Fa-f:.]+')
_CIDR_CHARS = re.compile(r'[0-9A-Fa-f:./]+')
_PORT_RE = re.compile(r'([0-9]{1,5})(?:/([A-Za-z]{1,8}))?')
DOCKER_NAME_RE = re.compile(r'[a-zA-Z0-9][a-zA-Z0-9_.-]*')
LABEL_KEY_RE = re.compile(r'[a-zA-Z0-9][a-zA-Z0-9_./-]*')
_LABEL_VALUE_FORBIDDEN = frozenset('"\'\\;$`')
_HOSTNAME_RE = re.compile(r'[A-Za-z0-9]([A-Za-z0-9-]{0,62}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,62}[A-Za-z0-9])?)*\.?')
_NETWORK_MODE_RE = re.compile(r'[a-zA-Z0-9][a-zA-Z0-9_.:-]*')
_STATE_RE = re.compile(r'[a-z]{1,32}')
_CONTAINER_ID_RE = re.compile(r'[0-9a-f]{64}')
PROTOS = ('tcp', 'udp')
ENGINE_PROTOS = ('tcp', 'udp', 'sctp')


class ValidationError(ValueError):
    """A value was refused; the message names where it came from and why."""


class RenderError(AssertionError):
    """A payload token outside its closed character set: a programming error, nothing was written."""


def describe_bad(value: str) -> str:
    """What is wrong with ``value``, in words (first offending class of characters)."""
    for ch in value:
        if ch in '\n\r':
            return 'a newline'
        if ch == '\t':
            return 'a tab'
        if ch.isspace():
            return 'whitespace'
        if not ch.isprintable() or ord(ch) < 32 or ord(ch) == 127:
            return 'a control character'
        if ord(ch) > 127:
            return 'a non-ASCII character %r' % ch
    if '%' in value:
        return 'a zone suffix (%)'
    bad = sorted({ch for ch in value if ch in '"\'\\;$`(){}|&<>*?!#%'})
    if bad:
        return 'forbidden character(s) ' + ' '.join(bad)
    return 'characters outside the allowed set'


def _shown(value: str) -> str:
    return value if len(value) <= 100 else value[:100] + '...'


def _text(value: t.Any, what: str, limit: int, kind: str = 'is invalid') -> str:
    """A non-empty str of printable ASCII without whitespace (reported first: it says most), at most ``limit``."""
    if not isinstance(value, str) or value == '':
        raise ValidationError('%s must be a non-empty string, got %r' % (what, value))
    if any(not 33 <= ord(ch) < 127 for ch in value):
        raise ValidationError('%s %r %s: it contains %s' % (what, _shown(value), kind, describe_bad(value)))
    if len(value) > limit:
        raise ValidationError('%s %r is too long (%d > %d characters)' % (what, value[:40] + '...', len(value), limit))
    return value


def address(value: t.Any, what: str, version: int | None = None) -> str:
    """One IP address (no prefix, no zone) → its compressed text."""
    text = _text(value, what, MAX_ADDRESS, 'is not an IP address')
    if not _ADDRESS_CHARS.fullmatch(text):
        raise ValidationError('%s %r is not an IP address: it contains %s' % (what, text, describe_bad(text)))
    try:
        addr = ipaddress.ip_address(text)
    except ValueError:
        raise ValidationError('%s %r is not an IP address' % (what, text)) from None
    if version is not None and addr.version != version:
        raise ValidationError('%s %r is not an IPv%d address' % (what, text, version))
    return addr.compressed


def network(value: t.Any, what: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    """An address or CIDR (host bits cleared), no zone, no whitespace."""
    text = _text(value, what, MAX_CIDR, 'is not an IP address or CIDR')
    if not _CIDR_CHARS.fullmatch(text) or text.count('/') > 1:
        raise ValidationError('%s %r is not an IP address or CIDR: it contains %s'
                              % (what, text, describe_bad(text) if not _CIDR_CHARS.fullmatch(text) else 'two /'))
    try:
        return ipaddress.ip_network(text, strict=False)
    except ValueError:
        raise ValidationError('%s %r is not an IP address or CIDR' % (what, text)) from None


def cidr(value: t.Any, what: str) -> str:
    """Normalised CIDR text ('10.0.0.1' → '10.0.0.1/32'); /0 refused."""
    net = network(value, what)
    if net.prefixlen == 0:
        raise ValidationError('%s %r would allow everyone; remove it instead' % (what, value))
    return net.with_prefixlen if net.version == 4 else '%s/%d' % (net.network_address.compressed, net.prefixlen)


def port_number(value: t.Any, what: str, allow_zero: bool = False) -> int:
    """An int 1-65535 (0 too with ``allow_zero``): ints or digit strings, nothing else."""
    if isinstance(value, bool):
        raise ValidationError('%s %r is not a port number' % (what, value))
    if isinstance(value, str) and re.fullmatch(r'[0-9]{1,5}', value):
        value = int(value)
    if not isinstance(value, int):
        raise ValidationError('%s %r is not a port number (expected 1-65535)' % (what, value))
    if not (0 if allow_zero else 1) <= value <= 65535:
        raise ValidationError('%s %r is out of range 1-65535' % (what, value))
    return value


def port(value: t.Any, what: str = 'ports entry') -> tuple[int, str]:
    """80, '80', '80/tcp', '53/udp' or (53, 'udp') → (port, proto)."""
    proto: t.Any = 'tcp'
    if isinstance(value, (tuple, list)) and len(value) == 2:
        value, proto = value
        if not isinstance(proto, str) or proto.lower() not in PROTOS:
            raise ValidationError('%s: port protocol %r is not supported (use tcp or udp)' % (what, proto))
        proto = proto.lower()
    if isinstance(value, str):
        if len(value) > 14:
            raise ValidationError('%s %r is too long: expected 1-65535, optionally /tcp or /udp' % (what, value[:40]))
        m = _PORT_RE.fullmatch(value)
        if not m:
            raise ValidationError('%s %r is invalid: expected 1-65535, optionally /tcp or /udp%s'
                                  % (what, value, '' if re.fullmatch(r'[0-9A-Za-z/]*', value)
                                     else ' (it contains %s)' % describe_bad(value)))
        value = m.group(1)
        if m.group(2) is not None:
            proto = m.group(2).lower()
            if proto not in PROTOS:
                raise ValidationError('%s: port protocol %r is not supported (use tcp or udp)' % (what, m.group(2)))
    return port_number(value, what), proto


def docker_name(value: t.Any, what: str, limit: int = MAX_DOCKER_NAME) -> str:
    """A Docker-style name ``[a-zA-Z0-9][a-zA-Z0-9_.-]*`` (ASCII), at most ``limit`` characters."""
    text = _text(value, what, limit)
    if not DOCKER_NAME_RE.fullmatch(text):
        raise ValidationError('%s %r is invalid: it contains %s; allowed are letters, digits and _ . - '
                              '(starting with a letter or digit)' % (what, text, describe_bad(text)))
    return text


def label(key: t.Any, value: t.Any, what: str = 'labels') -> tuple[str, str]:
    """A label key (``[a-zA-Z0-9][a-zA-Z0-9_./-]*``) and value (printable ASCII, no quotes, backslash,
    ; $ or backtick), each at most 255 characters."""
    if not isinstance(key, str) or key == '':
        raise ValidationError('%s: label key must be a non-empty string' % what)
    if len(key) > MAX_LABEL or not LABEL_KEY_RE.fullmatch(key):
        raise ValidationError('%s: label key %r is invalid: it contains %s; allowed are letters, digits and '
                              '_ . - / (max %d)' % (what, key, describe_bad(key) if len(key) <= MAX_LABEL
                                                    else 'too many characters', MAX_LABEL))
    if not isinstance(value, str):
        raise ValidationError('%s: label %s: value must be a string' % (what, key))
    if len(value) > MAX_LABEL:
        raise ValidationError('%s: label %s: value is too long (%d > %d characters)' % (what, key, len(value), MAX_LABEL))
    bad = [ch for ch in value if not (32 <= ord(ch) < 127) or ch in _LABEL_VALUE_FORBIDDEN]
    if bad:
        raise ValidationError('%s: label %s: value %r contains forbidden character(s) %s (printable ASCII only; '
                              'no quotes, backslash, newline, tab, ; $ or backtick)'
                              % (what, key, value, ' '.join(sorted(set(map(repr, bad))))))
    return key, value


def host(value: t.Any, what: str) -> str:
    """An IP address or a DNS host name (ASCII letters, digits, - and dots), at most 253 characters."""
    text = _text(value, what, MAX_HOSTNAME, 'is not an IP address or host name')
    if _ADDRESS_CHARS.fullmatch(text) and (':' in text or re.fullmatch(r'[0-9.]+', text)):
        return address(text, what)
    if not _HOSTNAME_RE.fullmatch(text):
        raise ValidationError('%s %r is not an IP address or host name: it contains %s'
                              % (what, text, describe_bad(text)))
    return text


def container_id(value: t.Any, what: str = 'container id') -> str:
    if not isinstance(value, str) or not _CONTAINER_ID_RE.fullmatch(value):
        raise ValidationError('%s %r in the engine answer is not 64 hex digits' % (what, value))
    return value


def network_mode(value: t.Any, what: str) -> str:
    text = _text(value, what, MAX_NETWORK_MODE)
    if not _NETWORK_MODE_RE.fullmatch(text):
        raise ValidationError('%s %r is invalid: it contains %s' % (what, text, describe_bad(text)))
    return text


def state(value: t.Any, what: str) -> str:
    if not isinstance(value, str) or not _STATE_RE.fullmatch(value):
        raise ValidationError('%s %r is invalid: expected a lowercase word' % (what, value))
    return value


def proto(value: t.Any, what: str, allowed: t.Sequence[str] = ENGINE_PROTOS) -> str:
    if not isinstance(value, str) or value.lower() not in allowed:
        raise ValidationError('%s %r is not one of %s' % (what, value, ', '.join(allowed)))
    return value.lower()


def time_text(value: t.Any, what: str = 'expires') -> str:
    """The text of a duration or a UTC time: printable ASCII, no whitespace but the one space allowed
    between date and time, at most 32 characters (the parser itself is _manager.parse_expires)."""
    if isinstance(value, str) and re.fullmatch(r'[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9:]{5,8}[Z0-9:+-]*', value):
        value = value.replace(' ', 'T', 1)
    return _text(value, what, 32, 'is neither a duration (90s, 30m, 2h, 1d, 1h30m) nor a UTC time')


def expiry(value: dt.datetime, what: str = 'expires') -> dt.datetime:
    """A deadline the kernel can hold: xt_time stops at 2038-01-19T03:14:07Z."""
    if value > XT_TIME_MAX:
        raise ValidationError('%s %s is too far in the future: the kernel\'s time match (xt_time) cannot hold a time '
                              'after %s; choose an earlier time or leave expires out'
                              % (what, value.strftime('%Y-%m-%dT%H:%M:%SZ'), XT_TIME_MAX.strftime('%Y-%m-%dT%H:%M:%SZ')))
    return value


# ---------------------------------------------------------------------------
# Renderer checks (closed character sets)
# ---------------------------------------------------------------------------

_IPT_TOKEN = re.compile(r'[A-Za-z0-9_.,/:!=+-]+')
_QUOTED = re.compile(r'"[A-Za-z0-9 _.,/:=+-]*"')
_IPT_CHAIN = re.compile(r'[A-Za-z0-9_-]{1,28}')
_IPT_TABLE = re.compile(r'[a-z]{1,16}')
_NFT_TOKEN = re.compile(r'[A-Za-z0-9_.,/:!=<>{}-]+')
_NFT_WORD = re.compile(r'[a-z0-9_-]{1,32}')
_TOKENS = re.compile(r'"[^"]*"|[^ ]+')


def _tokens(text: str, token: t.Pattern[str], where: str) -> list[str]:
    if not isinstance(text, str) or not text or '  ' in text or text != text.strip(' '):
        raise RenderError('%s: malformed rule text %r' % (where, text))
    found = _TOKENS.findall(text)
    if ' '.join(found) != text:
        raise RenderError('%s: cannot split %r into tokens' % (where, text))
    for tok in found:
        if not (token.fullmatch(tok) or _QUOTED.fullmatch(tok)):
            raise RenderError('%s: token %r of %r is outside the allowed character set' % (where, tok, text))
    return found


def iptables_line(line: str) -> str:
    """One line of an iptables-restore payload: ``*table``, ``COMMIT``, ``-D CHAIN spec`` or
    ``-I CHAIN 1 spec`` whose spec tokens are each in a closed set (quoted comments included)."""
    if line == 'COMMIT' or (line.startswith('*') and _IPT_TABLE.fullmatch(line[1:])):
        return line
    tokens = _tokens(line, _IPT_TOKEN, 'iptables-restore payload')
    ok = len(tokens) >= 3 and _IPT_CHAIN.fullmatch(tokens[1]) is not None and (
        tokens[0] == '-D' or (tokens[0] == '-I' and tokens[2] == '1' and len(tokens) >= 4))
    if not ok:
        raise RenderError('iptables-restore payload: unexpected line %r' % (line,))
    if sum(1 for tok in tokens if tok == '--comment') != 1:
        raise RenderError('iptables-restore payload: line %r has not exactly one comment' % (line,))
    return line


def nft_line(line: str, fixed: t.AbstractSet[str] = frozenset()) -> str:
    """One line of an ``nft -f`` script: one of our ``fixed`` chain lines, ``add``/``delete table``,
    a ``delete rule … handle N`` or an ``add rule`` whose tokens are each in a closed set, with one
    trailing comment."""
    if line in fixed:
        return line
    tokens = _tokens(line, _NFT_TOKEN, 'nft script')
    if len(tokens) < 3 or tokens[0] not in ('add', 'delete') or not all(_NFT_WORD.fullmatch(x) for x in tokens[1:3]):
        raise RenderError('nft script: unexpected line %r' % (line,))
    if tokens[1] == 'rule':
        if tokens[0] == 'delete':
            if len(tokens) != 7 or tokens[5] != 'handle' or not re.fullmatch(r'[0-9]{1,12}', tokens[6]):
                raise RenderError('nft script: unexpected line %r' % (line,))
        elif tokens[-2] != 'comment' or not _QUOTED.fullmatch(tokens[-1]) or tokens.count('comment') != 1:
            raise RenderError('nft script: rule line %r does not end with its one comment' % (line,))
    if ';' in line or '#' in line:
        raise RenderError('nft script: line %r holds a statement separator or comment mark' % (line,))
    return line
