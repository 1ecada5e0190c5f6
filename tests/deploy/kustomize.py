"""A small kustomize: renders the kustomizations under deploy/ without kubectl or kustomize (neither is a
Debian package). It does what those files use, and refuses anything else (KeyError on an unknown field):
resources (files and directories), namespace, labels, images, replicas, configMapGenerator and
secretGenerator (literals, envs, files; behavior create or merge; a content hash suffix unless disabled,
with references to the generated names rewritten), and patches (strategic merge by kind and name; JSON 6902
lists with a target)."""

from __future__ import annotations

import base64
import copy
import hashlib
import json
from pathlib import Path
from typing import Any

import yaml

Doc = dict[str, Any]
KNOWN = {"apiVersion", "kind", "namespace", "resources", "labels", "images", "replicas", "configMapGenerator",
         "secretGenerator", "generatorOptions", "patches"}
CLUSTER_SCOPED = {"Namespace", "ClusterRole", "ClusterRoleBinding", "CustomResourceDefinition",
                  "StorageClass", "PersistentVolume", "IngressClass", "PriorityClass"}


def render(directory: Path) -> list[Doc]:
    """The documents of the kustomization in `directory`, generated objects complete and named."""
    return _finish(_build(directory))


def _build(directory: Path) -> list[Doc]:
    k = yaml.safe_load((directory / "kustomization.yaml").read_text())
    unknown = set(k) - KNOWN
    if unknown:
        raise KeyError(f"{directory}: kustomization fields not supported here: {sorted(unknown)}")
    docs: list[Doc] = []
    for entry in k.get("resources", []):
        path = (directory / entry).resolve()
        if path.is_dir():
            docs += _build(path)
        else:
            docs += [d for d in yaml.safe_load_all(path.read_text()) if d]
    hashed = not k.get("generatorOptions", {}).get("disableNameSuffixHash", False)
    for kind, key in (("ConfigMap", "configMapGenerator"), ("Secret", "secretGenerator")):
        for gen in k.get(key, []):
            data = _generated_data(directory, gen)
            behavior = gen.get("behavior", "create")
            if behavior == "merge":
                (doc,) = [d for d in docs if d["kind"] == kind and d.get("x-generator") == gen["name"]]
                doc["x-data"] |= data
            elif behavior == "create":
                docs.append({"apiVersion": "v1", "kind": kind, "metadata": {"name": gen["name"]},
                             "x-generator": gen["name"], "x-data": data, "x-hash": hashed,
                             **({"type": gen.get("type", "Opaque")} if kind == "Secret" else {})})
            else:
                raise KeyError(f"generator behavior {behavior!r} not supported here")
    for patch in k.get("patches", []):
        _patch(docs, directory, patch)
    for image in k.get("images", []):
        for doc in docs:
            for c in _containers(doc):
                name, _, tag = c["image"].partition(":")
                if name == image["name"]:
                    c["image"] = f"{image.get('newName', name)}:{image.get('newTag', tag or 'latest')}"
    for rep in k.get("replicas", []):
        for doc in docs:
            if doc["metadata"]["name"] == rep["name"] and "replicas" in doc.get("spec", {}):
                doc["spec"]["replicas"] = rep["count"]
    for label in k.get("labels", []):
        if label.get("includeSelectors") or label.get("includeTemplates"):
            raise KeyError("labels with includeSelectors/includeTemplates not supported here")
        for doc in docs:
            doc["metadata"].setdefault("labels", {}).update(label["pairs"])
    if "namespace" in k:
        for doc in docs:
            if doc["kind"] not in CLUSTER_SCOPED:
                doc["metadata"]["namespace"] = k["namespace"]
    return docs


def _finish(docs: list[Doc]) -> list[Doc]:
    """Generated objects get their data and (hashed) names; references to them follow."""
    renamed: dict[tuple[str, str], str] = {}
    for doc in docs:
        if "x-generator" not in doc:
            continue
        data = doc.pop("x-data")
        name = doc.pop("x-generator")
        if doc["kind"] == "Secret":
            doc["data"] = {k: base64.b64encode(v.encode()).decode() for k, v in data.items()}
        else:
            doc["data"] = data
        if doc.pop("x-hash"):
            digest = hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()
            doc["metadata"]["name"] = f"{name}-{digest[:10]}"
        renamed[(doc["kind"], name)] = doc["metadata"]["name"]
    for doc in docs:
        _rewrite_refs(doc, renamed)
    return docs


def _generated_data(directory: Path, gen: Doc) -> dict[str, str]:
    unknown = set(gen) - {"name", "literals", "envs", "files", "behavior", "type"}
    if unknown:
        raise KeyError(f"generator fields not supported here: {sorted(unknown)}")
    data: dict[str, str] = {}
    for env in gen.get("envs", []):
        for line in (directory / env).read_text().splitlines():
            line = line.strip()
            if line and not line.startswith("#"):
                key, _, value = line.partition("=")
                data[key] = value
    for literal in gen.get("literals", []):
        key, _, value = literal.partition("=")
        data[key] = value
    for file in gen.get("files", []):
        key, _, path = file.rpartition("=")
        data[key or Path(path).name] = (directory / path).read_text()
    return data


def _containers(doc: Doc) -> list[Doc]:
    spec = doc.get("spec", {}).get("template", {}).get("spec", {})
    return [*spec.get("containers", []), *spec.get("initContainers", [])]


def _patch(docs: list[Doc], directory: Path, patch: Doc) -> None:
    body = yaml.safe_load((directory / patch["path"]).read_text() if "path" in patch else patch["patch"])
    target = patch.get("target")
    if isinstance(body, list):  # JSON 6902
        if target is None:
            raise KeyError("a JSON 6902 patch needs a target")
        for doc in _targets(docs, target):
            for op in body:
                _json_op(doc, op)
        return
    target = target or {"kind": body["kind"], "name": body["metadata"]["name"]}
    matched = _targets(docs, target)
    for doc in matched:
        merged = _smp(doc, body)
        doc.clear()
        doc.update(merged)


def _targets(docs: list[Doc], target: Doc) -> list[Doc]:
    found = [d for d in docs if d["kind"] == target["kind"] and d["metadata"]["name"] == target["name"]]
    if not found:
        raise KeyError(f"patch target {target} not found")
    return found


def _smp(base: Any, patch: Any) -> Any:
    """Strategic merge: maps merge (null deletes), lists of named maps merge by name, other lists replace."""
    if isinstance(base, dict) and isinstance(patch, dict):
        out = dict(base)
        for key, value in patch.items():
            if value is None:
                out.pop(key, None)
            elif key in out:
                out[key] = _smp(out[key], value)
            else:
                out[key] = copy.deepcopy(value)
        return out
    named = (isinstance(base, list) and isinstance(patch, list) and base and patch
             and all(isinstance(x, dict) and "name" in x for x in [*base, *patch]))
    if named:
        out = [copy.deepcopy(x) for x in base]
        for item in patch:
            i = next((n for n, x in enumerate(out) if x["name"] == item["name"]), None)
            if i is None:
                out.append(copy.deepcopy(item))
            else:
                out[i] = _smp(out[i], item)
        return out
    return copy.deepcopy(patch)


def _json_op(doc: Doc, op: Doc) -> None:
    *parents, last = [p.replace("~1", "/").replace("~0", "~") for p in op["path"].split("/")[1:]]
    node: Any = doc
    for p in parents:
        node = node[int(p)] if isinstance(node, list) else node[p]
    key: Any = (len(node) if last == "-" else int(last)) if isinstance(node, list) else last
    if op["op"] == "test":
        assert node[key] == op["value"], f"JSON patch test failed at {op['path']}: {node[key]!r}"
    elif op["op"] == "add":
        if isinstance(node, list):
            node.insert(key, copy.deepcopy(op["value"]))
        else:
            node[key] = copy.deepcopy(op["value"])
    elif op["op"] == "replace":
        if isinstance(node, dict) and key not in node:
            raise KeyError(f"JSON patch replace: nothing at {op['path']}")
        node[key] = copy.deepcopy(op["value"])
    elif op["op"] == "remove":
        del node[key]
    else:
        raise KeyError(f"JSON patch op {op['op']!r} not supported here")


def _rewrite_refs(node: Any, renamed: dict[tuple[str, str], str]) -> None:
    """configMapRef / secretRef / configMapKeyRef / secretKeyRef names, and configMap / secret volumes."""
    if isinstance(node, list):
        for x in node:
            _rewrite_refs(x, renamed)
        return
    if not isinstance(node, dict):
        return
    for key, value in node.items():
        if key in ("configMapRef", "configMapKeyRef", "configMap") and isinstance(value, dict):
            value["name"] = renamed.get(("ConfigMap", value.get("name", "")), value.get("name"))
        if key in ("secretRef", "secretKeyRef") and isinstance(value, dict):
            value["name"] = renamed.get(("Secret", value.get("name", "")), value.get("name"))
        if key == "secret" and isinstance(value, dict) and "secretName" in value:
            value["secretName"] = renamed.get(("Secret", value["secretName"]), value["secretName"])
        _rewrite_refs(value, renamed)
