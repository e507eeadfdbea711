"""A report of recent broadcasts with their status counts (pending/sent/delivered/read/failed).

Runs against the real API or the local sandbox; settings come from the environment (or .env):

    qontak sandbox                    # in another terminal; prints these values
    export QONTAK_BASE_URL=http://127.0.0.1:8765
    export QONTAK_CLIENT_ID=sandbox-client-id QONTAK_CLIENT_SECRET=sandbox-client-secret
    python examples/flow_broadcast_report.py
"""

from __future__ import annotations

import sys
from datetime import datetime, timedelta, timezone

from qontak import Qontak


def main() -> int:
    since = datetime.now(timezone.utc) - timedelta(days=7)
    with Qontak() as client:
        for broadcast in client.broadcasts.iter(start_date=since):  # pages are followed
            counts = broadcast.message_status_count
            summary = counts.model_dump() if counts else {}
            print(broadcast.id, broadcast.created_at, summary)
    return 0


if __name__ == "__main__":
    sys.exit(main())
