"""Provisioning on the cloud: the store protocols on the cloud database, the service operations
(sites, tokens, hubs, devices, rotation, revocation) and their HTTP routes (docs/admin-api.md)."""
