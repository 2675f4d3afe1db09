"""IR -> sqlglot trees. Training and refresh queries share every piece of point-in-time logic."""

from fsdsl.compile.dialects import DIALECTS
from fsdsl.compile.refresh import refresh_query
from fsdsl.compile.training import training_query

__all__ = ["DIALECTS", "refresh_query", "training_query"]
