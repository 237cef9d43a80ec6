"""Helpers shared by the test suites (throwaway services, pseudo-terminals)."""
