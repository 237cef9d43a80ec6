"""The in-memory test stores honour the same contract the cloud's PostgreSQL stores must."""

from __future__ import annotations

import pytest

from provisioning.stores import Stores
from tests.provisioning.memory import memory_stores
from tests.provisioning.store_contract import StoreContract


class TestMemoryStores(StoreContract):
    @pytest.fixture
    def stores(self) -> Stores:
        return memory_stores()
