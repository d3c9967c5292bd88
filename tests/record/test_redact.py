"""Which values are secrets, and scrubbing them: `tether.record.redact`."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tether.errors import UsageError
from tether.record.redact import (
    MIN_SECRET_LENGTH,
    Secrets,
    discover,
    is_sensitive_name,
    read_values_file,
)
from tether.urls import mask_urls, url_secrets


@pytest.mark.parametrize(
    "name",
    [
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "GITHUB_TOKEN",
        "db_password",
        "MYSQL_PASSWD",
        "MYSQL_PWD",
        "PGPASSWORD",
        "SSHPASS",
        "GOOGLE_APPLICATION_CREDENTIALS",
        "HTTP_AUTH",
        "SSH_PRIVATE",
        "OPENAI_API_KEY",
        "GH_PAT",
        "SENTRY_DSN",
        "SMTP_PASS",
    ],
)
def test_sensitive_names(name: str) -> None:
    assert is_sensitive_name(name)


@pytest.mark.parametrize(
    "name", ["PATH", "PWD", "OLDPWD", "OMP_NUM_THREADS", "CUDA_VISIBLE_DEVICES", "LANG",
             "GIT_AUTHOR_NAME", "GIT_AUTHOR_EMAIL", "PASSAGE"],
)
def test_ordinary_names(name: str) -> None:
    assert not is_sensitive_name(name)


def test_values_of_secret_names_and_known_names() -> None:
    secrets = discover({
        "MY_API_TOKEN": "tok-123456789",
        "MYSQL_PWD": "mysql-pw-42",
        "PGPASSWORD": "pg-pw-4242",
        "AWS_SESSION_TOKEN": "FwoGZXIvYXdzEJr",
        "EDITOR": "vim-editor",
        "GIT_AUTHOR_NAME": "Tess Tether",
    })
    assert secrets.names == {
        "FwoGZXIvYXdzEJr": "AWS_SESSION_TOKEN",
        "tok-123456789": "MY_API_TOKEN",
        "mysql-pw-42": "MYSQL_PWD",
        "pg-pw-4242": "PGPASSWORD",
    }
    text = "tok-123456789 mysql-pw-42 pg-pw-4242 FwoGZXIvYXdzEJr vim-editor Tess Tether"
    assert secrets.scrub(text) == (
        "[redacted:MY_API_TOKEN] [redacted:MYSQL_PWD] [redacted:PGPASSWORD] "
        "[redacted:AWS_SESSION_TOKEN] vim-editor Tess Tether"
    )


@pytest.mark.parametrize(
    ("name", "url", "password"),
    [
        ("DATABASE_URL", "postgres://bob:db-pass-1@db.example:5432/app", "db-pass-1"),
        ("REDIS_URL", "redis://:redis-pw-77@cache:6379/0", "redis-pw-77"),
        ("ANALYTICS_DSN", "mysql://u:dsn-pass-9@h/db", "dsn-pass-9"),
        ("CELERY_BROKER", "amqp://u:p%40ss-word@h1;amqp://u:second-pw@h2", "p@ss-word"),
        ("UPSTREAM", "https://u:unenc@ded-pw@host/x", "unenc@ded-pw"),
    ],
)
def test_url_passwords_are_secrets(name: str, url: str, password: str) -> None:
    secrets = discover({name: url})
    assert secrets.names.get(password) == name
    assert password not in secrets.scrub(f"connecting to {url} as {password}")


def test_url_query_secrets_and_plain_urls() -> None:
    secrets = discover({
        "BLOB_URL": "https://acct.blob.example/c?sv=2020&sig=blob-signature-xyz",
        "INDEX_URL": "https://pypi.example/simple",
    })
    assert secrets.names == {"blob-signature-xyz": "BLOB_URL"}


def test_short_values_are_ignored() -> None:
    short = "x" * (MIN_SECRET_LENGTH - 1)
    secrets = discover({"API_KEY": short, "TOKENIZERS_PARALLELISM": "false",
                        "SSH_AUTH_SOCK": "/tmp/ssh-agent.sock", "CREDENTIALS_FILE": "/a/b.json"})
    assert not secrets
    assert secrets.scrub(f"{short} false") == f"{short} false"


def test_longest_overlapping_secret_wins() -> None:
    secrets = Secrets({"abcdef": "A_TOKEN", "abcdefghij": "B_TOKEN", "zz.*zz": "C_SECRET"})
    assert secrets.scrub("abcdefghij abcdef zz.*zz zzXzz") == (
        "[redacted:B_TOKEN] [redacted:A_TOKEN] [redacted:C_SECRET] zzXzz"
    )


def test_scrub_without_secret_returns_the_same_object() -> None:
    text = "nothing to see\n" * 1000
    data = text.encode()
    secrets = Secrets({"AKIAFAKESECRET123456": "AWS_SECRET_ACCESS_KEY"})
    assert secrets.scrub(text) is text
    assert secrets.scrub_bytes(data) is data


def test_scrub_bytes_and_json() -> None:
    secrets = Secrets({"sekrit-välue": "MY_TOKEN"})
    data = "a=sekrit-välue\n".encode() + b"\xff\xfe"
    assert secrets.scrub_bytes(data) == b"a=[redacted:MY_TOKEN]\n\xff\xfe"
    assert secrets.names_in(data) == ["MY_TOKEN"]
    value = {"argv": ["--token", "sekrit-välue"], "n": 3, "sekrit-välue": ("x", None)}
    assert secrets.scrub_json(value) == {
        "argv": ["--token", "[redacted:MY_TOKEN]"], "n": 3, "[redacted:MY_TOKEN]": ["x", None]
    }


def test_large_text() -> None:
    secrets = discover({"AWS_SECRET_ACCESS_KEY": "AKIAFAKESECRET123456",
                        "GITHUB_TOKEN": "ghp_abcdefghijkl"})
    text = "epoch 3 loss 0.25\n" * 200_000 + "leak AKIAFAKESECRET123456 ghp_abcdefghijkl\n"
    assert secrets.scrub(text).endswith(
        "leak [redacted:AWS_SECRET_ACCESS_KEY] [redacted:GITHUB_TOKEN]\n"
    )


def test_configured_names_and_values_from(tmp_path: Path) -> None:
    root = tmp_path
    (root / ".tether").mkdir()
    (root / ".tether" / "config.yaml").write_text(
        "redact:\n  names: [ACME_*, WANDB_ENTITY]\n  values_from: [.env, ~/more-secrets]\n"
    )
    (root / ".env").write_text(
        "# local secrets\nexport SERVICE_LOGIN='login-value-1'\nDB=\"postgres://u:env-db-pw@h/x\"\n"
    )
    home = Path.home()
    (home / "more-secrets").write_text("a-bare-secret-line\n")
    env = {"ACME_ACCOUNT": "acme-account-7", "WANDB_ENTITY": "my-entity", "OTHER": "plain-value"}
    secrets = discover(env, root=root)
    assert secrets.names == {
        "acme-account-7": "ACME_ACCOUNT",
        "my-entity": "WANDB_ENTITY",
        "login-value-1": "SERVICE_LOGIN",
        "postgres://u:env-db-pw@h/x": "DB",
        "env-db-pw": "DB",
        "a-bare-secret-line": "more-secrets",
    }


def test_missing_values_file_gives_nothing(tmp_path: Path) -> None:
    assert read_values_file(tmp_path / "absent.env") == {}


def test_malformed_redact_config_is_a_usage_error(tmp_path: Path) -> None:
    (tmp_path / ".tether").mkdir()
    (tmp_path / ".tether" / "config.yaml").write_text("redact:\n  name: [X]\n")
    with pytest.raises(UsageError, match="redact"):
        discover({}, root=tmp_path)
    (tmp_path / ".tether" / "config.yaml").write_text("redact:\n  names: 3\n")
    with pytest.raises(UsageError, match=r"redact\.names"):
        discover({}, root=tmp_path)


@pytest.mark.parametrize(
    ("url", "masked"),
    [
        ("https://bob:pw@host/repo.git", "https://bob:***@host/repo.git"),
        ("s3://b/x?secret=abc&region=eu", "s3://b/x?secret=***&region=eu"),
        ("https://h/f?X-Amz-Signature=abcd&X-Amz-Credential=AKIA%2F&X-Amz-Date=1",
         "https://h/f?X-Amz-Signature=***&X-Amz-Credential=***&X-Amz-Date=1"),
        ("https://acct.blob/c?sv=1&sig=zz", "https://acct.blob/c?sv=1&sig=***"),
        ("sftp://user@host/path", "sftp://user@host/path"),
        ("error: could not push to https://u:p@h/x and https://v:q@h/y",
         "error: could not push to https://u:***@h/x and https://v:***@h/y"),
    ],
)
def test_mask_urls(url: str, masked: str) -> None:
    assert mask_urls(url) == masked


def test_url_secrets() -> None:
    assert url_secrets("https://bob:pw@host/x") == ["a password"]
    assert url_secrets("s3://b/x?secret=abc") == ["query parameter 'secret'"]
    assert url_secrets("s3://bucket/prefix") == []
    assert url_secrets("sftp://user@host/path") == []


@given(st.lists(st.sampled_from(["abcdefgh", "xyz-secret-1", "plain ", "\n", "abcdefg", "é"]),
                max_size=40),
       st.integers(min_value=1, max_value=16))
@settings(max_examples=200, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_scrub_file_streams_and_matches_the_whole_file_scrub(
    tmp_path: Path, parts: list[str], chunk: int
) -> None:
    """A log is scrubbed a chunk at a time; secrets across chunk boundaries still go."""
    secrets = Secrets({"abcdefgh": "A_TOKEN", "xyz-secret-1": "B_TOKEN"})
    data = "".join(parts).encode()
    path = tmp_path / "stage.log"
    path.write_bytes(data)
    secrets.scrub_file(path, chunk=chunk)
    assert path.read_bytes() == secrets.scrub_bytes(data)
