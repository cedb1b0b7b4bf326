"""The phase file's model: Phase and Ticket and their parts (pydantic, frozen; unknown keys
are errors). load.py reads a file into it."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (AfterValidator, BaseModel, ConfigDict, Discriminator, Field,
                      PrivateAttr, StringConstraints, Tag, ValidationInfo,
                      field_validator)

from runner.agents import DEFAULT_KIND, KINDS
from runner.gateway import check_entry
from runner.phase.globs import check_glob
from runner.phase.ids import MAX_LENGTH, NAME_PATTERN
from runner.phase.imageref import check_image
from runner.records import Price
from runner.sandbox import check_engine
from runner.text import quoted
from runner.units import checked_size, size_in_bytes

# Ticket ids that would collide with a run's own refs under refs/runner/<run-id>/.
RESERVED_IDS = frozenset({"integrated", "candidate", "previous-target", "attempts", "base"})
# A ticket id names files (logs/<id>.log) and containers; a file name ends at 255 bytes.
Name = Annotated[str, StringConstraints(pattern=NAME_PATTERN, max_length=MAX_LENGTH)]
Tier = Literal["simple", "nuanced", "complex"]
AgentName = Literal[tuple(KINDS)]  # type: ignore[valid-type]   # the registry's, as an enum
# Checked per item, so an error names the list index (tickets[0].paths[1]).
# 1024: a pattern is compiled to a regex when read, and compiling costs by the character.
Glob = Annotated[str, StringConstraints(max_length=1024), AfterValidator(check_glob)]
# host, host:port or *.domain, checked per item (egress[2]); a DNS name ends at 253.
EgressEntry = Annotated[str, StringConstraints(max_length=300), AfterValidator(check_entry)]

# Default model per tier, taken from the anthropic SDK version pinned in pyproject.toml.
DEFAULT_MODELS = {"simple": "claude-haiku-5-5", "nuanced": "claude-sonnet-5-5",
                  "complex": "claude-opus-5-5"}


DEFAULT_PROTECTED = (".github/**", ".gitlab-ci.yml", ".devcontainer/**", "compose.yaml",
                     "compose.yml", "docker-compose*.yml", "docker-compose*.yaml",
                     "gradle/wrapper/**", "gradlew", "gradlew.bat", ".ci/**")
MIN_DISK, MAX_DISK = 64 << 20, 1 << 50      # resources.disk: 64 MiB to 1 PiB


class _Strict(BaseModel):
    # No .inf or .nan anywhere: an infinite timeout or budget is no limit, and NaN compares
    # false with everything, so no check against it would ever stop anything.
    model_config = ConfigDict(extra="forbid", frozen=True, regex_engine="python-re",
                              allow_inf_nan=False)


# Docker's own bounds: NanoCpus is int(cpus * 1e9) and below 0.01 CPU the engine refuses it
# (and a value that rounds to 0 is no limit at all); under 6 MiB it refuses a memory limit;
# both are int64 on the wire. pids past the kernel's PID_MAX_LIMIT limit nothing.
MIN_CPUS, MAX_CPUS = 0.01, 1024
MIN_MEMORY, MAX_MEMORY = 6 << 20, (1 << 63) - 1
MAX_PIDS = 1 << 22
MAX_TIMEOUT = 7 * 24 * 3600     # seconds; a ticket's timeout past a week is a typo
MAX_TICKETS = 10_000            # what one phase may hold
MAX_CONCURRENCY = 1000          # workers at once (each is a thread and a container)


def _bytes_at_most(value: str, limit: int) -> int:
    """The size ``value`` names, or ``limit + 1`` when it names more than a float holds
    (float('9' * 400) is inf): over any limit either way."""
    checked_size(value)
    try:
        return size_in_bytes(value)
    except OverflowError:
        return limit + 1


class Resources(_Strict):
    cpus: float = Field(default=1.0)
    memory: str = "2g"
    pids: int = Field(default=512, ge=16, le=MAX_PIDS)
    # What a worker's workspace and Gradle home may grow by while it runs (sandbox/diskwatch).
    disk: str = "10g"

    @field_validator("cpus")
    @classmethod
    def _cpus(cls, value: float) -> float:
        if not MIN_CPUS <= value <= MAX_CPUS:
            raise ValueError(f"{value!r} CPUs is not a limit Docker can set; give "
                             f"{MIN_CPUS} to {MAX_CPUS} (at most the engine's CPUs)")
        return value

    @field_validator("memory")
    @classmethod
    def _size(cls, value: str) -> str:
        size = _bytes_at_most(value, MAX_MEMORY)
        if not MIN_MEMORY <= size <= MAX_MEMORY:
            raise ValueError(f"{quoted(value)} is not a memory limit Docker can set; give 6m or "
                             "more (2g is the default), below 8 billion gigabytes")
        return value

    @field_validator("disk")
    @classmethod
    def _disk(cls, value: str) -> str:
        size = _bytes_at_most(value, MAX_DISK)
        if size < MIN_DISK:
            raise ValueError(f"{value!r} is below the smallest disk budget, 64m (a clone and "
                             "a Gradle daemon need more)")
        if size > MAX_DISK:
            raise ValueError(f"{quoted(value)} is larger than any disk; write it like 10g")
        return value

    @property
    def disk_bytes(self) -> int:
        return size_in_bytes(self.disk)


class Models(_Strict):
    simple: str = DEFAULT_MODELS["simple"]
    nuanced: str = DEFAULT_MODELS["nuanced"]
    complex: str = DEFAULT_MODELS["complex"]


class GradleConfig(_Strict):
    shared_cache: Path | None = None


class KubernetesConfig(_Strict):
    """How a phase's workers are kept on Kubernetes (nothing else reads it)."""

    # Where each worker's checkout lives: "pod" (emptyDir volumes, gone with their Pod) or
    # "claim" (a PersistentVolumeClaim each, which outlives it: a Pod lost mid-ticket is
    # replaced over the same files, and what an interrupted run's workers hold is salvaged).
    workspaces: Literal["pod", "claim"] = "pod"
    # The claims' StorageClass (default: the cluster's default class).
    storage_class: Annotated[str, StringConstraints(
        pattern=r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")] | None = None


Ecosystem = Literal["pypi", "crates", "maven", "npm", "go", "gradle"]


class CacheConfig(_Strict):
    """The dependency cache: which ecosystems' tools the gateway mirrors for the workers
    (a list, each upstream read from this machine's own tool configuration; or a mapping to
    each upstream's URL, null for the configured one), its size bound and its folder."""

    mirrors: list[Ecosystem] | dict[Ecosystem, Annotated[str, StringConstraints(
        pattern=r"^(sparse\+)?https?://[^\s/]+(/\S*)?$")] | None] = Field(min_length=1)
    max: Annotated[str, AfterValidator(checked_size)] = "20g"
    dir: Path | None = None              # default: $XDG_CACHE_HOME/runner/deps
    # The checksum database a Go module the base's go.sum does not list is checked by, as
    # GOSUMDB names it; default this machine's GOSUMDB; "off": go.sum's modules alone.
    go_sumdb: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9.+/=: _-]{1,500}$")] \
        | None = None

    @field_validator("mirrors")
    @classmethod
    def _gradle_has_no_upstream(cls, value: Any) -> Any:
        if isinstance(value, dict) and value.get("gradle"):
            raise ValueError("gradle (the wrapper's distribution) is fetched from the URL "
                             "the project's gradle-wrapper.properties names: give it null")
        return value

    @field_validator("go_sumdb")
    @classmethod
    def _sumdb_is_for_go(cls, value: str | None, info: ValidationInfo) -> str | None:
        mirrors = info.data.get("mirrors")
        if value is not None and mirrors is not None and "go" not in mirrors:
            raise ValueError("the checksum database is the Go mirror's, and cache.mirrors "
                             "mirrors no go: add go there or drop go_sumdb")
        return value

    @property
    def upstreams(self) -> dict[str, str | None]:
        """Each ecosystem with the URL the phase names for it (None: the host's)."""
        if isinstance(self.mirrors, list):
            return dict.fromkeys(self.mirrors)
        return dict(self.mirrors)

    @property
    def max_bytes(self) -> int:
        return size_in_bytes(self.max)


class ClaudeConfig(_Strict):
    """Which Claude Code binary claude-code tickets run (default: `claude` on PATH, else the
    one in an installed claude-agent-sdk)."""

    binary: Path | None = None


class DockerfileImage(_Strict):
    """A worker image built from the project's own Dockerfile (paths relative to the phase
    file); runner adds what it needs inside as a layer of its own."""

    dockerfile: Path
    context: Path | None = None            # default: the Dockerfile's directory
    target: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")] | None = None
    args: dict[Annotated[str, StringConstraints(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")], str] = {}


class DevcontainerImage(_Strict):
    """A worker image from a devcontainer.json's ``image`` or ``build``."""

    devcontainer: Path


def _image_form(value: Any) -> str:
    if isinstance(value, dict):
        return "form-devcontainer" if "devcontainer" in value else "form-dockerfile"
    if isinstance(value, BaseModel):
        return "form-devcontainer" if isinstance(value, DevcontainerImage) else "form-dockerfile"
    return "form-name"


# A name (`runner-worker:latest`), or what to build one from. The forms' tags ("form-…") are
# no part of a field's path in errors.
ImageSource = Annotated[
    Annotated[Annotated[str, AfterValidator(check_image)], Tag("form-name")]
    | Annotated[DockerfileImage, Tag("form-dockerfile")]
    | Annotated[DevcontainerImage, Tag("form-devcontainer")],
    Discriminator(_image_form)]


class Ticket(_Strict):
    id: Name
    title: str = ""
    tier: Tier = "nuanced"
    agent: AgentName = DEFAULT_KIND
    prompt: str | None = None
    run: str | None = None
    paths: list[Glob] = []
    depends_on: list[Name] = []
    checks: list[str] = []
    max_fix_loops: int = Field(default=2, ge=0, le=100)
    timeout: float = Field(default=1800, gt=0, le=MAX_TIMEOUT)
    model: str | None = None                             # overrides the tier's model
    max_turns: int = Field(default=40, ge=1, le=10_000)  # API calls for an anthropic ticket
    # All tokens of all its API calls; the ceiling keeps it a number every tool can hold.
    max_tokens: int = Field(default=2_000_000, ge=1, le=1_000_000_000)
    env: list[Annotated[str, StringConstraints(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")]] = []
    max_reruns: int | None = Field(default=None, ge=0, le=100)   # default: the phase's
    retries: int = Field(default=0, ge=0, le=100)  # runs again when its container was stopped

    @property
    def display_title(self) -> str:
        return self.title or self.id

    @property
    def default_commit_message(self) -> str:
        return f"{self.id}: {self.display_title}"


# What git would mangle or refuse in an identity: the delimiters of its email and any
# control character (a newline would end the author line of the commit object).
_IDENT_BAD = re.compile(r"[<>\x00-\x1f\x7f]")


class Author(_Strict):
    """Who the commits of a run are by (the host repo's user commits them)."""

    name: str
    email: str

    @field_validator("name", "email")
    @classmethod
    def _ident(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be empty")
        if _IDENT_BAD.search(value):
            raise ValueError(f"{quoted(value)} may not contain '<', '>', a newline or another "
                             "control character")
        return value.strip()


class Budget(_Strict):
    usd: float = Field(gt=0)


class Review(_Strict):
    """The review gate: ``model``, or the model of ``tier``."""

    model: str | None = None
    tier: Tier = "nuanced"


class Phase(_Strict):
    name: Name
    base: str = "HEAD"
    target: str | None = None
    image: ImageSource = "runner-worker:latest"
    # Where the workers run: local, tcp://host:port, ssh://user@host, a Docker context,
    # kubernetes or kubernetes:CONTEXT.
    engine: Annotated[str, AfterValidator(check_engine)] = "local"
    # The sandboxes' runtime: Docker's --runtime (runsc, kata-runtime) or, on Kubernetes, the
    # Pods' runtimeClassName (gvisor, kata): a stronger boundary where the engine offers one.
    runtime: Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9._-]{0,62}$")] | None = None
    concurrency: int | None = Field(default=None, ge=1, le=MAX_CONCURRENCY)
    network: Literal["none", "bridge"] = "none"
    resources: Resources = Resources()
    models: Models = Models()
    gradle: GradleConfig = GradleConfig()
    claude: ClaudeConfig = ClaudeConfig()
    kubernetes: KubernetesConfig = KubernetesConfig()
    # Hosts workers may reach through the gateway (host, host:port, *.domain); none by default.
    egress: list[EgressEntry] = []
    cache: CacheConfig | None = None                  # the gateway's dependency mirrors
    checks: list[str] = []
    budget: Budget | None = None
    review: Review | None = None
    author: Author | None = None                      # default: the ticket, host's email
    # Files no ticket may change: what would let a worker reach past its sandbox later (CI,
    # dev containers, compose files, build wrappers). A phase may narrow or widen the list.
    protected: list[Glob] = list(DEFAULT_PROTECTED)
    max_file_size: str = "10m"                        # no changed file may be larger
    max_reruns: int = Field(default=1, ge=0, le=100)  # reruns of a conflicting ticket
    prices: dict[str, Price] = {}                     # USD per million tokens, per model
    tickets: list[Ticket] = Field(min_length=1, max_length=MAX_TICKETS)
    _index: tuple[object, dict[str, Ticket]] = PrivateAttr(default=(None, {}))

    @field_validator("max_file_size")
    @classmethod
    def _file_size(cls, value: str) -> str:
        return checked_size(value)

    @property
    def max_file_bytes(self) -> int:
        return size_in_bytes(self.max_file_size)

    @property
    def review_model(self) -> str | None:
        if self.review is None:
            return None
        return self.review.model or getattr(self.models, self.review.tier)

    def reruns_for(self, ticket: Ticket) -> int:
        return self.max_reruns if ticket.max_reruns is None else ticket.max_reruns

    @field_validator("target")
    @classmethod
    def _branch_name(cls, value: str | None) -> str | None:
        if value is not None and not _is_branch_name(value):
            raise ValueError(f"{quoted(value)} is not a valid branch name")
        return value

    @property
    def target_branch(self) -> str:
        return self.target or f"runner/{self.name}"

    def ticket(self, ticket_id: str) -> Ticket:
        # Looked up per ticket, in phases of thousands: indexed once per list of tickets.
        if self._index[0] is not self.tickets:
            self._index = (self.tickets, {t.id: t for t in self.tickets})
        return self._index[1][ticket_id]

    def model_for(self, ticket: Ticket) -> str:
        return ticket.model or getattr(self.models, ticket.tier)

    @property
    def needs_gateway(self) -> bool:
        """Whether workers get the gateway: to reach listed hosts or the dependency cache,
        or the Messages API for a CLI agent (whose key stays in runner)."""
        return bool(self.egress) or self.cache is not None \
            or any(KINDS[t.agent].needs_gateway for t in self.tickets)


def _is_branch_name(name: str) -> bool:
    return (bool(re.fullmatch(r"[A-Za-z0-9._/-]+", name)) and ".." not in name
            and "//" not in name and not name.startswith(("-", "/", "."))
            and not name.endswith(("/", ".", ".lock")))


