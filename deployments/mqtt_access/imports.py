"""Importing many users at once into a deployment's built-in authentication database, from a JSON list or
streamed from CSV: all of them, or none when any row is wrong.

Memory is bounded by the batch, not by the file. Rows are read, validated, compared with the stored users and
written ``BATCH`` at a time inside one transaction, under the deployment's lock; a bad row anywhere rolls the
whole import back. What grows with the file is only the set of usernames already seen (to refuse a user given
twice) and the first ``ERRORS_LISTED`` errors, and ``IMPORT_MAX`` caps both.

Plain passwords cost one PBKDF2 each (milliseconds), so a batch's hashes are computed on a thread per core
(``hashlib`` releases the GIL while it hashes). A dry run hashes nothing new and takes no lock: it only checks
whether a plain password is the one already stored.
"""

from __future__ import annotations

import codecs
import csv
import os
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from itertools import islice
from typing import Any, Protocol, TypeVar

from django.db import connection, transaction
from django.utils import timezone

from controlplane import errors
from controlplane.ids import new_id
from deployments.models import Deployment, MqttUser
from deployments.mqtt_access import hashing
from deployments.mqtt_access.changes import locked_access, record_change
from deployments.mqtt_access.validation import IMPORT_MAX, Invalid, password_clean, username_clean, username_key
from projects.audit import audit_record
from projects.roles import Perm
from projects.tenancy import Principal

_T = TypeVar("_T")

BATCH = 2000
ERRORS_LISTED = 1000
HASH_THREADS = max(1, min(8, os.cpu_count() or 1))

PLAIN_COLUMNS = ("username", "password")
HASHED_COLUMNS = ("username", "password_hash", "salt", "algorithm")
CSV_FORMAT = ("One user a line: username,password or username,password_hash,salt,algorithm (pbkdf2_sha256). "
              "A first line naming the columns is skipped.")


# --- CSV ------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class CsvLine:
    """One user line of an import file: what goes to the import (``user``), or why the line is malformed."""

    line: int
    username: str
    user: dict[str, str] | None
    problem: str = ""

    @property
    def kind(self) -> str:
        """"password", or the hash algorithm of a pre-hashed line ("" when malformed)."""
        if self.user is None:
            return ""
        return "password" if "password" in self.user else self.user["algorithm"]


def csv_lines(lines: Iterable[str]) -> Iterator[CsvLine]:
    """The users of CSV text given line by line (as read, never all at once). Blank lines and a first line of
    column names are skipped; a line with another number of columns, or that is not CSV, is reported on it."""
    reader = csv.reader(lines)
    first = True
    while True:
        try:
            cells = next(reader)
        except StopIteration:
            return
        except UnicodeDecodeError:
            yield CsvLine(reader.line_num + 1, "", None, "The file must be UTF-8 text; nothing after this line "
                                                        "was read.")
            return
        except csv.Error as exc:
            yield CsvLine(reader.line_num, "", None, f"Not valid CSV: {exc}.")
            continue
        if not cells or all(not cell.strip() for cell in cells):
            continue
        if first and cells[0].strip().lower() == "username":
            first = False
            continue
        first = False
        if len(cells) == len(PLAIN_COLUMNS):
            yield CsvLine(reader.line_num, cells[0], dict(zip(PLAIN_COLUMNS, cells, strict=True)))
        elif len(cells) == len(HASHED_COLUMNS):
            yield CsvLine(reader.line_num, cells[0], dict(zip(HASHED_COLUMNS, cells, strict=True)))
        else:
            yield CsvLine(reader.line_num, cells[0], None,
                          f"Expected 2 columns (username,password) or 4 (username,password_hash,salt,algorithm); "
                          f"found {len(cells)}.")


class ByteStream(Protocol):
    def read(self, size: int = -1, /) -> bytes: ...


def csv_lines_from_bytes(stream: ByteStream) -> Iterator[CsvLine]:
    """``csv_lines`` of a UTF-8 byte stream (a request body, an upload), decoded as it is read."""
    # A StreamReader only ever calls read(); typeshed also asks for seek() and close(), which a request lacks.
    return csv_lines(codecs.getreader("utf-8-sig")(stream))  # type: ignore[arg-type]


# --- rows -----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Row:
    index: int
    username: str
    key: str
    is_superuser: bool
    password: str | None  # plain rows
    stored: hashing.PasswordHash | None  # pre-hashed rows


def _row(index: int, raw: object) -> _Row:
    if isinstance(raw, CsvLine):
        if raw.user is None:
            raise Invalid(raw.problem)
        raw = raw.user
    if not isinstance(raw, dict):
        raise Invalid("Each user must be an object.")
    username = username_clean(raw.get("username"))
    is_superuser = raw.get("is_superuser", False)
    if not isinstance(is_superuser, bool):
        raise Invalid("is_superuser must be true or false.")
    has_hash = "password_hash" in raw
    if has_hash == ("password" in raw):
        raise Invalid("Give either password, or password_hash with salt and algorithm.")
    if not has_hash:
        return _Row(index, username, username_key(username), is_superuser, password_clean(raw["password"]), None)
    algorithm, password_hash, salt = raw.get("algorithm"), raw.get("password_hash"), raw.get("salt", "")
    if not (isinstance(algorithm, str) and isinstance(password_hash, str) and isinstance(salt, str)):
        raise Invalid("password_hash, salt and algorithm must be strings.")
    problem = hashing.imported_hash_problem(algorithm, password_hash, salt)
    if problem:
        raise Invalid(problem)
    return _Row(index, username, username_key(username), is_superuser, None,
                hashing.imported_hash(algorithm, password_hash, salt))


def _label(raw: object) -> dict[str, Any]:
    """How an error names its row: the username as given, and for a CSV line its line number."""
    if isinstance(raw, CsvLine):
        return {"username": raw.username or None, "line": raw.line}
    username = raw.get("username") if isinstance(raw, dict) else None
    return {"username": username if isinstance(username, str) else None}


@dataclass
class ImportResult:
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    errors: list[dict[str, Any]] = field(default_factory=list)  # the first ERRORS_LISTED
    errors_total: int = 0
    rows: int = 0

    def error(self, index: int, raw: object, message: str) -> None:
        self.errors_total += 1
        if len(self.errors) < ERRORS_LISTED:
            self.errors.append({"index": index, **_label(raw), "message": message})

    def as_dict(self) -> dict[str, Any]:
        return {"created": self.created, "updated": self.updated, "unchanged": self.unchanged,
                "errors": self.errors, "errors_total": self.errors_total}


class _Import:
    """One import's pass over its rows, batch by batch."""

    def __init__(self, deployment: Deployment, dry_run: bool, pool: ThreadPoolExecutor) -> None:
        self.deployment, self.dry_run, self.pool = deployment, dry_run, pool
        self.result = ImportResult()
        self.seen: dict[str, int] = {}  # username key → index of the row that named it first
        self.now = timezone.now()

    @property
    def writing(self) -> bool:
        return not self.dry_run and not self.result.errors_total

    def batch(self, numbered: list[tuple[int, object]]) -> None:
        rows = []
        for index, raw in numbered:
            try:
                row = _row(index, raw)
            except Invalid as exc:
                self.result.error(index, raw, str(exc))
                continue
            first = self.seen.setdefault(row.key, index)
            if first != index:
                self.result.error(index, raw, f"The same user as row {first} (usernames are compared ignoring "
                                              "case and Unicode form).")
                continue
            rows.append(row)
        if rows and (self.dry_run or self.writing):
            self._apply(rows)

    def _apply(self, rows: list[_Row]) -> None:
        existing = {user.username_key: user for user in MqttUser.objects.filter(
            deployment=self.deployment, username_key__in=[row.key for row in rows])}
        candidates = [row for row in rows if self._may_be_unchanged(row, existing)]
        unchanged = {row.index for row, same in zip(
            candidates, self._map(lambda row: self._same_password(row, existing[row.key]), candidates), strict=True)
            if same}
        changed = [row for row in rows if row.index not in unchanged]
        self.result.unchanged += len(rows) - len(changed)
        creates = [row for row in changed if row.key not in existing]
        self.result.created += len(creates)
        self.result.updated += len(changed) - len(creates)
        if not self.writing:
            return
        hashes = dict(zip([row.index for row in changed], self._map(_stored, changed), strict=True))
        _copy_new_users(self.deployment, [(row, hashes[row.index]) for row in creates], self.now)
        updates = []
        for row in changed:
            if row.key in existing:
                user, stored = existing[row.key], hashes[row.index]
                user.username, user.is_superuser, user.updated_at = row.username, row.is_superuser, self.now
                user.algorithm, user.password_hash, user.salt = stored.algorithm, stored.password_hash, stored.salt
                updates.append(user)
        MqttUser.objects.bulk_update(updates, ["username", "is_superuser", "algorithm", "password_hash", "salt",
                                               "updated_at"], batch_size=BATCH)

    def _map(self, work: Callable[[_Row], _T], rows: list[_Row]) -> list[_T]:
        """``work`` on each row, in order: on the pool when some rows have a plain password to hash (handing
        a pre-hashed row to a thread would cost more than the work)."""
        if any(row.password is not None for row in rows):
            return list(self.pool.map(work, rows))
        return [work(row) for row in rows]

    @staticmethod
    def _may_be_unchanged(row: _Row, existing: dict[str, MqttUser]) -> bool:
        current = existing.get(row.key)
        return current is not None and (current.username, current.is_superuser) == (row.username, row.is_superuser)

    @staticmethod
    def _same_password(row: _Row, current: MqttUser) -> bool:
        """Whether ``row`` would store what ``current`` holds: one PBKDF2 for a plain password."""
        stored = hashing.PasswordHash(current.algorithm, current.password_hash, current.salt)
        if row.stored is not None:
            return row.stored == stored
        return hashing.verify_password(stored, row.password or "")


def _stored(row: _Row) -> hashing.PasswordHash:
    return row.stored or hashing.hash_password(row.password or "")


def _copy_new_users(deployment: Deployment, new: list[tuple[_Row, hashing.PasswordHash]], now: Any) -> None:
    """Inserts new users with one ``COPY`` (the rows ``MqttUser(...)`` would get): a model instance and an
    ``INSERT`` parameter list per row cost ~80 µs, which made a 100,000-user import spend 8 s in
    ``bulk_create`` (COPY goes around Django's cursor wrapper: query counters and logs do not see it)."""
    if not new:
        return
    if connection.vendor != "postgresql":  # the embedded default (SQLite) has no COPY
        MqttUser.objects.bulk_create([
            MqttUser(deployment=deployment, username=row.username, username_key=row.key, algorithm=stored.algorithm,
                     password_hash=stored.password_hash, salt=stored.salt, is_superuser=row.is_superuser,
                     created_at=now, updated_at=now) for row, stored in new], batch_size=500)
        return
    names = ("id", "deployment", "username", "username_key", "algorithm", "password_hash", "salt", "is_superuser",
             "created_at", "updated_at")
    fields: Any = [MqttUser._meta.get_field(name) for name in names]
    columns = ", ".join(model_field.column for model_field in fields)
    prefix = fields[0].prefix
    with connection.cursor() as cursor, \
            cursor.cursor.copy(f"COPY {MqttUser._meta.db_table} ({columns}) FROM STDIN") as copy:
        for row, stored in new:
            copy.write_row((new_id(prefix), deployment.pk, row.username, row.key, stored.algorithm,
                            stored.password_hash, stored.salt, row.is_superuser, now, now))


def _numbered_batches(users: Iterable[object]) -> Iterator[list[tuple[int, object]]]:
    numbered = enumerate(users)
    while batch := list(islice(numbered, BATCH)):
        if batch[-1][0] >= IMPORT_MAX:
            raise errors.field_invalid("users", f"At most {IMPORT_MAX} users per import; split the file.")
        yield batch


def mqtt_users_import(*, principal: Principal, deployment: Deployment, users: Iterable[object],
                      dry_run: bool = False) -> ImportResult:
    """Creates or updates many users at once: all of them or, when any row is invalid, none (a dry run reports
    the same counts and errors and changes nothing). ``users`` is a list of objects, or ``CsvLine``s read as
    they come (``csv_lines``): the rows are consumed once, a batch at a time."""
    principal.require(Perm.DEPLOYMENTS_WRITE)
    if isinstance(users, str | bytes | dict) or not isinstance(users, Iterable):
        raise errors.field_invalid("users", "Must be a non-empty list of users.")
    with transaction.atomic(), ThreadPoolExecutor(HASH_THREADS, thread_name_prefix="mqtt-import") as pool:
        locked, access = (deployment, None) if dry_run else locked_access(principal, deployment)
        run = _Import(locked, dry_run, pool)
        for batch in _numbered_batches(users):
            run.result.rows += len(batch)
            run.batch(batch)
        result = run.result
        if not result.rows:
            raise errors.field_invalid("users", "Must be a non-empty list of users.")
        if dry_run or access is None:
            return result
        if result.errors_total:
            raise errors.ValidationFailed(
                f"{result.errors_total} of {result.rows} users cannot be imported; nothing was changed.",
                errors={f"users[{e['index']}]": [e["message"]] for e in result.errors[:100]})
        if result.created or result.updated:
            record_change(access)
            audit_record(principal=principal, action="deployment.mqtt_user.import", target=locked,
                         changes={"created": result.created, "updated": result.updated,
                                  "unchanged": result.unchanged})
    return result
