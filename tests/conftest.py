from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))

EXAMPLE_FEAT = """
entity user {
  key user_id: string
}

source orders {
  table "orders"
  timestamp event_timestamp
  created created_at
  columns {
    order_id: string
    user_id: string
    amount: float
    status: string
    event_timestamp: timestamp
    created_at: timestamp
  }
}
"""


@pytest.fixture(scope="session")
def root() -> Path:
    return ROOT
