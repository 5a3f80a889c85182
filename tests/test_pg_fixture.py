"""The throwaway PostgreSQL server (tests/pg.py) does what the database tests rely on."""

from __future__ import annotations

import socket
from pathlib import Path
from urllib.parse import quote, unquote, urlsplit, urlunsplit

import psycopg
import pytest

from tests.pg import AWKWARD, PostgresServer


def with_password(url: str, password: str) -> str:
    parts = urlsplit(url)
    netloc = f"{parts.username}:{quote(password, safe='')}@{parts.hostname}:{parts.port}"
    return urlunsplit(parts._replace(netloc=netloc))


def test_url_logs_in_as_autorepay_and_can_create_a_table(
        postgres: PostgresServer, postgres_url: str) -> None:
    parts = urlsplit(postgres_url)
    assert (parts.scheme, parts.username, parts.hostname, parts.port) == (
        "postgresql", "autorepay", "127.0.0.1", postgres.port)
    with psycopg.connect(postgres_url) as conn:
        user, db, owner = conn.execute(
            "SELECT current_user, current_database(), pg_get_userbyid(datdba)"
            " FROM pg_database WHERE datname = current_database()").fetchone() or ()
        assert (user, owner) == ("autorepay", "autorepay")
        assert db == unquote(parts.path.lstrip("/"))
        conn.execute("CREATE TABLE t (id serial PRIMARY KEY, note text NOT NULL)")
        conn.execute("INSERT INTO t (note) VALUES (%s), (%s)", ("a", "ä ✓"))
        assert conn.execute("SELECT note FROM t ORDER BY id").fetchall() == [
            ("a",), ("ä ✓",)]
        # Brand new: nothing but the table just made.
        tables = conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        assert tables.fetchall() == [("t",)]


def test_password_must_be_percent_encoded_in_the_url(
        postgres: PostgresServer, postgres_url: str) -> None:
    assert set(AWKWARD) <= set(postgres.password)
    parts = urlsplit(postgres_url)
    assert parts.password is not None and unquote(parts.password) == postgres.password
    assert not set("@/:#?") & set(parts.password)  # all of them encoded


def test_the_password_is_really_required(postgres: PostgresServer, postgres_url: str) -> None:
    for wrong in ("wrong", postgres.password[:-1], ""):
        with pytest.raises(psycopg.OperationalError,
                           match=r"password authentication failed|no password supplied"):
            psycopg.connect(with_password(postgres_url, wrong), passfile="/nonexistent",
                            connect_timeout=5).close()
    # The superuser needs its own password as well.
    admin = urlsplit(postgres.admin_url)
    assert admin.username == "postgres"
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(with_password(postgres.admin_url, postgres.password),
                        passfile="/nonexistent", connect_timeout=5).close()
    with psycopg.connect(postgres_url) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)


def test_each_new_database_is_separate(postgres: PostgresServer) -> None:
    first, second = postgres.new_database(), postgres.new_database()
    try:
        assert first != second
        with psycopg.connect(first) as conn:
            conn.execute("CREATE TABLE only_here (x int)")
        with psycopg.connect(second) as conn:
            assert conn.execute("SELECT to_regclass('only_here')").fetchone() == (None,)
            conn.execute("CREATE TABLE only_here (x int)")  # no clash either
    finally:
        postgres.drop_database(first)
        postgres.drop_database(second)
    with pytest.raises(psycopg.OperationalError, match="does not exist"):
        psycopg.connect(first, connect_timeout=5).close()


def test_new_database_by_name_and_url(postgres: PostgresServer) -> None:
    url = postgres.new_database("named by the test")
    try:
        assert url == postgres.url("named by the test")
        assert url.endswith("/named%20by%20the%20test")
        with psycopg.connect(url) as conn:
            assert conn.execute("SELECT current_database()").fetchone() == (
                "named by the test",)
    finally:
        postgres.drop_database("named by the test")


def test_stop_and_start_again_keeps_the_data(postgres: PostgresServer,
                                             postgres_url: str) -> None:
    with psycopg.connect(postgres_url) as conn:
        conn.execute("CREATE TABLE kept (x int)")
        conn.execute("INSERT INTO kept VALUES (42)")
    port = postgres.port
    postgres.stop_server()
    try:
        assert not postgres.running
        with pytest.raises(psycopg.OperationalError):
            psycopg.connect(postgres_url, connect_timeout=5).close()
    finally:
        postgres.start_server()
    assert postgres.running and postgres.port == port
    with psycopg.connect(postgres_url) as conn:
        assert conn.execute("SELECT x FROM kept").fetchall() == [(42,)]


def test_kill_connections_ends_open_sessions(postgres: PostgresServer,
                                             postgres_url: str) -> None:
    with psycopg.connect(postgres_url) as victim, psycopg.connect(postgres_url) as other:
        assert postgres.kill_connections(postgres_url) == 2
        for conn in (victim, other):
            with pytest.raises(psycopg.OperationalError):
                conn.execute("SELECT 1")
    with psycopg.connect(postgres_url) as conn:  # new connections are still welcome
        assert conn.execute("SELECT 1").fetchone() == (1,)


def test_a_private_server_leaves_nothing_behind() -> None:
    server = PostgresServer()
    server.start()
    try:
        base = server.log_path.parent
        port = server.port
        assert base.is_dir()
        with psycopg.connect(server.new_database()) as conn:
            assert conn.execute("SHOW fsync").fetchone() == ("off",)
            assert conn.execute("SHOW listen_addresses").fetchone() == ("127.0.0.1",)
    finally:
        server.stop()
    server.stop()  # a second stop is harmless
    assert not Path(base).exists()
    with socket.socket() as s:  # nothing listens on the port any more
        assert s.connect_ex(("127.0.0.1", port)) != 0
