"""The `qontak` command line (placeholder until the CLI lands)."""


def main() -> None:
    raise SystemExit("the qontak CLI is not built yet")
