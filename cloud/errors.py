"""Errors raised by ``cloud``. Every one derives from :class:`CloudError`.

Library errors (asyncpg, sqlite3, aiomqtt, tomllib) are wrapped at the
boundary with ``raise ... from``. Messages are written for a technician and never
contain a national ID number or a name.
"""

from __future__ import annotations


class CloudError(Exception):
    """Root of every error raised by the ``cloud`` package."""


class ConfigError(CloudError):
    """cloud.toml is missing, unreadable or has a bad value; the message names file, key and fix."""


class KeyStoreError(CloudError):
    """The cloud key directory is missing, incomplete or has unsafe permissions."""


class DatabaseError(CloudError):
    """The database is unreachable or a statement failed."""


class DatabaseUnavailable(DatabaseError):
    """The database cannot be reached right now (answered as 503 with Retry-After)."""


class IntegrityError(DatabaseError):
    """A statement broke a rule of the schema; retrying the same statement will not help.

    SQLite and PostgreSQL errors map to the same subclass (:mod:`cloud.db.engine`), so callers
    never look at ``sqlite3`` or ``asyncpg`` types."""


class UniqueViolation(IntegrityError):
    """A row with the same unique key (or primary key) exists."""


class ForeignKeyViolation(IntegrityError):
    """A reference names a row that does not exist (or a referenced row is still in use)."""


class NotNullViolation(IntegrityError):
    """A required column was given no value."""


class CheckViolation(IntegrityError):
    """A CHECK constraint refused the value."""


class RuleViolation(IntegrityError):
    """A trigger (or a missing privilege) refused the statement: append-only audit tables, a chain
    that only moves forward."""


class RegistryError(CloudError):
    """A hub-registry operation was refused (unknown site or hub, duplicate key, bad key)."""


class PatientIndexError(CloudError):
    """A patient-index operation (merge, unmerge, lookup) was refused."""


class OutboxError(CloudError):
    """An outbox operation was refused (unknown message, wrong state)."""


class ImportFileError(CloudError):
    """A hand-carried export file is not in the format of docs/protocol.md §7."""
