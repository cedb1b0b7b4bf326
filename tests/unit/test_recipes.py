"""A project's image as a phase names it: the forms of `image:`, devcontainer.json read as an
editor writes it (comments, trailing commas, variables), what is refused or said, and the
build context's digest (what docker would send, .dockerignore and .git left out)."""

from __future__ import annotations

from pathlib import Path

import pytest

from runner.errors import PhaseFileError
from runner.phase.devcontainer import devcontainer_recipe
from runner.phase.load import load_phase
from runner.phase.model import DevcontainerImage, DockerfileImage
from runner.sandbox.recipes import _from_images, context_files
from tests.helpers import write_phase

TICKETS = [{"id": "T", "agent": "script", "run": "true"}]


def test_image_takes_a_name_a_dockerfile_or_a_devcontainer(tmp_path: Path) -> None:
    (tmp_path / "app").mkdir()
    (tmp_path / "app" / "Dockerfile").write_text("FROM debian:bookworm-slim\n")
    (tmp_path / ".devcontainer").mkdir()
    (tmp_path / ".devcontainer" / "devcontainer.json").write_text('{"image": "x:1"}')
    named = load_phase(write_phase(tmp_path / "a.yaml", {"name": "p", "image": "my:1",
                                                          "tickets": TICKETS}))
    assert named.image == "my:1"
    built = load_phase(write_phase(tmp_path / "b.yaml", {
        "name": "p", "image": {"dockerfile": "app/Dockerfile", "target": "dev",
                               "args": {"V": "1"}}, "tickets": TICKETS}))
    assert built.image == DockerfileImage(dockerfile=tmp_path / "app" / "Dockerfile",
                                          target="dev", args={"V": "1"})
    dev = load_phase(write_phase(tmp_path / "c.yaml", {
        "name": "p", "image": {"devcontainer": ".devcontainer/devcontainer.json"},
        "tickets": TICKETS}))
    assert dev.image == DevcontainerImage(
        devcontainer=tmp_path / ".devcontainer" / "devcontainer.json")


@pytest.mark.parametrize(("image", "said"), [
    ({"dockerfile": "nope/Dockerfile"}, "image.dockerfile: "),
    ({"dockerfile": "Dockerfile", "bogus": 1}, "image.bogus: unknown key"),
    ({"dockerfile": "Dockerfile", "target": "a b"}, "image.target: "),
    ({"devcontainer": "missing.json"}, "missing.json: cannot read it"),
    ("Not An Image", "image: 'Not An Image' is not an image reference"),
])
def test_a_bad_image_is_one_line_naming_the_field(tmp_path: Path, image: object,
                                                  said: str) -> None:
    (tmp_path / "Dockerfile").write_text("FROM x\n")
    with pytest.raises(PhaseFileError) as caught:
        load_phase(write_phase(tmp_path / "p.yaml", {"name": "p", "image": image,
                                                     "tickets": TICKETS}))
    assert said in str(caught.value) and "\n" not in str(caught.value)


def test_devcontainer_json_with_comments_build_and_variables(tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch
                                                            ) -> None:
    folder = tmp_path / "proj" / ".devcontainer"
    folder.mkdir(parents=True)
    (folder.parent / "Dockerfile").write_text("FROM debian:bookworm\n")
    monkeypatch.setenv("RUNNER_TEST_PROXY", "http://proxy.invalid:3128")
    path = folder / "devcontainer.json"
    path.write_text("""{
      // comments, as editors allow
      "build": {"dockerfile": "../Dockerfile", "context": "..", "target": "dev",
                "args": {"PROXY": "${localEnv:RUNNER_TEST_PROXY}", "NONE": "${localEnv:NOPE:x}"},},
      "containerEnv": {"WHERE": "${containerWorkspaceFolder}/${localWorkspaceFolderBasename}"},
      "forwardPorts": [8000],
      "mounts": ["source=/,target=/host,type=bind"],
      "somethingNew": true,
    }""")
    recipe = devcontainer_recipe(path)
    assert recipe.dockerfile == folder.parent / "Dockerfile"
    assert recipe.context == folder.parent and recipe.target == "dev"
    assert recipe.args == {"PROXY": "http://proxy.invalid:3128", "NONE": "x"}
    assert recipe.env == {"WHERE": "/workspace/proj"}
    assert any("mounts is not used" in n for n in recipe.notes)
    assert any("somethingNew" in n for n in recipe.notes)
    assert not any("forwardPorts" in n for n in recipe.notes)


@pytest.mark.parametrize(("text", "field"), [
    ('{"image": "x", "features": {"f": {}}}', "features"),
    ('{"dockerComposeFile": "c.yml", "service": "app"}', "dockerComposeFile"),
    ('{"name": "no image"}', "image"),
    ('{"image": "x", "build": {"dockerfile": "D"}}', "build.dockerfile"),
    ('{"build": {"dockerfile": "D", "squash": true}}', "build.squash"),
    ('{"image": "${localEnv}"}', "image"),
    ('[1, 2]', None),
    ('{"image": ', None),
])
def test_what_runner_cannot_build_is_refused_naming_the_field(tmp_path: Path, text: str,
                                                             field: str | None) -> None:
    path = tmp_path / "devcontainer.json"
    path.write_text(text)
    with pytest.raises(PhaseFileError) as caught:
        devcontainer_recipe(path)
    assert caught.value.field == field
    assert "\n" not in str(caught.value)


def test_from_lines_name_images_but_not_stages() -> None:
    text = ("# syntax=docker/dockerfile:1\nFROM --platform=linux/amd64 debian:bookworm AS base\n"
            "FROM base AS build\nfrom \\\n  python:3.11 as py\nFROM scratch\nFROM build\n")
    assert _from_images(text) == ["debian:bookworm", "python:3.11"]


def test_the_context_digest_follows_what_docker_would_send(tmp_path: Path) -> None:
    context = tmp_path / "ctx"
    (context / "src").mkdir(parents=True)
    (context / ".git" / "runner").mkdir(parents=True)
    (context / "Dockerfile").write_text("FROM x\n")
    (context / "src" / "a.py").write_text("a = 1\n")
    (context / "notes.md").write_text("ignored\n")
    (context / ".dockerignore").write_text("# a comment\n*.md\n")
    (context / ".git" / "runner" / "run.json").write_text("{}")
    seen = {name: kind for name, kind, _ in context_files(context, context / "Dockerfile")}
    assert seen["src/a.py"] == "file" and "Dockerfile" in seen
    assert "notes.md" not in seen and not any(n.startswith(".git") for n in seen)
    before = list(context_files(context, context / "Dockerfile"))
    (context / "notes.md").write_text("changed, still ignored\n")
    (context / ".git" / "runner" / "run.json").write_text('{"a run": 1}')
    assert list(context_files(context, context / "Dockerfile")) == before
    (context / "src" / "a.py").write_text("a = 2\n")
    assert list(context_files(context, context / "Dockerfile")) != before
