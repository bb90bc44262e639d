"""The codec twins' public API, name by name: both define the same names, with
the same signatures and the same docstrings.

The pure twin's docstrings (``fastws/_codec_py.py``) are the one source: the
compiled module and its stub (``fastws/_speedups.pyi``, read with ``ast``) repeat
them word for word, and each test here fails when one of them drifts. The
compiled module embeds its signatures in the ``__text_signature__`` format
(``embedsignature.format=clinic``), so its ``__doc__`` is the docstring alone and
``inspect.signature`` reads its parameters.
"""

from __future__ import annotations

import ast
import inspect
import re
from pathlib import Path

import pytest

import fastws.codec
from fastws import _codec_py

from conftest import load_speedups

STUB = Path(_codec_py.__file__).with_name("_speedups.pyi")
NAMES = [name for name in fastws.codec.__all__ if name != "IMPLEMENTATION"]
CLASSES = [name for name in NAMES if isinstance(getattr(_codec_py, name), type)]


def public_members(cls) -> list:
    return sorted(name for name in dir(cls) if not name.startswith("_"))


# Every public name, and every public method, property and attribute of the classes.
TARGETS = NAMES + [
    f"{cls}.{member}" for cls in CLASSES for member in public_members(getattr(_codec_py, cls))
]


def resolve(module, target: str):
    obj = module
    for part in target.split("."):
        obj = getattr(obj, part)
    return obj


def doc_of(obj):
    """The docstring as ``inspect.getdoc`` cleans it, without its fallback to
    the class's or the base classes' docstrings."""
    doc = getattr(obj, "__doc__", None)
    return None if doc is None else inspect.cleandoc(doc)


def stub_docs() -> dict:
    """``{"name": docstring, "Class.member": docstring}`` for the stub's
    functions, classes and their methods and properties (None when missing)."""
    docs = {}
    for node in ast.parse(STUB.read_text(encoding="utf-8")).body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            docs[node.name] = ast.get_docstring(node)
            if isinstance(node, ast.ClassDef):
                for sub in node.body:
                    if isinstance(sub, ast.FunctionDef):
                        docs[f"{node.name}.{sub.name}"] = ast.get_docstring(sub)
    return docs


def stub_all() -> list:
    for node in ast.parse(STUB.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.Assign) and [t.id for t in node.targets] == ["__all__"]:
            return ast.literal_eval(node.value)
    raise AssertionError("the stub has no __all__")


@pytest.fixture(scope="module")
def compiled():
    return load_speedups()


# --- names ---------------------------------------------------------------------------


def test_every_module_lists_the_same_names(compiled):
    assert _codec_py.__all__ == NAMES
    assert compiled.__all__ == NAMES
    assert stub_all() == NAMES
    for name in NAMES:
        assert hasattr(_codec_py, name) and hasattr(compiled, name), name


def test_the_stub_declares_every_name_and_no_other_public_one(compiled):
    declared = {name for name in stub_docs() if "." not in name and not name.startswith("_")}
    # simd_level: the compiled twin's own (which kernels run), outside the codec's names
    assert declared == set(NAMES) | {"simd_level"}
    for cls in CLASSES:
        members = {name.split(".")[1] for name in stub_docs() if name.startswith(cls + ".")}
        assert set(public_members(getattr(_codec_py, cls))) <= members, cls


@pytest.mark.parametrize("cls", CLASSES)
def test_classes_have_the_same_public_members(compiled, cls):
    assert public_members(getattr(compiled, cls)) == public_members(getattr(_codec_py, cls))


# --- docstrings ----------------------------------------------------------------------


@pytest.mark.parametrize("target", TARGETS)
def test_docstrings_are_the_pure_twins(compiled, target):
    expected = doc_of(resolve(_codec_py, target))
    assert doc_of(resolve(compiled, target)) == expected, "compiled twin"
    assert stub_docs().get(target) == expected, "stub"


def test_compiled_only_docstrings_match_the_stub(compiled):
    assert doc_of(compiled.simd_level) == stub_docs()["simd_level"] is not None


def section(doc: str, title: str):
    """The names a docstring section (``Args:``, ``Raises:``...) lists, or None."""
    match = re.search(rf"^{title}:\n((?:(?:    .*)?\n?)*)", doc, re.M)
    if match is None:
        return None
    return re.findall(r"^    (\w+):", match.group(1), re.M)


def documented_parameters(obj) -> list:
    if isinstance(obj, type):
        obj = obj.__init__
    params = list(inspect.signature(obj).parameters)
    return params[1:] if params and params[0] == "self" else params


DOCUMENTED = [
    target
    for target in TARGETS
    if callable(resolve(_codec_py, target)) or isinstance(resolve(_codec_py, target), type)
]


@pytest.mark.parametrize("target", DOCUMENTED)
def test_docstrings_have_args_returns_and_raises(target):
    """Google style, as in the websockets library: a summary line, then
    ``Args:`` naming every parameter in order, ``Returns:`` for what a function
    returns, ``Raises:`` naming exception classes."""
    obj = resolve(_codec_py, target)
    doc = doc_of(obj)
    assert doc, f"{target} has no docstring"
    assert doc.splitlines()[0].strip(), "the summary comes first"
    params = documented_parameters(obj)
    if params:
        assert section(doc, "Args") == params
    else:
        assert section(doc, "Args") is None
    if not isinstance(obj, type) and inspect.signature(obj).return_annotation not in ("None", None):
        assert section(doc, "Returns") is not None, f"{target}: no Returns section"
    raises = section(doc, "Raises")
    if raises is not None:
        for name in raises:
            assert name.endswith(("Error", "TooBig", "UTF8")), name


# --- signatures ----------------------------------------------------------------------


def parameters(obj, method: bool) -> list:
    params = list(inspect.signature(obj).parameters.values())
    if method:
        params = params[1:]  # self: positional-only in the compiled twin
    return [(p.name, p.kind, p.default) for p in params]


SIGNED = [
    target
    for target in TARGETS
    if inspect.isroutine(resolve(_codec_py, target))
]


@pytest.mark.parametrize("target", SIGNED)
def test_signatures_agree(compiled, target):
    """Same parameter names, kinds and defaults: a call with keywords works
    the same with either twin."""
    method = "." in target
    assert parameters(resolve(compiled, target), method) == parameters(
        resolve(_codec_py, target), method
    )


def test_compiled_docstrings_carry_no_signature_line(compiled):
    """The signature lives in ``__text_signature__``, not in ``__doc__``."""
    assert compiled.build_header.__text_signature__ == "(opcode, length, *, fin=True, rsv1=False)"
    assert not compiled.build_header.__doc__.startswith("build_header(")
