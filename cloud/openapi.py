"""The OpenAPI 3.1 document of the public and admin HTTP API (served at /openapi.json)."""

from __future__ import annotations

from importlib import metadata
from typing import Any

from cloud.fleet import api as fleet_api
from cloud.integration import api as integration_api


def _version() -> str:
    try:
        return metadata.version("mchub")
    except metadata.PackageNotFoundError:
        return "0+unknown"


_REFUSAL = {"description": "refused; JSON {reason, message}",
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Refusal"}}}}
_ACK = {"content": {"application/vnd.mchub.ack": {"schema": {"type": "string", "format": "binary"}}}}
_ADMIN: list[dict[str, list[str]]] = [{"bearer": []}]


def document() -> dict[str, Any]:
    """The OpenAPI document."""
    return {
        "openapi": "3.1.0",
        "info": {"title": "mchub cloud API", "version": _version(),
                 "description": "Sync ingest for hubs (docs/protocol.md) and the admin API for provisioning."},
        "paths": {
            "/api/v1/batches": {"post": {
                "summary": "Upload one sealed batch (docs/protocol.md §2-§5)",
                "requestBody": {"required": True, "content": {"application/vnd.mchub.batch": {
                    "schema": {"type": "string", "format": "binary"}}}},
                "responses": {
                    "200": {"description": "stored (ack status 0) or duplicate (ack status 1)", **_ACK},
                    "400": _REFUSAL, "401": _REFUSAL, "403": _REFUSAL,
                    "409": {"description": "gap: signed ack with status 2; resend from acked_through_seq+1", **_ACK},
                    "413": _REFUSAL, "500": _REFUSAL,
                    "503": {**_REFUSAL, "description": "overloaded or database unavailable; retry after the "
                            "given seconds", "headers": {"Retry-After": {"schema": {"type": "integer"}}}},
                }}},
            "/api/v1/keys": {"get": {"summary": "The cloud's public keys (HPKE recipients, signing key)",
                                     "responses": {"200": {"description": "keys, hex encoded"}}}},
            "/healthz": {"get": {"summary": "Process is alive", "responses": {"200": {"description": "ok"}}}},
            "/readyz": {"get": {"summary": "Database reachable and migrated",
                                "responses": {"200": {"description": "ready"}, "503": {"description": "not ready"}}}},
            "/metrics": {"get": {"summary": "Prometheus metrics", "responses": {"200": {"description": "text"}}}},
            "/admin/v1/sites": {"post": {
                "summary": "Create a site", "security": _ADMIN,
                "requestBody": {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/Site"}}}},
                "responses": {"200": {"description": "created or existed"}, "400": _REFUSAL, "401": _REFUSAL}}},
            "/admin/v1/hubs": {
                "get": {"summary": "List hubs with presence and marks", "security": _ADMIN,
                        "responses": {"200": {"description": "hubs"}}},
                "post": {"summary": "Register hubs (one or many) with their Ed25519 public keys",
                         "security": _ADMIN,
                         "requestBody": {"content": {"application/json": {"schema": {
                             "$ref": "#/components/schemas/HubRegistration"}}}},
                         "responses": {"200": {"description": "registered"}, "400": _REFUSAL, "401": _REFUSAL,
                                       "404": _REFUSAL}}},
            "/admin/v1/hubs/{hub_id}/revoke": {"post": {
                "summary": "Revoke a hub: every key retired, MQTT login removed, revoke command pushed",
                "security": _ADMIN,
                "parameters": [{"name": "hub_id", "in": "path", "required": True, "schema": {"type": "string"}}],
                "responses": {"200": {"description": "revoked"}, "400": _REFUSAL, "401": _REFUSAL,
                              "404": _REFUSAL}}},
            **fleet_api.openapi_paths(),  # docs/admin-api.md
            **integration_api.openapi_paths(_ADMIN, _REFUSAL),
        },
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {
                "Refusal": {"type": "object", "required": ["reason", "message"], "properties": {
                    "reason": {"type": "string", "enum": [
                        "malformed", "unsupported_version", "unknown_suite", "bad_body", "tampered_ciphertext",
                        "invalid_record", "bad_signature", "unknown_key", "wrong_recipient", "revoked",
                        "unknown_hub", "too_large", "overloaded", "unavailable", "internal"]},
                    "message": {"type": "string"}}},
                "Site": {"type": "object", "required": ["site_id"], "properties": {
                    "site_id": {"type": "string"}, "name": {"type": "string"}}},
                "HubRegistration": {"type": "object", "required": ["hubs"], "properties": {"hubs": {
                    "type": "array", "items": {"type": "object", "required": ["hub_id", "site_id", "public_key"],
                                               "properties": {"hub_id": {"type": "string"},
                                                              "site_id": {"type": "string"},
                                                              "public_key": {"type": "string",
                                                                             "description": "32 bytes, hex"}}}}}},
            },
        },
    }
