"""A registered component and its options: what its factory takes (names, types, defaults,
one line of documentation each), an id's spec parsed (``id:key=value,...``) and option values
converted to the types the factory declares."""

from __future__ import annotations

import inspect
import re
import traceback
import typing
from dataclasses import dataclass
from typing import Any, Callable

from esc50.core.convert import convert, type_name
from esc50.core.errors import Esc50Error
from esc50.core.plugin_api import hookspecs


@dataclass
class Component:
    """One registered model, augmentation or featurizer."""

    kind: str
    id: str
    factory: Callable[..., Any]
    description: str
    package: str
    version: str
    api: int = hookspecs.PLUGIN_API_VERSION  # the plugin API its module was written for

    def signature(self) -> inspect.Signature:
        """What the factory takes. A class whose ``__init__`` only passes ``*args`` on (a
        subclass of a built-in) takes what the first class in its MRO that names its
        parameters takes."""
        return inspect.signature(self.described())

    def described(self) -> Callable[..., Any]:
        """The callable whose signature and docstring describe the factory (see
        :meth:`signature`)."""
        if not inspect.isclass(self.factory):
            return self.factory
        for cls in self.factory.__mro__:
            init = vars(cls).get("__init__")
            if init is not None and not passes_arguments_on(inspect.signature(init)):
                return init
        return self.factory

    def options(self) -> dict[str, inspect.Parameter]:
        """Keyword options the factory takes (beyond the config and, for models, input shape)."""
        params = self.signature().parameters
        skip = {"config", "input_shape", "self"}
        return {n: p for n, p in params.items()
                if n not in skip and p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)}

    def reads_config(self) -> bool:
        """Whether the factory takes the run's config: its signature has a ``config``
        parameter (every factory of plugin API 4 and earlier has; a factory that reads none
        leaves it out), or tells nothing but ``*args`` (the plugin API 4 call)."""
        signature = self.signature()
        return "config" in signature.parameters or passes_arguments_on(signature)

    def option_types(self) -> dict[str, Any]:
        """The annotated type of each option (the default's type when unannotated)."""
        hints = typing.get_type_hints(self.described())
        return {n: hints.get(n, type(p.default)) for n, p in self.options().items()}

    def option_docs(self) -> dict[str, str]:
        """A line per option: from the factory's docstrings (lines ``name: what it does``); the
        shared ``p`` and ``min_``/``max_`` range options are described by their names."""
        texts = [inspect.getdoc(self.factory) or "", inspect.getdoc(self.described()) or ""]
        options, docs = self.options(), {}
        for line in "\n".join(texts).splitlines():
            match = re.match(r"\s*`{0,2}(\w+)`{0,2}: (.+)", line)
            if match and match[1] in options:
                docs.setdefault(match[1], match[2].strip())
        for name in options:
            if name == "p":
                docs.setdefault(name, "probability that an example is transformed")
            elif name.startswith(("min_", "max_")):
                end = "lower" if name.startswith("min_") else "upper"
                docs.setdefault(name, f"{end} end of the range {name[4:]} is drawn from, per "
                                      "example")
        return docs

    def option_table(self) -> list[dict[str, Any]]:
        """Each option's name, type, default (None when it has none) and doc, JSON-ready."""
        rows, docs = [], self.option_docs()
        for (name, param), kind in zip(self.options().items(), self.option_types().values()):
            default = None if param.default is inspect.Parameter.empty else param.default
            rows.append({"name": name, "type": type_name(kind),
                         "default": list(default) if isinstance(default, tuple) else default,
                         "doc": docs.get(name, "")})
        return rows


def passes_arguments_on(signature: inspect.Signature) -> bool:
    """Whether a callable (an ``__init__``: ``self`` aside) takes nothing but ``*args`` (and
    ``**kwargs``)."""
    kinds = {p.kind for p in signature.parameters.values() if p.name != "self"}
    return inspect.Parameter.VAR_POSITIONAL in kinds and kinds <= {
        inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD}


def parse_spec(spec: str) -> tuple[str, dict[str, str]]:
    """Split ``id:key=value,key=value`` into the id and its (string) options."""
    plugin_id, _, rest = spec.partition(":")
    options: dict[str, str] = {}
    for item in filter(None, (part.strip() for part in rest.split(","))):
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise Esc50Error(f"bad option {item!r} in {spec!r}: expected key=value")
        options[key.strip()] = value.strip()
    if not plugin_id.strip():
        raise Esc50Error(f"bad plugin spec {spec!r}: expected id[:key=value,...]")
    return plugin_id.strip(), options


def convert_options(component: Component, options: dict[str, Any]) -> dict[str, Any]:
    """Check option names against the factory's signature and convert them to its types."""
    types = component.option_types()
    converted = {}
    for key, value in options.items():
        if key not in types:
            names = ", ".join(types) or "none"
            raise Esc50Error(f"{component.kind} {component.id} has no option {key!r} "
                             f"(options: {names})")
        converted[key] = convert_option(component, key, value, types[key])
    return converted


def convert_option(component: Component, key: str, value: Any, kind: Any) -> Any:
    try:
        return convert(value, kind)
    except ValueError as exc:
        raise Esc50Error(f"{component.kind} {component.id}: option {key}={value!r} is not a valid "
                         f"{exc}") from None


def one_line(exc: BaseException) -> str:
    """The exception on one line, with the file and line where it was raised (the plugin's
    own code, for a bug at import or in a hook)."""
    frames = traceback.extract_tb(exc.__traceback__)
    where = f" ({frames[-1].filename}:{frames[-1].lineno})" if frames else ""
    return f"{type(exc).__name__}: {' '.join(str(exc).split())}{where}"


