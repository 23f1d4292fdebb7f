"""Every HTTP route, read from the ``google.api.http`` annotations of the generated descriptors.

The mapping lives in the protos (AIP-127); nothing here names an RPC. A binding says: this
HTTP method and path template call that RPC, with the body filling the whole request
(``body: "*"``), one field of it, or nothing (GET and DELETE read the query string).
"""

from __future__ import annotations

import importlib
import pkgutil
import re
from dataclasses import dataclass, field

from google.api import annotations_pb2, http_pb2
from google.protobuf.descriptor import MethodDescriptor, ServiceDescriptor

# The services the gateway fronts, by proto package, and the setting naming where each listens.
BACKENDS = {"crowdpack.customer.v1": "customer", "crowdpack.ledger.v1": "ledger", "crowdpack.alert.v1": "alert"}
VARIABLE = re.compile(r"\{([a-z_][a-z0-9_.]*)(?:=([^}]*))?\}")


@dataclass(frozen=True)
class Binding:
    method: MethodDescriptor
    verb: str  # GET, POST, PATCH, DELETE, PUT
    template: str  # as annotated: /v1/members/{member_id}:openCard
    body: str  # "*", a field name, or "" (no body)
    backend: str
    # Starlette path (/v1/members/{p0}:openCard) and what each of its parameters fills (p0 -> member_id).
    path: str = ""
    variables: dict[str, str] = field(default_factory=dict)

    @property
    def full_method(self) -> str:
        return f"/{self.method.containing_service.full_name}/{self.method.name}"

    @property
    def operation_id(self) -> str:
        return f"{self.method.containing_service.name}_{self.method.name}"

    @property
    def is_download(self) -> bool:
        """An RPC answering with a ``bytes csv`` field is served as a CSV file."""
        csv = self.method.output_type.fields_by_name.get("csv")
        return csv is not None and csv.type == csv.TYPE_BYTES

    @property
    def is_upload(self) -> bool:
        """A client-streaming RPC taking ``chunk`` bytes is served as a multipart file upload."""
        return self.method.client_streaming and "chunk" in self.method.input_type.fields_by_name


def _binding(method: MethodDescriptor, rule: http_pb2.HttpRule, backend: str) -> Binding:
    verb = rule.WhichOneof("pattern")
    if verb is None or verb == "custom":
        raise ValueError(f"{method.full_name}: only get/post/put/patch/delete bindings are served")
    template: str = getattr(rule, verb)
    variables: dict[str, str] = {}

    def name(match: re.Match[str]) -> str:
        if match.group(2) not in (None, "*"):
            raise ValueError(f"{method.full_name}: path segments patterns are not served ({match.group(0)})")
        key = f"p{len(variables)}"
        variables[key] = match.group(1)
        return "{" + key + "}"

    path = VARIABLE.sub(name, template)
    return Binding(method, verb.upper(), template, rule.body, backend, path, variables)


def bindings_of(service: ServiceDescriptor, backend: str) -> list[Binding]:
    found = []
    for method in service.methods:
        options = method.GetOptions()
        if not options.HasExtension(annotations_pb2.http):
            continue
        rule = options.Extensions[annotations_pb2.http]
        found.append(_binding(method, rule, backend))
        found.extend(_binding(method, extra, backend) for extra in rule.additional_bindings)
    return found


def services() -> list[tuple[ServiceDescriptor, str]]:
    """Every gRPC service of the fronted packages (imports each generated ``*_pb2`` module)."""
    found: dict[str, tuple[ServiceDescriptor, str]] = {}
    for package, backend in BACKENDS.items():
        module_name = package.replace(".", "/").split("/")
        folder = importlib.import_module(".".join(module_name))
        for info in pkgutil.iter_modules(folder.__path__):
            if not info.name.endswith("_pb2"):
                continue
            module = importlib.import_module(f"{folder.__name__}.{info.name}")
            for service in module.DESCRIPTOR.services_by_name.values():
                found[service.full_name] = (service, backend)
    return [found[name] for name in sorted(found)]


def all_bindings() -> list[Binding]:
    """The routes in match order: a custom verb (``:openCard``) before the plain path it extends, and
    literal segments before variables, so the first full match is the meant one."""
    found = [b for service, backend in services() for b in bindings_of(service, backend)]
    return sorted(found, key=lambda b: (":" not in b.template.rsplit("/", 1)[-1], len(b.variables), b.template))


def unmapped_methods() -> list[str]:
    """RPCs with no ``google.api.http`` annotation (the route-coverage test keeps this empty)."""
    return [m.full_name for service, _ in services() for m in service.methods
            if not m.GetOptions().HasExtension(annotations_pb2.http)]


__all__ = ["BACKENDS", "Binding", "all_bindings", "bindings_of", "services", "unmapped_methods"]
