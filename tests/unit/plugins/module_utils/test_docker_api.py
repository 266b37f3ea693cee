# -*- coding: utf-8 -*-
# Copyright (c) 2025, netfence.docker contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import json
import os
import socket
import socketserver
import threading
from http.server import BaseHTTPRequestHandler

import pytest

from ansible_collections.netfence.docker.plugins.module_utils import _docker_api as api
from ansible_collections.netfence.docker.plugins.module_utils._docker_api import (
    Container,
    DockerApiError,
    EngineClient,
    Network,
    PublishedPort,
    container_from_api,
    containers_from_api,
    firewall_backend,
    parse_docker_host,
    select,
    validate_container_ref,
    validate_label,
    validate_name,
)

FIXTURES = os.path.join(os.path.dirname(__file__), 'fixtures')


def load(name):
    with open(os.path.join(FIXTURES, name), encoding='utf-8') as fh:
        return json.load(fh)


@pytest.fixture(scope='module')
def containers():
    return {c.name: c for c in containers_from_api(load('containers_json.json'))}


# --- parsing --------------------------------------------------------------------------------

def test_user_defined_network_only(containers):
    web = containers['shop-web-1']
    assert web.id == '3f6a2d9c1b7e4f0a8c5d2e1b9a7f6c3d4e5f60718293a4b5c6d7e8f9a0b1c2d3'
    assert web.short_id == '3f6a2d9c1b7e'
    assert web.state == 'running' and web.running
    assert web.network_mode == 'shop_default'
    assert web.networks == (Network('shop_default', '172.18.0.2', None),)
    assert web.labels['com.docker.compose.service'] == 'web'
    # unpublished 443 is ignored; 0.0.0.0 and :: bindings are both kept, sorted
    assert web.ports == (PublishedPort(80, 'tcp', '0.0.0.0', 8080), PublishedPort(80, 'tcp', '::', 8080))


def test_two_networks_sorted_by_name(containers):
    assert containers['shop-api-1'].networks == (
        Network('shop_backend', '172.19.0.2', None), Network('shop_default', '172.18.0.3', None))
    assert PublishedPort(5353, 'udp', '0.0.0.0', 5353) in containers['shop-api-1'].ports


def test_ipv6_normalised(containers):
    assert containers['cache'].networks == (Network('v6net', '172.20.0.2', 'fd00:dead:beef::2'),)


@pytest.mark.parametrize('name, mode, networks', [
    ('node-exporter', 'host', (Network('host', None, None),)),
    ('isolated', 'none', (Network('none', None, None),)),
    ('shop-web-sidecar', 'container:3f6a2d9c1b7e4f0a8c5d2e1b9a7f6c3d4e5f60718293a4b5c6d7e8f9a0b1c2d3', ()),
    ('shop-worker-1', 'shop_default', (Network('shop_default', None, None),)),
    ('web', 'bridge', (Network('bridge', None, None),)),
])
def test_network_modes_and_stopped(containers, name, mode, networks):
    assert containers[name].network_mode == mode
    assert containers[name].networks == networks


def test_nulls_tolerated(containers):
    iso = containers['isolated']
    assert iso.labels == {} and iso.ports == ()
    bare = container_from_api({'Id': 'ab' * 32, 'Names': None, 'State': None, 'Labels': None,
                               'HostConfig': None, 'NetworkSettings': None, 'Ports': None})
    assert bare == Container('ab' * 32, 'abababababab', 'unknown', {}, 'default', (), ())


def test_exited_state(containers):
    assert containers['shop-worker-1'].state == 'exited'
    assert not containers['shop-worker-1'].running


def test_legacy_link_names_prefer_own_name():
    c = container_from_api({'Id': 'cd' * 32, 'Names': ['/app/db', '/db'], 'State': 'running'})
    assert c.name == 'db'


@pytest.mark.parametrize('raw', [
    {'Id': 'nothex', 'Names': ['/x']},
    {'Id': 'ab' * 32, 'Names': ['/x'], 'NetworkSettings': {'Networks': {'n': {'IPAddress': '300.1.1.1'}}}},
    {'Id': 'ab' * 32, 'Names': ['/x'], 'NetworkSettings': {'Networks': {'n': {'IPAddress': 'fd00::1'}}}},
])
def test_bad_engine_data_rejected(raw):
    with pytest.raises(ValueError):
        container_from_api(raw)


# --- selection ------------------------------------------------------------------------------

def names(result):
    return [c.name for c in result]


@pytest.mark.parametrize('kwargs, expected', [
    ({'service': 'web'}, ['other-web-1', 'shop-web-1', 'web']),
    ({'service': 'web', 'project': 'shop'}, ['shop-web-1']),
    ({'project': 'shop'}, ['shop-api-1', 'shop-web-1', 'shop-web-sidecar', 'shop-worker-1']),
    ({'service': 'worker'}, ['shop-worker-1']),
    ({'names': ['cache', 'isolated']}, ['cache', 'isolated']),
    ({'names': ['c2e5a8b1d4f7']}, ['cache']),
    ({'names': ['c2e5a8b1d4f7c0e3a6b9d2f5c8e1a4b7d0f3c6e9a2b5d8f1c4e7a0b3d6f9c2e5']}, ['cache']),
    ({'names': ['c2e5a8b1d4f']}, []),  # prefix shorter than 12 hex is not an id reference
    ({'labels': {'role': 'monitoring'}}, ['node-exporter']),
    ({'labels': {'com.docker.compose.project': 'shop', 'com.docker.compose.service': 'api'}}, ['shop-api-1']),
    ({'labels': {'role': 'nope'}}, []),
    ({'service': 'web', 'names': ['web']}, ['web']),
])
def test_select(containers, kwargs, expected):
    assert names(select(list(containers.values()), **kwargs)) == expected
    assert names(select(list(reversed(list(containers.values()))), **kwargs)) == expected


def test_select_without_selector_refuses(containers):
    with pytest.raises(ValueError, match='no selector'):
        select(containers.values())


# --- validation -----------------------------------------------------------------------------

BAD_NAMES = ['', 'web;id', 'web$(id)', '$(id)', 'a`id`', '"web"', "'web'", 'my web', 'web\n',
             'web\nx', '-web', '.web', 'web/1', 'a' * 129, 'wé b', 'web|x', 'web&', '\x00']


@pytest.mark.parametrize('value', BAD_NAMES)
def test_validate_name_rejects(value):
    with pytest.raises(ValueError) as exc:
        validate_name(value, 'service')
    assert 'service' in str(exc.value)


@pytest.mark.parametrize('value', ['web', 'shop-web-1', 'a', 'A.b_c-9', 'a' * 128, '3f6a2d9c1b7e'])
def test_validate_name_accepts(value):
    assert validate_name(value, 'service') == value
    assert validate_container_ref(value) == value


@pytest.mark.parametrize('value', [None, 5, ['web']])
def test_validate_name_type(value):
    with pytest.raises(ValueError):
        validate_name(value, 'service')


def test_validate_name_messages():
    with pytest.raises(ValueError, match='newline'):
        validate_name('a\nb', 'service')
    with pytest.raises(ValueError, match='whitespace'):
        validate_name('a b', 'service')
    with pytest.raises(ValueError, match=r'forbidden.*\$'):
        validate_name('a$(id)', 'service')


@pytest.mark.parametrize('key, value', [
    ('com.docker.compose.service', 'web'), ('role', ''), ('a/b_c-d.e', 'x y:z=1,2'), ('k', 'v' * 255)])
def test_validate_label_accepts(key, value):
    assert validate_label(key, value) == (key, value)


@pytest.mark.parametrize('key, value', [
    ('', 'x'), ('bad key', 'x'), ('-k', 'x'), ('k;', 'x'), ('k' * 256, 'x'),
    ('k', 'a;b'), ('k', '$(id)'), ('k', '`id`'), ('k', '"q"'), ("k", "'q'"), ('k', 'a\\b'),
    ('k', 'a\nb'), ('k', 'v' * 256), ('k', None), (None, 'x'),
])
def test_validate_label_rejects(key, value):
    with pytest.raises(ValueError):
        validate_label(key, value)


# --- docker host and /info ------------------------------------------------------------------

@pytest.mark.parametrize('url, expected', [
    (None, ('unix', '/var/run/docker.sock')),
    ('', ('unix', '/var/run/docker.sock')),
    ('unix:///run/user/1000/docker.sock', ('unix', '/run/user/1000/docker.sock')),
    ('tcp://127.0.0.1:2375', ('tcp', ('127.0.0.1', 2375))),
    ('tcp://docker.lab:2375/', ('tcp', ('docker.lab', 2375))),
    ('tcp://[::1]:2376', ('tcp', ('::1', 2376))),
    ('tcp://docker.lab', ('tcp', ('docker.lab', 2375))),
])
def test_parse_docker_host(url, expected):
    assert parse_docker_host(url) == expected


@pytest.mark.parametrize('url', ['ssh://me@host', 'https://host:2376', 'http://host:2375', 'npipe:////./pipe/x',
                                 '/var/run/docker.sock', 'unix://relative.sock', 'tcp://host:notaport',
                                 'tcp://host:2375/path'])
def test_parse_docker_host_unsupported(url):
    with pytest.raises(ValueError, match='supported'):
        parse_docker_host(url)


@pytest.mark.parametrize('fixture, expected', [
    ('info_docker_20.10.json', 'iptables'),
    ('info_docker_28_iptables.json', 'iptables'),
    ('info_docker_28_firewalld.json', 'iptables'),
    ('info_docker_29_nftables.json', 'nftables'),
])
def test_firewall_backend(fixture, expected):
    assert firewall_backend(load(fixture)) == expected


def test_firewall_backend_nulls():
    assert firewall_backend({}) == 'iptables'
    assert firewall_backend({'FirewallBackend': None}) == 'iptables'
    assert firewall_backend(None) == 'iptables'


# --- EngineClient against a fake engine on a unix socket ------------------------------------

class _Handler(BaseHTTPRequestHandler):
    routes = {}

    def do_GET(self):  # noqa: N802
        status, body = self.routes.get(self.path, (404, {'message': 'page not found'}))
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header('Content-Type', 'application/json')
        self.send_header('Content-Length', str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


class _Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True

    def get_request(self):
        request, dummy = super().get_request()
        return request, ('local', 0)


@pytest.fixture
def engine(tmp_path):
    path = str(tmp_path / 'docker.sock')
    _Handler.routes = {
        '/containers/json?all=1': (200, load('containers_json.json')),
        '/info': (200, load('info_docker_28_iptables.json')),
        '/broken': (500, {'message': 'something went wrong'}),
    }
    server = _Server(path, _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield 'unix://' + path
    server.shutdown()
    server.server_close()


def test_engine_client_unix(engine):
    client = EngineClient(engine)
    raw = client.list_containers()
    assert len(raw) == 9
    assert containers_from_api(raw)[0].name == 'shop-web-1'
    assert firewall_backend(client.info()) == 'iptables'


def test_engine_client_http_error(engine):
    with pytest.raises(DockerApiError, match='HTTP 500: something went wrong'):
        EngineClient(engine).get('/broken')


def test_engine_missing_socket(tmp_path):
    with pytest.raises(DockerApiError, match='unreachable at unix://.*does not exist'):
        EngineClient('unix://%s/nope.sock' % tmp_path).info()


def test_engine_refused(tmp_path):
    path = str(tmp_path / 'dead.sock')
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(path)
    sock.close()  # socket file exists, nobody listens
    with pytest.raises(DockerApiError, match='connection refused'):
        EngineClient('unix://' + path).info()


def test_engine_tcp_refused():
    sock = socket.socket()
    sock.bind(('127.0.0.1', 0))
    port = sock.getsockname()[1]
    sock.close()
    with pytest.raises(DockerApiError, match='unreachable at tcp://127.0.0.1:%d' % port):
        EngineClient('tcp://127.0.0.1:%d' % port).info()


def test_engine_permission_denied(monkeypatch, tmp_path):
    def deny(self):
        raise PermissionError(13, 'Permission denied')
    monkeypatch.setattr(api._UnixHTTPConnection, 'connect', deny)
    with pytest.raises(DockerApiError, match='permission denied.*become.*docker group'):
        EngineClient('unix://%s/docker.sock' % tmp_path).info()


def test_engine_timeout(tmp_path):
    path = str(tmp_path / 'slow.sock')
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen(1)  # accepts (backlog) but never answers
    try:
        with pytest.raises(DockerApiError, match='no answer within 0.2s'):
            EngineClient('unix://' + path, timeout=0.2).info()
    finally:
        listener.close()
