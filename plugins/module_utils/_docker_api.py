# -*- coding: utf-8 -*-
# Copyright (c) 2025, netfence.docker contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Docker Engine API lookup over the local socket (stdlib only)."""

from __future__ import annotations

import http.client
import ipaddress
import json
import re
import socket
import typing as t
from dataclasses import dataclass, field
from urllib.parse import urlencode, urlsplit

DEFAULT_DOCKER_HOST = 'unix:///var/run/docker.sock'
COMPOSE_SERVICE_LABEL = 'com.docker.compose.service'
COMPOSE_PROJECT_LABEL = 'com.docker.compose.project'

_NAME_RE = re.compile(r'[a-zA-Z0-9][a-zA-Z0-9_.-]*')
_LABEL_KEY_RE = re.compile(r'[a-zA-Z0-9][a-zA-Z0-9_./-]*')
_LABEL_VALUE_FORBIDDEN = frozenset('"\'\\;$`')
_HEX_RE = re.compile(r'[0-9a-f]+')
_MAX_NAME = 128
_MAX_LABEL = 255


class DockerApiError(Exception):
    """The Docker Engine could not be queried; the message says what to do."""


# ---------------------------------------------------------------------------
# Connection
# ---------------------------------------------------------------------------

def parse_docker_host(url: str | None = None) -> tuple[str, str | tuple[str, int]]:
    """Return ('unix', path) or ('tcp', (host, port)); raise ValueError otherwise."""
    url = DEFAULT_DOCKER_HOST if not url else url.strip()
    supported = 'supported: unix:///path/to/docker.sock or tcp://host:port (plain HTTP, no TLS)'
    if url.startswith('unix://'):
        path = url[len('unix://'):]
        if not path.startswith('/'):
            raise ValueError('docker_host %r: the unix socket path must be absolute (%s)' % (url, supported))
        return 'unix', path
    if url.startswith('tcp://'):
        try:
            parts = urlsplit(url)
            port = parts.port or 2375
        except ValueError as exc:
            raise ValueError('docker_host %r: %s (%s)' % (url, exc, supported)) from None
        if not parts.hostname or parts.path not in ('', '/') or parts.query or parts.username:
            raise ValueError('docker_host %r: expected tcp://host:port (%s)' % (url, supported))
        return 'tcp', (parts.hostname, port)
    raise ValueError('docker_host %r is not supported; %s' % (url, supported))


class _UnixHTTPConnection(http.client.HTTPConnection):
    """HTTPConnection over an AF_UNIX stream socket."""

    def __init__(self, path: str, timeout: float) -> None:
        super().__init__('localhost', timeout=timeout)
        self._socket_path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(self._socket_path)
        except BaseException:
            sock.close()
            raise
        self.sock = sock


class EngineClient:
    """Minimal read-only Docker Engine API client (version-less paths)."""

    def __init__(self, docker_host: str | None = None, timeout: float = 10.0) -> None:
        self.docker_host = docker_host or DEFAULT_DOCKER_HOST
        self.kind, self.address = parse_docker_host(self.docker_host)
        self.timeout = timeout

    def _connection(self) -> http.client.HTTPConnection:
        if self.kind == 'unix':
            return _UnixHTTPConnection(t.cast(str, self.address), self.timeout)
        host, port = t.cast(tuple, self.address)
        return http.client.HTTPConnection(host, port, timeout=self.timeout)

    def _unreachable(self, why: str) -> DockerApiError:
        return DockerApiError(
            'Docker engine unreachable at %s: %s. Is the Docker daemon running on this host, '
            'and is docker_host correct?' % (self.docker_host, why))

    def get(self, path: str, query: dict[str, t.Any] | None = None) -> t.Any:
        """GET ``path`` and return the decoded JSON body."""
        target = path + ('?' + urlencode(query) if query else '')
        conn = self._connection()
        try:
            conn.request('GET', target, headers={'Accept': 'application/json'})
            resp = conn.getresponse()
            body = resp.read()
        except PermissionError:
            raise DockerApiError(
                'permission denied on the Docker socket %s: run the task with become: true, '
                'or add the remote user to the docker group' % (self.address,)) from None
        except FileNotFoundError:
            raise self._unreachable('socket %s does not exist' % (self.address,)) from None
        except ConnectionRefusedError:
            raise self._unreachable('connection refused') from None
        except socket.timeout:
            raise self._unreachable('no answer within %ss' % (self.timeout,)) from None
        except (OSError, http.client.HTTPException) as exc:
            raise self._unreachable(str(exc) or exc.__class__.__name__) from None
        finally:
            conn.close()
        if resp.status >= 400:
            message = body.decode('utf-8', 'replace').strip()
            try:
                message = json.loads(message).get('message', message)
            except (ValueError, AttributeError):
                pass
            raise DockerApiError('Docker engine at %s answered GET %s with HTTP %s: %s'
                                 % (self.docker_host, target, resp.status, message))
        try:
            return json.loads(body.decode('utf-8'))
        except ValueError as exc:
            raise DockerApiError('Docker engine at %s returned invalid JSON for GET %s: %s'
                                 % (self.docker_host, target, exc)) from None

    def list_containers(self) -> list[dict[str, t.Any]]:
        """GET /containers/json?all=1 (raw list entries)."""
        return self.get('/containers/json', {'all': 1}) or []

    def info(self) -> dict[str, t.Any]:
        """GET /info."""
        return self.get('/info') or {}


# ---------------------------------------------------------------------------
# Model
# ---------------------------------------------------------------------------

@dataclass(frozen=True, order=True)
class Network:
    """One network endpoint of a container; addresses normalised, '' -> None."""

    name: str
    ipv4: str | None
    ipv6: str | None


@dataclass(frozen=True, order=True)
class PublishedPort:
    """A container port published on the host."""

    container_port: int
    proto: str
    host_ip: str
    host_port: int


@dataclass(frozen=True)
class Container:
    """A container as listed by GET /containers/json."""

    id: str
    name: str
    state: str
    labels: dict[str, str] = field(hash=False, compare=True)
    network_mode: str
    networks: tuple[Network, ...]
    ports: tuple[PublishedPort, ...]

    @property
    def short_id(self) -> str:
        return self.id[:12]

    @property
    def running(self) -> bool:
        return self.state == 'running'


def _address(value: t.Any, version: int, container: str) -> str | None:
    if not value:
        return None
    try:
        addr = ipaddress.ip_address(str(value))
    except ValueError:
        raise ValueError('container %s: invalid IP address %r in engine answer' % (container, value)) from None
    if addr.version != version:
        raise ValueError('container %s: expected an IPv%d address, got %r' % (container, version, value))
    return addr.compressed


def _primary_name(names: t.Any, cid: str) -> str:
    names = [n.lstrip('/') for n in (names or []) if isinstance(n, str) and n.strip('/')]
    # Legacy links add names like "/other/alias": prefer a name without a slash.
    for name in names:
        if '/' not in name:
            return name
    return names[0] if names else cid[:12]


def container_from_api(raw: dict[str, t.Any]) -> Container:
    """Build a Container from one /containers/json list entry (null-tolerant)."""
    cid = str(raw.get('Id') or '')
    if not re.fullmatch(r'[0-9a-f]{64}', cid):
        raise ValueError('unexpected container id %r in engine answer' % (cid,))
    name = _primary_name(raw.get('Names'), cid)
    host_config = raw.get('HostConfig') or {}
    settings = raw.get('NetworkSettings') or {}
    networks = []
    seen = set()
    for net_name, endpoint in sorted((settings.get('Networks') or {}).items()):
        endpoint = endpoint or {}
        net = Network(
            name=net_name,
            ipv4=_address(endpoint.get('IPAddress'), 4, name),
            ipv6=_address(endpoint.get('GlobalIPv6Address'), 6, name),
        )
        networks.append(net)
        seen.add(net_name)
    ports = set()
    for port in raw.get('Ports') or []:
        port = port or {}
        if port.get('PublicPort') in (None, 0, ''):
            continue
        ports.add(PublishedPort(
            container_port=int(port.get('PrivatePort') or 0),
            proto=str(port.get('Type') or 'tcp').lower(),
            host_ip=str(port.get('IP') or ''),
            host_port=int(port['PublicPort']),
        ))
    return Container(
        id=cid,
        name=name,
        state=str(raw.get('State') or 'unknown'),
        labels={str(k): str(v) for k, v in (raw.get('Labels') or {}).items()},
        network_mode=str(host_config.get('NetworkMode') or 'default'),
        networks=tuple(networks),
        ports=tuple(sorted(ports)),
    )


def containers_from_api(raw_list: list[dict[str, t.Any]] | None) -> list[Container]:
    """Parse a whole /containers/json answer."""
    return [container_from_api(raw) for raw in raw_list or []]


# ---------------------------------------------------------------------------
# Selection and validation
# ---------------------------------------------------------------------------

def _matches_ref(container: Container, ref: str) -> bool:
    if ref == container.name or ref == container.id:
        return True
    return len(ref) >= 12 and _HEX_RE.fullmatch(ref) is not None and container.id.startswith(ref)


def select(
    containers: t.Iterable[Container],
    *,
    service: str | None = None,
    project: str | None = None,
    names: t.Iterable[str] | None = None,
    labels: dict[str, str] | None = None,
) -> list[Container]:
    """Containers matching ALL given selectors, sorted by name (any state)."""
    names = list(names or [])
    if not (service or project or names or labels):
        raise ValueError('no selector given: pass service, containers or labels')
    result = []
    for c in containers:
        if service and not (c.name == service or c.labels.get(COMPOSE_SERVICE_LABEL) == service):
            continue
        if project and c.labels.get(COMPOSE_PROJECT_LABEL) != project:
            continue
        if names and not any(_matches_ref(c, ref) for ref in names):
            continue
        if labels and any(c.labels.get(k) != v for k, v in labels.items()):
            continue
        result.append(c)
    return sorted(result, key=lambda c: (c.name, c.id))


def _describe_bad(value: str) -> str:
    for ch in value:
        if ch in '\n\r':
            return 'a newline'
        if ch.isspace():
            return 'whitespace'
        if not ch.isprintable():
            return 'a control character'
    bad = sorted({ch for ch in value if ch in '"\'\\;$`(){}|&<>*?!#'})
    if bad:
        return 'forbidden character(s) ' + ' '.join(bad)
    return 'characters outside the allowed set'


def validate_name(value: t.Any, what: str = 'name') -> str:
    """Validate a Docker-style name ``[a-zA-Z0-9][a-zA-Z0-9_.-]*`` (max 128)."""
    if not isinstance(value, str) or value == '':
        raise ValueError('%s must be a non-empty string' % what)
    if len(value) > _MAX_NAME:
        raise ValueError('%s %r is too long (%d > %d characters)' % (what, value[:40] + '...', len(value), _MAX_NAME))
    if not _NAME_RE.fullmatch(value):
        raise ValueError('%s %r is invalid: it contains %s; allowed are letters, digits and _ . - '
                         '(starting with a letter or digit)' % (what, value, _describe_bad(value)))
    return value


def validate_container_ref(value: t.Any) -> str:
    """A container name, full id or id prefix."""
    return validate_name(value, 'container')


def validate_label(key: t.Any, value: t.Any) -> tuple[str, str]:
    """Validate a label selector key/value pair."""
    if not isinstance(key, str) or key == '':
        raise ValueError('label key must be a non-empty string')
    if len(key) > _MAX_LABEL or not _LABEL_KEY_RE.fullmatch(key):
        raise ValueError('label key %r is invalid: it contains %s; allowed are letters, digits and _ . - / '
                         '(max %d)' % (key, _describe_bad(key), _MAX_LABEL))
    if not isinstance(value, str):
        raise ValueError('label %s: value must be a string' % key)
    if len(value) > _MAX_LABEL:
        raise ValueError('label %s: value is too long (%d > %d characters)' % (key, len(value), _MAX_LABEL))
    bad = [ch for ch in value if not ch.isprintable() or ch in _LABEL_VALUE_FORBIDDEN]
    if bad:
        raise ValueError('label %s: value %r contains forbidden character(s) %s (no quotes, backslash, '
                         'newline, ; $ or backtick)' % (key, value, ' '.join(sorted(set(map(repr, bad))))))
    return key, value


def firewall_backend(info: dict[str, t.Any] | None) -> str:
    """'iptables' or 'nftables' from /info FirewallBackend.Driver (absent -> iptables)."""
    driver = str(((info or {}).get('FirewallBackend') or {}).get('Driver') or 'iptables').lower()
    return 'nftables' if driver.startswith('nftables') else 'iptables'
