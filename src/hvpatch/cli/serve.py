"""``hvpatch serve``: run the web dashboard and the REST API on the configured store."""

from __future__ import annotations

import typer

from hvpatch.cli.context import state
from hvpatch.cli.render import console
from hvpatch.services.users import BOOTSTRAP_ADMIN, bootstrap_admin


def serve(
    ctx: typer.Context,
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on."),
    port: int = typer.Option(8000, "--port", min=1, max=65535, help="Port to listen on."),
    secure_cookies: bool = typer.Option(False, "--secure-cookies",
                                        help="Send the session cookie over HTTPS only (set it "
                                        "behind a TLS-terminating proxy)."),
    log_level: str = typer.Option("info", "--log-level", help="uvicorn's log level."),
) -> None:
    """Serve the web dashboard (/), the REST API (/api/v1), /metrics and /healthz.

    Open http://HOST:PORT/ in a browser and log in. The OpenAPI schema is at
    /api/v1/openapi.json, the interactive docs at /api/v1/docs. On the first run (no user yet)
    the user 'admin' is created and its one-time password is printed once; the dashboard asks
    for a new one at the first login (or POST /api/v1/me/password).

    Example: hvpatch serve --port 8000
    """
    import uvicorn  # the web stack loads only for this command, not for every other one

    from hvpatch.web import create_server

    store = state(ctx).store()
    password = bootstrap_admin(store)
    if password:
        console.print(f"first run: created the user [bold]{BOOTSTRAP_ADMIN}[/] (role admin) "
                      "with this one-time password, shown only now -- change it at the first "
                      "login:", highlight=False)
        console.print(password, highlight=False, markup=False)
    console.print(f"hvpatch dashboard on http://{host}:{port}/ , REST API on "
                  f"http://{host}:{port}/api/v1 (docs: /api/v1/docs), store {store.safe_url}",
                  highlight=False, markup=False)
    app = create_server(store, secure_cookies=secure_cookies)
    uvicorn.run(app, host=host, port=port, log_level=log_level, timeout_graceful_shutdown=5,
                proxy_headers=False)
