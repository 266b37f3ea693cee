"""Every module's DOCUMENTATION, EXAMPLES and RETURN are valid YAML, and the documented options
are exactly the argument_spec (ansible-test sanity checks more; this fails in a second)."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest
import yaml

MODULES = sorted((Path(__file__).resolve().parents[4] / 'plugins' / 'modules').glob('*.py'))


def _docs(path: Path) -> dict[str, str]:
    found = {}
    for node in ast.parse(path.read_text(encoding='utf-8')).body:
        if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name) \
                and node.targets[0].id in ('DOCUMENTATION', 'EXAMPLES', 'RETURN'):
            found[node.targets[0].id] = node.value.value
    return found


@pytest.mark.parametrize('path', MODULES, ids=[p.stem for p in MODULES])
def test_docs_are_yaml(path):
    docs = _docs(path)
    assert set(docs) == {'DOCUMENTATION', 'EXAMPLES', 'RETURN'}
    for name, text in docs.items():
        assert yaml.safe_load(text) is not None, name


def test_documented_options_match_argument_spec():
    from ansible_collections.netfence.docker.plugins.module_utils import _manager  # pylint: disable=import-outside-toplevel
    fragment = Path(__file__).resolve().parents[4] / 'plugins' / 'doc_fragments' / 'blackout.py'
    common = set(yaml.safe_load(_docs_fragment(fragment))['options'])
    specs = {'blackout': _manager.BLACKOUT_ARGUMENT_SPEC, 'blackout_info': _manager.INFO_ARGUMENT_SPEC}
    for path in MODULES:
        documented = set(yaml.safe_load(_docs(path)['DOCUMENTATION'])['options']) | common
        assert documented == set(specs[path.stem]), path.stem


def _docs_fragment(path: Path) -> str:
    for node in ast.walk(ast.parse(path.read_text(encoding='utf-8'))):
        if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name) \
                and node.targets[0].id == 'DOCUMENTATION':
            return node.value.value
    raise AssertionError('no DOCUMENTATION in the fragment')


@pytest.mark.parametrize('path', MODULES, ids=[p.stem for p in MODULES])
def test_descriptions_and_notes_are_plain_strings(path):
    """A ': ' inside a description item makes YAML read it as a mapping (ansible-doc then refuses the page)."""
    doc = yaml.safe_load(_docs(path)['DOCUMENTATION'])
    items = [('description', doc['description']), ('notes', doc.get('notes', []))]
    items += [('option %s' % name, opt['description']) for name, opt in doc['options'].items()]
    for where, value in items:
        for entry in value if isinstance(value, list) else [value]:
            assert isinstance(entry, str), '%s of %s: %r' % (where, path.stem, entry)


def test_the_documented_name_limit_is_the_derived_one():
    from ansible_collections.netfence.docker.plugins.module_utils._planner import MAX_NAME_LENGTH  # pylint: disable=import-outside-toplevel
    doc = yaml.safe_load(_docs(MODULES[0].parent / 'blackout.py')['DOCUMENTATION'])
    assert 'at most %d.' % MAX_NAME_LENGTH in ' '.join(doc['options']['name']['description'])
