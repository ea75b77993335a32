"""The web app: the Facebook Page webhook, the intake webhook and ``/healthz`` today; the dashboard and the JSON
API (#9) grow here. Starlette, served by uvicorn in a thread beside the loop (`passaparola run`) or alone
(`passaparola web`)."""

from passaparola.web.app import create_app
from passaparola.web.server import WebServer

__all__ = ["WebServer", "create_app"]
