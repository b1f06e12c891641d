"""``depictqa serve``: one process serving a REST API and a web page over an Assessor, with
concurrent requests grouped into batches (:mod:`depictqa.serve.batcher`, :mod:`depictqa.serve.app`)."""

from depictqa.serve.app import ServeConfig, create_app
from depictqa.serve.batcher import Batcher

__all__ = ["Batcher", "ServeConfig", "create_app"]
