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
_METRICS: list[dict[str, list[str]]] = [{"bearer": []}, {}]  # token, or none from loopback


def _stow_paths() -> dict[str, Any]:
    """STOW-RS (docs/dicom.md), served when ``[dicom] enabled``."""
    def op(summary: str, study: bool) -> dict[str, Any]:
        entry: dict[str, Any] = {
            "summary": summary,
            "requestBody": {"required": True, "content": {"multipart/related": {
                "schema": {"type": "string", "format": "binary",
                           "description": 'type="application/dicom"; one DICOM Part 10 object per part'}}}},
            "responses": {"200": {"description": "every instance stored (DICOM JSON response)"},
                          "202": {"description": "some instances stored, some refused (FailedSOPSequence)"},
                          "400": _REFUSAL, "401": _REFUSAL, "409": {"description": "no instance stored"},
                          "413": _REFUSAL, "415": {"description": "not multipart/related application/dicom"}}}
        if study:
            entry["parameters"] = [{"name": "study", "in": "path", "required": True,
                                    "schema": {"type": "string"}, "description": "StudyInstanceUID"}]
        return {"post": entry}

    return {"/dicomweb/studies": op("Store DICOM instances (STOW-RS)", False),
            "/dicomweb/studies/{study}": op("Store DICOM instances of one study (STOW-RS)", True)}


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
            "/metrics": {"get": {"summary": "Prometheus metrics (bearer token of [http] metrics_token_file; "
                                            "without one, loopback clients only)", "security": _METRICS,
                                 "responses": {"200": {"description": "text"}, "401": _REFUSAL}}},
            "/openapi.json": {"get": {"summary": "This document",
                                      "responses": {"200": {"description": "OpenAPI 3.1 JSON"}}}},
            **_stow_paths(),
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
            "/admin/v1/dicom-senders": {"post": {
                "summary": "Create a STOW-RS sender credential (docs/dicom.md); the token is in this answer only",
                "security": _ADMIN,
                "requestBody": {"content": {"application/json": {"schema": {"type": "object", "required": ["name"],
                    "properties": {"name": {"type": "string"}, "note": {"type": "string"}}}}}},
                "responses": {"200": {"description": "name and token"}, "400": _REFUSAL, "401": _REFUSAL}}},
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
