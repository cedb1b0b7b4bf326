"""`runner demo`: a sample Java repo and a phase of five script tickets modelled on the seed
team's phase 2 (R08-R12), run for real in containers. No API key, no registry."""

from __future__ import annotations

import textwrap
from pathlib import Path

import yaml

from runner.agents import KINDS
from runner.host import git

SOURCES = {
    "settings.gradle": "rootProject.name = 'demo'\n",
    "build.gradle": "apply plugin: 'java'\n\nsourceCompatibility = 17\ntargetCompatibility = 17\n",
    "README.md": "# demo\n\nA small Java project that runner's demo phase works on.\n",
    ".gitignore": "build/\n.gradle/\n",
}
CLASSES = {
    "Legacy": "    public static String oldApi() {\n        return \"old\";\n    }\n",
    "Notifications": "    public static String receive() {\n        return Scope.global(\"notify\");\n    }\n",
    "Downloads": "    public static String download() {\n        return Scope.global(\"download\");\n    }\n",
    "Intents": "    public static String open() {\n        return Scope.global(\"intent\");\n    }\n",
    "Scope": ("    public static String global(String job) {\n        return \"global:\" + job;\n"
              "    }\n\n    public static String lifecycle(String job) {\n"
              "        return \"lifecycle:\" + job;\n    }\n"),
}


def _migrate(cls: str) -> str:
    path = f"src/main/java/demo/{cls}.java"
    return (f"sed -i 's/Scope.global(/Scope.lifecycle(/' {path}\n"
            f"grep -q 'Scope.lifecycle(' {path}\nsleep 2\n")


PHASE = f"""\
name: phase-2
base: main
target: runner/phase-2
concurrency: 3
checks:
  - test -f docs/scope-policy.md
  - "! grep -rn 'Scope.global(' src/main/java/demo --include='*.java' | grep -v Scope.java"
tickets:
  - id: R08
    title: Deprecation additions
    tier: simple
    agent: script
    run: |
      sed -i 's/    public static String oldApi/    @Deprecated\\n    public static String oldApi/' src/main/java/demo/Legacy.java
      grep -q '@Deprecated' src/main/java/demo/Legacy.java
      sleep 2
  - id: R09
    title: NotificationReceiver off the global scope
    agent: script
    paths: ["src/main/java/demo/Notifications.java"]
    run: |
{textwrap.indent(_migrate("Notifications"), " " * 6)}
  - id: R10
    title: Download managers off the global scope
    agent: script
    paths: ["src/main/java/demo/Downloads.java"]
    run: |
{textwrap.indent(_migrate("Downloads"), " " * 6)}
  - id: R11
    title: ExternalIntents off the global scope
    agent: script
    paths: ["src/main/java/demo/Intents.java"]
    run: |
{textwrap.indent(_migrate("Intents"), " " * 6)}
  - id: R12
    title: Scope policy documentation
    tier: simple
    agent: script
    depends_on: [R09, R10, R11]
    paths: ["docs/**"]
    run: |
      # Written from what the three migrations left: it needs all of them in its workspace.
      mkdir -p docs
      migrated=$(grep -rl 'Scope.lifecycle(' src/main/java/demo --include='*.java' | grep -v Scope.java | sort)
      test "$(echo "$migrated" | wc -l)" -eq 3
      {{ echo '# Scope policy'; echo; echo 'Work runs in a lifecycle scope, never the global one. Migrated:'; echo;
        for f in $migrated; do echo "- $f"; done; }} > docs/scope-policy.md
"""


# What each ticket asks of an LLM worker (`runner demo --agent anthropic`).
PROMPTS = {
    "R08": "Mark the method oldApi in src/main/java/demo/Legacy.java as @Deprecated.",
    "R09": "In src/main/java/demo/Notifications.java, replace Scope.global( with "
           "Scope.lifecycle(. Change nothing else.",
    "R10": "In src/main/java/demo/Downloads.java, replace Scope.global( with "
           "Scope.lifecycle(. Change nothing else.",
    "R11": "In src/main/java/demo/Intents.java, replace Scope.global( with "
           "Scope.lifecycle(. Change nothing else.",
    "R12": "Write docs/scope-policy.md: a heading '# Scope policy', one sentence saying work "
           "runs in a lifecycle scope, never the global one, and a bullet list of the Java "
           "files under src/main/java/demo (other than Scope.java) that call Scope.lifecycle(.",
}


def phase_text(agent: str = "script") -> str:
    """The demo phase, for script workers or LLM workers (same tickets, prompts for runs)."""
    if KINDS[agent].works_from == "run":
        return PHASE
    phase = yaml.safe_load(PHASE)
    for ticket in phase["tickets"]:
        del ticket["run"]
        ticket.update(agent=agent, prompt=PROMPTS[ticket["id"]])
    return yaml.safe_dump(phase, sort_keys=False)


def make_demo(root: Path, agent: str = "script") -> tuple[Path, Path]:
    """Create ``root/repo`` (a git repo on main) and ``root/phase.yaml``; return both."""
    repo = root / "repo"
    for rel, text in SOURCES.items():
        _write(repo / rel, text)
    for cls, body in CLASSES.items():
        _write(repo / "src/main/java/demo" / f"{cls}.java",
               f"package demo;\n\npublic class {cls} {{\n{body}}}\n")
    git(root, "init", "--quiet", "--initial-branch=main", str(repo))
    git(repo, "add", "-A")
    git(repo, "-c", "user.name=runner demo", "-c", "user.email=demo@runner.local",
        "commit", "--quiet", "-m", "A small Java project")
    phase = root / "phase.yaml"
    phase.write_text(phase_text(agent))
    return repo, phase


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
