"""The lead does what the seed team did by hand: reruns conflicting tickets on the new head,
keeps overlapping tickets apart, plans waves, and lands the result."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers import git, make_repo, run_json, runner_cli, write_phase

TIMED = ('mkdir -p {dir}\ndate +%s.%N > {dir}/started\nsleep 3\n'
         'date +%s.%N > {dir}/ended\n')


def _span(repo: Path, ref: str, folder: str) -> tuple[float, float]:
    return (float(git(repo, "show", f"{ref}:{folder}/started")),
            float(git(repo, "show", f"{ref}:{folder}/ended")))


def test_conflicting_ticket_is_rerun_on_the_new_head(tmp_path: Path, worker_image: str) -> None:
    repo = make_repo(tmp_path / "repo", {"config.txt": "colour = grey\n"})
    phase = write_phase(tmp_path / "p.yaml", {"name": "rerun", "concurrency": 2, "tickets": [
        {"id": "RED", "agent": "script",
         "run": "sed -i 's/colour = .*/colour = red/' config.txt\necho red > red.txt"},
        {"id": "SIZE", "agent": "script",
         "run": "sleep 2\nsed -i 's/colour = .*/colour = grey\\nsize = 2/' config.txt"}]})
    proc, doc = run_json("run", str(phase), "--repo", str(repo))
    assert proc.returncode == 0, proc.stderr
    tickets = {t["id"]: t for t in doc["tickets"]}
    assert tickets["RED"]["reruns"] == 0 and tickets["SIZE"]["reruns"] == 1
    assert "rerun 1 queued" in proc.stderr
    # The rerun started from RED's integrated work, so its change is made on top of it.
    assert git(repo, "show", f"{doc['target']}:config.txt") == "colour = grey\nsize = 2"
    assert git(repo, "show", f"{doc['target']}:red.txt") == "red"
    first_try = f"refs/runner/{doc['run_id']}/attempts/SIZE/1"
    assert git(repo, "show", f"{first_try}:config.txt") == "colour = grey\nsize = 2"
    assert git(repo, "show", f"{first_try}~1:config.txt") == "colour = grey"   # from base


def test_overlapping_paths_never_run_together_and_the_plan_matches(tmp_path: Path,
                                                                   worker_image: str) -> None:
    repo = make_repo(tmp_path / "repo")
    folders = {"A": "src", "B": "src/b", "C": "docs"}
    phase = write_phase(tmp_path / "p.yaml", {"name": "overlap", "concurrency": 3, "tickets": [
        {"id": t, "agent": "script", "paths": [f"{folder}/**"], "run": TIMED.format(dir=folder)}
        for t, folder in folders.items()]})
    plan = runner_cli("run", str(phase), "--repo", str(repo), "--dry-run")
    assert plan.returncode == 0, plan.stderr
    assert "wave 1: A, C" in plan.stdout and "wave 2: B" in plan.stdout
    assert "B waits for A (overlap)" in plan.stdout
    assert git(repo, "for-each-ref", "refs/runner/") == ""          # nothing started
    proc, doc = run_json("run", str(phase), "--repo", str(repo))
    assert proc.returncode == 0, proc.stderr
    target = doc["target"]
    a, b, c = (_span(repo, target, folder) for folder in folders.values())
    assert b[0] > a[1], "B ran while A, whose paths overlap, was running"
    assert c[0] < a[1] and a[0] < c[1], "C, disjoint, should have run alongside A"


SEED = {
    "R08": "sed -i 's/^public static String oldApi/@Deprecated\\npublic static String oldApi/' "
           "Legacy.java",
    "R09": "sed -i 's/notifications = global/notifications = lifecycle/' Scopes.java\n"
           "echo '- R09: NotificationReceiver uses the lifecycle scope' >> MIGRATION.md",
    "R10": "sed -i 's/downloads = global/downloads = lifecycle/' Scopes.java\n"
           "echo '- R10: download managers use the lifecycle scope' >> MIGRATION.md",
    "R11": "sed -i 's/intents = global/intents = lifecycle/' Scopes.java\n"
           "echo '- R11: external intents use the lifecycle scope' >> MIGRATION.md",
    "R12": "test $(grep -c '^- R' MIGRATION.md) -eq 3\n"
           "{ echo '# Scope policy'; cat MIGRATION.md; } > SCOPE-POLICY.md",
}


def test_seed_replay_needs_no_manual_step(tmp_path: Path, worker_image: str) -> None:
    """The seed's phase 2: R09-R11 all edit Scopes.java and MIGRATION.md at once."""
    repo = make_repo(tmp_path / "repo", {
        "Legacy.java": "public static String oldApi() { return null; }\n",
        "Scopes.java": "notifications = global\n\ndownloads = global\n\nintents = global\n",
        "MIGRATION.md": "# Migration\n"})
    tickets = [{"id": t, "agent": "script", "run": run,
                **({"depends_on": ["R09", "R10", "R11"]} if t == "R12" else {})}
               for t, run in SEED.items()]
    phase = write_phase(tmp_path / "p.yaml", {"name": "phase-2", "concurrency": 3,
                                              "max_reruns": 2, "tickets": tickets})
    proc, doc = run_json("run", str(phase), "--repo", str(repo))
    assert proc.returncode == 0, proc.stderr
    assert [t["status"] for t in doc["tickets"]] == ["integrated"] * 5
    assert sum(t["reruns"] for t in doc["tickets"]) >= 1   # the conflicts were settled
    scopes = git(repo, "show", f"{doc['target']}:Scopes.java")
    assert "global" not in scopes and scopes.count("lifecycle") == 3
    policy = git(repo, "show", f"{doc['target']}:SCOPE-POLICY.md")
    assert all(f"- {t}:" in policy for t in ("R09", "R10", "R11"))
    for ticket in SEED:
        assert git(repo, "rev-parse", "--verify", f"refs/runner/{doc['run_id']}/{ticket}")


@pytest.mark.parametrize("dirty", [False, True])
def test_land_fast_forwards_base(tmp_path: Path, worker_image: str, dirty: bool) -> None:
    repo = make_repo(tmp_path / "repo", {"a.txt": "a\n"})
    if dirty:
        (repo / "a.txt").write_text("local edit\n")
    phase = write_phase(tmp_path / "p.yaml", {"name": "land", "base": "main", "tickets": [
        {"id": "B", "agent": "script", "run": "echo b > b.txt"}]})
    proc, doc = run_json("run", str(phase), "--repo", str(repo), "--land",
                         "--no-preflight")
    assert proc.returncode == (1 if dirty else 0), proc.stderr   # asked to land: it did not
    if dirty:
        assert doc["landed"].startswith("not landed: main is checked out")
        assert git(repo, "rev-list", "--count", "main") == "1"
        assert (repo / "a.txt").read_text() == "local edit\n"
    else:
        assert doc["landed"].startswith("landed: main fast-forwarded to runner/land")
        assert git(repo, "rev-parse", "main") == doc["target_sha"]
        assert (repo / "b.txt").read_text() == "b\n"


def test_a_dry_run_says_when_the_concurrency_asked_for_does_not_fit_the_engine(
        tmp_path: Path, engine) -> None:
    """The engine's own count of CPUs (Docker's info), against workers of cpus: 1."""
    cpus = engine.info()["NCPU"]
    repo = make_repo(tmp_path / "repo")
    tickets = [{"id": f"T{i}", "agent": "script", "run": "true"} for i in range(cpus + 1)]
    phase = write_phase(tmp_path / "p.yaml", {"name": "crowd", "concurrency": cpus + 1,
                                              "resources": {"cpus": 1, "memory": "64m"},
                                              "tickets": tickets})
    plan = runner_cli("run", str(phase), "--repo", str(repo), "--dry-run")
    assert plan.returncode == 0, plan.stderr
    assert (f"warning: concurrency {cpus + 1} asks for more than the engine holds" in
            plan.stdout) and f"{cpus} fit at once (concurrency: {cpus})" in plan.stdout
    fits = runner_cli("run", str(phase), "--repo", str(repo), "--dry-run",
                      "--concurrency", str(cpus))
    assert "asks for more" not in fits.stdout
