"""Local, protocol-faithful stand-in for the Constant Contact Lead Gen & CRM (SharpSpring) API v1.2.

``python -m sandbox.leadgen --port PORT --data-dir DIR`` serves ``POST /pubapi/v1.2/`` (JSON-RPC
with ``accountID``/``secretKey`` in the query string, like the real endpoint) plus an admin
surface under ``/__sandbox__/``. ``python -m sandbox.leadgen admin --url URL <command>`` drives
the admin surface. See ``docs/sandbox-leadgen.md`` for every behaviour and the choices made
where the vendor documentation is silent.

The package never imports ``plugins/`` or Airflow: it is the *other side* of the wire.
"""

DEFAULT_ACCOUNT_ID = "SANDBOXACCOUNT"
DEFAULT_SECRET_KEY = "SANDBOXSECRET"  # noqa: S105 - documented, public sandbox credential
API_PATH = "/pubapi/v1.2/"
ADMIN_PREFIX = "/__sandbox__"
