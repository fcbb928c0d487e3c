"""``python -m secquant.web``: the client app process (started by ``secquant demo --web``).

It reads the model manifest and the server list written by the launcher,
takes the servers' bearer token from ``$SECQUANT_TOKEN`` (never from argv),
loads the models, and serves the page on 127.0.0.1 until SIGINT or SIGTERM.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    """Run the client app.

    Raises:
        ConfigError: unreadable manifest or server list.
    """
    parser = argparse.ArgumentParser(prog="python -m secquant.web", description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, required=True, help="port on 127.0.0.1")
    parser.add_argument("--manifest", required=True, help="model manifest (JSON) written by the launcher")
    parser.add_argument("--servers", required=True, help="server list (JSON) written by the launcher")
    parser.add_argument("--startup-timeout", type=float, default=180.0, help="seconds to wait for a server")
    args = parser.parse_args(argv)

    from secquant.demo import read_manifest
    from secquant.protocol import serve
    from secquant.web.app import ClientAppConfig, create_app
    from secquant.web.choices import read_servers

    config = ClientAppConfig(manifest=read_manifest(Path(args.manifest)), servers=tuple(read_servers(Path(args.servers))),
                             token=os.environ.get("SECQUANT_TOKEN") or None, startup_timeout=args.startup_timeout)
    print("secquant web: loading the models and test images ...", file=sys.stderr, flush=True)
    app = create_app(config)
    print(f"secquant web: client app on http://127.0.0.1:{args.port}/", file=sys.stderr, flush=True)
    serve(app, "127.0.0.1", args.port, log_level="warning")
    return 0


if __name__ == "__main__":
    sys.exit(main())
