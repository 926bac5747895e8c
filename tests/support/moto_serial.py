"""moto's server, with a deployment-aware ECS world, serializing what correctness needs.

moto_server runs werkzeug threaded, and moto's DynamoDB evaluates a conditional write and
applies it without a lock: two concurrent UpdateItem calls on one item can both pass their
condition (seen here about once in 25 runs of the concurrent-claim test). Real DynamoDB
applies conditional writes to one item atomically. All DynamoDB requests therefore run one at
a time, under one lock, which restores that guarantee for the tests, which rely on it.

The server is threaded, but not free-for-all (see ecs_world.Locks): ECS, Resource Groups
Tagging and the world's /_world/ control endpoints share one lock (they read and write the same
ECS state, and task definition revision numbers per family must not race); every other service
has a lock of its own. Every AWS service answers exactly as moto does, except the ECS
operations the world models (see ecs_world.py).

Usage: python moto_serial.py HOST PORT [SEED]
SEED (an integer, default 0) seeds the world's ids (deployment ids, revisions, event ids), so
that runs are repeatable.
"""

import os
import sys
from email.utils import formatdate

from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
from moto.server import MotoRequestHandler
from werkzeug.serving import run_simple

sys.dont_write_bytecode = True  # no __pycache__ beside the tests
import ecs_world  # noqa: E402  (this script's folder is on sys.path)


def on_world_clock(world: "ecs_world.World") -> type:
    """moto's request handler, dating every answer by the world's clock.

    Model: every AWS answer carries the service's time in its Date header ("An origin server
    with a clock ... MUST generate a Date header field in ... 2xx (Successful) ... responses",
    RFC 9110 section 6.6.1), and the functions read AWS's time from it (src/clock.rs). The
    world's clock is real time plus the offset a test advances, so that a function's "now"
    moves with the world's, as a Lambda function's moves with AWS's.
    """

    class WorldClockRequestHandler(MotoRequestHandler):
        def date_time_string(self, timestamp=None):  # http.server's Date header
            return formatdate(world.now() if timestamp is None else timestamp, usegmt=True)

    return WorldClockRequestHandler


def main() -> None:
    host, port = sys.argv[1], int(sys.argv[2])
    seed = int(sys.argv[3]) if len(sys.argv) > 3 else 0
    os.environ.setdefault("MOTO_PORT", str(port))
    app = ecs_world.wrap(DomainDispatcherApplication(create_backend_app), seed=seed)
    run_simple(host, port, app, threaded=True, request_handler=on_world_clock(app.world))


if __name__ == "__main__":
    main()
