"""Where the bot keeps its state (SPEC §5): a SQLite file (`AUTOREPAY_DB`, the embedded
default for one process) or a PostgreSQL database (`AUTOREPAY_DATABASE_URL`, shared by
any number of replicas).

A `Database` shows itself (str, repr, messages) with the password hidden, and
`redact()` takes the password out of any text a driver may have put it in.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, quote_plus, unquote

import sqlalchemy as sa
from sqlalchemy.exc import DBAPIError

URL_VARIABLE = "AUTOREPAY_DATABASE_URL"
PATH_VARIABLE = "AUTOREPAY_DB"
SQLITE_DRIVER = "sqlite+aiosqlite"
POSTGRES_DRIVER = "postgresql+psycopg"  # psycopg 3, async
POSTGRES_SCHEMES = ("postgresql", "postgres", POSTGRES_DRIVER)
SQLITE_SCHEMES = ("sqlite", SQLITE_DRIVER)
EXPECTED = "postgresql://USER:PASSWORD@HOST:PORT/DATABASE or sqlite:///PATH"
HIDDEN = "***"
CONNINFO_PASSWORD = re.compile(r"password\s*=\s*(?:'((?:[^'\\]|\\.)*)'|(\S+))", re.I)


class BadDatabaseUrl(ValueError):
    """AUTOREPAY_DATABASE_URL can't be used; the message never holds its value."""


@dataclass(frozen=True, repr=False)
class Database:
    url: sa.URL  # never shown as it is: see `shown`
    variable: str  # the variable it came from, for messages

    @classmethod
    def sqlite(cls, path: Path) -> Database:
        return cls(sa.URL.create(SQLITE_DRIVER, database=str(path)), PATH_VARIABLE)

    @classmethod
    def parse(cls, raw: str) -> Database:
        """AUTOREPAY_DATABASE_URL's value, or BadDatabaseUrl saying why (without it)."""
        try:
            url = sa.make_url(raw.strip())
        except Exception:  # sa's messages quote the whole URL, password and all
            raise BadDatabaseUrl(f"{URL_VARIABLE} is not a database URL: expected "
                                 f"{EXPECTED}") from None
        if any(ord(ch) < 32 or ord(ch) == 127 for ch in unquote(raw.strip())):
            # (libpq stops reading at a NUL: what follows, the port included, is lost)
            raise BadDatabaseUrl(f"{URL_VARIABLE} holds a control character (%00, a line "
                                 "break…): remove it")
        scheme = url.drivername.lower()
        if scheme in SQLITE_SCHEMES:
            if not url.database or url.database == ":memory:":
                raise BadDatabaseUrl(f"{URL_VARIABLE} names no SQLite file: write "
                                     "sqlite:///relative/path.db or sqlite:////absolute/path.db")
            if url.query or url.database.startswith("file:"):
                # (?uri=true would let SQLite open another file than the one locked)
                raise BadDatabaseUrl(f"{URL_VARIABLE}: sqlite:/// takes a file path only, "
                                     "with no ?options and no file: URI")
            return cls(url.set(drivername=SQLITE_DRIVER), URL_VARIABLE)
        if scheme not in POSTGRES_SCHEMES:
            raise BadDatabaseUrl(f"{URL_VARIABLE} must start with postgresql:// or "
                                 f"sqlite:/// (got {scheme}://…)")
        if not url.database:
            raise BadDatabaseUrl(f"{URL_VARIABLE} names no database: expected {EXPECTED}")
        if raw.count("@") > 1:  # user:pa@ss@host: part of the password would be the host
            raise BadDatabaseUrl(f"{URL_VARIABLE} has more than one @: write an @ in the "
                                 "password as %40 (percent-encode the password)")
        return cls(url.set(drivername=POSTGRES_DRIVER), URL_VARIABLE)

    @property
    def is_sqlite(self) -> bool:
        return self.url.drivername == SQLITE_DRIVER

    @property
    def path(self) -> Path | None:
        """The SQLite file; None for PostgreSQL."""
        return Path(self.url.database or "") if self.is_sqlite else None

    @property
    def secrets(self) -> list[str]:
        """The password, and any query parameter that is one (`?password=…`)."""
        found = [self.url.password or ""] + [
            value for key, values in self.url.query.items() if secret_parameter(key)
            for value in ([values] if isinstance(values, str) else values)]
        found += [match.group(1) or match.group(2) for value in found[1:]
                  for match in CONNINFO_PASSWORD.finditer(value)]
        return [secret for secret in found if secret]

    @property
    def shown(self) -> str:
        """The value as the operator wrote it, password hidden."""
        if self.path is not None and self.variable == PATH_VARIABLE:
            return str(self.path)
        shown = self.url.set(drivername=self.url.drivername.split("+")[0])
        hidden = {key: HIDDEN for key in shown.query}  # (a value may hold a password)
        rendered = shown.update_query_dict(hidden).render_as_string(hide_password=True)
        return rendered.replace(quote(HIDDEN, safe=""), HIDDEN)

    def __repr__(self) -> str:
        return f"Database({self.shown!r})"

    def __str__(self) -> str:
        """For messages: `AUTOREPAY_DATABASE_URL=postgresql://bot:***@db:5432/autorepay`."""
        return f"{self.variable}={self.shown!r}" if self.variable == PATH_VARIABLE \
            else f"{self.variable}={self.shown}"

    def describe(self, exc: BaseException) -> str:
        """What went wrong, in the driver's own words (SQLAlchemy adds the SQL and a link
        on further lines), on one line and without the password."""
        words = str(exc.orig) if isinstance(exc, DBAPIError) else str(exc)
        # The first line: PostgreSQL's further lines quote the statement (LINE 2: …).
        first = next((line for line in words.splitlines() if line.strip()), "")
        return self.redact(" ".join(first.split()) or type(exc).__name__)

    def redact(self, text: str) -> str:
        """`text` with the password (as written, or URL-encoded) replaced by ***."""
        forms = {form for secret in self.secrets
                 for form in (secret, quote(secret, safe=""), quote_plus(secret))}
        for form in sorted(forms, key=len, reverse=True):
            text = text.replace(form, HIDDEN)
        return text


def secret_parameter(key: str) -> bool:
    """A query parameter that is, or may hold, a password (`password`, `sslpassword`, or
    libpq's `conninfo`/`dsn` strings with `password=` in them)."""
    key = key.lower()
    return "password" in key or key in ("conninfo", "dsn")
