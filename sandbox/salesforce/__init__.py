"""A local, protocol-faithful Salesforce org for tests, demos and benchmarks.

Start it with ``python -m sandbox.salesforce --port PORT --data-dir DIR``. It serves HTTPS on
127.0.0.1 with a self-signed certificate so that the *unmodified* simple-salesforce client (which
always builds ``https://`` URLs) and the Airflow ``SalesforceHook`` can reach it through
configuration only. See ``docs/sandbox-salesforce.md``.

Modules:

* :mod:`.ids` -- 15/18-character record ids with the real case-checksum suffix.
* :mod:`.soql` -- an anchored recursive-descent parser for the supported SOQL subset.
* :mod:`.schema` -- the org schema (objects, fields, validation rules) and describe payloads.
* :mod:`.storage` -- the SQLite file that holds records, jobs and org state.
* :mod:`.query` -- SOQL type checking and execution, query cursors, record serialisation.
* :mod:`.dml` -- writes with the org's rules (required fields, picklists, references, ...).
* :mod:`.bulk` -- Bulk API 2.0 ingest and query jobs.
* :mod:`.faults` -- injected latency and faults (seeded random or deterministic rules).
* :mod:`.access_schema`, :mod:`.access`, :mod:`.access_admin` -- the access model a preflight
  check reads (edition and API access, profiles, permission sets, field-level security).
* :mod:`.writelog` -- counts of what the API created/updated/deleted (chaos tests).
* :mod:`.org` -- the org object tying storage, clock, sessions, API usage and faults together.
* :mod:`.rest` -- the REST and Bulk 2.0 handlers; :mod:`.describe` -- per-user describe (child
  relationships, FLS); :mod:`.identity` -- ``/id/<org>/<user>``; :mod:`.soap` and
  :mod:`.mdapi` -- SOAP login/logout and the Metadata API's ``readMetadata``; :mod:`.app` --
  the ASGI application (login, authentication, limits, faults, routing); :mod:`.admin` -- the
  ``/__sandbox__/`` surface.
* :mod:`.seed` -- realistic seed data; :mod:`.certs` -- TLS material; :mod:`.server` -- the
  process entry point; :mod:`.cli` -- the admin command line.

Nothing here imports Airflow or the sync library (``plugins/``).
"""
