# -*- coding: utf-8 -*-
# Copyright (c) 2025, netfence.docker contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Docker Engine API lookup over the local socket (stdlib only)."""

from __future__ import annotations

import http.client
import json
import re
import socket
import typing as t
from dataclasses import dataclass, field
from urllib.parse import urlencode, urlsplit

from ansible_collections.netfence.docker.plugins.module_utils import _validate

DEFAULT_DOCKER_HOST = 'unix:///var/run/docker.sock'
COMPOSE_SERVICE_LABEL = 'com.docker.compose.service'
COMPOSE_PROJECT_LABEL = 'com.docker.compose.project'

_HEX_RE = re.compile(r'[0-9a-f]+')
_MAX_NAME = 128


class DockerApiError(Exception):
    """The Docker Engine could not be queried; the message says what to do."""


class EngineDataError(_validate.ValidationError):
    """The engine answered with a value that fails strict parsing (a hostile or broken engine)."""


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


def _address(value: t.Any, version: int, container: str, field_name: str) -> str | None:
    if value in (None, ''):
        return None
    try:
        return _validate.address(value, '%s of container %s' % (field_name, container), version)
    except _validate.ValidationError as exc:
        raise EngineDataError('engine answer refused: %s' % exc) from None


def _primary_name(names: t.Any, cid: str) -> str:
    names = names or []
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise EngineDataError('engine answer refused: Names of container %s is not a list of strings: %r'
                              % (cid[:12], names))
    names = [n[1:] if n.startswith('/') else n for n in names if n.strip('/')]
    # Legacy links add names like "/other/alias": prefer a name without a slash.
    for name in names:
        if '/' not in name:
            return name
    return names[0] if names else cid[:12]


def _engine_port(port: t.Any, name: str) -> PublishedPort | None:
    if not isinstance(port, dict):
        raise EngineDataError('engine answer refused: a Ports entry of container %s is not an object' % name)
    if port.get('PublicPort') in (None, 0, ''):
        return None
    what = 'Ports of container %s' % name
    host_ip = port.get('IP')
    return PublishedPort(
        container_port=_validate.port_number(port.get('PrivatePort'), 'PrivatePort in %s' % what),
        proto=_validate.proto(port.get('Type') or 'tcp', 'Type in %s' % what),
        host_ip=_validate.address(host_ip, 'IP in %s' % what) if host_ip not in (None, '') else '',
        host_port=_validate.port_number(port['PublicPort'], 'PublicPort in %s' % what),
    )


def _engine_labels(raw: t.Any, name: str) -> dict[str, str]:
    """Labels of an engine answer. The compose service/project labels must be valid names (they select
    the service); any other label that is not a valid selector label is left out: a ``labels``
    selector (validated the same way) could never match it, and it is never written anywhere."""
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise EngineDataError('engine answer refused: Labels of container %s is not an object' % name)
    labels: dict[str, str] = {}
    for key, value in raw.items():
        if key in (COMPOSE_SERVICE_LABEL, COMPOSE_PROJECT_LABEL):
            try:
                labels[key] = _validate.docker_name(value, 'label %s of container %s' % (key, name))
            except _validate.ValidationError as exc:
                raise EngineDataError('engine answer refused: %s' % exc) from None
            continue
        try:
            _validate.label(key, value, 'container %s' % name)
        except _validate.ValidationError:
            continue
        labels[key] = value
    return labels


def container_from_api(raw: dict[str, t.Any]) -> Container:
    """Build a Container from one /containers/json list entry (null-tolerant, strict on values).

    Every value that can reach a rule, a tag or a message is checked (``_validate``): the id, the
    name, the network names, every address (no zone suffix), published ports and host IPs, the
    network mode, the state and the compose labels. A bad one raises ``EngineDataError`` naming
    the container: it is never planned.
    """
    if not isinstance(raw, dict):
        raise EngineDataError('engine answer refused: a container entry is not an object: %r' % (raw,))
    cid = raw.get('Id')
    try:
        _validate.container_id(cid)
    except _validate.ValidationError as exc:
        raise EngineDataError('engine answer refused: %s' % exc) from None
    cid = t.cast(str, cid)
    name = _primary_name(raw.get('Names'), cid)
    try:
        name = _validate.docker_name(name, 'name of container %s' % cid[:12])
        host_config = raw.get('HostConfig') or {}
        settings = raw.get('NetworkSettings') or {}
        if not isinstance(host_config, dict) or not isinstance(settings, dict) \
                or not isinstance(settings.get('Networks') or {}, dict):
            raise _validate.ValidationError('HostConfig/NetworkSettings of container %s are not objects' % name)
        networks = []
        for net_name, endpoint in sorted((settings.get('Networks') or {}).items()):
            _validate.docker_name(net_name, 'network name of container %s' % name, 255)
            endpoint = endpoint or {}
            if not isinstance(endpoint, dict):
                raise _validate.ValidationError('network %s of container %s is not an object' % (net_name, name))
            networks.append(Network(
                name=net_name,
                ipv4=_address(endpoint.get('IPAddress'), 4, name, 'IPAddress on network %s' % net_name),
                ipv6=_address(endpoint.get('GlobalIPv6Address'), 6, name, 'GlobalIPv6Address on network %s' % net_name),
            ))
        raw_ports = raw.get('Ports') or []
        if not isinstance(raw_ports, list):
            raise _validate.ValidationError('Ports of container %s is not a list' % name)
        ports = {p for p in (_engine_port(port, name) for port in raw_ports) if p is not None}
        return Container(
            id=cid,
            name=name,
            state=_validate.state(raw.get('State') or 'unknown', 'State of container %s' % name),
            labels=_engine_labels(raw.get('Labels'), name),
            network_mode=_validate.network_mode(host_config.get('NetworkMode') or 'default',
                                                'NetworkMode of container %s' % name),
            networks=tuple(networks),
            ports=tuple(sorted(ports)),
        )
    except _validate.ValidationError as exc:
        raise EngineDataError('engine answer refused: %s' % exc) from None


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


def validate_name(value: t.Any, what: str = 'name') -> str:
    """Validate a Docker-style name ``[a-zA-Z0-9][a-zA-Z0-9_.-]*`` (max 128, ASCII)."""
    return _validate.docker_name(value, what, _MAX_NAME)


def validate_container_ref(value: t.Any) -> str:
    """A container name, full id or id prefix."""
    return validate_name(value, 'container')


def validate_label(key: t.Any, value: t.Any) -> tuple[str, str]:
    """Validate a label selector key/value pair."""
    return _validate.label(key, value)


def firewall_backend(info: dict[str, t.Any] | None) -> str:
    """'iptables' or 'nftables' from /info FirewallBackend.Driver (absent -> iptables)."""
    driver = str(((info or {}).get('FirewallBackend') or {}).get('Driver') or 'iptables').lower()
    return 'nftables' if driver.startswith('nftables') else 'iptables'
