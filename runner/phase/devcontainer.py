"""A project's worker image as its phase file names it: ``image: {dockerfile: …}`` or
``image: {devcontainer: …}``, turned into the Recipe the engine builds (sandbox/recipes.py).

Of a devcontainer.json (JSON with comments) runner takes what makes the image: ``image``,
or ``build`` (``dockerfile``, ``context``, ``target``, ``args``; the older top-level
``dockerFile`` and ``context`` too), and ``containerEnv``, baked into the image. What would
change the image in ways only the Dev Containers CLI can (``features``, a Compose setup) is
refused, naming the field. What sets up an editor's session (lifecycle commands, mounts, run
arguments, users) is said and left: a worker is started runner's way, hardened, with its
own mounts only.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from runner.errors import PhaseFileError
from runner.sandbox import Recipe

MAX_SIZE = 1 << 20
REFUSED = {
    "features": "runner builds the image itself and cannot add Dev Container Features: "
                "install what they add in the Dockerfile (build.dockerfile)",
    "dockerComposeFile": "a Compose setup is not an image runner can build: name the "
                         "service's Dockerfile with build.dockerfile instead",
}
# Run when an editor's container starts: not what a worker does.
LIFECYCLE = ("initializeCommand", "onCreateCommand", "updateContentCommand",
             "postCreateCommand", "postStartCommand", "postAttachCommand")
# How an editor's container is started: runner starts its workers its own way.
RUNTIME = ("runArgs", "mounts", "privileged", "capAdd", "securityOpt", "init", "appPort",
           "workspaceMount", "workspaceFolder", "remoteUser", "containerUser", "remoteEnv",
           "overrideCommand", "service", "runServices", "shutdownAction", "hostRequirements",
           "updateRemoteUserUID", "userEnvProbe", "waitFor", "gpu")
# For editors and people alone.
EDITOR = ("name", "customizations", "extensions", "settings", "forwardPorts",
          "portsAttributes", "otherPortsAttributes", "$schema")
BUILD_KEYS = ("dockerfile", "context", "target", "args", "cacheFrom", "options")
_VARIABLE = re.compile(r"\$\{([A-Za-z]+)(?::([^}:]*))?(?::([^}]*))?\}")


def recipe_for(source: Any, phase_file: Path) -> Recipe:
    """The Recipe of a phase's ``image:`` that is not a name (its paths absolute already)."""
    if getattr(source, "devcontainer", None) is not None:
        return devcontainer_recipe(Path(source.devcontainer))
    dockerfile = Path(source.dockerfile)
    context = Path(source.context) if source.context is not None else dockerfile.parent
    _must_be(phase_file, "image.dockerfile", dockerfile, "file")
    _must_be(phase_file, "image.context", context, "directory")
    return Recipe(source=f"Dockerfile {dockerfile}", dockerfile=dockerfile, context=context,
                  target=source.target, args=dict(source.args))


def _must_be(file: Path, field: str, path: Path, kind: str) -> None:
    if not (path.is_file() if kind == "file" else path.is_dir()):
        raise PhaseFileError(file, f"{path} is not a {kind}", field=field)


def devcontainer_recipe(path: Path) -> Recipe:
    import json5

    try:
        if path.stat().st_size > MAX_SIZE:
            raise PhaseFileError(path, f"larger than {MAX_SIZE >> 20} MiB: not a "
                                 "devcontainer.json")
        data = json5.loads(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise PhaseFileError(path, f"cannot read it: {e.strerror or e}") from e
    except (ValueError, UnicodeDecodeError) as e:
        raise PhaseFileError(path, f"not JSON with comments: {str(e)[:200]}") from e
    if not isinstance(data, dict):
        raise PhaseFileError(path, "must be a JSON object")
    where = path.parent
    top = where.parent if where.name == ".devcontainer" else where
    values = {"localWorkspaceFolder": str(top), "localWorkspaceFolderBasename": top.name,
              "containerWorkspaceFolder": "/workspace"}
    for key, why in REFUSED.items():
        if data.get(key):
            raise PhaseFileError(path, why, field=key)
    build = data.get("build", {})
    if not isinstance(build, dict):
        raise PhaseFileError(path, "must be an object (dockerfile, context, target, args)",
                             field="build")
    for key in build:
        if key not in BUILD_KEYS:
            raise PhaseFileError(path, f"unknown key; runner reads {', '.join(BUILD_KEYS)}",
                                 field=f"build.{key}")
    dockerfile = build.get("dockerfile", data.get("dockerFile"))
    context = build.get("context", data.get("context", "."))
    image = data.get("image")
    if (dockerfile is None) == (image is None):
        raise PhaseFileError(path, "needs exactly one of image or build.dockerfile, to say "
                             "what the worker image is", field="build.dockerfile"
                             if image is not None else "image")
    ignored = [k for k in data if k in LIFECYCLE + RUNTIME]
    unknown = [k for k in data if k not in {"image", "build", "dockerFile", "context",
                                            "containerEnv", *REFUSED, *LIFECYCLE,
                                            *RUNTIME, *EDITOR}]
    env = _strings(path, "containerEnv", data.get("containerEnv", {}), values)
    notes = []
    if ignored:
        notes.append(f"{path}: {', '.join(ignored)} {'is' if len(ignored) == 1 else 'are'} "
                     "not used: runner builds the image and starts each worker its own way "
                     "(put a setup step in the Dockerfile, or a ticket's checks)")
    if unknown:
        notes.append(f"{path}: {', '.join(unknown)}: not a field runner knows; left out")
    if image is not None:
        if not isinstance(image, str) or not image.strip():
            raise PhaseFileError(path, "must be an image name", field="image")
        return Recipe(source=f"devcontainer {path}", image=_expand(image, values, path,
                                                                    "image"),
                      env=env, notes=tuple(notes))
    if not isinstance(dockerfile, str) or not isinstance(context, str):
        raise PhaseFileError(path, "must be a path, relative to devcontainer.json",
                             field="build.dockerfile")
    dockerfile_path = (where / _expand(dockerfile, values, path, "build.dockerfile")).resolve()
    context_path = (where / _expand(context, values, path, "build.context")).resolve()
    _must_be(path, "build.dockerfile", dockerfile_path, "file")
    _must_be(path, "build.context", context_path, "directory")
    target = build.get("target")
    if target is not None and not (isinstance(target, str) and re.fullmatch(
            r"[A-Za-z0-9][A-Za-z0-9._-]*", target)):
        raise PhaseFileError(path, "must be the name of a stage of the Dockerfile",
                             field="build.target")
    return Recipe(source=f"devcontainer {path}", dockerfile=dockerfile_path,
                  context=context_path, target=target,
                  args=_strings(path, "build.args", build.get("args", {}), values),
                  env=env, notes=tuple(notes))


def _strings(path: Path, field: str, value: Any, values: Mapping[str, str]) -> dict[str, str]:
    if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, str)
                                              for k, v in value.items()):
        raise PhaseFileError(path, "must map names to strings", field=field)
    for key in value:
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key):
            raise PhaseFileError(path, f"{key!r} is not a variable name", field=field)
    return {k: _expand(v, values, path, f"{field}.{k}") for k, v in value.items()}


def _expand(text: str, values: Mapping[str, str], path: Path, field: str) -> str:
    """The devcontainer variables in ``text``: ${localWorkspaceFolder} and its basename,
    ${containerWorkspaceFolder}, ${localEnv:NAME} and ${localEnv:NAME:default}."""
    def one(match: re.Match[str]) -> str:
        name, arg, default = match.groups()
        if name == "localEnv" and arg:
            return os.environ.get(arg, default or "")
        if name in values and arg is None:
            return values[name]
        raise PhaseFileError(path, f"{match.group(0)} is not a variable runner can fill in "
                             "(localWorkspaceFolder, containerWorkspaceFolder, localEnv:NAME)",
                             field=field)
    return _VARIABLE.sub(one, text)
