"""The web console's static files (`static/`), served at `/console` by `vidgate.api.console`."""
