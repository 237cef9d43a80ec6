"""tortoise-orm models of the cloud schema (created by :mod:`cloud.db.migrations`, not by tortoise).

The ORM serves the administrative paths: hub registry, patient index, audit queries,
users. The ingest hot path writes the same tables with plain SQL (:mod:`cloud.intake.sync_store`).
Tables whose primary key is composite (stations, devices, sync_state, sessions, readings,
reading_bindings, user_roles) name one key column as tortoise's ``pk``: query them with
``filter()``, never ``get(pk=...)``. ``tests/cloud/db`` checks every field against the
migrated schema on both dialects.
"""

from __future__ import annotations

from tortoise import fields
from tortoise.models import Model


class Site(Model):
    """A clinic or hospital."""

    site_id = fields.CharField(max_length=64, primary_key=True)
    name = fields.TextField(default="")
    created_ms = fields.BigIntField()

    class Meta:
        table = "sites"


class Hub(Model):
    """An enrolled hub; ``status`` is ``active`` or ``revoked``. Presence fields come from MQTT."""

    hub_id = fields.CharField(max_length=64, primary_key=True)
    site_id = fields.CharField(max_length=64)
    name = fields.TextField(default="")
    status = fields.CharField(max_length=16, default="active")
    created_ms = fields.BigIntField()
    revoked_ms = fields.BigIntField(null=True)
    revoked_reason = fields.TextField(null=True)
    online = fields.BooleanField(default=False)
    last_seen_ms = fields.BigIntField(null=True)
    queue_depth = fields.IntField(null=True)
    version = fields.TextField(default="")
    telemetry = fields.TextField(null=True)

    class Meta:
        table = "hubs"


class HubKey(Model):
    """An Ed25519 public key of a hub, valid from/to (overlapping windows during rotation)."""

    id = fields.BigIntField(primary_key=True)
    hub_id = fields.CharField(max_length=64)
    key_id = fields.CharField(max_length=16)  #: hex of protocol.keys.key_id
    public_key = fields.BinaryField()
    valid_from_ms = fields.BigIntField()
    valid_to_ms = fields.BigIntField(null=True)
    revoked_ms = fields.BigIntField(null=True)
    created_ms = fields.BigIntField()

    class Meta:
        table = "hub_keys"


class Station(Model):
    """A measurement station of a hub (first seen in a batch). Composite key (hub_id, station_id)."""

    hub_id = fields.CharField(max_length=64, primary_key=True)
    station_id = fields.CharField(max_length=128)
    name = fields.TextField(default="")
    first_seen_ms = fields.BigIntField()

    class Meta:
        table = "stations"


class Device(Model):
    """A device of a hub (first seen in a batch). Composite key (hub_id, device_id)."""

    hub_id = fields.CharField(max_length=64, primary_key=True)
    device_id = fields.CharField(max_length=128)
    station_id = fields.CharField(max_length=128)
    first_seen_ms = fields.BigIntField()

    class Meta:
        table = "devices"


class SyncState(Model):
    """High-water mark of one record stream. Composite key (hub_id, epoch); epoch stored signed."""

    hub_id = fields.CharField(max_length=64, primary_key=True)
    epoch = fields.BigIntField()
    acked_through = fields.BigIntField(default=0)
    batches = fields.BigIntField(default=0)
    records = fields.BigIntField(default=0)
    duplicates = fields.BigIntField(default=0)
    last_batch_ms = fields.BigIntField(null=True)

    class Meta:
        table = "sync_state"


class Subject(Model):
    """A person. National ID and name are AES-256-GCM sealed; ``blind_index`` matches IDs."""

    id = fields.BigIntField(primary_key=True)
    blind_index = fields.CharField(max_length=64, null=True, unique=True)
    national_id_enc = fields.BinaryField(null=True)
    name_enc = fields.BinaryField(null=True)
    sex = fields.CharField(max_length=1, default="0")
    birth_date = fields.CharField(max_length=10, null=True)
    mrn = fields.TextField(null=True)
    merged_into = fields.BigIntField(null=True)
    created_ms = fields.BigIntField()
    updated_ms = fields.BigIntField()

    class Meta:
        table = "subjects"


class SubjectMerge(Model):
    """One merge of ``merged_id`` into ``survivor_id``; ``undone_ms`` set when reversed."""

    id = fields.BigIntField(primary_key=True)
    survivor_id = fields.BigIntField()
    merged_id = fields.BigIntField()
    actor = fields.TextField()
    reason = fields.TextField()
    merged_ms = fields.BigIntField()
    undone_ms = fields.BigIntField(null=True)
    undone_by = fields.TextField(null=True)

    class Meta:
        table = "subject_merges"


class Session(Model):
    """A station session (a visit). Composite key (hub_id, session_id)."""

    hub_id = fields.CharField(max_length=64, primary_key=True)
    session_id = fields.CharField(max_length=128)
    epoch = fields.BigIntField()
    seq = fields.BigIntField()
    station_id = fields.CharField(max_length=128)
    subject_id = fields.BigIntField(null=True)
    source = fields.CharField(max_length=16, default="idcard")
    pregnant_weeks = fields.IntField(null=True)
    opened_ms = fields.BigIntField()
    closed_ms = fields.BigIntField(null=True)
    close_reason = fields.CharField(max_length=16, null=True)

    class Meta:
        table = "sessions"


class Reading(Model):
    """One measurement event. Composite key (hub_id, epoch, seq, at_ms); partitioned on PostgreSQL."""

    hub_id = fields.CharField(max_length=64, primary_key=True)
    epoch = fields.BigIntField()
    seq = fields.BigIntField()
    at_ms = fields.BigIntField()
    uid = fields.UUIDField()
    device_id = fields.CharField(max_length=128)
    station_id = fields.CharField(max_length=128)
    kind = fields.CharField(max_length=32)
    session_id = fields.CharField(max_length=128, null=True)
    observations = fields.TextField()  #: JSON list of observations
    device_time = fields.TextField(null=True)
    status = fields.TextField()  #: JSON list of status strings
    raw_frame = fields.BinaryField(source_field="raw")  #: the device frame (column ``raw``)
    received_ms = fields.BigIntField()

    class Meta:
        table = "readings"


class ReadingBinding(Model):
    """Staff bound an unbound reading to a session on the hub. Composite key (hub_id, epoch, seq)."""

    hub_id = fields.CharField(max_length=64, primary_key=True)
    epoch = fields.BigIntField()
    seq = fields.BigIntField()
    reading_uid = fields.UUIDField()
    session_id = fields.CharField(max_length=128)
    bound_by = fields.TextField()
    at_ms = fields.BigIntField()

    class Meta:
        table = "reading_bindings"


class Result(Model):
    """A result from HIS/LIS (HL7) or PACS (DICOM); ``source_key`` makes intake idempotent."""

    id = fields.BigIntField(primary_key=True)
    subject_id = fields.BigIntField(null=True)
    source = fields.CharField(max_length=32)
    source_key = fields.CharField(max_length=255, unique=True)
    kind = fields.CharField(max_length=32)
    code = fields.CharField(max_length=64)
    value = fields.TextField()
    unit = fields.TextField(default="")
    observed_ms = fields.BigIntField(null=True)
    payload = fields.TextField(default="{}")
    created_ms = fields.BigIntField()

    class Meta:
        table = "results"


class OutboxMessage(Model):
    """Outbound work (see cloud.outbox): pending, done or dead."""

    id = fields.BigIntField(primary_key=True)
    topic = fields.CharField(max_length=64)
    idempotency_key = fields.CharField(max_length=255, unique=True)
    payload = fields.TextField()
    status = fields.CharField(max_length=16, default="pending")
    attempts = fields.IntField(default=0)
    next_attempt_ms = fields.BigIntField()
    last_error = fields.TextField(null=True)
    created_ms = fields.BigIntField()
    updated_ms = fields.BigIntField()

    class Meta:
        table = "outbox"


class AuditEntry(Model):
    """Who did what, when, with which outcome (never patient data in ``detail``)."""

    id = fields.BigIntField(primary_key=True)
    at_ms = fields.BigIntField()
    actor = fields.TextField()
    action = fields.TextField()
    outcome = fields.TextField()
    hub_id = fields.CharField(max_length=64, null=True)
    subject_id = fields.BigIntField(null=True)
    reason = fields.TextField(null=True)
    detail = fields.TextField(default="{}")

    class Meta:
        table = "audit_log"


class Role(Model):
    """A role (admin, integration, clinic_staff, auditor)."""

    name = fields.CharField(max_length=32, primary_key=True)
    description = fields.TextField(default="")

    class Meta:
        table = "roles"


class User(Model):
    """A person who signs in to the admin pages; hashes come from provisioning."""

    id = fields.BigIntField(primary_key=True)
    username = fields.CharField(max_length=64, unique=True)
    display_name = fields.TextField(default="")
    password_hash = fields.TextField(default="")
    totp_secret_enc = fields.BinaryField(null=True)
    active = fields.BooleanField(default=True)
    created_ms = fields.BigIntField()

    class Meta:
        table = "users"


class UserRole(Model):
    """A role granted to a user. Composite key (user_id, role)."""

    user_id = fields.BigIntField(primary_key=True)
    role = fields.CharField(max_length=32)

    class Meta:
        table = "user_roles"
