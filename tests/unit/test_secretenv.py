"""The self-test's judgement of a worker's environment, from names and value digests."""

from __future__ import annotations

import pytest

from runner.isolation.secretenv import GivenEnv, digest, looks_secret, refused_env


@pytest.mark.parametrize("name", [
    "ANTHROPIC_API_KEY", "DEPLOY_TOKEN", "AWS_SECRET_ACCESS_KEY", "AWS_ACCESS_KEY_ID",
    "PGPASSWORD", "DB_PASSWD", "GOOGLE_APPLICATION_CREDENTIALS", "OPENAI_APIKEY",
    "GPG_KEY_SECRET", "NODE_AUTH_TOKEN", "BASIC_AUTH", "SIGNING_KEYS", "gh_token",
    "GPG_PASSPHRASE", "MY_PRIVATE_KEY",
])
def test_secret_names(name: str) -> None:
    assert looks_secret(name)


@pytest.mark.parametrize("name", [
    "LANG", "PYTHONDONTWRITEBYTECODE", "JAVA_HOME", "PATH", "GIT_AUTHOR_NAME", "KEYBOARD",
    "TOKENIZERS_PARALLELISM", "MONKEY_BUSINESS", "GPG_KEY", "PGP_KEY_ID", "GIT_CONFIG_KEY_0",
    "DEBIAN_FRONTEND", "GRADLE_USER_HOME", "RUNNER_TICKET", "AUTHOR",
])
def test_ordinary_names(name: str) -> None:
    assert not looks_secret(name)


def test_digest_is_sha256sum_of_the_bytes() -> None:
    # printf '%s' 1 | sha256sum
    assert digest("1") == "6b86b273ff34fce19d6b804eff5a3f5747ada4eaa22f1d49c01e52ddb7875b4b"


IMAGE = GivenEnv(spec={"RUNNER_TICKET": "T1", "HOME": "/tmp"}, image="img:1",
                 image_env={"LANG": "C.UTF-8", "PYTHONDONTWRITEBYTECODE": "1",
                            "API_TOKEN": "baked-in-token"})


def _seen(**env: str) -> dict[str, str]:
    return {name: digest(value) for name, value in env.items()}


def test_ordinary_settings_the_host_shares_pass() -> None:
    host = {"LANG": "C.UTF-8", "PYTHONDONTWRITEBYTECODE": "1", "HOME": "/tmp",
            "PATH": "/usr/bin:/bin", "FLAG_AUTH": "1"}     # a short value is no secret
    seen = _seen(LANG="C.UTF-8", PYTHONDONTWRITEBYTECODE="1", RUNNER_TICKET="T1", HOME="/tmp",
                 PATH="/usr/bin:/bin", SHLVL="1", HOSTNAME="abc")
    assert refused_env(seen, IMAGE, host) == []


def test_each_refusal_names_where_the_variable_came_from() -> None:
    host = {"ANTHROPIC_API_KEY": "sk-ant-host-key", "DATABASE_URL": "postgres://u:p@db/x"}
    seen = _seen(API_TOKEN="baked-in-token", RUNNER_TICKET="sk-ant-host-key",
                 DATABASE_URL="postgres://u:p@db/x", LANG="C.UTF-8")
    assert refused_env(seen, IMAGE, host) == [
        "API_TOKEN (from the image img:1) looks like a secret",
        "DATABASE_URL (from neither the worker spec nor the image) has the host's value",
        "RUNNER_TICKET (from the worker spec) has the value of the host's ANTHROPIC_API_KEY",
    ]


def test_a_variable_the_image_sets_to_another_value_is_not_the_images() -> None:
    host = {"LANG": "en_GB.UTF-8"}
    assert refused_env(_seen(LANG="en_GB.UTF-8"), IMAGE, host) == [
        "LANG (from neither the worker spec nor the image) has the host's value"]
    # Neither the host's value nor a secret: something else set it (a backend's own), fine.
    assert refused_env(_seen(LANG="fr_FR.UTF-8", KUBERNETES_PORT="443"), IMAGE, host) == []
