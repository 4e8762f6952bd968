"""`python -m provisioner.server`: run a Dockyard server (the CLI starts one this way)."""

from provisioner.server.main import cli_main

if __name__ == "__main__":
    cli_main()
