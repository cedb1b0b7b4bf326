"""What points a worker at its gateway: the variables of its environment, and the files of
its private home (GRADLE_HOME): Gradle's proxy settings (JVM tools ignore the proxy
variables), and each package tool's standard setting for the dependency cache's mirror.

Inside the worker the forwarder serves the gateway on 127.0.0.1:GATEWAY_PORT. The Messages
API is reached there directly (ANTHROPIC_BASE_URL), everything else through it as a proxy.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from runner.sandbox import GATEWAY_PORT, GRADLE_HOME

if TYPE_CHECKING:
    from runner.gateway import Mirrors

GATEWAY_URL = f"http://127.0.0.1:{GATEWAY_PORT}"
# What a worker holds instead of the API key: the gateway puts the real one in.
PLACEHOLDER_KEY = "runner-gateway-placeholder"
NO_PROXY = "localhost,127.0.0.1"


def gateway_env() -> dict[str, str]:
    proxy = {name: GATEWAY_URL for name in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy",
                                             "https_proxy")}
    return {"ANTHROPIC_BASE_URL": GATEWAY_URL, "ANTHROPIC_API_KEY": PLACEHOLDER_KEY, **proxy,
            "NO_PROXY": NO_PROXY, "no_proxy": NO_PROXY}


# Gradle reads systemProp.* from GRADLE_USER_HOME/gradle.properties into the build's JVM
# (not into the test JVMs it forks). http.nonProxyHosts is empty: any other value gets Java's
# defaults (localhost|127.*|[::1]) appended, and an egress entry such as 127.0.0.1:8080
# means the runner's host, which only the gateway reaches. https shares http's list.
GRADLE_PROPERTIES = "".join(
    f"systemProp.{scheme}.{key}={value}\n"
    for scheme in ("http", "https")
    for key, value in (("proxyHost", "127.0.0.1"), ("proxyPort", GATEWAY_PORT))
) + "systemProp.http.nonProxyHosts=\n"


def mirror_env(mirrors: Mirrors | None) -> dict[str, str]:
    """The variables that send each tool to its mirror on the gateway."""
    ecosystems = mirrors.upstreams if mirrors is not None else {}
    env = {}
    if "pypi" in ecosystems:
        index = f"{GATEWAY_URL}/cache/pypi/simple/"
        env |= {"PIP_INDEX_URL": index, "UV_DEFAULT_INDEX": index, "UV_INDEX_URL": index}
    if "crates" in ecosystems:
        env["CARGO_HOME"] = GRADLE_HOME      # its config.toml there, beside Gradle's files
    if "npm" in ecosystems:                  # npm, pnpm and yarn 1 read it
        env["npm_config_registry"] = f"{GATEWAY_URL}/cache/npm/"
    if "maven" in ecosystems:
        # Maven reads ~/.m2/settings.xml, and keeps its repository there: the private home.
        env["MAVEN_OPTS"] = f"-Duser.home={GRADLE_HOME}"
    if mirrors is not None and "go" in ecosystems:
        # The module cache in the private home, writable (go makes it read-only otherwise,
        # and the home is removed after); the worker's go checks the checksum database too.
        env |= {"GOPROXY": f"{GATEWAY_URL}/cache/go/", "GOSUMDB": mirrors.go_sumdb or "off",
                "GOMODCACHE": f"{GRADLE_HOME}/go/mod", "GOFLAGS": "-modcacherw"}
    return env


# cargo's source replacement: crates-io (what every Cargo.toml means by default) is served
# by the gateway's sparse index.
CARGO_CONFIG = f"""[source.crates-io]
replace-with = "runner-cache"

[source.runner-cache]
registry = "sparse+{GATEWAY_URL}/cache/crates/index/"
"""


MAVEN_MIRROR = f"{GATEWAY_URL}/cache/maven/"


def gradle_init(upstream: str) -> str:
    """Gradle's init.gradle (read from GRADLE_USER_HOME by every build): each Maven
    repository that is central (Gradle's own constant) or the mirror's upstream is fetched
    from the mirror instead."""
    quoted = upstream.replace("\\", "\\\\").replace("'", "\\'")
    return f"""// runner: Maven repositories through the gateway's dependency cache
def runnerMirror = new URI('{MAVEN_MIRROR}')
def runnerMirrored = ['{quoted}',
    org.gradle.api.artifacts.ArtifactRepositoryContainer.MAVEN_CENTRAL_URL]
def runnerSwap = {{ repository ->
    if (repository instanceof org.gradle.api.artifacts.repositories.MavenArtifactRepository) {{
        def url = repository.url.toString()
        if (!url.endsWith('/')) {{ url += '/' }}
        if (url in runnerMirrored) {{
            repository.url = runnerMirror
            if (repository.hasProperty('allowInsecureProtocol')) {{   // Gradle 6.0 on
                repository.allowInsecureProtocol = true               // (the worker's loopback)
            }}
        }}
    }}
}}
allprojects {{
    buildscript.repositories.all(runnerSwap)
    repositories.all(runnerSwap)
}}
"""


def maven_settings() -> str:
    """Maven's settings.xml: central from the mirror."""
    return ("<settings><mirrors><mirror><id>runner-cache</id><mirrorOf>central</mirrorOf>"
            f"<url>{MAVEN_MIRROR}</url></mirror></mirrors></settings>\n")


def home_files(*, gateway: bool, upstreams: Mapping[str, str]) -> tuple[tuple[str, str], ...]:
    """What a worker's private home starts with: (path in it, text)."""
    files = [("gradle.properties", GRADLE_PROPERTIES)] if gateway else []
    if "crates" in upstreams:
        files.append(("config.toml", CARGO_CONFIG))
    if "maven" in upstreams:
        files += [("init.gradle", gradle_init(upstreams["maven"])),
                  (".m2/settings.xml", maven_settings())]
    return tuple(files)
