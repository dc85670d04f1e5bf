"""Local, protocol-faithful stand-ins for the Salesforce and Lead Gen & CRM APIs.

Each sandbox is a real HTTP(S) server started as its own process
(``python -m sandbox.salesforce`` / ``python -m sandbox.leadgen``); clients talk to it exactly
as they talk to the real service. See ``docs/sandboxes.md``.
"""
