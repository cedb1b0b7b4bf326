"""Where each mirror fetches from: the phase's ``cache.mirrors`` URL, else what the host's
own tool is configured with (so that a company's mirror is named once, where pip and cargo
already read it), else the tool's own default as the tool itself states it. runner names no
registry itself."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

from runner.errors import InputError

ECOSYSTEMS = ("pypi", "crates", "maven", "npm", "go", "gradle")


def upstream_for(ecosystem: str, given: str | None) -> str:
    """The upstream's base URL, ending in "/": a PEP 503/691 index (pypi), a sparse index
    (crates), a Maven repository (maven), an npm registry (npm), a Go module proxy (go)."""
    if ecosystem == "gradle":
        return ""           # the wrapper's distribution: its URL is the project's own
    if ecosystem == "pypi":
        url = given or _pip_index()
    elif ecosystem == "maven":
        url = given or _maven_central()
    elif ecosystem == "npm":
        url = given or _npm_registry()
    elif ecosystem == "go":
        url = given or _go_proxy()
    else:
        url = (given or _cargo_index()).removeprefix("sparse+")
    if not re.match(r"https?://[^/\s]+", url):
        raise InputError(f"cache.mirrors.{ecosystem}: {url[:200]!r} is not an http(s) URL")
    return url.rstrip("/") + "/"


def _pip_index() -> str:
    if os.environ.get("PIP_INDEX_URL"):
        return os.environ["PIP_INDEX_URL"]
    try:
        listed = subprocess.run([sys.executable, "-m", "pip", "config", "list"],
                                capture_output=True, text=True, timeout=60).stdout
    except (OSError, subprocess.TimeoutExpired):
        listed = ""
    for scope in ("global", "install", "download"):
        found = re.search(rf"^{scope}\.index-url='([^']+)'$", listed, re.M)
        if found:
            return found.group(1)
    try:
        from pip._internal.models.index import PyPI   # pip's own default index
    except ImportError as e:
        raise InputError("cache.mirrors.pypi: pip is not installed here to say its index; "
                         "name the upstream: cache: {mirrors: {pypi: https://…/simple}}") from e
    return PyPI.simple_url


def _cargo_home() -> Path:
    return Path(os.environ.get("CARGO_HOME") or Path.home() / ".cargo")


def _cargo_index() -> str:
    home = _cargo_home()
    for name in ("config.toml", "config"):
        try:
            config = tomllib.loads((home / name).read_text())
        except (OSError, tomllib.TOMLDecodeError):
            continue
        sources = config.get("source", {})
        replacement = sources.get("crates-io", {}).get("replace-with")
        registry = sources.get(replacement, {}).get("registry") if replacement else None
        if isinstance(registry, str):
            if not registry.startswith("sparse+"):
                raise InputError(f"cache.mirrors.crates: cargo's source replacement in "
                                 f"{home / name} is a git index ({registry[:120]}); the "
                                 "cache mirrors sparse indexes: name one in cache.mirrors.crates")
            return registry
    # A sparse index cargo used keeps its config.json in a folder named for its host.
    for config_json in sorted((home / "registry" / "index").glob("*-*/config.json")):
        try:
            json.loads(config_json.read_text())["dl"]
        except (OSError, ValueError, KeyError, TypeError):
            continue
        if not (config_json.parent / ".git").exists():
            return "https://" + config_json.parent.name.rpartition("-")[0] + "/"
    raise InputError("cache.mirrors.crates: cargo here has no source replacement and has not "
                     "used a sparse index yet, so runner cannot tell its upstream: name it, "
                     "cache: {mirrors: {crates: sparse+https://…/}}")


def _maven_central() -> str:
    """The repository Maven here reads central from: a mirror of it in ~/.m2/settings.xml,
    else the super POM of the Maven installed here."""
    import shutil
    import xml.etree.ElementTree as ElementTree
    import zipfile

    settings = Path.home() / ".m2" / "settings.xml"
    try:
        root = ElementTree.parse(settings).getroot()
    except (OSError, ElementTree.ParseError):
        root = None
    for mirror in root.iter() if root is not None else ():
        if mirror.tag.rpartition("}")[2] != "mirror":
            continue
        fields = {child.tag.rpartition("}")[2]: (child.text or "").strip() for child in mirror}
        if {"central", "*"} & {part.strip() for part in fields.get("mirrorOf", "").split(",")} \
                and fields.get("url"):
            return fields["url"]
    mvn = shutil.which("mvn")
    jars = sorted(Path(os.path.realpath(mvn)).parent.parent.glob(
        "lib/maven-model-builder-*.jar")) if mvn else []
    for jar in jars:
        try:
            with zipfile.ZipFile(jar) as archive:
                pom = ElementTree.fromstring(archive.read("org/apache/maven/model/pom-4.0.0.xml"))
        except (OSError, KeyError, zipfile.BadZipFile, ElementTree.ParseError):
            continue
        for repository in pom.iter():
            if repository.tag.rpartition("}")[2] == "repository":
                fields = {c.tag.rpartition("}")[2]: (c.text or "").strip() for c in repository}
                if fields.get("id") == "central" and fields.get("url"):
                    return fields["url"]
    raise InputError("cache.mirrors.maven: no Maven here says where central is (no mirror of "
                     "it in ~/.m2/settings.xml, no mvn installed): name the repository, "
                     "cache: {mirrors: {maven: https://…/}}")


def _npm_registry() -> str:
    """The registry npm here is configured with (its own default when nothing says)."""
    if os.environ.get("npm_config_registry"):
        return os.environ["npm_config_registry"]
    try:
        said = subprocess.run(["npm", "config", "get", "registry"], capture_output=True,
                              text=True, timeout=60).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        said = ""
    if said.startswith(("https://", "http://")):
        return said
    raise InputError("cache.mirrors.npm: no npm here to say its registry: name it, "
                     "cache: {mirrors: {npm: https://…/}}")


def _go_env(name: str) -> str:
    """A Go setting as go here states it: the environment's, else ``go env``'s ("" when
    there is no go)."""
    if os.environ.get(name):
        return os.environ[name]
    try:
        return subprocess.run(["go", "env", name], capture_output=True, text=True,
                              timeout=60).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        return ""


def _go_proxy() -> str:
    """The first module proxy of this machine's GOPROXY (its list is tried in order)."""
    said = _go_env("GOPROXY")
    for entry in re.split(r"[,|]", said):
        if entry.strip().startswith(("https://", "http://")):
            return entry.strip()
    raise InputError("cache.mirrors.go: " + (f"GOPROXY here ({said[:120]}) names no module "
                     "proxy" if said else "no go here to say its GOPROXY") +
                     ": name the proxy, cache: {mirrors: {go: https://…/}}")


def go_sumdb_for(given: str | None) -> str | None:
    """The checksum database new Go modules are checked against, as GOSUMDB spells it
    ("<name>[+<key>] [<url>]"): the phase's, else this machine's; None when it is off."""
    said = given if given is not None else _go_env("GOSUMDB")
    return None if said.strip() in ("", "off") else said.strip()
