# -*- coding: utf-8 -*-
# Copyright (c) 2026, netfence.docker contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The target host's own addresses (for containers on the host network), stdlib only.

IPv4: ``ip -j -4 addr show`` when iproute2 is there, else the LOCAL entries of
``/proc/net/fib_trie``. IPv6: ``/proc/net/if_inet6``. Loopback, link-local (IPv6) and multicast
addresses are left out: the loopback address has rules of its own, and an IPv6 link-local
address exists on every veth Docker creates, so it would come and go with each container.
"""

from __future__ import annotations

import ipaddress
import json
import re
import typing as t

from ansible_collections.netfence.docker.plugins.module_utils import _validate

Runner = t.Callable[[t.List[str], t.Optional[str]], t.Tuple[int, str, str]]
IF_INET6 = '/proc/net/if_inet6'
FIB_TRIE = '/proc/net/fib_trie'
_IFA_F_DADFAILED = 0x08


class HostAddressError(Exception):
    """The host's addresses could not be read."""


def _usable(addr: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if addr.is_loopback or addr.is_multicast or addr.is_unspecified:
        return False
    return not (addr.version == 6 and addr.is_link_local)


def _sorted_unique(addrs: t.Iterable[ipaddress.IPv4Address | ipaddress.IPv6Address]) -> list[str]:
    return [a.compressed for a in sorted({a for a in addrs if _usable(a)})]


def parse_ip_json(text: str) -> list[str]:
    """Addresses from ``ip -j addr show`` output (either family)."""
    try:
        links = json.loads(text or '[]')
    except ValueError as exc:
        raise HostAddressError('cannot parse the output of ip -j addr: %s' % exc) from None
    found = []
    for link in links if isinstance(links, list) else []:
        for info in (link.get('addr_info') if isinstance(link, dict) else None) or []:
            local = (info or {}).get('local') if isinstance(info, dict) else None
            if local in (None, ''):
                continue
            try:
                found.append(ipaddress.ip_address(_validate.address(local, 'address (local) in ip -j addr output')))
            except _validate.ValidationError as exc:
                raise HostAddressError('host address refused: %s' % exc) from None
    return _sorted_unique(found)


def parse_fib_trie(text: str) -> list[str]:
    """IPv4 addresses of the host: the ``/32 host LOCAL`` leaves of /proc/net/fib_trie."""
    found = []
    leaf = None
    for line in text.splitlines():
        m = re.match(r'^[ |]*\|--\s+([0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}) *$', line, re.ASCII)
        if m:
            leaf = m.group(1)
        elif leaf and re.match(r'^[ |]*/32 host LOCAL *$', line, re.ASCII):
            try:
                found.append(ipaddress.ip_address(_validate.address(leaf, 'address in %s' % FIB_TRIE)))
            except _validate.ValidationError as exc:
                raise HostAddressError('host address refused: %s' % exc) from None
    return _sorted_unique(found)


def parse_if_inet6(text: str) -> list[str]:
    """IPv6 addresses of the host from /proc/net/if_inet6 (DAD-failed ones left out)."""
    found = []
    for line in text.splitlines():
        fields = line.split()
        if len(fields) < 6 or not re.fullmatch(r'[0-9a-fA-F]{32}', fields[0]):
            continue
        try:
            flags = int(fields[4], 16)
        except ValueError:
            continue
        if flags & _IFA_F_DADFAILED:
            continue
        hexaddr = fields[0]
        found.append(ipaddress.ip_address(':'.join(hexaddr[i:i + 4] for i in range(0, 32, 4))))
    return _sorted_unique(found)


def _read(path: str) -> str | None:
    try:
        with open(path, encoding='ascii', errors='replace') as handle:
            return handle.read()
    except OSError:
        return None


def host_addresses(run: Runner, ip_binary: str | None, read: t.Callable[[str], str | None] = _read) -> dict[str, list[str]]:
    """{'ipv4': [...], 'ipv6': [...]} of the host's own addresses (see the module docstring)."""
    ipv4: list[str] | None = None
    problems = []
    if ip_binary:
        rc, out, err = run([ip_binary, '-j', '-4', 'addr', 'show'], None)
        if rc == 0:
            try:
                ipv4 = parse_ip_json(out)
            except HostAddressError as exc:
                problems.append(str(exc))
        else:
            problems.append('%s -j -4 addr show failed (rc=%s): %s' % (ip_binary, rc, (err or out).strip()))
    if ipv4 is None:
        trie = read(FIB_TRIE)
        if trie is None:
            raise HostAddressError('cannot list the host\'s IPv4 addresses: no usable ip command and no %s%s'
                                   % (FIB_TRIE, ' (%s)' % '; '.join(problems) if problems else ''))
        ipv4 = parse_fib_trie(trie)
    inet6 = read(IF_INET6)
    return {'ipv4': ipv4, 'ipv6': parse_if_inet6(inet6) if inet6 is not None else []}
