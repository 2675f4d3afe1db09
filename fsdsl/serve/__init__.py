"""`fsc serve`: the HTTP feature server (issue #14).

Reads are `FeatureStore.online_features`, pushes `FeatureStore.push`: the server adds HTTP, the
Feast request and response shapes, limits, a bearer token and metrics around them, never a
second implementation of either. `app.py` holds the Starlette application, `feast.py` the
request and response shapes, `metrics.py` the Prometheus counters shared by the workers,
`openapi.py` the API description and its offline docs page, `run.py` the processes.
"""
