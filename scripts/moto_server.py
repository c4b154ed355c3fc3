"""moto in server mode, as `moto_server -H HOST -p PORT` runs it, except that DynamoDB requests
are served one at a time.

moto answers requests on many threads and its DynamoDB has no locks: two conditional writes (or
transactions) racing on one item can both pass their condition, which DynamoDB never allows.
The service's guarantees under concurrency (the queued-exports quota, daily budgets, job leases)
rest on that atomicity, and the tests that race requests check them; serialising DynamoDB's
requests gives moto the same per-request atomicity. Other services stay concurrent.

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


def serialise_dynamodb(app):
    lock = threading.Lock()

    def serve(environ, start_response):
        # DynamoDB's JSON protocol names the operation in X-Amz-Target: DynamoDB_20120810.PutItem
        if environ.get("HTTP_X_AMZ_TARGET", "").startswith("DynamoDB_"):
            with lock:
                # Consume the whole answer inside the lock: werkzeug may stream it later.
                return [b"".join(app(environ, start_response))]
        return app(environ, start_response)

    return serve


def main():
    host, port = sys.argv[1], int(sys.argv[2])
    os.environ.setdefault("MOTO_PORT", str(port))
    app = DomainDispatcherApplication(create_backend_app)
    app.debug = True
    run_simple(host, port, serialise_dynamodb(app), threaded=True, request_handler=MotoRequestHandler)


if __name__ == "__main__":
    main()
