"""Runs moto's server like `moto_server`, but answering one request at a time.

`moto_server` always serves with threads, and moto's DynamoDB backend has no lock around
a conditional write: two of twenty concurrent `PutItem`s with `attribute_not_exists`
could both succeed (seen in this project's conformance suite). Real DynamoDB applies
conditional writes to one item serially; a single-threaded server gives the emulator that
same guarantee, so the suite tests our adapter, not a race inside the emulator.

Usage: python infra/moto_server.py HOST PORT
"""

import sys

from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
from werkzeug.serving import run_simple


def main() -> None:
    host, port = sys.argv[1], int(sys.argv[2])
    app = DomainDispatcherApplication(create_backend_app)
    run_simple(host, port, app, threaded=False, use_reloader=False)


if __name__ == "__main__":
    main()
