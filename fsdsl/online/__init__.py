"""The online store: feature values as of the last refresh, in Redis, for serving."""
