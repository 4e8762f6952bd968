"""`dockyard dashboard`: a one-time login link to the web dashboard for the CLI's user.

The link holds a code that signs its browser in once, for a few minutes; the code sits in
the URL's fragment, which a browser never sends to a server, a proxy or a Referer.
"""

from __future__ import annotations

import click

from cli.client import current_client


def _open(url: str) -> bool:
    """Open `url` in a browser where there is one; False (quietly) where there is not."""
    import webbrowser

    try:
        return webbrowser.open(url, new=2)
    except webbrowser.Error:
        return False


@click.command("dashboard")
@click.option("--no-open", is_flag=True, help="Only print the link; do not open a browser.")
def dashboard(no_open: bool) -> None:
    """Print (and open in a browser, where there is one) a one-time dashboard login link."""
    client = current_client()
    link = client.request("POST", "/dashboard/links", json={})
    url = client.base_url + link["path"]
    click.echo(url)
    click.echo(f"(signs in once, until {link['expires_at']})", err=True)
    if not no_open and _open(url):
        click.echo("opened in your browser", err=True)
