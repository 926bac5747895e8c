"""moto's server, answering one request at a time.

moto_server runs werkzeug threaded, and moto's DynamoDB evaluates a conditional write and
applies it without a lock: two concurrent UpdateItem calls on one item can both pass their
condition (seen here about once in 25 runs of the concurrent-claim test). Real DynamoDB
applies conditional writes to one item atomically. Serving one request at a time restores
that guarantee for the tests, which is what they rely on; nothing else about moto changes.

Usage: python moto_serial.py HOST PORT
"""

import os
import sys

from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
from moto.server import MotoRequestHandler
from werkzeug.serving import run_simple


def main() -> None:
    host, port = sys.argv[1], int(sys.argv[2])
    os.environ.setdefault("MOTO_PORT", str(port))
    app = DomainDispatcherApplication(create_backend_app)
    run_simple(host, port, app, threaded=False, request_handler=MotoRequestHandler)


if __name__ == "__main__":
    main()
