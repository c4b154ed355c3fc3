"""moto in server mode, as `moto_server -H HOST -p PORT` runs it, except that requests are served
one at a time.

moto answers requests on many threads and its models have no locks: two DynamoDB conditional
writes (or transactions) racing on one item can both pass their condition, which DynamoDB never
allows, and `/moto-api/data.json` fails when another request changes the state it is dumping.
The service's guarantees under concurrency (the queued-exports quota, daily budgets, job leases)
rest on DynamoDB's atomicity, and the tests that race requests check them; serialising requests
gives moto the same per-request atomicity. It costs little: moto holds Python's global lock
while it works anyway.

    python scripts/moto_server.py HOST PORT
"""

import os
import sys
import threading

from werkzeug.serving import run_simple

from moto.moto_server.werkzeug_app import (
    DomainDispatcherApplication,
    MotoRequestHandler,
    create_backend_app,
)


def one_at_a_time(app):
    lock = threading.Lock()

    def serve(environ, start_response):
        with lock:
            # Consume the whole answer inside the lock: werkzeug may stream it later.
            return [b"".join(app(environ, start_response))]

    return serve


def main():
    host, port = sys.argv[1], int(sys.argv[2])
    os.environ.setdefault("MOTO_PORT", str(port))
    app = DomainDispatcherApplication(create_backend_app)
    app.debug = True
    run_simple(host, port, one_at_a_time(app), threaded=True, request_handler=MotoRequestHandler)


if __name__ == "__main__":
    main()
