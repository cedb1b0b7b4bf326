"""Worker images built from a project's own Dockerfile (or a devcontainer.json's image or
build), with what runner needs inside added as a layer runner generates.

Two builds: the project's own, as its Dockerfile says (target, args, its context and its
.dockerignore), then runner's layer on top: what of sandbox/needs.py the image lacks, from
its own apt-get, and the mount points of a read-only root. The image is tagged by a digest
of everything that goes into it — the Dockerfile, every file of the context docker would
send, the target and args, the images it starts FROM as the engine has them, runner's layer
— so it is built again only when one of those changed. A project Dockerfile that starts
``FROM debian:bookworm-slim`` (or ``bookworm``) builds where no registry is reachable: that
line starts from runner's own Debian base, as runner's images do.
"""

from __future__ import annotations

import hashlib
import os
import re
import stat
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING

from runner.errors import ImageError
from runner.records import EventSink, Notice
from runner.sandbox.images import OFFLINE_BASE, base_image, image_present, stream_build
from runner.sandbox.needs import HAS, MOUNT_POINTS, NEEDED, GATEWAY_NEEDED
from runner.sandbox.supervisor import WANTS as SUPERVISOR_WANTS

if TYPE_CHECKING:
    import docker

REPOSITORY = "runner-project"         # tags: runner-project:<digest>
DIGEST_LABEL = "runner.recipe"
SOURCE_LABEL = "runner.source"        # what it was built from, for a person
# The Debian releases a FROM line may name that runner's own base stands in for.
DEBIAN = re.compile(r"debian:bookworm(-slim)?")


@dataclass(frozen=True)
class Recipe:
    """How to make a project's worker image: its Dockerfile (with context, target, args), or
    an image to start from (a devcontainer's ``image``); ``env`` is baked in (a
    devcontainer's ``containerEnv``)."""

    source: str                        # what to call it in a sentence
    dockerfile: Path | None = None
    context: Path | None = None
    target: str | None = None
    args: Mapping[str, str] = field(default_factory=dict)
    image: str | None = None
    env: Mapping[str, str] = field(default_factory=dict)
    notes: tuple[str, ...] = ()        # what of its source runner leaves out (said once)


def _layer(env: Mapping[str, str]) -> str:
    """runner's layer, on the project's image (ARG PROJECT): what it needs, from the image's
    own apt-get (none: a line saying what it lacks), and what the supervisor wants, where
    the image has apt-get (else its commands run through engine execs)."""
    def pairs(table: Mapping[str, str]) -> str:
        return " ".join(f"{program}:{package}" for program, package in table.items()
                        if program != "sh")

    install = (
        f"{HAS}; lacking() {{ for pair in \"$@\"; do "
        'has "${pair%%:*}" || case " $out " in *" ${pair#*:} "*) ;; '
        '*) out="$out ${pair#*:}" ;; esac; done; }; '
        f"out=''; lacking {pairs({**NEEDED, **GATEWAY_NEEDED})}; missing=$out; "
        f"lacking {pairs(SUPERVISOR_WANTS)}; "
        'if [ -n "$missing" ] && ! has apt-get; then '
        'echo "runner: the image lacks$missing and has no apt-get to install them '
        'with: install them in its Dockerfile" >&2; exit 1; fi; '
        "get() { apt-get update -qq && DEBIAN_FRONTEND=noninteractive "
        "apt-get install -y -qq --no-install-recommends $out >/dev/null "
        "&& rm -rf /var/lib/apt/lists/*; }; "
        'if [ -n "$missing" ]; then get || exit 1; '
        'elif [ -n "$out" ] && has apt-get; then get || echo "runner: could not install'
        '$out: commands will run through engine execs" >&2; fi; '
        f"mkdir -p {' '.join(MOUNT_POINTS)}")
    lines = ["ARG PROJECT", "FROM ${PROJECT}", "USER root"]
    lines += [f"ENV {key}={_quoted(value)}" for key, value in env.items()]
    # An ENTRYPOINT would wrap every command runner starts.
    lines += [f"RUN {install}", "ENTRYPOINT []", "CMD []", "WORKDIR /workspace"]
    return "\n".join(lines) + "\n"


def _quoted(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"').replace("$", "\\$") + '"'


def project_image(client: docker.DockerClient, recipe: Recipe, sink: EventSink) -> str:
    """The tag of ``recipe``'s image on ``client``'s engine, built there first when no image
    of these very inputs is."""
    bases = _bases(client, recipe, sink)
    digest = recipe_digest(client, recipe, bases)
    tag = f"{REPOSITORY}:{digest[:20]}"
    if image_present(client, tag):
        return tag
    for note in recipe.notes:
        sink.emit(Notice(note, level="warning"))
    sink.emit(Notice(f"building image {tag} from {recipe.source} (its inputs are new or "
                     "changed), then runner's layer on it"))
    with tempfile.TemporaryDirectory(prefix="runner-recipe-") as tmp:
        project = recipe.image or ""
        if recipe.dockerfile is not None:
            assert recipe.context is not None
            project = f"{REPOSITORY}:{digest[:20]}-project"
            name, archive = _context_archive(
                recipe.context, _with_bases(recipe.dockerfile, bases, Path(tmp)))
            with archive:
                stream_build(client, project, context=recipe.context, dockerfile=name,
                             archive=archive, target=recipe.target,
                             buildargs=dict(recipe.args), sink=sink)
        else:
            project = bases.get(project, project)
            if not image_present(client, project) and not _pulled(client, project):
                raise ImageError(project, f"{recipe.source} starts from it, and this engine "
                                 "has it not and cannot pull it: load it (docker load) first")
        layer = Path(tmp) / "layer"
        layer.mkdir()
        (layer / "Dockerfile").write_text(_layer(recipe.env))
        stream_build(client, tag, context=layer, target=None, buildargs={"PROJECT": project},
                     sink=sink, labels={DIGEST_LABEL: digest, SOURCE_LABEL: recipe.source})
    sink.emit(Notice(f"built image {tag} from {recipe.source}"))
    return tag


def recipe_digest(client: docker.DockerClient, recipe: Recipe,
                  bases: Mapping[str, str]) -> str:
    """A sha256 of every input of ``recipe``'s image (see the module's docstring)."""
    digest = hashlib.sha256()

    def add(*parts: str | bytes) -> None:
        for part in parts:
            data = part.encode() if isinstance(part, str) else part
            digest.update(len(data).to_bytes(8, "big") + data)

    add("layer", _layer(recipe.env), "target", recipe.target or "", "image", recipe.image or "")
    for key in sorted(recipe.args):
        add("arg", key, recipe.args[key])
    for ref in sorted(bases):
        add("from", ref, _image_id(client, bases[ref]))
    if recipe.dockerfile is not None:
        assert recipe.context is not None
        add("dockerfile", _read(recipe.dockerfile))
        for name, kind, content in context_files(recipe.context, recipe.dockerfile):
            add("file", name, kind, content)
    return digest.hexdigest()


def _image_id(client: docker.DockerClient, ref: str) -> str:
    return client.images.get(ref).id if image_present(client, ref) else f"absent:{ref}"


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as e:
        raise ImageError(REPOSITORY, f"cannot read {path}: {e.strerror or e}") from e


def _ignored(context: Path) -> list[str]:
    """What docker leaves out of ``context``: its .dockerignore (read as docker-py reads
    it), and the repo's .git, where runner keeps its runs (a workspace per ticket): sent,
    it would make every build's context huge and every run's digest new."""
    ignore = context / ".dockerignore"
    patterns = ([line.strip() for line in _read(ignore).decode().splitlines()
                 if line.strip() and not line.strip().startswith("#")]
                if ignore.is_file() else [])
    return [*patterns, ".git"]


def _dockerfile_in(context: Path, dockerfile: Path) -> tuple[str, str | None]:
    """The Dockerfile's name in the build context, and its text when it is not in it (then
    the context carries a copy, as docker-py does)."""
    from docker.api.build import process_dockerfile

    name, text = process_dockerfile(str(dockerfile), str(context))
    return str(name), text


def context_files(context: Path, dockerfile: Path) -> Iterator[tuple[str, str, bytes]]:
    """(name, kind, what it holds) of each path the build context holds, by name."""
    from docker.utils.build import exclude_paths

    if not context.is_dir():
        raise ImageError(REPOSITORY, f"the build context {context} is not a directory")
    name, _ = _dockerfile_in(context, dockerfile)
    for relative in sorted(exclude_paths(str(context), _ignored(context), dockerfile=name)):
        path = context / relative
        info = path.lstat()
        if stat.S_ISLNK(info.st_mode):
            yield relative, "link", os.readlink(path).encode()
        elif stat.S_ISREG(info.st_mode):
            kind = "exec" if info.st_mode & 0o111 else "file"
            yield relative, kind, hashlib.sha256(_read(path)).digest()
        elif stat.S_ISDIR(info.st_mode):
            yield relative, "dir", b""


def _context_archive(context: Path, dockerfile: Path) -> tuple[str, IO[bytes]]:
    """The build context as docker-py would send it, but for what _ignored leaves out:
    the Dockerfile's name in it, and the archive."""
    from docker.utils.build import tar

    name, text = _dockerfile_in(context, dockerfile)
    return name, tar(str(context), exclude=_ignored(context), dockerfile=(name, text))


# A FROM instruction: its flags (--platform=…), the image, and maybe "AS name".
_FROM = re.compile(r"(?im)^(\s*FROM\s+(?:--\S+\s+)*)(\S+)(.*)$")


def _from_images(text: str) -> list[str]:
    """The images a Dockerfile's FROM lines start from, but its own stages."""
    stages: set[str] = set()
    images: list[str] = []
    for match in _FROM.finditer(text.replace("\\\n", " ")):
        ref, rest = match.group(2), match.group(3)
        if ref.lower() not in stages and ref not in images and ref.lower() != "scratch":
            images.append(ref)
        alias = re.match(r"\s+AS\s+(\S+)", rest, re.IGNORECASE)
        if alias:
            stages.add(alias.group(1).lower())
    return images


def _bases(client: docker.DockerClient, recipe: Recipe, sink: EventSink) -> dict[str, str]:
    """What each image the recipe starts from is on this engine: itself, or for a Debian
    bookworm the engine lacks, what stands in for it: runner's own base when the engine has
    that (or the image cannot be pulled: then it is made)."""
    refs = ([recipe.image] if recipe.image else
            _from_images(_read(recipe.dockerfile).decode("utf-8", "replace"))
            if recipe.dockerfile else [])
    found: dict[str, str] = {}
    for ref in refs:
        if not DEBIAN.fullmatch(ref) or image_present(client, ref) or (
                not image_present(client, OFFLINE_BASE) and _pulled(client, ref)):
            found[ref] = ref
        else:
            found[ref] = base_image(client, sink, offline=True)
    return found


def _pulled(client: docker.DockerClient, ref: str) -> bool:
    import docker.errors

    try:
        client.images.pull(ref)
        return True
    except docker.errors.APIError:
        return False


def _with_bases(dockerfile: Path, bases: Mapping[str, str], folder: Path) -> Path:
    """``dockerfile`` itself, or a copy in ``folder`` whose FROM lines name the bases this
    engine has instead (docker-py sends a Dockerfile outside the context along with it)."""
    text = _read(dockerfile).decode("utf-8", "replace")
    swapped = {ref: base for ref, base in bases.items() if ref != base}
    if not swapped:
        return dockerfile
    copy = folder / "Dockerfile"
    copy.write_text(_FROM.sub(lambda m: m.group(1) + swapped.get(m.group(2), m.group(2))
                              + m.group(3), text))
    return copy
