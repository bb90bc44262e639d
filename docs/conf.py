"""Sphinx configuration for fastws's documentation.

Build (from the repository root; ``pip install -e ".[docs]"`` first)::

    python -m sphinx -W --keep-going -n -b html docs docs/_build/html

``-W`` turns every warning into an error and ``-n`` (nitpicky) makes every
cross-reference that does not resolve a warning, so a broken link fails the
build. Nothing is fetched from the network: no intersphinx.
"""

from __future__ import annotations

import importlib
import os
import sys

# The reference is built from the pure-Python twin of the codec: the same names,
# results and errors as the compiled core (the test suite checks it), with real
# Python signatures and annotations, so the pages are the same whether or not
# the compiled core is built on the machine that builds them.
os.environ["FASTWS_NO_EXTENSIONS"] = "1"
os.environ.pop("FASTWS_REQUIRE_EXTENSIONS", None)

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
sys.path.insert(0, ROOT)

import fastws  # noqa: E402

project = "fastws"
author = "the fastws authors"
copyright = "the fastws authors"
release = fastws.__version__
version = release

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.napoleon",
    "sphinx.ext.viewcode",
    "myst_parser",
]

source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build"]
# Markdown files that only exist to be included into a page.
exclude_patterns += []

# -- MyST ----------------------------------------------------------------------
# Headings up to ### get anchors, so that links like [Performance](#performance)
# and page.md#section resolve; a link that does not is a myst.xref_missing
# warning, an error under -W.
myst_heading_anchors = 3
myst_enable_extensions = ["colon_fence"]

# -- autodoc -------------------------------------------------------------------
autodoc_member_order = "bysource"
autodoc_typehints = "signature"
autodoc_preserve_defaults = True
# Long signatures (serve(), connect()) get one parameter per line.
python_maximum_signature_line_length = 88
autosummary_generate = False
napoleon_google_docstring = True
napoleon_numpy_docstring = False
napoleon_use_rtype = False
# Attributes: sections become attribute entries that references can target.
napoleon_use_ivar = False

# -- nitpicky: what cannot resolve without intersphinx --------------------------
# The build must not touch the network, so there is no intersphinx inventory of
# the standard library, and its names have no target (Sphinx itself does not
# report builtins such as int, bytes or ValueError). Only the standard-library
# modules that the docstrings and annotations name are ignored here; every
# reference to a fastws name must resolve.
nitpick_ignore_regex = [
    # asyncio.loop.create_server, asyncio.Task, and asyncio.Future, whose class
    # lives in the C module _asyncio
    (r"py:(class|meth|func|obj)", r"_?asyncio\..+"),
    (r"py:(class|func|obj)", r"ssl\.(SSLContext|create_default_context)"),
    (r"py:(class|obj)", r"socket\.socket"),
    (r"py:(class|obj)", r"enum\.(Enum|IntEnum)"),  # the bases of State, Side, Opcode, CloseCode
    (r"py:(class|obj)", r"logging\.(Logger|LoggerAdapter)"),  # the logger= options
    (r"py:(class|obj)", r"os\.PathLike"),  # unix_serve(path=), unix_connect(path=)
    (r"py:(class|obj)", r"threading\.Event"),  # what fastws.sync's ping() returns
    (r"py:(class|obj)", r"http\.HTTPStatus"),  # respond(status)
    (r"py:(class|func|meth|obj)", r"re\..+"),  # origins: re.compile, re.Pattern.fullmatch
    (r"py:(func|obj)", r"urllib\.request\.(getproxies|proxy_bypass)"),  # fastws.proxy.get_proxy
    (r"py:(func|obj)", r"socket\.create_connection"),
    (r"py:(class|obj)", r"ssl\.SSLSocket"),
    # Type aliases of the options (fastws.limits.QueueLimit, fastws.protocol.types.MaxSize...),
    # shown in signatures under their short names: the options' Args say what they take.
    (
        r"py:(class|obj)",
        "(QueueLimit|WriteLimit|MaxSize|LoggerLike|ProcessRequest|ProcessResponse|Data|OriginRule|"
        + "Credentials|CheckCredentials)",
    ),
    # uvicorn's exception that fastws.uvicorn raises: uvicorn documents no API to link to
    (r"py:(exc|class)", r"ClientDisconnected"),
]

# -- HTML ----------------------------------------------------------------------
html_theme = "furo"
html_title = f"fastws {release}"
html_static_path = ["_static"]
html_css_files = ["fastws.css"]


# -- references to re-exported and inherited names -----------------------------
# Users write fastws.serve, fastws.ProtocolError...: names that the package
# re-exports from the modules that define them. Each object is documented once,
# under its public module (fastws.asyncio.serve, fastws.exceptions.ProtocolError),
# and docstrings say :meth:`data_to_send` in a subclass of the class that
# documents it. Such a reference is resolved to the entry of the same Python
# object (or, for an attribute, to the entry of the class in the method
# resolution order that documents it). Nothing is ignored: a name that is not a
# fastws object, or whose object has no entry, still fails the build.
_MISSING = object()
_import_cache: dict = {}


def _import(dotted: str):
    """The object that ``dotted`` names, or _MISSING."""
    if dotted in _import_cache:
        return _import_cache[dotted]
    parts = dotted.split(".")
    obj = _MISSING
    for i in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:i]))
        except ImportError:
            continue
        try:
            for part in parts[i:]:
                obj = getattr(obj, part)
        except AttributeError:
            obj = _MISSING
        break
    _import_cache[dotted] = obj
    return obj


def _identity(obj):
    """Objects that are worth matching by identity: not plain values."""
    if obj is _MISSING or isinstance(obj, (int, float, str, bytes, bool, type(None))):
        return None
    return obj


def _documented(domain):
    """{id(object): documented name} of every entry of the Python domain."""
    index = {}
    for name, entry in domain.objects.items():
        if entry.aliased or not name.startswith("fastws"):
            continue
        obj = _identity(_import(name))
        if obj is not None:
            index.setdefault(id(obj), name)
    return index


def _source_module(node):
    """The module that defines the object whose description holds ``node``."""
    from sphinx import addnodes

    while node is not None and not isinstance(node, addnodes.desc):
        node = node.parent
    if node is None:
        return None
    for signature in node.findall(addnodes.desc_signature):
        obj = _import(f"{signature.get('module')}.{signature.get('fullname')}")
        obj = getattr(obj, "fget", obj)  # a property: its getter's module
        return getattr(obj, "__module__", None)
    return None


def _autosummary_row(node, module):
    """The object of the autosummary table row that holds ``node``, if any."""
    from docutils import nodes

    row = node
    while row is not None and not isinstance(row, nodes.row):
        row = row.parent
    table = row
    while table is not None and not isinstance(table, nodes.table):
        table = table.parent
    if row is None or table is None or "autosummary" not in table.get("classes", []):
        return None
    name = row.children[0].astext().split("(")[0].strip()
    return f"{module}.{name}" if name else None


def _resolve_fastws(app, env, node, contnode):
    if node.get("refdomain") != "py":
        return None
    target = node.get("reftarget", "")
    module = node.get("py:module") or ""
    cls = node.get("py:class") or ""
    if target.startswith("fastws."):
        candidates = [target]
    elif module.startswith("fastws"):
        # The current class, the current module, the module whose source holds
        # the docstring or annotation (a class documented under fastws.asyncio
        # is defined in fastws.asyncio.server), then the package's namespace (a
        # short name such as :class:`CloseCode` in a codec docstring).
        candidates = [f"{module}.{cls}.{target}"] if cls else []
        row_object = _autosummary_row(node, module)
        if row_object:
            # A summary line in an autosummary table: the row's object is the
            # class the docstring was written in.
            candidates.append(f"{row_object}.{target}")
        candidates.append(f"{module}.{target}")
        source_module = _source_module(node)
        if source_module:
            candidates.append(f"{source_module}.{target}")
        candidates.append(f"fastws.{target}")
    else:
        return None
    domain = env.get_domain("py")
    index = _documented(domain)
    for candidate in candidates:
        name = None
        obj = _identity(_import(candidate))
        if obj is not None:
            name = index.get(id(obj))
        if name is None:
            # An attribute (set in __init__, so not on the class) of a
            # documented class or of one of its bases.
            owner_name, _, attr = candidate.rpartition(".")
            owner = _import(owner_name)
            if isinstance(owner, type):
                for base in owner.__mro__:
                    base_name = index.get(id(base))
                    if base_name and f"{base_name}.{attr}" in domain.objects:
                        name = f"{base_name}.{attr}"
                        break
        if name is not None and name != target:
            # "obj": the entry may be of another type than the role says
            # (serve and connect are classes documented as functions).
            return domain.resolve_xref(env, node.get("refdoc"), app.builder, "obj", name, node, contnode)
    return None


# Napoleon reads an attribute's docstring as "type: description" when its first
# line has a colon ("Close code for this kind of violation: 1002..." would make
# a type of "Close code for this kind of violation"). fastws's attribute
# docstrings are prose: napoleon only handles the docstrings of the others.
def _napoleon_except_attributes(app, what, name, obj, options, lines):
    if what in ("attribute", "data", "property"):
        return
    from sphinx.ext.napoleon import _process_docstring

    _process_docstring(app, what, name, obj, options, lines)


# A class with __slots__ documents its attributes in its docstring ("Attributes:"
# section); the bare slot descriptors would describe them a second time.
def _skip_bare_slots(app, what, name, obj, skip, options):
    import enum
    import types

    # A module-level alias of an enum member (fastws.protocol.OPEN is
    # State.OPEN) is documented with its enum.
    if what == "module" and isinstance(obj, enum.Enum):
        return True

    try:  # Sphinx 9
        from sphinx.ext.autodoc._sentinels import SLOTS_ATTR
    except ImportError:  # Sphinx 7 and 8
        from sphinx.ext.autodoc import SLOTS_ATTR
    if obj is SLOTS_ATTR or isinstance(obj, types.MemberDescriptorType):
        return True
    return None


# A constant that a package re-exports (fastws.protocol.DEFAULT_MAX_SIZE) keeps
# the "#:" comment of the submodule that defines it.
def _reexported_data_doc(app, what, name, obj, options, lines):
    if what != "data" or any(line.strip() for line in lines):
        return
    package_name, _, attr = name.rpartition(".")
    package = _import(package_name)
    if not hasattr(package, "__path__"):
        return
    import pkgutil

    from sphinx.pycode import ModuleAnalyzer

    for info in pkgutil.iter_modules(package.__path__, package_name + "."):
        module = _import(info.name)
        if module is _MISSING or getattr(module, attr, _MISSING) is not obj:
            continue
        try:
            docs = ModuleAnalyzer.for_module(info.name).find_attr_docs()
        except Exception:
            continue
        if ("", attr) in docs:
            lines[:] = list(docs[("", attr)])
            return


# serve() and connect() are classes (awaitable, and async context managers)
# documented as the functions they are used as: the "-> None" of their __init__
# is not what calling them returns.
def _no_return_for_classes(app, what, name, obj, options, signature, return_annotation):
    if what == "function" and isinstance(obj, type):
        return signature, None
    return None


def setup(app):
    app.connect("autodoc-process-signature", _no_return_for_classes)
    app.connect("autodoc-skip-member", _skip_bare_slots)
    app.connect("autodoc-process-docstring", _reexported_data_doc)
    from sphinx.ext.napoleon import _process_docstring

    listeners = app.events.listeners["autodoc-process-docstring"]
    for listener in list(listeners):
        if listener.handler is _process_docstring:
            app.disconnect(listener.id)
    app.connect("autodoc-process-docstring", _napoleon_except_attributes)
    app.connect("missing-reference", _resolve_fastws)
